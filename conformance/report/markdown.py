"""``summary.md``: the run in a few lines of Markdown, for CI step summaries and PR comments.

Every value in it may come from a server or from a results file made elsewhere, so it goes
in as text that Markdown shows and does not act on: no HTML (GitHub renders part of it),
no link or image, no ``@mention`` or ``#123`` that would notify someone or cross-reference
an issue, no control character; and shortened, because comments have a size limit.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from conformance import files
from conformance.gate import ExitCode, Finding, GateReport, Kind
from conformance.report.model import build
from conformance.results import Results
from conformance.untrusted import printable

MAX_ROWS = 30
MAX_TEXT = 160
VERDICTS = ("pass", "deviation", "error", "observed", "skipped")

#: What Markdown (as GitHub renders it) would act on, and the inert text put in its place,
#: in this order: backslashes first, as the escapes after them add some; brackets open
#: every link and image; a zero-width space keeps a mention, an issue reference or a bare
#: address as text; backticks last, as the entity that replaces them holds a ``#``.
_INERT = [
    (re.compile(r"\\"), r"\\\\"),
    (re.compile(r"\|"), r"\\|"),
    (re.compile(r"[\[\]]"), r"\\\g<0>"),
    (re.compile(r"([@#])(?=\w)"), r"\1&#8203;"),
    (re.compile(r"(?i)(://|www\.)"), r"\1&#8203;"),
    (re.compile(r"`"), "&#96;"),
]


def cell(text: str | None, limit: int = MAX_TEXT) -> str:
    """``text`` made inert for one Markdown table cell (or any line of the summary)."""
    if not text:
        return "—"
    flat = printable(" ".join(text.split()))
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    inert = html.escape(flat, quote=False)
    for pattern, replacement in _INERT:
        inert = pattern.sub(replacement, inert)
    return inert


def code(text: str, limit: int = MAX_TEXT, *, in_table: bool = True) -> str:
    """``text`` as a Markdown code span, where nothing is rendered but a backtick ends it
    (and a pipe, in a table, ends the cell)."""
    flat = printable(" ".join(text.split()))
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    flat = flat.replace("`", "'")
    return f"`{flat.replace('|', chr(92) + '|') if in_table else flat}`"


def _findings(title: str, findings: list[Finding], note: str = "") -> list[str]:
    if not findings:
        return []
    lines = [f"### {title} ({len(findings)})", ""]
    if note:
        lines += [note, ""]
    lines += ["| Case | Expected | Observed | Why |", "|---|---|---|---|"]
    for finding in findings[:MAX_ROWS]:
        case = finding.case
        expected = " or ".join(case.expected) if case.expected is not None else "unknown"
        lines.append(
            f"| {code(case.id, 120)} | {cell(expected)} ({cell(case.profile)}) | "
            f"{cell(case.observed or case.verdict.value)} | {cell(case.summary)} |"
        )
    if len(findings) > MAX_ROWS:
        lines.append(f"| … and {len(findings) - MAX_ROWS} more | | | |")
    return [*lines, ""]


def _unstable(results: Results) -> list[str]:
    """The cases whose repeated runs disagreed (``conformance run --repeat``)."""
    unstable = [case for case in results.cases if case.unstable]
    if not unstable:
        return []
    lines = [
        f"### Unstable cases ({len(unstable)})",
        "",
        "Their repeated runs disagreed: `conformance baseline update` marks them flaky.",
        "",
        "| Case | Runs |",
        "|---|---|",
    ]
    lines += [f"| `{cell(case.id, 120)}` | {cell(case.tally())} |" for case in unstable[:MAX_ROWS]]
    if len(unstable) > MAX_ROWS:
        lines.append(f"| … and {len(unstable) - MAX_ROWS} more | |")
    return [*lines, ""]


def _runs(results: Results) -> list[str]:
    """Which results file each target came from, for merged results."""
    if not results.runs:
        return []
    lines = [f"Merged from {len(results.runs)} runs (a shared target from the newest):", ""]
    for run in results.runs:
        taken = ", ".join(cell(name) for name in run.targets) or "nothing"
        superseded = ", ".join(cell(name) for name in run.superseded)
        lines.append(
            f"- `{cell(run.file)}` ({cell(run.provenance.mode)}, "
            f"{run.provenance.finished_at:%Y-%m-%d %H:%M UTC}): {taken}"
            + (f"; superseded: {superseded}" if superseded else "")
        )
    return [*lines, ""]


def render(results: Results, *, gate: GateReport | None = None, report_dir: str = "") -> str:
    """The summary as Markdown."""
    report = build(results, gate=gate)
    p = results.provenance
    if gate is None:
        title = "Conformance results"
    else:
        icon = {
            ExitCode.AS_EXPECTED: "✅",
            ExitCode.UNEXPECTED_DEVIATION: "❌",
            ExitCode.INFRA_ERROR: "⚠️",
        }[gate.exit_code]
        title = f"{icon} Conformance: {cell(gate.headline().split(': ', 1)[1], 300)}"
    revision = f" ({code(p.git_revision[:10], in_table=False)})" if p.git_revision else ""
    lines = [
        f"## {title}",
        "",
        f"Suite {cell(p.suite_version)}{revision} · openai SDK {cell(p.openai_version)} · "
        f"mode {cell(p.mode)} · {p.finished_at:%Y-%m-%d %H:%M UTC}"
        + ("" if p.complete else " · **incomplete run**")
        + (
            f" · baseline {code(str(gate.baseline), 300, in_table=False)}"
            if gate is not None and gate.baseline
            else ""
        ),
        "",
        "| Target | Claims | Server | " + " | ".join(VERDICTS) + " | tokens |",
        "|---|---|---|" + "--:|" * (len(VERDICTS) + 1),
    ]
    for target in report.recorded:
        counts = " | ".join(str(target.counts[v]) for v in VERDICTS)
        lines.append(
            f"| **{cell(target.name)}** | {cell(target.info.profile)} | "
            f"{cell(target.info.server_version)} | {counts} | {target.tokens.total:,} |"
        )
    lines.append("")
    lines += _runs(results)
    if report.unrecorded:
        names = ", ".join(
            f"{cell(t.name)} ({cell(t.note)})" if t.note else cell(t.name)
            for t in report.unrecorded
        )
        lines += [f"Not recorded: {names}.", ""]
    if gate is not None:
        lines += _findings("Unexpected deviations", gate.of(Kind.UNEXPECTED_DEVIATION))
        lines += _findings("Unexpected errors", gate.of(Kind.UNEXPECTED_ERROR))
        lines += _findings(
            "Unexpected passes",
            gate.of(Kind.UNEXPECTED_PASS),
            "The baseline expects these not to pass: update it with `conformance baseline update`.",
        )
        if gate.unused:
            lines += [f"### Unused baseline entries ({len(gate.unused)})", ""]
            lines += [f"- {cell(u.target)}: {code(u.entry.case)}" for u in gate.unused[:MAX_ROWS]]
            lines.append("")
        known = gate.of(Kind.KNOWN)
        if known:
            lines += [f"<details><summary>Known (in the baseline): {len(known)}</summary>", ""]
            lines += _findings("Known", known)
            lines += ["</details>", ""]
    lines += _unstable(results)
    where = f"{report_dir.rstrip('/')}/" if report_dir else ""
    lines.append(
        f"Full report with evidence: `{where}index.html` · results: `{where}results.json` · "
        f"JUnit: `{where}junit.xml`"
    )
    return "\n".join(lines) + "\n"


def write(results: Results, path: Path, *, gate: GateReport | None = None) -> None:
    """Write the summary to ``path``."""
    files.write_text(path, render(results, gate=gate, report_dir=str(path.parent)))
