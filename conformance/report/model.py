"""The report's view of a results file: matrix, diff view and drill-downs, ready to render.

Nothing here knows a target by name: columns come from the results, and a target whose
every case was skipped (no cassette, no key) is listed as not recorded instead of being a
column of blanks. The two documented profiles the cells are coloured against are a pair
(by default OpenAI's and Fireworks' compatibility page), so each observed outcome reads as
"what OpenAI documents", "what Fireworks documents", both, or neither.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from conformance.compare import Comparison, compare
from conformance.gate import GateReport, Kind
from conformance.observation import Tokens
from conformance.report.evidence import HeaderGroup, Headers, common_headers, own_headers
from conformance.results import (
    BehaviorDoc,
    CaseResult,
    ExpectationDoc,
    Results,
    TargetInfo,
    token_totals,
)
from conformance.verdict import Verdict

PAIR = ("openai", "fireworks")
ALL = "all"  # the API filter that shows every API


class Match(StrEnum):
    """Which of the pair's documented semantics an outcome matches."""

    BOTH = "both"
    LEFT = "left"
    RIGHT = "right"
    NEITHER = "neither"
    UNDOCUMENTED = "undocumented"  # both profiles are silent
    ERROR = "error"  # no outcome was observed
    SKIPPED = "skipped"


def match(outcome: str, left: Sequence[str] | None, right: Sequence[str] | None) -> Match:
    """Whether ``outcome`` is in the left profile's expected set, the right's, both or neither."""
    if left is None and right is None:
        return Match.UNDOCUMENTED
    in_left = left is not None and outcome in left
    in_right = right is not None and outcome in right
    if in_left and in_right:
        return Match.BOTH
    if in_left:
        return Match.LEFT
    if in_right:
        return Match.RIGHT
    return Match.NEITHER


def anchor(kind: str, text: str) -> str:
    """An HTML id for ``text``: readable, and unique even where two texts slug alike."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80]
    digest = hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:6]
    return f"{kind}-{slug}-{digest}"


def variant_label(api: str, stream: bool) -> str:
    """``chat · stream`` or ``completions · no stream``."""
    return f"{api} · {'stream' if stream else 'no stream'}"


@dataclass(frozen=True)
class Chip:
    """One outcome shown in a cell, coloured by the semantics it matches."""

    label: str
    match: Match
    count: int = 1
    meaning: str = ""


@dataclass(frozen=True)
class CaseView:
    """One case (an API and a variant) of a cell, with its drill-down anchor."""

    case: CaseResult
    anchor: str
    variant: str
    chip: Chip
    kind: Kind | None
    history: list[tuple[str, str]]
    changed: bool
    #: What another behavior's outcome on this target says about this outcome.
    caveats: list[str] = field(default_factory=list)

    @property
    def deviates(self) -> bool:
        """Whether the outcome is not what the claimed profile documents."""
        return self.case.verdict is Verdict.DEVIATION


@dataclass(frozen=True)
class CellView:
    """A cell as one API filter shows it."""

    chips: list[Chip]
    deviations: int
    known: int  # deviations or errors the baseline expects
    errors: int
    recorded: int
    changed: bool
    #: The cases whose repeated runs (``run --repeat``) disagreed, as "id: tally".
    flaky: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether no case of this cell applies under the filter."""
        return not self.chips

    @property
    def outcomes(self) -> frozenset[str]:
        """The outcomes observed under the filter (errors and skips are none)."""
        return frozenset(
            chip.label for chip in self.chips if chip.match not in (Match.ERROR, Match.SKIPPED)
        )


@dataclass(frozen=True)
class Cell:
    """What one observed target does for one behavior, over its APIs and variants."""

    target: str
    column: int
    anchor: str
    cases: list[CaseView]
    views: dict[str, CellView]

    @property
    def profile(self) -> str | None:
        """The profile the target claims (None if the cell has no case)."""
        return self.cases[0].case.profile if self.cases else None


