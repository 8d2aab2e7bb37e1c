"""The CI gate: a run's verdicts against a baseline of known deviations, in the WPT style.

A baseline lists, per target, the cases whose outcome is known not to match the claimed
profile (a known deviation, or a known infrastructure error) and the cases known to be
flaky (any outcome allowed). A provider's CI then fails only on what is *unexpected*:

- an unexpected deviation (exit 1): a deviation the baseline does not list, or a deviation
  to another outcome than the one the baseline pins;
- an unexpected error (exit 2 when there is no unexpected deviation): no observation, where
  the baseline does not allow an error;
- an unexpected pass (reported, exit unchanged): the baseline lists a deviation or an error
  that no longer happens, so the baseline is stale.

Without a baseline every deviation and every error is unexpected. Case patterns are case
ids in which ``*`` and ``?`` are wildcards; brackets are literal, as case ids contain them.
An exact id wins over a pattern; otherwise the first matching entry in the file wins.
The baseline's JSON Schema is published at
``conformance/builtin_specs/schema/baseline.schema.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from conformance.results import CaseResult, Results
from conformance.spec.yamlpos import PathPart, read
from conformance.verdict import Verdict

BASELINE_SCHEMA_VERSION = 1
HEADER = (
    "# A conformance baseline: per target, the known deviations and flaky cases.\n"
    "# `conformance run --baseline FILE` fails only on what this file does not expect.\n"
    "# Format: conformance/builtin_specs/schema/baseline.schema.json in the conformance suite.\n"
)


class ExitCode(IntEnum):
    """What ``conformance run`` returns. Documented in the README and in ``conformance.cli``."""

    AS_EXPECTED = 0  # every case as expected (by the profile, or by the baseline)
    UNEXPECTED_DEVIATION = 1  # at least one deviation the baseline does not allow
    INFRA_ERROR = 2  # no unexpected deviation, but unexpected errors (or an interrupted run)
    USAGE_ERROR = 4  # bad arguments, a bad spec or baseline file, an unwritable report folder
    NO_CASES = 5  # nothing was selected


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _one_or_many(value: Any) -> Any:
    # A single verdict or outcome may be written without brackets.
    return [value] if isinstance(value, str) else value


_ONE_OR_MANY_VERDICTS = BeforeValidator(
    _one_or_many, json_schema_input_type=Verdict | list[Verdict]
)
_ONE_OR_MANY_OUTCOMES = BeforeValidator(_one_or_many, json_schema_input_type=str | list[str])


class BaselineEntry(_Model):
    """What one case, or every case matching a pattern, is expected to come to."""

    case: str = Field(
        description=(
            "A case id such as 'stop.inclusion[mycloud-chat-stream]', or a pattern over case "
            "ids: '*' and '?' are wildcards, brackets are literal."
        ),
        min_length=1,
    )
    verdict: Annotated[list[Verdict], _ONE_OR_MANY_VERDICTS] | None = Field(
        default=None,
        description="The verdicts allowed for these cases (a known deviation: [deviation]).",
    )
    observed: Annotated[list[str], _ONE_OR_MANY_OUTCOMES] | None = Field(
        default=None,
        description="If given, a deviation must be to one of these outcomes to be expected.",
    )
    flaky: bool = Field(default=False, description="Any verdict and outcome is allowed.")
    reason: str | None = Field(default=None, description="Why: a bug link, a decision.")

    @model_validator(mode="after")
    def _complete(self) -> BaselineEntry:
        if self.flaky and self.verdict is not None:
            raise ValueError("a flaky entry allows every verdict; drop 'verdict'")
        if not self.flaky and not self.verdict:
            raise ValueError("an entry needs 'verdict' (e.g. [deviation]) or 'flaky: true'")
        return self

    def matches(self, case_id: str) -> bool:
        """Whether this entry's case id or pattern covers ``case_id``."""
        return _pattern(self.case).fullmatch(case_id) is not None

    @property
    def exact(self) -> bool:
        """Whether ``case`` is a plain id rather than a pattern."""
        return "*" not in self.case and "?" not in self.case


class Baseline(_Model):
    """The contents of a baseline file: per target, the cases expected not to pass."""

    schema_version: int = BASELINE_SCHEMA_VERSION
    targets: dict[str, list[BaselineEntry]] = Field(
        default_factory=dict, description="Per target name, its entries."
    )

    def entry_for(self, target: str, case_id: str) -> BaselineEntry | None:
        """The entry that governs ``case_id``: an exact id first, else the first pattern."""
        entries = self.targets.get(target, [])
        for entry in entries:
            if entry.exact and entry.case == case_id:
                return entry
        for entry in entries:
            if not entry.exact and entry.matches(case_id):
                return entry
        return None


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _pattern(text: str) -> re.Pattern[str]:
    # fnmatch would read the brackets of every case id as a character class.
    compiled = _PATTERNS.get(text)
    if compiled is None:
        parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
        compiled = _PATTERNS[text] = re.compile("".join(parts))
    return compiled


