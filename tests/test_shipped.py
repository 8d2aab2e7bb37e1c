"""The shipped cassettes: a replay reproduces exactly what was recorded, and keeps no key."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conformance import gate
from tests._cli import conformance
from tests.conftest import REPO

BASELINE = REPO / "cassettes" / "baseline.yaml"
#: What a key looks like (the before-stop check of the project uses the same patterns).
KEY_SHAPES = re.compile(r"Bearer [A-Za-z0-9_.-]{8,}|sk-[A-Za-z0-9_-]{16,}|fw_[A-Za-z0-9]{16,}")


def test_a_replay_of_every_shipped_cassette_reproduces_the_recorded_outcomes(
    tmp_path: Path,
) -> None:
    completed = conformance(
        "run",
        "--cassettes",
        str(REPO / "cassettes"),
        "--baseline",
        str(BASELINE),
        "--report-dir",
        str(tmp_path / "reports"),
        cwd=tmp_path,
    )
    # 0: every deviation and error is the one the recordings hold, and nothing else deviates.
    assert completed.returncode == 0, completed.stdout[-3000:]
    cases = json.loads((tmp_path / "reports" / "results.json").read_text())["cases"]
    recorded = {path.parent.parent.name for path in (REPO / "cassettes").glob("*/*/*.yaml")}
    replayed = {case["target"] for case in cases if case["verdict"] != "skipped"}
    assert replayed == recorded
    # Every entry still matches a case: the baseline is not stale.
    assert "Unused baseline entries" not in (tmp_path / "reports" / "summary.md").read_text()
    entries = gate.load(BASELINE)
    assert set(entries.targets) <= recorded


def test_no_shipped_cassette_holds_anything_shaped_like_a_key() -> None:
    for path in (REPO / "cassettes").rglob("*.yaml"):
        found = KEY_SHAPES.search(path.read_text(encoding="utf-8"))
        assert found is None, f"{path}: {found.group(0)[:12] if found else ''}..."
