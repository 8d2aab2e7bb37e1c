"""A suite run's cycle collector is off, its garbage swept every so many cases, and as
before once the run is over; the command's end spares the collector what the run kept."""

from __future__ import annotations

import gc
import weakref

import pytest

from conformance import memory


class _Cycle:
    """An object that refers to itself: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_sweeping_leaves_cyclic_garbage_until_every_so_many_cases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "SWEEP_EVERY", 3)
    while next(memory._cases) % 3 != 0:  # from a sweep on
        pass
    assert gc.isenabled()
    with memory.sweeping():
        assert not gc.isenabled()
        garbage = _Cycle()
        gone = weakref.ref(garbage)
        del garbage
        for _ in range(2):
            memory.count_case()
            assert gone() is not None  # off: nothing collects it between sweeps
        memory.count_case()  # the third case sweeps
        assert gone() is None
    assert gc.isenabled()


def test_sweeping_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        with memory.sweeping():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_cases_counted_outside_a_suite_run_leave_the_collector_to_its_thresholds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sweeps: list[None] = []
    monkeypatch.setattr(memory, "SWEEP_EVERY", 1)
    monkeypatch.setattr(gc, "collect", lambda: sweeps.append(None))
    memory.count_case()  # the collector is on: no sweep
    assert sweeps == []
    with memory.sweeping():
        memory.count_case()
    assert sweeps == [None]


def test_the_exit_keeps_its_code_and_hides_what_lives_from_the_last_collections() -> None:
    kept = [[] for _ in range(10)]  # alive as the process would end, and tracked by gc
    try:
        with pytest.raises(SystemExit) as ended:
            memory.exit_without_last_collections(3)
        assert ended.value.code == 3
        assert gc.get_freeze_count() > len(kept)
    finally:
        gc.unfreeze()  # this process goes on
