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
    monkeypatch.setattr(memory, "FULL_SWEEP_EVERY", 6)
    _from_a_full_sweep_on()
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


def _from_a_full_sweep_on() -> None:
    while next(memory._cases) % memory.FULL_SWEEP_EVERY:
        pass


def test_sweeps_take_the_young_cycles_and_now_and_then_all_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generations: list[int] = []
    monkeypatch.setattr(memory, "SWEEP_EVERY", 2)
    monkeypatch.setattr(memory, "FULL_SWEEP_EVERY", 4)
    monkeypatch.setattr(gc, "collect", generations.append)
    _from_a_full_sweep_on()
    for _ in range(4):
        memory.count_case()  # outside a suite run the collector is on: no sweep
    assert generations == []
    _from_a_full_sweep_on()
    with memory.sweeping():
        for _ in range(4):
            memory.count_case()
    assert generations == [1, 2]  # the young generations at case 2, every one at case 4


def test_the_exit_keeps_its_code_and_hides_what_lives_from_the_last_collections() -> None:
    kept = [[] for _ in range(10)]  # alive as the process would end, and tracked by gc
    try:
        with pytest.raises(SystemExit) as ended:
            memory.exit_without_last_collections(3)
        assert ended.value.code == 3
        assert gc.get_freeze_count() > len(kept)
    finally:
        gc.unfreeze()  # this process goes on
