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

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from conformance import files
from conformance.results import CaseResult, Results
from conformance.spec.yamlpos import PathPart, read
from conformance.untrusted import printable
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
        description="If given, a deviation must be to one of these outcomes to be expected. On "
        "a flaky entry, for readers: what the case's runs came to when it was marked.",
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
        index = _governing(entries, case_id)
        return entries[index] if index is not None else None


def _governing(entries: Sequence[BaselineEntry], case_id: str) -> int | None:
    """The index of the entry that governs ``case_id``: an exact id, else the first pattern."""
    for index, entry in enumerate(entries):
        if entry.exact and entry.case == case_id:
            return index
    for index, entry in enumerate(entries):
        if not entry.exact and entry.matches(case_id):
            return index
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
    """``id: expected X, observed Y`` for one case, or ``id: error: why`` for an error;
    one line, control characters from the server written as escapes."""
    if case.verdict is Verdict.ERROR or case.observed is None:
        why = " ".join(case.summary.split())
        line = f"{case.id}: {case.verdict.value}: {why[:width]}{'…' if len(why) > width else ''}"
    else:
        expected = " or ".join(case.expected) if case.expected is not None else "unknown"
        line = f"{case.id}: {case.profile} documents {expected}, observed {case.observed}"
    return printable(" ".join(line.split()))


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


def empty() -> str:
    """The text of a baseline that expects nothing yet; ``update`` fills it in."""
    return HEADER + f"schema_version: {BASELINE_SCHEMA_VERSION}\n"


#: The verdicts by which a run decides a case; errors and skips say nothing about it.
DECIDED = (Verdict.PASS, Verdict.DEVIATION, Verdict.OBSERVED)


