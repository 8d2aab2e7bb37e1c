"""The order in which a live run probes its cases: the longest chains of requests first.

A live run probes several cases at once (``ahead.Threads``); its wall time is at least its
longest chain of sequential requests, and a long chain started late keeps the run going
after the others are done. Started first, long chains overlap the short ones instead.

A case's chain is known from its cassette, when one was recorded: the number of requests in
it. The order only changes how soon a run ends, never what it observes, so a cassette that
cannot be counted is a case of unknown length, not an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from conformance.plan import Case

#: How each recorded interaction starts in vcrpy's YAML: a list item at the top level.
_INTERACTION = "\n- request:"


def recorded_requests(cassette: Path) -> int | None:
    """How many requests the cassette at ``cassette`` holds; None when there is none to read.

    Counted in the text, without parsing the YAML: cassettes of long streams are large, and
    the run waits for this before it starts.
    """
    try:
        text = cassette.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text.count(_INTERACTION)


def longest_first(cases: Sequence[Case], cassettes: Path) -> list[Case]:
    """``cases`` with the most recorded requests first; ties keep their order.

    Cases with no cassette under ``cassettes`` come first of all: their chains may be the
    longest, and a target with no recordings keeps the plan's order.
    """
    unknown = float("inf")

    def requests(case: Case) -> float:
        counted = recorded_requests(case.cassette(cassettes))
        return unknown if counted is None else counted

    return sorted(cases, key=requests, reverse=True)
