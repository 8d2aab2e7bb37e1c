"""Stability: a case run several times (``conformance run --repeat N``), as WPT checks tests.

Runs that agree make one result with their verdict, counted. Runs that came to different
verdicts or outcomes make an *unstable* case: no single observation, so an ``error`` that
says what the runs came to. The gate then treats it as any unexpected error (exit 2) unless
the baseline marks the case ``flaky``, which ``conformance baseline update`` does from such a
run; so the gate's exit code does not depend on which of its outcomes a case happens to show.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from conformance.observation import Tokens
from conformance.results import CaseResult, RunOutcome
from conformance.verdict import Verdict


def combine(runs: Sequence[CaseResult]) -> CaseResult:
    """One result for the runs of one case: theirs when they agree, else an unstable error.

    The tokens and time are those of every run. An unstable case keeps the evidence of the
    first run of each distinct outcome, so the report shows how they differ.
    """
    counts = Counter((run.verdict, run.observed) for run in runs)
    outcomes = [
        RunOutcome(verdict=verdict, observed=observed, count=count)
        for (verdict, observed), count in counts.most_common()
    ]
    spent = {
        "runs": outcomes,
        "tokens": Tokens(
            prompt=sum(run.tokens.prompt for run in runs),
            completion=sum(run.tokens.completion for run in runs),
        ),
        "duration_s": round(sum(run.duration_s for run in runs), 4),
    }
    first = runs[0]
    if len(outcomes) == 1:
        return first.model_copy(update=spent)
    firsts: dict[tuple[Verdict, str | None], CaseResult] = {}
    for run in runs:
        firsts.setdefault((run.verdict, run.observed), run)
    unstable = first.model_copy(
        update={**spent, "verdict": Verdict.ERROR, "observed": None, "checks": []}
    )
    unstable.summary = (
        f"unstable: its {len(runs)} runs came to {unstable.tally()}; the first said: "
        f"{first.summary}"
    )
    unstable.evidence = [exchange for run in firsts.values() for exchange in run.evidence]
    return unstable
