"""What changed between two runs: cases whose outcome or verdict moved, targets, documentation.

Typical use is a provider's release against the previous one:
``conformance compare old/results.json new/results.json`` prints the changes and writes
them as HTML (``conformance.report.html.render_comparison``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from conformance.results import CaseResult, Results
from conformance.verdict import Verdict

# How good a verdict is, for telling regressions from fixes; skipped says nothing.
_RANK = {Verdict.PASS: 2, Verdict.OBSERVED: 2, Verdict.DEVIATION: 1, Verdict.ERROR: 0}


class Change(StrEnum):
    """Which way a case moved."""

    REGRESSION = "regression"  # e.g. pass -> deviation, deviation -> error
    FIX = "fix"  # e.g. deviation -> pass
    CHANGED = "changed"  # same standing, other outcome (e.g. one deviation for another)
    RECORDED = "recorded"  # skipped or absent before, has a verdict now
    UNRECORDED = "unrecorded"  # had a verdict, skipped or absent now


LABELS = {
    Change.REGRESSION: "regressed",
    Change.FIX: "fixed",
    Change.CHANGED: "changed outcome",
    Change.RECORDED: "newly recorded",
    Change.UNRECORDED: "no longer recorded",
}


@dataclass(frozen=True)
class CaseChange:
    """One case whose outcome or verdict differs between the two runs."""

    id: str
    target: str
    behavior: str
    before: CaseResult | None
    after: CaseResult | None
    change: Change

    @staticmethod
    def state(case: CaseResult | None) -> str:
        """``outcome (verdict)``, or ``absent``."""
        if case is None:
            return "absent"
        if case.observed is None:
            return case.verdict.value
        return f"{case.observed} ({case.verdict.value})"


@dataclass(frozen=True)
class TargetChange:
    """A target whose server version or claimed profile differs, or that one run lacks."""

    name: str
    field: str
    before: str | None
    after: str | None

    def describe(self) -> str:
        """One line, e.g. ``acme: server_version acme/1.0 -> acme/1.1``."""
        if self.field == "present":
            return f"{self.name}: {'only in the new run' if self.after else 'only in the old run'}"
        return f"{self.name}: {self.field} {self.before or '-'} -> {self.after or '-'}"


@dataclass(frozen=True)
class ExpectationChange:
    """A profile whose documented expectation for a behavior differs between the runs."""

    profile: str
    behavior: str
    before: list[str] | None
    after: list[str] | None


@dataclass(frozen=True)
class Comparison:
    """Every difference between ``old`` and ``new`` that a reader cares about."""

    old: Results
    new: Results
    cases: list[CaseChange]
    targets: list[TargetChange]
    expectations: list[ExpectationChange]

    def of(self, change: Change) -> list[CaseChange]:
        """The case changes of one kind."""
        return [case for case in self.cases if case.change is change]

    @property
    def unchanged(self) -> int:
        """How many cases of the new run are the same as before."""
        return len(self.new.cases) - sum(1 for c in self.cases if c.after is not None)


def _state(case: CaseResult | None) -> tuple[str | None, Verdict] | None:
    if case is None or case.verdict is Verdict.SKIPPED:
        return None
    return (case.observed, case.verdict)


def _classify(before: CaseResult | None, after: CaseResult | None) -> Change | None:
    old, new = _state(before), _state(after)
    if old == new:
        return None
    if old is None:
        return Change.RECORDED
    if new is None:
        return Change.UNRECORDED
    if _RANK[new[1]] < _RANK[old[1]]:
        return Change.REGRESSION
    if _RANK[new[1]] > _RANK[old[1]]:
        return Change.FIX
    return Change.CHANGED


def compare(old: Results, new: Results) -> Comparison:
    """The differences between two runs' results."""
    before = {case.id: case for case in old.cases}
    after = {case.id: case for case in new.cases}
    cases = []
    for case_id in sorted(before.keys() | after.keys()):
        a, b = before.get(case_id), after.get(case_id)
        change = _classify(a, b)
        if change is not None:
            known = b or a
            assert known is not None  # one of the two exists for every id
            cases.append(CaseChange(case_id, known.target, known.behavior, a, b, change))
    targets = []
    for name in sorted(old.targets.keys() | new.targets.keys()):
        x, y = old.targets.get(name), new.targets.get(name)
        if x is None or y is None:
            targets.append(
                TargetChange(name, "present", "yes" if x else None, "yes" if y else None)
            )
            continue
        for attribute in ("server_version", "profile"):
            if getattr(x, attribute) != getattr(y, attribute):
                targets.append(
                    TargetChange(name, attribute, getattr(x, attribute), getattr(y, attribute))
                )
    expectations = []
    for profile in sorted(old.profiles.keys() & new.profiles.keys()):
        x_docs, y_docs = old.profiles[profile].expectations, new.profiles[profile].expectations
        for behavior in sorted(x_docs.keys() & y_docs.keys()):
            if x_docs[behavior].expected != y_docs[behavior].expected:
                expectations.append(
                    ExpectationChange(
                        profile, behavior, x_docs[behavior].expected, y_docs[behavior].expected
                    )
                )
    return Comparison(old, new, cases, targets, expectations)


def _run_label(results: Results) -> str:
    p = results.provenance
    revision = (p.git_revision or "no revision")[:10]
    return f"{p.finished_at:%Y-%m-%d %H:%M} UTC, suite {p.suite_version} ({revision}), {p.mode}"


def _expected(values: list[str] | None) -> str:
    return " or ".join(values) if values is not None else "unknown"


def render_text(comparison: Comparison, old_name: str = "old", new_name: str = "new") -> str:
    """The comparison for a terminal."""
    lines = [
        f"old: {old_name}  ({_run_label(comparison.old)})",
        f"new: {new_name}  ({_run_label(comparison.new)})",
    ]
    for target in comparison.targets:
        lines.append(f"target {target.describe()}")
    for expectation in comparison.expectations:
        lines.append(
            f"profile {expectation.profile}, {expectation.behavior}: documents "
            f"{_expected(expectation.before)} -> {_expected(expectation.after)}"
        )
    counts = ", ".join(
        f"{len(comparison.of(change))} {LABELS[change]}"
        for change in Change
        if comparison.of(change)
    )
    lines.append(
        f"{len(comparison.cases)} cases changed"
        + (f" ({counts})" if counts else "")
        + f"; {comparison.unchanged} unchanged"
    )
    marks = {
        Change.REGRESSION: "-",
        Change.FIX: "+",
        Change.CHANGED: "~",
        Change.RECORDED: ">",
        Change.UNRECORDED: "<",
    }
    for change in Change:
        for case in comparison.of(change):
            lines.append(
                f"  {marks[change]} {case.id}: {CaseChange.state(case.before)} -> "
                f"{CaseChange.state(case.after)}"
            )
    return "\n".join(lines)
