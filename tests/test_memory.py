"""A suite run's cycle collector runs seldom, and as before once the run is over; a forked
replay sweeps its garbage every so many cases; the command's end spares the collector what
the run kept."""

from __future__ import annotations

import gc
import weakref

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


class _Cycle:
    """An object that refers to itself: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_sweeps_leave_cyclic_garbage_until_every_so_many_cases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "SWEEP_EVERY", 3)
    assert gc.isenabled()
    sweeps = memory.Sweeps()
    try:
        assert not gc.isenabled()
        garbage = _Cycle()
        gone = weakref.ref(garbage)
        del garbage
        for _ in range(2):
            sweeps.case_done()
            assert gone() is not None  # off: nothing collects it between sweeps
        sweeps.case_done()  # the third case sweeps
        assert gone() is None
    finally:
        sweeps.stop()
    assert gc.isenabled()


def test_sweeps_leave_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        memory.Sweeps().stop()
        assert not gc.isenabled()
    finally:
        gc.enable()
