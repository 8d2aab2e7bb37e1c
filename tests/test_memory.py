"""A suite run's cycle collector runs seldom, and as before once the run is over; the
command's end spares the collector what the run kept."""

from __future__ import annotations

import gc

import pytest

from conformance import memory
from conformance.memory import YOUNG_THRESHOLD, collecting_seldom


def test_the_collector_runs_seldom_within_and_as_before_after() -> None:
    before = gc.get_threshold()
    with collecting_seldom():
        inside = gc.get_threshold()
    assert inside == (max(YOUNG_THRESHOLD, before[0]), *before[1:])
    assert inside[0] >= 10 * 700
    assert gc.get_threshold() == before


def test_the_exit_keeps_its_code_and_hides_what_lives_from_the_last_collections() -> None:
    kept = [[] for _ in range(10)]  # alive as the process would end, and tracked by gc
    try:
        with pytest.raises(SystemExit) as ended:
            memory.exit_without_last_collections(3)
        assert ended.value.code == 3
        assert gc.get_freeze_count() > len(kept)
    finally:
        gc.unfreeze()  # this process goes on