@dataclass(frozen=True)
class ProfileCell:
    """What one profile documents for one behavior."""

    profile: str
    column: int  # the profile's position among the report's profile columns
    anchor: str
    doc: ExpectationDoc
    chips: list[Chip]


@dataclass(frozen=True)
class Row:
    """One behavior across the documented profiles and the observed targets."""

    behavior: str
    doc: BehaviorDoc
    profiles: list[ProfileCell]
    cells: list[Cell]
    apis: list[str]
    #: By API filter: the pairs of target columns whose observed outcomes differ.
    disagreeing: dict[str, list[tuple[int, int]]]
    pair_differs: bool

    def profile(self, name: str) -> ProfileCell | None:
        """This row's cell for profile ``name``."""
        return next((cell for cell in self.profiles if cell.profile == name), None)

    @property
    def claimed(self) -> list[ProfileCell]:
        """The cells of the profiles that this row's targets claim."""
        names = {cell.profile for cell in self.cells}
        return [cell for cell in self.profiles if cell.profile in names]

    def differs(self, key: str, shown: Iterable[int]) -> bool:
        """Whether the ``shown`` target columns disagree with each other or with their claim
        under API filter ``key``: what "differences only" keeps."""
        shown = set(shown)
        if any(a in shown and b in shown for a, b in self.disagreeing[key]):
            return True
        return any(cell.column in shown and cell.views[key].deviations for cell in self.cells)


@dataclass(frozen=True)
class Family:
    """Behaviors that share their first dotted part."""

    name: str
    rows: list[Row]


@dataclass(frozen=True)
class TargetColumn:
    """A target as the report shows it: a column if it recorded anything, else a notice."""

    name: str
    column: int
    info: TargetInfo
    counts: dict[str, int]
    recorded: bool
    status: str
    note: str
    record_command: str | None
    #: Fields outside the openai SDK's types seen in this target's replies, by SDK type.
    extensions: dict[str, list[str]] = field(default_factory=dict)
    #: What this target's cases cost, as its usage reported it.
    tokens: Tokens = field(default_factory=Tokens)

    @property
    def describe(self) -> str:
        """The status with its note, e.g. ``not recorded (needs $OPENAI_API_KEY)``."""
        return f"{self.status} ({self.note})" if self.note else self.status


@dataclass(frozen=True)
class ProfileColumn:
    """A documented profile's column."""

    name: str
    title: str
    extends: str | None
    side: Match | None  # LEFT or RIGHT for the pair, else None
    #: Shown when the report opens: the pair, what targets claim, and later versions of the
    #: pair's right-hand profile; the other documented profiles are one click away.
    shown: bool = True


