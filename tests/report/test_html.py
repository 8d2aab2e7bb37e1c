"""The HTML report as a document: self-contained, complete, every link leading to evidence."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conformance import gate
from conformance import results as results_io
from conformance.cli import main
from conformance.observation import ShapeCheck
from conformance.report import evidence
from conformance.report import html as report_html
from conformance.report.model import anchor
from conformance.spec import Caveat
from conformance.verdict import Verdict
from tests.report.factory import case, exchange, results


class Page(HTMLParser):
    """The ids, links, resource attributes and script of a page, and each case's exchanges."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.resources: list[tuple[str, str, str]] = []
        self.script = ""
        self.csp = ""
        self.exchanges: dict[str, int] = {}
        #: By case anchor: the id of the evidence section (the cell's) that holds it.
        self.cell_of: dict[str, str] = {}
        self._case: list[str | None] = []
        self._sections: list[str] = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and "href" in values:
            self.hrefs.append(values["href"])
        for name in ("src", "srcset", "data", "poster", "action"):
            if name in values:
                self.resources.append((tag, name, values[name]))
        if tag == "link":
            self.resources.append((tag, "href", values.get("href", "")))
        if tag == "meta" and values.get("http-equiv") == "Content-Security-Policy":
            self.csp = values["content"]
        if tag == "script":
            self._in_script = True
        classes = values.get("class", "").split()
        if tag == "section":
            self._sections.append(values.get("id", ""))
        if tag == "details":
            self._case.append(values["id"] if "case" in classes else None)
            if "case" in classes:
                self.cell_of[values["id"]] = self._sections[-1]
        if "exchange" in classes:
            for opened in reversed(self._case):
                if opened:
                    self.exchanges[opened] = self.exchanges.get(opened, 0) + 1
                    break

    def handle_endtag(self, tag: str) -> None:
        if tag == "details" and self._case:
            self._case.pop()
        if tag == "section" and self._sections:
            self._sections.pop()
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script += data


@pytest.fixture(scope="module")
def shipped(replayed: Path) -> tuple[results_io.Results, str]:
    """The default replay's results and the report the run wrote."""
    return (
        results_io.load(replayed / "results.json"),
        (replayed / "index.html").read_text(encoding="utf-8"),
    )


