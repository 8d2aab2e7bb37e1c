"""Many runs, one report: merging results files, as the fan-in step of a CI matrix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import results as results_file
from conformance.cli import main
from conformance.merge import merge
from conformance.results import Results
from tests.report.factory import WHEN, case, results

EARLY = WHEN
LATE = WHEN + dt.timedelta(hours=1)


def _run(when: dt.datetime, **observed: str) -> Results:
    """A run of the targets named, each observing ``stop.inclusion`` as given."""
    return results(
        [
            case(target, "stop.inclusion", outcome, stream=stream)
            for target, outcome in observed.items()
            for stream in (False, True)
        ],
        when=when,
    )


def test_runs_that_share_no_target_are_put_side_by_side() -> None:
    alpha, beta = _run(EARLY, alpha="omitted"), _run(LATE, beta="included")
    merged = merge([("alpha.json", alpha), ("beta.json", beta)])
    assert set(merged.targets) == {"alpha", "beta"}
    assert sorted(c.id for c in merged.cases) == sorted(c.id for c in [*alpha.cases, *beta.cases])
    assert [(run.file, run.targets, run.superseded) for run in merged.runs] == [
        ("alpha.json", ["alpha"], []),
        ("beta.json", ["beta"], []),
    ]
    # Every run's provenance is kept, and the merged one spans them.
    assert [run.provenance for run in merged.runs] == [alpha.provenance, beta.provenance]
    assert merged.provenance.started_at == alpha.provenance.started_at
    assert merged.provenance.finished_at == beta.provenance.finished_at


@pytest.mark.parametrize("newer_first", [False, True])
def test_the_newer_run_wins_a_shared_target(newer_first: bool) -> None:
    old = _run(EARLY, shared="omitted", only_old="omitted")
    new = _run(LATE, shared="included")
    inputs = [("old.json", old), ("new.json", new)]
    merged = merge(inputs[::-1] if newer_first else inputs)
    shared = [c for c in merged.cases if c.target == "shared"]
    assert len(shared) == 2
    assert {c.observed for c in shared} == {"included"}
    assert {c.target for c in merged.cases} == {"shared", "only_old"}
    runs = {run.file: run for run in merged.runs}
    assert runs["old.json"].targets == ["only_old"]
    assert runs["old.json"].superseded == ["shared"]
    assert runs["new.json"].targets == ["shared"]
    assert [run.file for run in merged.runs] == ["old.json", "new.json"]  # oldest first


def test_on_a_tie_the_file_given_last_wins() -> None:
    first, second = _run(EARLY, same="omitted"), _run(EARLY, same="included")
    merged = merge([("first.json", first), ("second.json", second)])
    assert {c.observed for c in merged.cases} == {"included"}


def test_a_merged_file_merges_again_with_every_run_kept() -> None:
    once = merge([("a.json", _run(EARLY, a="omitted")), ("b.json", _run(EARLY, b="omitted"))])
    twice = merge([("ab.json", once), ("c.json", _run(LATE, a="included"))])
    assert [(run.file, run.targets, run.superseded) for run in twice.runs] == [
        ("a.json", [], ["a"]),
        ("b.json", ["b"], []),
        ("c.json", ["a"], []),
    ]
    assert {c.observed for c in twice.cases if c.target == "a"} == {"included"}


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=5),
            st.sets(st.sampled_from(["t1", "t2", "t3"]), min_size=1),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_each_target_comes_from_the_newest_run_holding_it(
    runs: list[tuple[int, set[str]]],
) -> None:
    inputs = []
    for index, (minutes, targets) in enumerate(runs):
        run = results(
            [case(t, summary=f"run {index}") for t in sorted(targets)],
            when=WHEN + dt.timedelta(minutes=minutes),
        )
        inputs.append((f"run{index}.json", run))
    merged = merge(inputs)
    for target in {t for _, targets in runs for t in targets}:
        newest = max(
            (minutes, index) for index, (minutes, targets) in enumerate(runs) if target in targets
        )[1]
        (only,) = [c for c in merged.cases if c.target == target]
        assert only.summary == f"run {newest}"
    assert len(merged.runs) == len(runs)


def test_report_merges_files_into_one_results_file_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    results_file.write(_run(EARLY, shared="omitted", mine="omitted"), old)
    results_file.write(_run(LATE, shared="included"), new)
    out = tmp_path / "merged"
    assert main(["report", str(old), str(new), "--out", str(out)]) == 0
    merged = results_file.load(out / "results.json")
    assert {c.observed for c in merged.cases if c.target == "shared"} == {"included"}
    assert [run.file for run in merged.runs] == [str(old), str(new)]
    page = (out / "index.html").read_text()
    assert "Merged from 2 runs" in page
    assert str(old) in page
    assert str(new) in page
    summary = (out / "summary.md").read_text()
    assert f"`{old}` (replay, 2026-11-20 09:30 UTC): mine; superseded: shared" in summary
    assert f"`{new}` (replay, 2026-11-20 10:30 UTC): shared" in summary


def test_report_of_several_files_needs_an_out_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a.json", "b.json"):
        results_file.write(_run(EARLY, a="omitted"), tmp_path / name)
    code = main(["report", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert code == 4
    assert capsys.readouterr().err.strip() == (
        "conformance: merging several results files needs --out DIR"
    )
