"""A suite run's cycle collector runs seldom, and as before once the run is over."""

from __future__ import annotations

import gc

from conformance.memory import YOUNG_THRESHOLD, collecting_seldom


def test_the_collector_runs_seldom_within_and_as_before_after() -> None:
    before = gc.get_threshold()
    with collecting_seldom():
        inside = gc.get_threshold()
    assert inside == (max(YOUNG_THRESHOLD, before[0]), *before[1:])
    assert inside[0] >= 10 * 700
    assert gc.get_threshold() == before
