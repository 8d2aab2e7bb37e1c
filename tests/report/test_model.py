"""The report's view model: colouring by the documented pair, cells, columns, differences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.gate import Baseline, BaselineEntry, Kind, evaluate
from conformance.report.model import ALL, Match, build, match
from conformance.results import RunOutcome
from conformance.verdict import Verdict
from tests.report.factory import case, results


@pytest.mark.parametrize(
    ("outcome", "left", "right", "expected"),
    [
        ("omitted", ["omitted"], ["included"], Match.LEFT),
        ("included", ["omitted"], ["included"], Match.RIGHT),
        ("ignored", ["ignored"], ["rejected", "ignored"], Match.BOTH),
        ("rejected", ["honoured"], ["clamped"], Match.NEITHER),
        ("rejected", None, ["honoured"], Match.NEITHER),
        ("honoured", None, ["honoured"], Match.RIGHT),
        ("absent", None, None, Match.UNDOCUMENTED),
    ],
)
def test_match(
    outcome: str, left: list[str] | None, right: list[str] | None, expected: Match
) -> None:
    assert match(outcome, left, right) is expected


def test_a_cell_sums_up_its_apis_and_variants() -> None:
    made = results(
        [
            case("acme", observed="omitted"),
            case("acme", observed="omitted", stream=True),
            case("acme", observed="included", api="completions"),
            case("acme", "stop.inclusion", None, api="completions", stream=True),
        ]
    )
    report = build(made)
    row = next(r for r in report.rows if r.behavior == "stop.inclusion")
    (cell,) = row.cells
    everything = cell.views[ALL]
    assert [(c.label, c.match, c.count) for c in everything.chips] == [
        ("omitted", Match.LEFT, 2),
        ("included", Match.RIGHT, 1),
        ("error", Match.ERROR, 1),
    ]
    assert everything.deviations == 1
    assert everything.errors == 1
    assert [(c.label, c.count) for c in cell.views["chat"].chips] == [("omitted", 2)]
    assert cell.views["chat"].deviations == 0
    assert [c.variant for c in cell.cases] == [
        "chat · no stream",
        "chat · stream",
        "completions · no stream",
        "completions · stream",
    ]
    assert row.differs(ALL, [cell.column])  # a deviation
    assert not row.differs("chat", [cell.column])
    assert not row.differs(ALL, [])  # a hidden target says nothing


def test_columns_come_from_the_results_not_from_names() -> None:
    skipped = "no cassette at cassettes/zeta/...; record it with: ZETA_KEY=... conformance run"
    made = results(
        [
            case("zeta", observed=None, verdict=Verdict.SKIPPED, summary=skipped, evidence=[]),
            case("my-vllm", observed="omitted"),
            case("alpha", observed="included", profile="fireworks"),
            case("beta", observed=None, verdict=Verdict.SKIPPED, summary="does not apply"),
        ]
    )
    report = build(made)
    assert [t.name for t in report.recorded] == ["my-vllm", "alpha"]  # grouped by claimed profile
    assert [(name, [t.name for t in ts]) for name, ts in report.groups()] == [
        ("openai", ["my-vllm"]),
        ("fireworks", ["alpha"]),
    ]
    zeta = next(t for t in report.unrecorded if t.name == "zeta")
    assert zeta.describe == "not recorded (needs $ZETA_KEY)"
    assert zeta.record_command == "ZETA_KEY=... conformance run --mode record --target zeta"
    beta = next(t for t in report.unrecorded if t.name == "beta")
    assert beta.describe == "every case skipped (does not apply)"
    assert beta.record_command is None
    # The compared pair first, then every other documented profile of the catalog by name.
    others = sorted(set(made.profiles) - {"openai", "fireworks"})
    assert [p.name for p in report.profiles] == ["openai", "fireworks", *others]


def test_targets_agreeing_do_not_differ_and_disagreeing_do() -> None:
    made = results(
        [
            case("a", observed="omitted"),
            case("b", observed="omitted"),
            case("c", observed="included", verdict=Verdict.OBSERVED),
            case("a", "stream.usage", "absent", stream=True, verdict=Verdict.PASS),
            case("b", "stream.usage", "absent", stream=True, verdict=Verdict.DEVIATION),
            case("c", "stream.usage", None, stream=True),
        ]
    )
    report = build(made)
    rows = {row.behavior: row for row in report.rows}
    a, b, c = (next(t.column for t in report.recorded if t.name == n) for n in "abc")
    stop = rows["stop.inclusion"]
    assert stop.disagreeing[ALL] == [tuple(sorted((a, c))), tuple(sorted((b, c)))]
    assert not stop.differs(ALL, [a, b])  # the shown targets agree, and as they claim
    assert stop.differs(ALL, [a, c])
    assert stop.pair_differs  # openai and fireworks document different things
    usage = rows["stream.usage"]
    assert not usage.differs(ALL, [a, c])  # an error alone is no difference
    assert usage.differs(ALL, [b])  # b deviates from the profile it claims
    assert usage.differs("chat", [a, b])


def test_the_pair_falls_back_when_a_profile_is_missing() -> None:
    made = results([case("acme")])
    del made.profiles["fireworks"]
    report = build(made)
    # Without the wanted pair the report compares the first two profiles by name.
    assert report.pair == tuple(sorted(made.profiles)[:2])
    assert report.pair[0] == "fireworks-2026-11"
    assert report.short(Match.LEFT) == "Fireworks"


def test_baseline_findings_reach_the_cells() -> None:
    deviating = case("acme", observed="included")
    made = results([deviating, case("acme", observed="omitted", stream=True)])
    baseline = Baseline(targets={"acme": [BaselineEntry(case=deviating.id, flaky=True)]})
    report = build(made, gate=evaluate(made.cases, baseline, None))
    cell = next(r for r in report.rows if r.behavior == "stop.inclusion").cells[0]
    assert cell.views[ALL].known == 1
    assert [c.kind for c in cell.cases] == [Kind.KNOWN, None]


MIXED = build(
    results(
        [
            case("a", observed="omitted"),
            case("b", observed="included", verdict=Verdict.OBSERVED),
            case("c", observed="omitted", stream=True),
            case("d", observed="rejected"),
            case("a", "stream.usage", "absent", stream=True, verdict=Verdict.PASS),
            case("b", "stream.usage", "absent", stream=True, verdict=Verdict.DEVIATION),
            case("c", "stream.usage", None, stream=True),
        ]
    )
)


@given(
    shown=st.sets(st.sampled_from([t.column for t in MIXED.recorded])),
    more=st.sets(st.sampled_from([t.column for t in MIXED.recorded])),
)
def test_showing_more_targets_never_hides_a_difference(shown: set[int], more: set[int]) -> None:
    for row in MIXED.rows:
        for key in MIXED.filters:
            if row.differs(key, shown):
                assert row.differs(key, shown | more)
            if len(shown) < 2 and not any(
                cell.column in shown and cell.views[key].deviations for cell in row.cells
            ):
                assert not row.differs(key, shown)  # one target agrees with itself


def test_a_view_that_several_api_filters_share_is_listed_once_with_their_keys() -> None:
    made = results(
        [
            case("acme", observed="omitted"),  # chat only: "all" and "chat" look the same
            case("bolt", observed="omitted"),
            case("bolt", observed="included", api="completions"),
        ]
    )
    report = build(made)
    row = next(r for r in report.rows if r.behavior == "stop.inclusion")
    acme, bolt = row.cells
    everything, chat, completions = (report.key(api) for api in (ALL, "chat", "completions"))
    assert [keys for keys, _ in report.views(row, acme)] == [[everything, chat], [completions]]
    assert report.views(row, acme)[1][1].empty  # acme has no completions case: "n/a"
    assert [keys for keys, _ in report.views(row, bolt)] == [[everything], [chat], [completions]]
    # An API that no target of the row has is never chosen with the row shown: no view.
    assert "responses" not in row.apis


def test_flaky_cases_are_named_in_the_views_that_hold_them() -> None:
    runs = [
        RunOutcome(verdict=Verdict.PASS, observed="omitted", count=2),
        RunOutcome(verdict=Verdict.DEVIATION, observed="included", count=1),
    ]
    flaky = case("acme", observed=None, verdict=Verdict.ERROR).model_copy(update={"runs": runs})
    report = build(results([flaky, case("acme", observed="omitted", api="completions")]))
    cell = next(r for r in report.rows if r.behavior == "stop.inclusion").cells[0]
    assert [entry.split(":")[0] for entry in cell.views[ALL].flaky] == [flaky.id]
    assert cell.views["chat"].flaky == cell.views[ALL].flaky
    assert cell.views["completions"].flaky == []


def test_the_profiles_a_row_claims_and_the_header_groups() -> None:
    made = results([case("acme"), case("bolt", observed="included", profile="fireworks")])
    report = build(made)
    row = next(r for r in report.rows if r.behavior == "stop.inclusion")
    assert [cell.profile for cell in row.claimed] == ["openai", "fireworks"]
    assert [cell.profile for cell in row.cells] == ["openai", "fireworks"]
    groups = report.header_groups()
    assert groups == [
        (("acme", "chat"), [("acme", "chat", "200", "body")]),
        (("bolt", "chat"), [("bolt", "chat", "200", "body")]),
    ]
    anchors = {report.headers_anchor(g) for group, more in groups for g in (group, *more)}
    assert len(anchors) == 4
