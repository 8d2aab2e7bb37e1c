"""Results stage: every case's verdict and evidence, with provenance, as one JSON file.

The file is self-contained: it carries the behaviors' outcomes and every profile's
expectations, so a report can be built from it alone. Its JSON Schema is published at
``conformance/builtin_specs/schema/results.schema.json``.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import conformance
from conformance import files
from conformance.observation import Check, Exchange, Tokens
from conformance.spec import Catalog, Caveat
from conformance.spec.models import BehaviorId, Name
from conformance.untrusted import printable
from conformance.verdict import Verdict

SCHEMA_VERSION = 1


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunOutcome(_Result):
    """How many of a repeated case's runs came to one verdict and outcome."""

    verdict: Verdict
    observed: str | None
    count: int

    @property
    def label(self) -> str:
        """The outcome, or the verdict of runs that observed none (error, skipped)."""
        return self.observed or self.verdict.value


class CaseResult(_Result):
    """One case: what was expected, what was observed, the verdict and the evidence."""

    id: str = Field(description="The test id, e.g. stop.inclusion[fireworks-chat-stream].")
    behavior: BehaviorId
    target: Name
    api: Name
    stream: bool
    profile: Name = Field(description="The profile the target claims.")
    expected: list[Name] | None = Field(description="Acceptable outcomes; null when unknown.")
    observed: Name | None = Field(description="The outcome the probe classified; null if none.")
    verdict: Verdict
    summary: str = Field(
        description="Why: the probe's one-line account, or the error or skip reason."
    )
    evidence: list[Exchange] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    tokens: Tokens = Field(default_factory=Tokens)
    duration_s: float = 0.0
    server_version: str | None = Field(default=None, description="As the server reported it.")
    warning: str | None = Field(
        default=None, description="What the case showed about its target as a whole."
    )
    runs: list[RunOutcome] | None = Field(
        default=None,
        description="With `conformance run --repeat N`: what the case's N runs came to, most "
        "frequent first. More than one entry: the case is unstable, and its verdict is error.",
    )

    @property
    def unstable(self) -> bool:
        """Whether the repeated runs of this case came to different verdicts or outcomes."""
        return self.runs is not None and len(self.runs) > 1

    def tally(self) -> str:
        """What the repeated runs came to, e.g. ``3 included, 2 omitted``; '' if not repeated."""
        return ", ".join(f"{run.count} {run.label}" for run in self.runs or ())

    def explain(self) -> str:
        """A few lines for a terminal: expected vs observed, and why (control characters
        from the server written as escapes)."""
        expected = " or ".join(self.expected) if self.expected is not None else "unknown"
        return printable(
            f"{self.id}: {self.profile} documents {expected}, observed {self.observed}\n"
            f"  {self.summary}"
        )


class TargetInfo(_Result):
    """A target as it was run."""

    title: str
    profile: Name
    base_url: str
    models: dict[str, str]
    server_version: str | None = Field(default=None, description="As the server reported it.")
    warnings: list[str] = Field(
        default_factory=list,
        description="What the cases showed the target file gets wrong (a context_window the "
        "target does not have), once each.",
    )


class Provenance(_Result):
    """Where the results came from."""

    suite_version: str
    git_revision: str | None
    specs_digest: str
    openai_version: str
    python_version: str
    mode: str
    started_at: dt.datetime
    finished_at: dt.datetime
    complete: bool = Field(description="False when the run was interrupted.")


class OutcomeDoc(_Result):
    """A behavior's outcome, for readers of the results."""

    meaning: str


class BehaviorDoc(_Result):
    """A behavior, for readers of the results."""

    title: str
    family: Name
    description: str
    outcomes: dict[Name, OutcomeDoc]
    caveats: list[Caveat] = Field(default_factory=list)


class ExpectationDoc(_Result):
    """A profile's expectation, resolved through ``extends``."""

    expected: list[Name] | None
    source: str
    read: dt.date
    quote: str | None = None
    note: str | None = None
    declared_in: str


class ProfileDoc(_Result):
    """A documented profile, for the report's profile columns."""

    title: str
    description: str
    extends: Name | None
    expectations: dict[BehaviorId, ExpectationDoc]


class MergedRun(_Result):
    """One of the runs that ``conformance report A.json B.json ...`` merged into one file."""

    file: str = Field(description="The results file the run came in, as it was given.")
    provenance: Provenance
    targets: list[str] = Field(description="The targets whose cases the merge took from it.")
    superseded: list[str] = Field(
        default_factory=list, description="Targets it ran too, taken from a newer run instead."
    )