@dataclass(frozen=True)
class Report:
    """Everything the HTML report and the Markdown summary show."""

    results: Results
    pair: tuple[str, str]
    profiles: list[ProfileColumn]
    targets: list[TargetColumn]
    families: list[Family]
    apis: list[str]
    previous: list[Results] = field(default_factory=list)
    comparison: Comparison | None = None
    gate: GateReport | None = None
    #: By header group (``evidence.request_group``, ``evidence.response_group``): the
    #: headers every request or response of the group carried, shown once.
    common_headers: dict[HeaderGroup, Headers] = field(default_factory=dict)

    def short(self, side: Match) -> str:
        """A short name for one side of the pair, e.g. ``OpenAI`` or ``Fireworks``."""
        name = self.pair[0] if side is Match.LEFT else self.pair[1]
        profile = self.results.profiles.get(name)
        words = (profile.title if profile else name).split()
        return words[0] if words else name

    @cached_property
    def tags(self) -> dict[Match, str]:
        """What a chip says of the semantics it matches: the side of the pair, both, neither
        (nothing for the others)."""
        return {
            Match.LEFT: self.short(Match.LEFT),
            Match.RIGHT: self.short(Match.RIGHT),
            Match.BOTH: "both",
            Match.NEITHER: "neither",
        }

    @property
    def recorded(self) -> list[TargetColumn]:
        """The targets that have a column."""
        return [target for target in self.targets if target.recorded]

    @property
    def unrecorded(self) -> list[TargetColumn]:
        """The targets with no recorded case."""
        return [target for target in self.targets if not target.recorded]

    @property
    def rows(self) -> list[Row]:
        """Every row, family by family."""
        return [row for family in self.families for row in family.rows]

    @property
    def filters(self) -> list[str]:
        """The API filter's choices: every API, then each API."""
        return [ALL, *self.apis]

    def key(self, api: str) -> int:
        """The index of the API filter's choice ``api``: the page's ids and classes use it,
        so that no name from the results ever reaches the style sheet."""
        return self.filters.index(api)

    def views(self, row: Row, cell: Cell) -> list[tuple[list[int], CellView]]:
        """The cell's distinct views under the API filters that show its row, each with the
        filters' keys: a view that several filters share is in the page once."""
        distinct: list[tuple[list[int], CellView]] = []
        for api in (ALL, *row.apis):
            view = cell.views[api]
            same = next((keys for keys, seen in distinct if seen == view), None)
            if same is None:
                distinct.append(([self.key(api)], view))
            else:
                same.append(self.key(api))
        return distinct

    def header_groups(self) -> list[tuple[HeaderGroup, list[HeaderGroup]]]:
        """Each request group with its response groups, as the page lists them."""
        requests = [group for group in self.common_headers if len(group) == 2]
        return [
            (group, sorted(other for other in self.common_headers if other[:2] == group != other))
            for group in sorted(requests)
        ]

    def headers_anchor(self, group: HeaderGroup) -> str:
        """The id of the headers common to ``group``: short, as thousands of links use it."""
        return f"h{self._header_index[group]}"

    @cached_property
    def _header_index(self) -> dict[HeaderGroup, int]:
        return {group: index for index, group in enumerate(self.common_headers)}

    def own_headers(self, group: HeaderGroup, headers: Headers) -> Headers:
        """The ``headers`` of a request or response beyond those common to its ``group``."""
        return own_headers(headers, self.common_headers.get(group, {}))

    @property
    def diff(self) -> list[Row]:
        """The rows where the pair's documented semantics differ."""
        return [row for row in self.rows if row.pair_differs]

    def groups(self) -> list[tuple[str, list[TargetColumn]]]:
        """The recorded target columns, grouped by the profile they claim."""
        groups: dict[str, list[TargetColumn]] = {}
        for target in self.recorded:
            groups.setdefault(target.info.profile, []).append(target)
        return list(groups.items())


def _pair(results: Results, wanted: tuple[str, str]) -> tuple[str, str]:
    """``wanted`` if both profiles are in the results, else the first two profiles."""
    if all(name in results.profiles for name in wanted):
        return wanted
    names = [*sorted(results.profiles), "", ""]
    return names[0], names[1]


def _expected(results: Results, profile: str, behavior: str) -> list[str] | None:
    profile_doc = results.profiles.get(profile)
    if profile_doc is None or behavior not in profile_doc.expectations:
        return None
    return profile_doc.expectations[behavior].expected


def _run_label(results: Results) -> str:
    provenance = results.provenance
    return f"{provenance.finished_at:%Y-%m-%d %H:%M} ({provenance.mode})"


def _state(case: CaseResult) -> str:
    return (
        case.verdict.value if case.observed is None else f"{case.observed} ({case.verdict.value})"
    )


_KEY_HINT = re.compile(r"\b([A-Z][A-Z0-9_]*)=\.\.\. ")


