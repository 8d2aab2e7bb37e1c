"""Text from elsewhere is shown, never obeyed: in the terminal and in summary.md.

A server's reply, or a results file from another CI run, may carry terminal escape
sequences (ESC starts those that retitle, recolour or clear a terminal; CR rewrites a line;
a direction mark reorders it) and Markdown that would act where summary.md is rendered: an
image fetched from elsewhere, a link, an ``@mention`` that notifies someone, an issue
reference. Each must arrive as visible, inert text.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from conformance import gate
from conformance.cli import main
from conformance.reference.app import create_app
from conformance.reference.server import ServerConfig
from conformance.report import markdown
from conformance.results import CaseResult, write
from conformance.verdict import Verdict
from tests._cli import conformance
from tests.hard_edges._serve import serving
from tests.report.factory import case, results

#: What a hostile server says: a terminal title change and screen clear, a bell, a carriage
#: return and a right-to-left override, then Markdown that would fetch, link and notify.
HOSTILE = (
    "upstream \x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m\rfake line \u202edesrever "
    "![tracker](https://evil.example/p.png) [click](https://evil.example/x) "
    "<img src=https://evil.example/i.png> @octocat see #1 www.evil.example"
)
#: What must not be in anything printed or in summary.md (ESC, BEL, CR, the override).
CONTROLS = ("\x1b", "\x07", "\r", "\u202e")
#: Markdown that would act, as it was sent.
ACTIVE_MARKDOWN = ("![tracker](", "[click](", "<img", "@octocat", "#1", "https://evil", "www.evil")


def _inert(markdown_text: str) -> None:
    for control in CONTROLS:
        assert control not in markdown_text, repr(control)
    for active in ACTIVE_MARKDOWN:
        assert active not in markdown_text, active


class _HostileUpstream:
    """The reference app behind a server whose first completion request gets a 500 with
    HOSTILE as its plain-text body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.answered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not self.answered:
            self.answered += 1
            headers = [(b"content-type", b"text/plain; charset=utf-8")]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": HOSTILE.encode()})
            return
        await self.app(scope, receive, send)


@pytest.fixture
def hostile_upstream() -> Iterator[tuple[str, _HostileUpstream]]:
    """A loopback server answering as _HostileUpstream; its base URL and the app."""
    upstream = _HostileUpstream(create_app(ServerConfig()))
    with serving(upstream) as base_url:
        yield base_url, upstream


def test_a_hostile_reply_is_printed_and_summarised_as_text(
    hostile_upstream: tuple[str, _HostileUpstream], specs_copy: Path, tmp_path: Path
) -> None:
    base_url, upstream = hostile_upstream
    completed = conformance(
        "run",
        "--mode",
        "live",
        "--concurrency",
        "1",
        "--specs",
        str(specs_copy),
        "--target",
        "reference-openai",
        "--behavior",
        "stop.inclusion",
        "--base-url",
        base_url,
        "--",
        "-rA",
        cwd=tmp_path,
        env={"PY_COLORS": "0", "NO_COLOR": "1"},
    )
    output = completed.stdout + completed.stderr
    assert upstream.answered == 1
    assert completed.returncode == 2, output  # the 500 is an error, and the only one
    # The reply is quoted where pytest and the gate report the error, escaped.
    assert "upstream \\x1b]0;pwned\\x07" in output, output
    for control in CONTROLS:
        assert control not in output, repr(control)
    summary = (tmp_path / "reports" / "summary.md").read_text()
    assert "upstream \\\\x1b\\]0;pwned\\\\x07" in summary, summary  # shown, as text
    _inert(summary)


def _hostile_results() -> list[CaseResult]:
    return [
        case("acme", observed="included", summary=HOSTILE, server_version=HOSTILE),
        case("acme", "stream.usage", None, stream=True, summary=HOSTILE),
        case("acme", "max_tokens.overflow", "rejected", summary=HOSTILE),
    ]


def test_results_from_elsewhere_render_as_text_in_summary_md_and_the_terminal(
    tmp_path: Path,
) -> None:
    made = results(_hostile_results(), server_versions={"acme": HOSTILE})
    baseline = gate.Baseline(
        targets={"acme": [gate.BaselineEntry(case="nothing[*]", verdict=[Verdict.DEVIATION])]}
    )
    report = gate.evaluate(made.cases, baseline, Path("ci/baseline.yaml"))
    assert report.findings
    assert report.unused
    _inert(markdown.render(made, gate=report))
    for line in report.lines():
        assert not any(control in line for control in CONTROLS), line
    for result in made.cases:
        assert not any(control in result.explain() for control in CONTROLS)

    # `conformance compare` prints what changed between two such files.
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    write(made, old)
    write(results(_hostile_results()[:1], server_versions={"acme": HOSTILE + " 2"}), new)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["compare", str(old), str(new), "--html", str(tmp_path / "compare.html")]) == 0
    assert "acme: server_version" in out.getvalue()
    assert not any(control in out.getvalue() for control in CONTROLS), out.getvalue()


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("![x](https://e.example/p.png)", "!\\[x\\](https://&#8203;e.example/p.png)"),
        ("[a](b) [c][d] [^1]", "\\[a\\](b) \\[c\\]\\[d\\] \\[^1\\]"),
        ("\\[a](b)", "\\\\\\[a\\](b)"),
        ("@octocat and a@b.example", "@&#8203;octocat and a@&#8203;b.example"),
        ("see #12", "see #&#8203;12"),
        (
            "<https://e.example> www.e.example",
            "&lt;https://&#8203;e.example&gt; www.&#8203;e.example",
        ),
        ("\x1b[2J\x00\x9b\u202e", "\\\\x1b\\[2J\\\\x00\\\\x9b\\\\u202e"),
        ("a | b `c`", "a \\| b &#96;c&#96;"),
    ],
)
def test_each_kind_of_active_markdown_is_made_text(sent: str, shown: str) -> None:
    assert markdown.cell(sent) == shown
