"""summary.md: counts, the gate's findings, and provider text that cannot break the Markdown."""

from __future__ import annotations

from pathlib import Path

from conformance.gate import Baseline, BaselineEntry, evaluate
from conformance.report import markdown
from conformance.verdict import Verdict
from tests.report.factory import case, results


def test_summary_without_a_gate_lists_counts_and_unrecorded_targets() -> None:
    skipped = "no cassette; record it with: OPENAI_API_KEY=... conformance run --mode record"
    made = results(
        [
            case("acme", observed="omitted"),
            case("acme", observed="included", stream=True),
            case("openai", observed=None, verdict=Verdict.SKIPPED, summary=skipped, evidence=[]),
        ],
        server_versions={"acme": "acme/2.1"},
    )
    text = markdown.render(made)
    assert text.startswith("## Conformance results\n")
    assert "| **acme** | openai | acme/2.1 | 1 | 1 | 0 | 0 | 0 |" in text
    assert "Not recorded: openai (needs $OPENAI_API_KEY)." in text
    assert "Unexpected" not in text


def test_gate_findings_and_escaping(tmp_path: Path) -> None:
    evil = "a | b <script>x</script> `tick`\nnext line"
    made = results(
        [
            case("acme", observed="included", summary=evil),
            case("acme", "stream.usage", None, stream=True, summary="connection refused"),
            case("acme", "max_tokens.overflow", "rejected"),
            case("acme", "option.logit_bias", "rejected"),
        ]
    )
    baseline = Baseline(
        targets={
            "acme": [
                BaselineEntry(case="max_tokens.overflow[*]", verdict=[Verdict.DEVIATION]),
                BaselineEntry(case="option.logit_bias[*]", verdict=[Verdict.DEVIATION]),
            ]
        }
    )
    report = evaluate(made.cases, baseline, Path("ci/baseline.yaml"))
    text = markdown.render(made, gate=report, report_dir="reports")
    assert text.startswith("## ❌ Conformance: FAILED: unexpected deviations;")
    assert "baseline `ci/baseline.yaml`" in text
    assert "### Unexpected deviations (1)" in text
    assert "### Unexpected errors (1)" in text
    assert "### Unexpected passes (1)" in text
    assert "<details><summary>Known (in the baseline): 1</summary>" in text
    assert "a \\| b &lt;script&gt;x&lt;/script&gt; &#96;tick&#96; next line" in text
    assert "<script>" not in text
    assert "`reports/index.html`" in text
    path = tmp_path / "summary.md"
    markdown.write(made, path, gate=report)
    assert path.read_text().startswith("## ❌")


def test_long_lists_are_cut() -> None:
    made = results([case(f"t{i:02}", observed="included") for i in range(markdown.MAX_ROWS + 5)])
    text = markdown.render(made, gate=evaluate(made.cases, None, None))
    assert f"### Unexpected deviations ({markdown.MAX_ROWS + 5})" in text
    assert "| … and 5 more | | | |" in text
    assert markdown.cell("x" * 500).endswith("…")
