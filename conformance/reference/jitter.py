"""Jitter: a share of greedy requests that diverge after a few tokens, as batched GPUs do.

A real server at temperature 0 is not always deterministic: batching changes the order of
floating-point sums, and where two candidates are nearly tied the other one sometimes wins,
after which the text goes its own way. ``Jitter`` plays that: it draws, per request, whether
the request diverges and at which token; the model then takes the runner-up there if it
nearly ties the best (``model.generate``). Sampled requests (temperature above 0) are
left alone: their variation is their own. The draws come from one seeded generator, so a
sequential run is reproducible; the same request sent twice may still differ.
"""

from __future__ import annotations

import dataclasses
import random
import threading

from conformance.reference.planning import Plan

#: A diverging request takes the runner-up at one of these token positions, when it is a
#: near-tie there (``model.NEAR_TIE``).
FIRST_DIVERGENT_TOKEN = 2
LAST_DIVERGENT_TOKEN = 10


class Jitter:
    """Decides which greedy requests diverge, from ``fraction`` and a seeded generator."""

    def __init__(self, fraction: float, seed: int | None = None) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"jitter must be a fraction from 0 to 1, not {fraction}")
        self.fraction = fraction
        self._draws = random.Random(seed)
        self._lock = threading.Lock()  # servers in tests share the app across threads

    def apply(self, plan: Plan) -> Plan:
        """``plan``, or a copy whose greedy generations diverge from some token on."""
        if self.fraction <= 0 or plan.sampling.temperature > 0:
            return plan
        with self._lock:
            if self._draws.random() >= self.fraction:
                return plan
            position = self._draws.randint(FIRST_DIVERGENT_TOKEN, LAST_DIVERGENT_TOKEN)
        return dataclasses.replace(
            plan, sampling=dataclasses.replace(plan.sampling, diverge_from=position)
        )
