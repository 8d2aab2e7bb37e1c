"""`conformance baseline update` keeps what it should: the shipped baseline, updated from the
shipped replay, is byte for byte the same, and the gate still passes with it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conformance import gate, results
from conformance.verdict import Verdict
from tests._cli import conformance
from tests.conftest import REPO, SPECS

BASELINE = REPO / "cassettes" / "baseline.yaml"


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The results.json of a replay of every shipped cassette against the shipped baseline."""
    where = tmp_path_factory.mktemp("replay")
    completed = conformance(
        "run",
        "--specs",
        str(SPECS),
        "--cassettes",
        str(REPO / "cassettes"),
        "--baseline",
        str(BASELINE),
        cwd=where,
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
    return where / "reports" / "results.json"


def _update(baseline: Path, replayed: Path) -> str:
    completed = conformance(
        "baseline",
        "update",
        "--results",
        str(replayed),
        "--baseline",
        str(baseline),
        cwd=baseline.parent,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_updating_the_shipped_baseline_from_the_shipped_replay_changes_nothing(
    tmp_path: Path, replay: Path
) -> None:
    copy = tmp_path / "baseline.yaml"
    shutil.copyfile(BASELINE, copy)
    said = _update(copy, replay)
    assert copy.read_bytes() == BASELINE.read_bytes()
    assert "(0 added, 0 changed, 0 removed)" in said
    # The hand-kept error entries and their reasons are still there, so the gate passes.
    run = results.load(replay)
    assert gate.evaluate(run.cases, gate.load(copy), copy).exit_code is gate.ExitCode.AS_EXPECTED
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.yaml"], "a temporary file remained"


def test_a_known_deviation_is_kept_reason_and_all_when_its_case_errors(
    tmp_path: Path, replay: Path
) -> None:
    run = results.load(replay)
    deviating = next(case for case in run.cases if case.verdict is Verdict.DEVIATION)
    erred = deviating.model_copy(
        update={"verdict": Verdict.ERROR, "observed": None, "summary": "connection reset"}
    )
    run.cases = [erred if case.id == deviating.id else case for case in run.cases]
    replayed = tmp_path / "results.json"
    results.write(run, replayed)
    copy = tmp_path / "baseline.yaml"
    entry = f"  - case: {deviating.id}\n    verdict: deviation\n"
    text = BASELINE.read_text()
    assert entry in text
    with_reason = text.replace(entry, entry + "    reason: tracked upstream, bug 41\n", 1)
    copy.write_text(with_reason)
    _update(copy, replayed)
    assert copy.read_text() == with_reason


def test_a_bad_baseline_is_refused_with_exit_4_and_left_alone(tmp_path: Path, replay: Path) -> None:
    copy = tmp_path / "baseline.yaml"
    bad = BASELINE.read_text().replace("verdict: error", "verdict: eror", 1)
    copy.write_text(bad)
    completed = conformance(
        "baseline", "update", "--results", str(replay), "--baseline", str(copy), cwd=tmp_path
    )
    assert completed.returncode == gate.ExitCode.USAGE_ERROR
    assert f"{copy}:" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert copy.read_text() == bad