class Kind(StrEnum):
    """How one case stands against the baseline."""

    EXPECTED = "expected"  # passed, observed or skipped, and nothing said otherwise
    KNOWN = "known"  # did not pass, and the baseline says so (or the case is flaky)
    UNEXPECTED_DEVIATION = "unexpected-deviation"
    UNEXPECTED_ERROR = "unexpected-error"
    UNEXPECTED_PASS = "unexpected-pass"


def judge(case: CaseResult, entry: BaselineEntry | None) -> Kind:
    """How ``case`` stands against ``entry`` (None: the case is not in the baseline)."""
    if case.verdict is Verdict.SKIPPED:
        return Kind.EXPECTED  # no evidence either way
    if entry is not None and entry.flaky:
        return Kind.KNOWN
    allowed = set(entry.verdict or ()) if entry is not None else set()
    if case.verdict in (Verdict.PASS, Verdict.OBSERVED):
        if entry is None or case.verdict in allowed:
            return Kind.EXPECTED
        return Kind.UNEXPECTED_PASS
    if entry is not None and case.verdict in allowed:
        pinned = entry.observed
        # A pinned outcome makes a deviation to any other outcome news.
        if pinned is None or case.verdict is Verdict.ERROR or case.observed in pinned:
            return Kind.KNOWN
    if case.verdict is Verdict.DEVIATION:
        return Kind.UNEXPECTED_DEVIATION
    return Kind.UNEXPECTED_ERROR


def known_failure(baseline: Baseline | None, case: CaseResult) -> str | None:
    """Why the baseline expects ``case`` to deviate or err, or None if it is not such a case."""
    if baseline is None or case.verdict not in (Verdict.DEVIATION, Verdict.ERROR):
        return None
    entry = baseline.entry_for(case.target, case.id)
    if judge(case, entry) is not Kind.KNOWN or entry is None:
        return None
    return entry.reason or ("flaky" if entry.flaky else "in the baseline")


@dataclass(frozen=True)
class Finding:
    """A case that did not simply pass, and how it stands against the baseline."""

    case: CaseResult
    kind: Kind
    entry: BaselineEntry | None


@dataclass(frozen=True)
class UnusedEntry:
    """A baseline entry for a target that ran, which matched none of its recorded cases."""

    target: str
    entry: BaselineEntry


@dataclass(frozen=True)
class GateReport:
    """The gate's findings over one run."""

    baseline: Path | None
    findings: list[Finding] = field(default_factory=list)
    unused: list[UnusedEntry] = field(default_factory=list)

    def of(self, kind: Kind) -> list[Finding]:
        """The findings of one kind, in case order."""
        return [finding for finding in self.findings if finding.kind is kind]

    @property
    def exit_code(self) -> ExitCode:
        """1 on any unexpected deviation, else 2 on any unexpected error, else 0."""
        if self.of(Kind.UNEXPECTED_DEVIATION):
            return ExitCode.UNEXPECTED_DEVIATION
        if self.of(Kind.UNEXPECTED_ERROR):
            return ExitCode.INFRA_ERROR
        return ExitCode.AS_EXPECTED

    def headline(self) -> str:
        """One line: the gate's decision and its counts."""
        counts = [
            (len(self.of(Kind.UNEXPECTED_DEVIATION)), "unexpected deviation", "s"),
            (len(self.of(Kind.UNEXPECTED_ERROR)), "unexpected error", "s"),
            (len(self.of(Kind.UNEXPECTED_PASS)), "unexpected pass", "es"),
            (len(self.of(Kind.KNOWN)), "known (baseline)", ""),
        ]
        shown = ", ".join(
            f"{n} {label}{plural if n != 1 else ''}" for n, label, plural in counts if n
        )
        against = f"against {self.baseline}" if self.baseline else "without a baseline"
        verdicts = {
            ExitCode.AS_EXPECTED: "every case as expected",
            ExitCode.UNEXPECTED_DEVIATION: "FAILED: unexpected deviations",
            ExitCode.INFRA_ERROR: "FAILED: infrastructure errors only",
        }
        return f"gate ({against}): {verdicts[self.exit_code]}" + (f"; {shown}" if shown else "")

    def lines(self, limit: int = 20) -> list[str]:
        """The headline and the unexpected cases, for a terminal."""
        lines = [self.headline()]
        for kind, title in (
            (Kind.UNEXPECTED_DEVIATION, "unexpected deviation"),
            (Kind.UNEXPECTED_ERROR, "unexpected error"),
            (Kind.UNEXPECTED_PASS, "unexpected pass (stale baseline entry)"),
        ):
            found = self.of(kind)
            for finding in found[:limit]:
                lines.append(f"  {title}: {describe(finding.case)}")
            if len(found) > limit:
                lines.append(f"  ... and {len(found) - limit} more {title}s")
        for unused in self.unused[:limit]:
            lines.append(
                f"  unused baseline entry: {unused.target}: {unused.entry.case} (matched no case)"
            )
        return lines


