"""How a suite run keeps Python's cycle collector from rescanning what it keeps.

A run keeps every case's result, with its evidence, until the reports are written, so the
heap only grows: hundreds of thousands of objects. The collector, run by its thresholds,
scans the youngest objects every few thousand allocations and, each time the heap has grown
by a quarter, all of it again; and as the reports are written, all of it once more. For a
replay of the shipped catalog that came to about 0.3 s of CPU even with the youngest
collected only every 10,000 allocations, most of it while every other thread (a live run's
32) or process (a replay's workers, waiting to be handed cases) waited on it.

So a suite run turns the collector off (``sweeping``) and instead sweeps the cycles its
cases leave (each case's SDK client, its responses: about 60 KB a replayed case) every
SWEEP_EVERY cases (``count_case``). A replay's workers, forked while it is off, start with
it off too, and sweep what their own cases leave.

And as the process ends, the interpreter collects once more over everything still alive:
every result the run kept, again (about 0.7 s of CPU after a replay of the shipped catalog),
only to hand back memory that the end of the process hands back anyway.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Iterator
from typing import NoReturn

#: Cases run in one process between two sweeps of the cycles left since the last sweep.
SWEEP_EVERY = 100
#: Cases between two sweeps of every cycle, older ones included: a case that was still
#: running at a sweep (a live run's threads) left some of its cycles older than the next.
FULL_SWEEP_EVERY = 2_000

#: Cases run in this process so far (a forked worker goes on counting from where it forked).
_cases = itertools.count(1)


@contextlib.contextmanager
def sweeping() -> Iterator[None]:
    """Within the block, the cycle collector is off, and ``count_case`` sweeps; then the
    collector is as before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def count_case() -> None:
    """Count a case run in this process; while the collector is off (``sweeping``), sweep
    the cycles left since the last sweep every SWEEP_EVERY cases, and every cycle every
    FULL_SWEEP_EVERY cases."""
    count = next(_cases)
    if count % SWEEP_EVERY or gc.isenabled():
        return
    # With the collector off, every object made since the last sweep is in its youngest
    # generations, and what outlived a sweep is in the oldest: a sweep of the young ones
    # scans what the last cases made, not every result kept before them.
    gc.collect(2 if count % FULL_SWEEP_EVERY == 0 else 1)


def exit_without_last_collections(code: int) -> NoReturn:
    """End the process with ``code``, sparing the interpreter's collections at exit the
    objects alive now: they are moved out of the collector's sight (``gc.freeze``); the
    exit handlers still run, and every object is still freed."""
    gc.freeze()
    raise SystemExit(code)