def test_self_contained(shipped: tuple[results_io.Results, str]) -> None:
    _, text = shipped
    page = Page(text)
    assert page.resources == []  # no <link>, no src: nothing is loaded
    assert "@import" not in text
    assert "url(" not in text
    for href in page.hrefs:
        # Internal anchors, or the documentation sources a reader may follow.
        assert href.startswith(("#", "https://", "http://")), href
    digest = base64.b64encode(hashlib.sha256(page.script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page.csp
    assert "default-src 'none'" in page.csp


def test_every_target_and_profile_is_shown(shipped: tuple[results_io.Results, str]) -> None:
    data, text = shipped
    for name, profile in data.profiles.items():
        assert f'<span class="colname">{name}</span>' in text
        assert profile.title in text
    for name, target in data.targets.items():
        recorded = any(c.target == name and c.verdict is not Verdict.SKIPPED for c in data.cases)
        if recorded:
            assert f'<span class="colname">{name}</span>' in text
        else:
            assert f"<b>{name}</b> — {target.title}" in text
    assert "not recorded (needs $OPENAI_API_KEY)" in text
    assert "OPENAI_API_KEY=... conformance run --mode record --target openai" in text


def test_every_drill_down_leads_to_real_evidence(shipped: tuple[results_io.Results, str]) -> None:
    data, text = shipped
    page = Page(text)
    internal = [href[1:] for href in page.hrefs if href.startswith("#")]
    missing = sorted({target for target in internal if target not in page.ids})
    assert missing == []
    recorded = [c for c in data.cases if c.verdict is not Verdict.SKIPPED]
    assert recorded, "the replay recorded nothing"
    for item in recorded:
        key = anchor("case", item.id)
        assert f"#{key}" in page.hrefs, f"no matrix link to {item.id}"
        assert page.exchanges.get(key, 0) == len(item.evidence), item.id
        # ...inside the section its matrix cell links to.
        cell = anchor("cell", f"{item.target}/{item.behavior}")
        assert page.cell_of[key] == cell, item.id
        assert f"#{cell}" in page.hrefs
        if item.verdict in (Verdict.PASS, Verdict.DEVIATION, Verdict.OBSERVED):
            assert item.evidence, f"{item.id} has a verdict but no evidence"
    streamed = next(c for c in recorded if c.stream and c.evidence and c.evidence[-1].response)
    last = streamed.evidence[-1].response
    assert last is not None
    assert last.sse
    assert f"{len(last.sse)} SSE lines" in text


def test_sources_are_links_only_when_they_are_web_addresses() -> None:
    made = results([case("acme")])
    made.profiles["openai"].expectations["stop.inclusion"].source = "javascript:alert(1)"
    text = report_html.render(made)
    assert 'href="javascript:' not in text
    assert "javascript:alert(1)" in text  # shown, as text
    assert 'href="https://readme.fireworks.ai/docs/openai-compatibility"' in text


def test_markup_in_results_is_escaped() -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    made = results(
        [
            case("acme", summary=evil, evidence=[exchange(evil), exchange(sse=[evil])]),
            case("acme", observed="included", stream=True),
        ],
        titles={"acme": evil},
        server_versions={"acme": evil},
    )
    # A target name no results file can carry (load refuses it): escaping must hold anyway.
    sneaky = f"acme{evil}"
    made = made.model_copy(
        update={
            "cases": [made.cases[0], made.cases[1].model_copy(update={"target": sneaky})],
            "targets": {**made.targets, sneaky: made.targets["acme"]},
        }
    )
    text = report_html.render(made)
    assert "<script>alert" not in text
    assert "<img" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    ids = Page(text).ids
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", value) for value in ids)


def test_the_style_sheet_holds_no_name_from_the_results() -> None:
    marker = "zz</style><meta http-equiv=refresh content=0>"
    made = results([case("acme"), case("bolt", observed="included", profile="fireworks")])
    made = made.model_copy(
        update={
            "profiles": {f"{name}{marker}": doc for name, doc in made.profiles.items()},
            "cases": [c.model_copy(update={"api": f"chat{marker}"}) for c in made.cases],
        }
    )
    text = report_html.render(made)
    style = text[text.index("<style>") : text.index("</style>")]
    assert "zz" not in style
    assert "acme" not in style
    assert "bolt" not in style
    assert "<meta http-equiv=refresh" not in text
    assert f"chat{marker}".replace("<", "&lt;").replace(">", "&gt;") in text  # shown, as text


def test_cells_are_coloured_by_the_pair_and_mark_deviations() -> None:
    made = results(
        [
            case("acme", observed="omitted"),  # what openai documents
            case("bolt", observed="included", profile="fireworks"),  # fireworks
            case("crab", observed="included"),  # claims openai, does what fireworks documents
            case("dune", observed="rejected"),  # neither
        ]
    )
    text = report_html.render(made)
    assert (
        'class="chip m-left" title="omitted (OpenAI): Generation stops at the stop word, and the'
        in text
    )
    assert (
        'class="chip m-right" title="included (Fireworks): Generation stops at the stop word, and'
        in text
    )
    assert text.count("≠ claim</span>") >= 2  # crab and dune deviate from what they claim
    assert 'class="chip m-neither"' in text
    assert ">claims openai</span>" in text
    assert ">claims fireworks</span>" in text


def test_earlier_runs_and_the_gate_appear(tmp_path: Path) -> None:
    old = results([case("acme", observed="omitted"), case("acme", observed="omitted", stream=True)])
    new = results(
        [case("acme", observed="included"), case("acme", observed="omitted", stream=True)]
    )
    report = gate.evaluate(new.cases, None, None)
    text = report_html.render(new, previous=[old], gate=report)
    assert 'id="changes"' in text
    assert "regressed" in text
    assert 'class="badge changed">changed</span>' in text
    assert "omitted (pass)" in text  # the history of the case
    assert "FAILED: unexpected deviations" in text


def test_report_command_rebuilds_html_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = results([case("acme", observed="included")])
    source = tmp_path / "run" / "results.json"
    results_io.write(made, source)
    baseline = tmp_path / "baseline.yaml"
    gate.update(made, baseline)
    out = tmp_path / "out"
    assert main(["report", str(source), "--out", str(out), "--baseline", str(baseline)]) == 0
    assert "stop.inclusion" in (out / "index.html").read_text()
    assert "every case as expected" in (out / "summary.md").read_text()
    assert main(["report", str(source)]) == 0
    assert (source.parent / "index.html").is_file()
    assert main(["report", str(tmp_path / "none.json")]) == 4
    assert "cannot read it" in capsys.readouterr().err


def test_fields_outside_the_sdk_types_are_listed_per_target_and_per_exchange() -> None:
    with_extension = exchange()
    with_extension.shape = ShapeCheck(
        type="ChatCompletion",
        extensions=["choices[].stop_reason", "<b>timings</b>"],
        violations=["created: Input should be a valid integer"],
    )
    plain = exchange()
    plain.shape = ShapeCheck(type="ChatCompletion")
    made = results([case("acme", evidence=[with_extension]), case("plainco", evidence=[plain])])
    text = report_html.render(made)
    table = text[text.index('id="extensions"') :]
    table = table[: table.index("</table>")]
    assert "&lt;b&gt;timings&lt;/b&gt;, choices[].stop_reason" in table
    assert "acme" in table
    assert "plainco" not in table
    assert "refused by ChatCompletion:</span> created: Input should be a valid integer" in text
    assert "only fields of ChatCompletion" in text

    none_extended = report_html.render(results([case("plainco", evidence=[plain])]))
    assert "None: every recorded reply uses only fields" in none_extended


def test_a_raised_caveat_is_shown_beside_the_outcomes_it_qualifies() -> None:
    made = results(
        [
            case("acme", "stop.inclusion", "omitted"),  # raises the caveat on acme's chat API
            case("acme", "option.logit_bias", "ignored", profile="fireworks"),
            case("acme", "option.logit_bias", "honoured", stream=True, profile="fireworks"),
            case("other", "stop.inclusion", "included"),  # does not raise it
            case("other", "option.logit_bias", "ignored", profile="fireworks"),
        ]
    )
    text = "Unknown <fields> are dropped here, so ignored may mean unsupported."
    made.behaviors["stop.inclusion"].caveats.append(
        Caveat(when="omitted", outcome="ignored", text=text)
    )
    page = report_html.render(made)
    shown = "Unknown &lt;fields&gt; are dropped here, so ignored may mean unsupported."
    evidence = page[page.index('id="evidence"') :]
    acme = evidence[evidence.index(anchor("case", "option.logit_bias[acme-chat-nostream]")) :]
    acme = acme[: acme.index("</details>")]
    assert f"<b>Caveat:</b> {shown}" in acme
    assert page.count(f"<b>Caveat:</b> {shown}") == 1  # not on the honoured case, nor on other
    assert page.count(f'title="{shown}">caveat</span>') == 1


def test_documented_profiles_beyond_the_pair_and_the_claims_start_hidden() -> None:
    text = report_html.render(results([case("acme", profile="openai")]))
    boxes = re.findall(r'<input type="checkbox" id="show-p(\d+)"( checked)?> ([a-z0-9_-]+)<', text)
    shown = {name for _, checked, name in boxes if checked}
    listed = {name: int(index) for index, _, name in boxes}
    assert shown == {"openai", "fireworks", "fireworks-2026-11"}
    assert {"groq", "ollama", "vllm-docs"} <= listed.keys() - shown
    # Each one's column goes with its box (by its index: no name reaches the style sheet).
    groq = listed["groq"]
    hidden = f"form.filters:has(#show-p{groq}:not(:checked)) ~ * col.p{groq}"
    assert f"{hidden} {{ visibility: collapse; }}" in text
    assert f'<col class="pc p{groq}">' in text
    assert f'class="pcol p{groq}"' in text
    assert f'class="pcell p{groq}"' in text


def test_headers_common_to_a_target_and_api_appear_once(
    shipped: tuple[results_io.Results, str],
) -> None:
    data, text = shipped
    groups = {(c.target, c.api) for c in data.cases if c.evidence}
    requests = sum(len(c.evidence) for c in data.cases)
    assert requests > 10 * len(groups)
    # The SDK's headers, the same on every request, once per target and API.
    assert text.count("\nx-stainless-lang: python\n") == len(groups)
    assert text.count("x-stainless-lang") == len(groups)


def test_no_body_is_stored_twice(shipped: tuple[results_io.Results, str]) -> None:
    data, text = shipped
    bodies = [
        exchange.response.body
        for c in data.cases
        for exchange in c.evidence
        if exchange.response is not None and exchange.response.body
    ]
    assert bodies
    for body in bodies:
        assert evidence.text(body) in text  # as it was received
        try:
            pretty = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except ValueError:
            continue
        if pretty != body:
            assert evidence.text(pretty) not in text  # and no other copy


def test_a_stream_shows_its_repeated_envelope_once(shipped: tuple[results_io.Results, str]) -> None:
    data, text = shipped
    streams = [
        exchange.response.sse
        for c in data.cases
        if c.api == "chat"
        for exchange in c.evidence
        if exchange.response is not None and exchange.response.sse
    ]
    chunks = sum(line.count('"object":"chat.completion.chunk"') for s in streams for line in s)
    assert chunks > 10 * len(streams)
    # The first chunk of each stream in full; the others repeat no envelope but a changed one.
    assert text.count('"object":"chat.completion.chunk"') <= 2 * len(streams)
    for stream in streams:
        assert evidence.text(evidence.fold_stream(stream).text) in text


def test_the_filters_hang_on_their_form_and_never_on_the_body(
    shipped: tuple[results_io.Results, str],
) -> None:
    _, text = shipped
    style = text[text.index("<style>") : text.index("</style>")]
    # A :has() on the body makes the browser check every element it parses against it.
    assert "body:has(" not in style
    assert style.count(":has(") == style.count("form.filters:has(") + style.count("):has(")


def test_templates_compiled_ahead_are_not_compiled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = report_html._ENVIRONMENT
    monkeypatch.setattr(environment, "cache", type(environment.cache)(environment.cache.capacity))
    monkeypatch.setattr(report_html, "_compiling", [])
    report_html.compile_ahead()
    report_html.compile_ahead()  # a second call starts nothing more
    assert len(report_html._compiling) == 1
    compiled: list[str | None] = []
    compile_source = environment.compile

    def counted(source: str, name: str | None = None, *args: object, **kwargs: object) -> object:
        compiled.append(name)
        return compile_source(source, name, *args, **kwargs)  # type: ignore[arg-type]

    report_html._compiling[0].join()
    monkeypatch.setattr(environment, "compile", counted)
    page = report_html.render(results([case("acme")]))
    assert "acme" in page
    assert compiled == []


def test_each_matrix_cell_has_one_marker_and_only_chips_that_may_be_cut_are_boxed(
    shipped: tuple[results_io.Results, str],
) -> None:
    _, text = shipped
    start = text.index('<table class="matrix"')
    matrix = text[start : text.index("</table>", start)]
    outside = text[:start] + text[start + len(matrix) :]
    assert matrix.count('<span class="more">') == matrix.count('<details class="cd"') > 0
    summaries = re.findall(r"<summary>.*?</summary>", matrix, re.S)
    assert sum(summary.count('<span class="lbl">') for summary in summaries) > 0
    assert matrix.count('<span class="lbl">') == sum(s.count('"lbl"') for s in summaries)
    assert '<span class="lbl">' not in outside


def test_a_case_names_what_it_observed_once_unless_its_chip_does_not() -> None:
    named = report_html.render(results([case("acme", observed="omitted")]))
    assert "observed <b>" not in named  # its chip, just before, says "omitted"
    errored = case("acme", verdict=Verdict.ERROR).model_copy(update={"observed": "omitted"})
    assert "observed <b>omitted</b>" in report_html.render(results([errored]))