def describe(case: CaseResult, width: int = 160) -> str:
    """``id: expected X, observed Y`` for one case, or ``id: error: why`` for an error."""
    if case.verdict is Verdict.ERROR or case.observed is None:
        why = " ".join(case.summary.split())
        return f"{case.id}: {case.verdict.value}: {why[:width]}{'…' if len(why) > width else ''}"
    expected = " or ".join(case.expected) if case.expected is not None else "unknown"
    return f"{case.id}: {case.profile} documents {expected}, observed {case.observed}"


def evaluate(
    cases: Iterable[CaseResult], baseline: Baseline | None, path: Path | None
) -> GateReport:
    """The gate's report over ``cases``; without a baseline, every deviation is unexpected."""
    findings: list[Finding] = []
    used: set[tuple[str, int]] = set()
    ran: set[str] = set()
    for case in sorted(cases, key=lambda c: c.id):
        entry = baseline.entry_for(case.target, case.id) if baseline else None
        if case.verdict is not Verdict.SKIPPED:
            ran.add(case.target)
            if entry is not None and baseline is not None:
                used.add((case.target, _index(baseline.targets[case.target], entry)))
        kind = judge(case, entry)
        if kind is not Kind.EXPECTED:
            findings.append(Finding(case, kind, entry))
    unused = []
    if baseline is not None:
        for target, entries in baseline.targets.items():
            if target not in ran:
                continue  # a baseline may cover targets this run did not select
            for index, entry in enumerate(entries):
                if (target, index) not in used:
                    unused.append(UnusedEntry(target, entry))
    return GateReport(path, findings, unused)


def _index(entries: Sequence[BaselineEntry], entry: BaselineEntry) -> int:
    return next(i for i, candidate in enumerate(entries) if candidate is entry)


def load(path: Path) -> Baseline:
    """Read and check a baseline file; any problem is one SpecError naming the file and line."""
    document = read(path)
    if document.data is None:
        return Baseline()
    try:
        return Baseline.model_validate(document.data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where: tuple[PathPart, ...] = tuple(
            part for part in first["loc"] if isinstance(part, str | int)
        )
        # Pydantic adds the union member's name ("list[...]") to the path; drop such parts.
        where = tuple(part for part in where if not (isinstance(part, str) and "[" in part))
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = f"unknown key '{where[-1]}'"
        elif first["type"] == "missing":
            message = f"missing required key '{where[-1]}'"
        more = len(exc.errors()) - 1
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''} in this file)"
        raise document.error(where, message, at_key=first["type"] == "extra_forbidden") from None


def update(
    results: Results, existing: Baseline | None = None, targets: Sequence[str] = ()
) -> Baseline:
    """A baseline that expects ``results`` as they are: one entry per deviating case.

    Entries of ``existing`` are kept where this run says nothing new: flaky entries, entries
    of targets not in ``targets`` (default: every target that recorded a case), and entries
    that match no recorded case. A reason given before is kept for the same case. Errors are
    never baselined automatically: they are infrastructure, mark them flaky by hand if need be.
    """
    recorded = [case for case in results.cases if case.verdict is not Verdict.SKIPPED]
    names = set(targets) or {case.target for case in recorded}
    old = existing or Baseline()
    updated: dict[str, list[BaselineEntry]] = {}
    for name in sorted(set(old.targets) | names):
        previous = old.targets.get(name, [])
        if name not in names:
            updated[name] = list(previous)
            continue
        mine = [case for case in recorded if case.target == name]
        kept = [
            entry
            for entry in previous
            if entry.flaky or not any(entry.matches(case.id) for case in mine)
        ]
        fresh = []
        for case in mine:
            if case.verdict is not Verdict.DEVIATION:
                continue
            before = old.entry_for(name, case.id)
            if before is not None and before.flaky:
                continue  # still covered by the flaky entry
            fresh.append(
                BaselineEntry(
                    case=case.id,
                    verdict=[Verdict.DEVIATION],
                    observed=[case.observed] if case.observed else None,
                    reason=before.reason if before is not None else None,
                )
            )
        entries = kept + fresh
        if entries:
            updated[name] = entries
    return Baseline(targets=updated)


def dump(baseline: Baseline) -> str:
    """A baseline as YAML, with a comment saying what the file is."""
    data: dict[str, Any] = {"schema_version": baseline.schema_version, "targets": {}}
    for name, entries in baseline.targets.items():
        data["targets"][name] = [_compact(entry) for entry in entries]
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


def _compact(entry: BaselineEntry) -> dict[str, Any]:
    # One verdict or outcome reads better without brackets; the loader accepts both.
    data: dict[str, Any] = entry.model_dump(mode="json", exclude_defaults=True)
    for key in ("verdict", "observed"):
        if isinstance(data.get(key), list) and len(data[key]) == 1:
            data[key] = data[key][0]
    return data


def write(baseline: Baseline, path: Path) -> None:
    """Write ``baseline`` to ``path`` as YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(baseline), encoding="utf-8")