def _status(name: str, cases: list[CaseResult]) -> tuple[bool, str, str, str | None]:
    """Whether the target recorded anything; if not, why, and the command that records it."""
    if any(case.verdict is not Verdict.SKIPPED for case in cases):
        return True, "recorded", "", None
    summaries = [case.summary for case in cases]
    if not summaries or not all("no cassette" in summary for summary in summaries):
        reason = Counter(summaries).most_common(1)[0][0] if summaries else "no cases"
        return False, "every case skipped", reason, None
    # The skip message carries the record command, with the key's variable when one is needed.
    keys = sorted({m.group(1) for s in summaries for m in _KEY_HINT.finditer(s)})
    prefix = "".join(f"{key}=... " for key in keys)
    needs = f"needs ${', $'.join(keys)}" if keys else ""
    command = f"{prefix}conformance run --mode record --target {name}"
    return False, "not recorded", needs, command


def _raised_caveats(results: Results) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    """By (target, API): the (behavior, qualified outcome, text) of every caveat raised there,
    i.e. whose behavior came to the caveat's ``when`` outcome in some variant."""
    raised: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for case in results.cases:
        doc = results.behaviors.get(case.behavior)
        for caveat in doc.caveats if doc else []:
            entry = (case.behavior, caveat.outcome, caveat.text)
            found = raised.setdefault((case.target, case.api), [])
            if case.observed == caveat.when and entry not in found:
                found.append(entry)
    return raised


def _extensions(cases: Iterable[CaseResult]) -> dict[str, list[str]]:
    """Every field outside the SDK's types in these cases' replies, by SDK type."""
    found: dict[str, set[str]] = {}
    for case in cases:
        for exchange in case.evidence:
            if exchange.shape is not None and exchange.shape.extensions:
                found.setdefault(exchange.shape.type, set()).update(exchange.shape.extensions)
    return {kind: sorted(paths) for kind, paths in sorted(found.items())}


def _chip(case: CaseResult, results: Results, pair: tuple[str, str]) -> Chip:
    if case.verdict is Verdict.SKIPPED:
        return Chip("skipped", Match.SKIPPED, meaning=case.summary)
    if case.verdict is Verdict.ERROR or case.observed is None:
        return Chip("error", Match.ERROR, meaning=case.summary)
    behavior = results.behaviors.get(case.behavior)
    outcome = behavior.outcomes.get(case.observed) if behavior else None
    return Chip(
        case.observed,
        match(
            case.observed,
            _expected(results, pair[0], case.behavior),
            _expected(results, pair[1], case.behavior),
        ),
        meaning=outcome.meaning if outcome else "",
    )


def _summarise(views: Iterable[CaseView]) -> CellView:
    views = list(views)
    recorded = [view for view in views if view.case.verdict is not Verdict.SKIPPED]
    counts = Counter((view.chip.label, view.chip.match) for view in recorded)
    meanings = {(view.chip.label, view.chip.match): view.chip.meaning for view in recorded}
    chips = [
        Chip(label, kind, count, meanings[label, kind])
        for (label, kind), count in sorted(
            counts.items(), key=lambda item: (item[0][1] is Match.ERROR, -item[1], item[0][0])
        )
    ]
    if views and not recorded:
        chips = [Chip("skipped", Match.SKIPPED, len(views), views[0].case.summary)]
    return CellView(
        chips=chips,
        deviations=sum(view.case.verdict is Verdict.DEVIATION for view in views),
        known=sum(view.kind is Kind.KNOWN for view in views),
        errors=sum(view.case.verdict is Verdict.ERROR for view in views),
        recorded=len(recorded),
        changed=any(view.changed for view in views),
        flaky=[f"{view.case.id}: {view.case.tally()}" for view in views if view.case.unstable],
    )


def _disagreeing(cells: list[Cell], key: str) -> list[tuple[int, int]]:
    """The pairs of target columns whose observed outcomes differ under API filter ``key``."""
    observed = [(cell.column, cell.views[key].outcomes) for cell in cells]
    return [
        (a, b)
        for (a, left), (b, right) in itertools.combinations(observed, 2)
        if left and right and left != right
    ]


