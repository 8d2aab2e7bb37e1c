"""Verdict stage: an observation against an expectation."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """What a case comes to."""

    PASS = "pass"  # the observed outcome is the expected one, or in the expected set
    DEVIATION = "deviation"  # the observed outcome differs from what the profile documents
    ERROR = "error"  # no observation: connection failure, 5xx, timeout, malformed reply
    OBSERVED = "observed"  # the profile's docs are silent; what was seen is recorded
    SKIPPED = "skipped"  # the case does not apply, or has no cassette to replay


def judge(expected: frozenset[str] | None, observed: str) -> Verdict:
    """Compare ``observed`` with ``expected`` (None where the expectation is unknown)."""
    if expected is None:
        return Verdict.OBSERVED
    return Verdict.PASS if observed in expected else Verdict.DEVIATION
