"""Comparing two runs: regressions, fixes, newly recorded cases, server versions, docs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from conformance import results as results_io
from conformance.cli import main
from conformance.compare import Change, compare, render_text
from conformance.results import ExpectationDoc
from conformance.verdict import Verdict
from tests.report.factory import WHEN, case, results


def _runs() -> tuple[results_io.Results, results_io.Results]:
    old = results(
        [
            case("acme", observed="omitted"),  # pass -> deviation
            case("acme", observed="included", stream=True),  # deviation -> pass
            case("acme", "stream.usage", "extra_chunk", stream=True),  # deviation -> deviation
            case("acme", "max_tokens.overflow", "rejected"),  # unchanged
            case("acme", "option.logit_bias", None, verdict=Verdict.SKIPPED, evidence=[]),
            case("acme", "option.functions", "honoured"),  # pass -> error
        ],
        server_versions={"acme": "acme/1.0"},
    )
    new = results(
        [
            case("acme", observed="included", summary="the stop word came back"),
            case("acme", observed="omitted", stream=True),
            case("acme", "stream.usage", "finish_chunk", stream=True),
            case("acme", "max_tokens.overflow", "rejected"),
            case("acme", "option.logit_bias", "honoured"),
            case("acme", "option.functions", None),
            case("newcomer", observed="omitted"),
        ],
        when=WHEN + dt.timedelta(days=5),
        server_versions={"acme": "acme/1.1"},
    )
    # The docs moved too: fireworks now documents omitted for stop.inclusion.
    docs = new.profiles["fireworks"].expectations["stop.inclusion"]
    new.profiles["fireworks"].expectations["stop.inclusion"] = ExpectationDoc(
        **{**docs.model_dump(), "expected": ["omitted"]}
    )
    return old, new


def test_compare_classifies_each_change() -> None:
    old, new = _runs()
    comparison = compare(old, new)
    by_id = {change.id: change.change for change in comparison.cases}
    assert by_id == {
        "stop.inclusion[acme-chat-nostream]": Change.REGRESSION,
        "stop.inclusion[acme-chat-stream]": Change.FIX,
        "stream.usage[acme-chat-stream]": Change.CHANGED,
        "option.logit_bias[acme-chat-nostream]": Change.RECORDED,
        "option.functions[acme-chat-nostream]": Change.REGRESSION,
        "stop.inclusion[newcomer-chat-nostream]": Change.RECORDED,
    }
    assert comparison.unchanged == 1
    assert [(t.name, t.field, t.before, t.after) for t in comparison.targets] == [
        ("acme", "server_version", "acme/1.0", "acme/1.1"),
        ("newcomer", "present", None, "yes"),
    ]
    assert [(e.profile, e.behavior, e.after) for e in comparison.expectations] == [
        ("fireworks", "stop.inclusion", ["omitted"])
    ]


def test_text_names_every_change() -> None:
    old, new = _runs()
    text = render_text(compare(old, new), "v1.json", "v2.json")
    assert "old: v1.json  (2026-11-20 09:30 UTC" in text
    assert "target acme: server_version acme/1.0 -> acme/1.1" in text
    assert "6 cases changed (2 regressed, 1 fixed, 1 changed outcome, 2 newly recorded)" in text
    assert "  - stop.inclusion[acme-chat-nostream]: omitted (pass) -> included (deviation)" in text
    assert "  + stop.inclusion[acme-chat-stream]: included (deviation) -> omitted (pass)" in text
    assert "  - option.functions[acme-chat-nostream]: honoured (pass) -> error" in text
    assert "profile fireworks, stop.inclusion: documents included -> omitted" in text


def test_identical_runs_have_no_changes() -> None:
    old, _ = _runs()
    comparison = compare(old, old)
    assert comparison.cases == []
    assert "0 cases changed; 6 unchanged" in render_text(comparison)


def test_compare_command_prints_and_writes_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = _runs()
    results_io.write(old, tmp_path / "old.json")
    new.cases[0] = new.cases[0].model_copy(update={"summary": "<script>alert(1)</script>"})
    results_io.write(new, tmp_path / "new.json")
    page = tmp_path / "out" / "compare.html"
    code = main(
        ["compare", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--html", str(page)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "2 regressed" in out
    assert f"HTML: {page}" in out
    html = page.read_text()
    assert "What changed between two runs" in html
    assert "stop.inclusion[acme-chat-nostream]" in html
    assert "omitted (pass)" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html


def test_compare_command_rejects_a_file_that_is_not_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk.json").write_text('{"cases": 3}')
    assert main(["compare", str(tmp_path / "junk.json"), str(tmp_path / "junk.json")]) == 4
    assert "not a results file" in capsys.readouterr().err