@dataclass(frozen=True)
class _Run:
    """What every row of one report needs from the run and its context."""

    results: Results
    pair: tuple[str, str]
    profile_names: list[str]
    targets: list[TargetColumn]
    #: By behavior, then by target: its cases (looked up once per cell, of which there are
    #: hundreds, rather than filtered out of every case each time).
    by_behavior: dict[str, dict[str, list[CaseResult]]]
    apis: list[str]
    changed: set[str]
    history: dict[str, list[tuple[str, str]]]
    kinds: dict[str, Kind]
    raised: dict[tuple[str, str], list[tuple[str, str, str]]]

    def expected(self, profile: str, behavior: str) -> list[str] | None:
        """What ``profile`` documents for ``behavior``; None when unknown."""
        return _expected(self.results, profile, behavior)

    def match(self, outcome: str, behavior: str) -> Match:
        """Which side of the pair documents ``outcome`` for ``behavior``."""
        return match(
            outcome, self.expected(self.pair[0], behavior), self.expected(self.pair[1], behavior)
        )


def _profile_columns(results: Results, pair: tuple[str, str]) -> list[ProfileColumn]:
    """The pair first, then every other documented profile by name."""
    names = [name for name in pair if name in results.profiles] + sorted(
        name for name in results.profiles if name not in pair
    )
    claimed = {info.profile for info in results.targets.values()}
    claimed |= {case.profile for case in results.cases}
    return [
        ProfileColumn(
            name,
            results.profiles[name].title,
            results.profiles[name].extends,
            Match.LEFT if name == pair[0] else Match.RIGHT if name == pair[1] else None,
            shown=name in pair or name in claimed or results.profiles[name].extends == pair[1],
        )
        for name in names
    ]


def _target_columns(
    results: Results, profile_names: list[str], by_target: dict[str, list[CaseResult]]
) -> list[TargetColumn]:
    """Every target, grouped by the profile it claims (in column order), then by name."""
    order = {name: index for index, name in enumerate(profile_names)}

    def claimed(name: str) -> int:
        info = results.targets.get(name)
        return order.get(info.profile if info else "", len(order))

    names = sorted(set(results.targets) | set(by_target), key=lambda n: (claimed(n), n))
    targets = []
    for column, name in enumerate(names):
        cases = by_target.get(name, [])
        # A target only cases name (not in the file's targets) has cases to take a claim from.
        info = results.targets.get(name) or TargetInfo(
            title=name, profile=cases[0].profile, base_url="", models={}
        )
        counts = Counter(case.verdict.value for case in cases)
        recorded, status, note, command = _status(name, cases)
        targets.append(
            TargetColumn(
                name,
                column,
                info,
                {verdict.value: counts[verdict.value] for verdict in Verdict},
                recorded,
                status,
                note,
                command,
                _extensions(cases),
                token_totals(cases).get(name, Tokens()),
            )
        )
    return targets


def _profile_cells(run: _Run, behavior: str, doc: BehaviorDoc) -> list[ProfileCell]:
    """What each profile that says anything documents for ``behavior``."""
    cells = []
    for column, name in enumerate(run.profile_names):
        expectation = run.results.profiles[name].expectations.get(behavior)
        if expectation is None:
            continue
        chips = [
            Chip(
                outcome,
                run.match(outcome, behavior),
                meaning=doc.outcomes[outcome].meaning if outcome in doc.outcomes else "",
            )
            for outcome in expectation.expected or []
        ]
        cells.append(
            ProfileCell(name, column, anchor("doc", f"{name}/{behavior}"), expectation, chips)
        )
    return cells


def _case_view(run: _Run, case: CaseResult) -> CaseView:
    return CaseView(
        case=case,
        anchor=anchor("case", case.id),
        variant=variant_label(case.api, case.stream),
        chip=_chip(case, run.results, run.pair),
        kind=run.kinds.get(case.id),
        history=run.history.get(case.id, []),
        changed=case.id in run.changed,
        caveats=[
            text
            for source, outcome, text in run.raised.get((case.target, case.api), [])
            if outcome == case.observed and source != case.behavior
        ],
    )


