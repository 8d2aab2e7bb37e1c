"""How a suite run keeps Python's cycle collector from rescanning what it keeps.

A run keeps every case's result, with its evidence, until the reports are written, so the
heap only grows: hundreds of thousands of objects. At Python's default threshold (a
collection of the youngest objects every 700 allocations) the collector runs thousands of
times a run, and each time the heap has grown by a quarter it scans all of it again: over
a second of a replay of the shipped catalog. Collecting the youngest objects every 10,000
allocations instead cuts that to a fifth, and keeps the same peak memory (the cycles a
case leaves behind are still collected, a little later).

A forked replay goes further (``Sweeps``): its processes leave the collector off, and sweep
their cyclic garbage every few thousand cases.

And as the process ends, the interpreter collects once more over everything still alive:
every result the run kept, again (about 0.7 s of CPU after a replay of the shipped catalog),
only to hand back memory that the end of the process hands back anyway.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import NoReturn

#: Allocations between two collections of the youngest objects (Python's default: 700).
YOUNG_THRESHOLD = 10_000
#: Cases a forked replay's processes run between two sweeps of their cyclic garbage.
SWEEP_EVERY = 2_000


@contextlib.contextmanager
def collecting_seldom() -> Iterator[None]:
    """Within the block, the cycle collector runs at YOUNG_THRESHOLD; then as before."""
    previous = gc.get_threshold()
    gc.set_threshold(max(YOUNG_THRESHOLD, previous[0]), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


class Sweeps:
    """The cycle collector off while a forked replay runs, and a sweep of all cyclic garbage
    every SWEEP_EVERY cases (``case_done``).

    The run's own process keeps every result to the end: the collector rescanned them again
    and again as they came, about 0.2 s of CPU for the shipped catalog. What a replayed case
    leaves in cycles is small (its SDK client, its responses): the run's peak memory grew by
    about 8 MB for the 1,476 shipped cases, and the sweeps bound it for larger catalogs. A
    process forked while the collector is off starts with it off.
    """

    def __init__(self) -> None:
        self._cases = 0
        self._was_enabled = gc.isenabled()
        gc.disable()

    def case_done(self) -> None:
        """Count a case; sweep every SWEEP_EVERY of them."""
        self._cases += 1
        if self._cases % SWEEP_EVERY == 0:
            gc.collect()

    def stop(self) -> None:
        """The collector back as it was."""
        if self._was_enabled:
            gc.enable()


def exit_without_last_collections(code: int) -> NoReturn:
    """End the process with ``code``, sparing the interpreter's collections at exit the
    objects alive now: they are moved out of the collector's sight (``gc.freeze``); the
    exit handlers still run, and every object is still freed."""
    gc.freeze()
    raise SystemExit(code)