@dataclass
class Changes:
    """What ``update`` did to a baseline file, and what the file then holds."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    entries: int = 0
    targets: int = 0


def update(results: Results, path: Path, targets: Sequence[str] = ()) -> Changes:
    """Update the baseline file at ``path`` (made if missing) to expect ``results``.

    The file is first checked as ``load`` checks it (a SpecError if it is bad), then edited
    as ``updated`` says and written atomically.
    """
    text = None
    if path.exists():
        load(path)
        text = path.read_text(encoding="utf-8")
    new_text, changes = updated(results, text, targets)
    if new_text != text:
        files.write_text(path, new_text)
    return changes


def updated(results: Results, text: str | None, targets: Sequence[str] = ()) -> tuple[str, Changes]:
    """A baseline file's ``text`` (None: a new file) edited to expect ``results``.

    Only cases this run decided (pass, deviation, observed) change anything, and only in
    the ``targets`` given (default: all): a deviation no entry expects gets an exact entry
    (or the case's exact entry now expects it, reason kept); an exact entry expecting a
    deviation or error of a case that now passes is removed. Everything else stays as
    written, comments and key order included: flaky entries, patterns, reasons, and entries
    for cases that errored, were skipped or were not run. A case whose repeated runs
    disagreed (``conformance run --repeat``) gets a flaky entry (``flaky_entry``).
    """
    yaml = _round_trip(text or "")
    document = yaml.load(text) if text and text.strip() else None
    if not isinstance(document, CommentedMap):
        document = yaml.load(empty())
    if not isinstance(document.get("targets"), CommentedMap):
        document["targets"] = CommentedMap()
    written: CommentedMap = document["targets"]
    changes = Changes()
    models = {
        name: [BaselineEntry.model_validate(e) for e in written[name] or []] for name in written
    }
    for case in sorted(results.cases, key=lambda c: (c.target, c.id)):
        if targets and case.target not in targets:
            continue
        if case.verdict not in DECIDED and not case.unstable:
            continue
        entries = models.setdefault(case.target, [])
        index = _governing(entries, case.id)
        entry = entries[index] if index is not None else None
        kind = judge(case, entry)
        exact = index if entry is not None and entry.exact else None
        if case.unstable:  # from --repeat: its runs disagreed
            if entry is not None and entry.flaky:
                continue
            fresh = flaky_entry(case, entry if exact is not None else None)
            if exact is not None:
                written[case.target][exact] = _compact(fresh)
                entries[exact] = fresh
                changes.changed += 1
            else:
                _insert(written, entries, case.target, fresh)
                changes.added += 1
        elif kind is Kind.UNEXPECTED_PASS and exact is not None:
            del written[case.target][exact]
            del entries[exact]
            changes.removed += 1
            if not entries:
                del written[case.target]
        elif kind is Kind.UNEXPECTED_DEVIATION and exact is not None:
            _expect_deviation(written[case.target][exact], case.observed)
            entries[exact] = BaselineEntry.model_validate(written[case.target][exact])
            changes.changed += 1
        elif kind is Kind.UNEXPECTED_DEVIATION:  # no entry, or a pattern expecting otherwise
            fresh = BaselineEntry(
                case=case.id, verdict=[Verdict.DEVIATION], observed=[case.observed or ""]
            )
            _insert(written, entries, case.target, fresh)
            changes.added += 1
        # Else nothing new: as expected, known, or a pattern that also covers other cases
        # (an unexpected pass there is left to the file's author; the gate names it).
    changes.entries = sum(len(entries or []) for entries in written.values())
    changes.targets = len(written)
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue(), changes


def _round_trip(text: str) -> YAML:
    """A YAML that writes back what it reads, long lines unwrapped, and laid out as ``text``
    is: the indentation of target names, and of the dash of their entries under them."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    mapping, offset = 2, 0
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    names = [len(line) - len(line.lstrip()) for line in lines if re.match(r"\s+[^\s-]", line)]
    dashes = [len(line) - len(line.lstrip()) for line in lines if re.match(r"\s*- ", line)]
    if names:
        mapping = names[0]
        offset = max(0, dashes[0] - mapping) if dashes else 0
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return yaml


def flaky_entry(case: CaseResult, before: BaselineEntry | None = None) -> BaselineEntry:
    """A ``flaky: true`` entry for a case whose repeated runs disagreed, listing what they
    came to; the reason of the entry ``before`` it, if any, is kept."""
    runs = case.runs or []
    return BaselineEntry(
        case=case.id,
        flaky=True,
        observed=[run.label for run in runs] or None,
        reason=before.reason
        if before is not None and before.reason
        else f"unstable: {sum(run.count for run in runs)} runs came to {case.tally()}",
    )


def _insert(
    written: CommentedMap, entries: list[BaselineEntry], target: str, fresh: BaselineEntry
) -> None:
    """Write ``fresh`` into ``target``'s entries, in order, making the target if need be."""
    if target not in written:
        written.insert(_sorted_place(list(written), target), target, None)
    if written[target] is None:
        written[target] = CommentedSeq()
    place = _sorted_place([e.case if e.exact else "" for e in entries], fresh.case)
    written[target].insert(place, _compact(fresh))
    entries.insert(place, fresh)


def _expect_deviation(entry: CommentedMap, observed: str | None) -> None:
    """Make a written entry expect a deviation to ``observed``, keeping its other keys."""
    verdicts = entry.get("verdict")
    if Verdict.DEVIATION.value not in ([verdicts] if isinstance(verdicts, str) else verdicts):
        entry["verdict"] = Verdict.DEVIATION.value
    if "observed" in entry:
        entry["observed"] = observed
    else:
        entry.insert(list(entry).index("verdict") + 1, "observed", observed)


def _sorted_place(names: Sequence[str], name: str) -> int:
    """Where ``name`` goes: before the first name after it (files are mostly sorted)."""
    return next((i for i, other in enumerate(names) if other > name), len(names))


def _compact(entry: BaselineEntry) -> CommentedMap:
    # One verdict or outcome reads better without brackets; the loader accepts both.
    data: dict[str, Any] = entry.model_dump(mode="json", exclude_defaults=True)
    for key in ("verdict", "observed"):
        if isinstance(data.get(key), list) and len(data[key]) == 1:
            data[key] = data[key][0]
    return CommentedMap(data)