class Results(_Result):
    """The contents of ``reports/results.json``."""

    schema_version: int = SCHEMA_VERSION
    provenance: Provenance
    # Names follow the specs' id patterns, so a results file from elsewhere cannot smuggle
    # markup in as a name (the report builds ids and classes from them).
    targets: dict[Name, TargetInfo]
    behaviors: dict[BehaviorId, BehaviorDoc]
    profiles: dict[Name, ProfileDoc]
    cases: list[CaseResult]
    runs: list[MergedRun] = Field(
        default_factory=list,
        description="For merged results, every run merged, oldest first; empty for one run.",
    )

    def totals(self) -> dict[str, int]:
        """How many cases came to each verdict."""
        counts = {verdict.value: 0 for verdict in Verdict}
        for case in self.cases:
            counts[case.verdict.value] += 1
        return counts


def token_totals(cases: Iterable[CaseResult]) -> dict[str, Tokens]:
    """The tokens every target's cases used, as the targets' usage reported them."""
    totals: dict[str, Tokens] = {}
    for case in cases:
        spent = totals.get(case.target, Tokens())
        totals[case.target] = Tokens(
            prompt=spent.prompt + case.tokens.prompt,
            completion=spent.completion + case.tokens.completion,
        )
    return dict(sorted(totals.items()))


def documented(catalog: Catalog) -> tuple[dict[str, BehaviorDoc], dict[str, ProfileDoc]]:
    """The behaviors and resolved profile expectations of ``catalog``, as results carry them."""
    behaviors = {
        behavior.id: BehaviorDoc(
            title=behavior.title,
            family=behavior.family,
            description=behavior.description,
            outcomes={name: OutcomeDoc(meaning=o.meaning) for name, o in behavior.outcomes.items()},
            caveats=behavior.caveats,
        )
        for behavior in catalog.behaviors.values()
    }
    profiles = {}
    for profile in catalog.profiles.values():
        expectations = {}
        for behavior_id in catalog.behaviors:
            resolved = catalog.expectation(profile.id, behavior_id)
            outcomes = resolved.outcomes
            expectations[behavior_id] = ExpectationDoc(
                expected=_ordered(resolved.expectation.expect) if outcomes is not None else None,
                source=resolved.expectation.source,
                read=resolved.expectation.read,
                quote=resolved.expectation.quote,
                note=resolved.expectation.note,
                declared_in=resolved.declared_in,
            )
        profiles[profile.id] = ProfileDoc(
            title=profile.title,
            description=profile.description,
            extends=profile.extends,
            expectations=expectations,
        )
    return behaviors, profiles


def _ordered(expect: str | list[str]) -> list[str]:
    return [expect] if isinstance(expect, str) else list(expect)


def provenance(
    catalog: Catalog, mode: str, started_at: dt.datetime, *, complete: bool
) -> Provenance:
    """Provenance for a run that started at ``started_at`` and ends now."""
    return Provenance(
        suite_version=conformance.__version__,
        git_revision=git_revision(Path(__file__).resolve().parent),
        specs_digest=catalog.digest,
        openai_version=version("openai"),
        python_version=platform.python_version(),
        mode=mode,
        started_at=started_at,
        finished_at=dt.datetime.now(dt.UTC),
        complete=complete,
    )


def git_revision(where: Path) -> str | None:
    """The git commit of the checkout holding ``where``, or None outside a checkout."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = completed.stdout.strip()
    return revision if completed.returncode == 0 and revision else None


def check_writable(folder: Path) -> None:
    """Make ``folder`` if needed and prove a file can be written in it; OSError if not.

    Checked when a run starts, so a bad --report-dir is a usage error before any case runs
    rather than results lost at the end.
    """
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder", str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, probe = tempfile.mkstemp(prefix=".write-check.", dir=folder)
    os.close(descriptor)
    os.unlink(probe)


def write(results: Results, path: Path) -> None:
    """Write ``results`` to ``path`` atomically: a reader sees the old file or the new one."""
    files.write_text(path, results.model_dump_json(indent=2))


def load(path: Path) -> Results:
    """Read a results file written by ``write``; anything else (not JSON, nested past the
    parser's limit, not of the schema) is a one-line ValueError saying where."""
    try:
        return Results.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        problems = exc.errors()
        first = problems[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ValueError(f"{first['msg']}{f' at {where}' if where else ''}{more}") from None
