"""How a suite run keeps Python's cycle collector from rescanning what it keeps.

A run keeps every case's result, with its evidence, until the reports are written, so the
heap only grows: hundreds of thousands of objects. At Python's default threshold (a
collection of the youngest objects every 700 allocations) the collector runs thousands of
times a run, and each time the heap has grown by a quarter it scans all of it again: over
a second of a replay of the shipped catalog. Collecting the youngest objects every 10,000
allocations instead cuts that to a fifth, and keeps the same peak memory (the cycles a
case leaves behind are still collected, a little later).

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


@contextlib.contextmanager
def collecting_seldom() -> Iterator[None]:
    """Within the block, the cycle collector runs at YOUNG_THRESHOLD; then as before."""
    previous = gc.get_threshold()
    gc.set_threshold(max(YOUNG_THRESHOLD, previous[0]), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def exit_without_last_collections(code: int) -> NoReturn:
    """End the process with ``code``, sparing the interpreter's collections at exit the
    objects alive now: they are moved out of the collector's sight (``gc.freeze``); the
    exit handlers still run, and every object is still freed."""
    gc.freeze()
    raise SystemExit(code)