def _cell(run: _Run, target: TargetColumn, behavior: str) -> Cell:
    """What ``target`` did for ``behavior``, over its APIs and variants."""
    mine = sorted(
        run.by_behavior.get(behavior, {}).get(target.name, []),
        key=lambda c: (c.api, c.stream),
    )
    views = [_case_view(run, case) for case in mine]
    summaries = {ALL: _summarise(views)}
    for api in run.apis:
        summaries[api] = _summarise(view for view in views if view.case.api == api)
    return Cell(
        target.name, target.column, anchor("cell", f"{target.name}/{behavior}"), views, summaries
    )


def _row(run: _Run, behavior: str) -> Row:
    """One behavior across the documented profiles and the recorded targets."""
    doc = run.results.behaviors.get(behavior) or BehaviorDoc(
        title=behavior, family=behavior.split(".", maxsplit=1)[0], description="", outcomes={}
    )
    cells = [_cell(run, target, behavior) for target in run.targets if target.recorded]
    left, right = run.expected(run.pair[0], behavior), run.expected(run.pair[1], behavior)
    return Row(
        behavior=behavior,
        doc=doc,
        profiles=_profile_cells(run, behavior, doc),
        cells=cells,
        apis=sorted(
            {case.api for cases in run.by_behavior.get(behavior, {}).values() for case in cases}
        ),
        disagreeing={key: _disagreeing(cells, key) for key in (ALL, *run.apis)},
        pair_differs=(None if left is None else set(left))
        != (None if right is None else set(right)),
    )


def _history(previous: Sequence[Results]) -> dict[str, list[tuple[str, str]]]:
    """By case id: each earlier run's label and what the case came to there, oldest first."""
    history: dict[str, list[tuple[str, str]]] = {}
    for earlier in previous:
        for case in earlier.cases:
            history.setdefault(case.id, []).append((_run_label(earlier), _state(case)))
    return history


def _families(run: _Run) -> list[Family]:
    """A row for every behavior (the documented ones in their order, then any other that
    cases name), grouped by family."""
    behaviors = list(run.results.behaviors) + sorted(
        {case.behavior for case in run.results.cases} - set(run.results.behaviors)
    )
    families: dict[str, list[Row]] = {}
    for behavior in behaviors:
        row = _row(run, behavior)
        families.setdefault(row.doc.family, []).append(row)
    return [Family(name, rows) for name, rows in families.items()]


def build(
    results: Results,
    *,
    previous: Sequence[Results] = (),
    gate: GateReport | None = None,
    pair: tuple[str, str] = PAIR,
) -> Report:
    """The report's view of ``results`` (``previous``: earlier runs, oldest first)."""
    pair = _pair(results, pair)
    profiles = _profile_columns(results, pair)
    names = [profile.name for profile in profiles]
    by_target: dict[str, list[CaseResult]] = {}
    by_behavior: dict[str, dict[str, list[CaseResult]]] = {}
    for case in results.cases:
        by_target.setdefault(case.target, []).append(case)
        by_behavior.setdefault(case.behavior, {}).setdefault(case.target, []).append(case)
    comparison = compare(previous[-1], results) if previous else None
    run = _Run(
        results=results,
        pair=pair,
        profile_names=names,
        targets=_target_columns(results, names, by_target),
        by_behavior=by_behavior,
        apis=sorted({case.api for case in results.cases}),
        changed={change.id for change in comparison.cases} if comparison else set(),
        history=_history(previous),
        kinds={finding.case.id: finding.kind for finding in gate.findings} if gate else {},
        raised=_raised_caveats(results),
    )
    return Report(
        results=results,
        pair=pair,
        profiles=profiles,
        targets=run.targets,
        families=_families(run),
        apis=run.apis,
        previous=list(previous),
        comparison=comparison,
        gate=gate,
        common_headers=common_headers(results.cases),
    )
