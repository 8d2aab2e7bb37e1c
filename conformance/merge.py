"""Many runs, one results file: the fan-in step of a CI matrix with one job per target.

Each target's cases come from the newest run that holds it (by the time the run finished; on
a tie, the file given last), and every run's provenance is kept in ``Results.runs``, with the
targets it gave and those a newer run superseded. Merged files merge again the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from conformance.results import BehaviorDoc, MergedRun, ProfileDoc, Results


def runs_of(file: str, results: Results) -> list[MergedRun]:
    """The runs a results file holds: the runs it was merged from, or its own run."""
    if results.runs:
        return list(results.runs)
    return [MergedRun(file=file, provenance=results.provenance, targets=sorted(results.targets))]


def merge(inputs: Sequence[tuple[str, Results]]) -> Results:
    """One Results from ``(file name, results)`` pairs; the newest run wins a shared target."""
    if not inputs:
        raise ValueError("no results file to merge")
    held = [(run, results) for file, results in inputs for run in runs_of(file, results)]

    def newness(index: int) -> tuple[dt.datetime, int]:
        return held[index][0].provenance.finished_at, index

    winner: dict[str, int] = {}
    for index, (run, _) in enumerate(held):
        for target in run.targets:
            if target not in winner or newness(index) > newness(winner[target]):
                winner[target] = index

    oldest_first = sorted(range(len(held)), key=newness)
    behaviors: dict[str, BehaviorDoc] = {}
    profiles: dict[str, ProfileDoc] = {}
    for index in oldest_first:  # a newer run's documentation replaces an older one's
        behaviors.update(held[index][1].behaviors)
        profiles.update(held[index][1].profiles)

    targets = {name: held[winner[name]][1].targets[name] for name in sorted(winner)}
    cases = sorted(
        (
            case
            for name, index in winner.items()
            for case in held[index][1].cases
            if case.target == name
        ),
        key=lambda case: case.id,
    )
    runs = [
        held[index][0].model_copy(
            update={
                "targets": sorted(t for t in held[index][0].targets if winner[t] == index),
                "superseded": sorted(
                    {*held[index][0].superseded}
                    | {t for t in held[index][0].targets if winner[t] != index}
                ),
            }
        )
        for index in oldest_first
    ]
    every = [run.provenance for run in runs]
    modes = sorted({provenance.mode for provenance in every})
    provenance = every[-1].model_copy(
        update={
            "mode": "+".join(modes),
            "started_at": min(p.started_at for p in every),
            "finished_at": max(p.finished_at for p in every),
            "complete": all(p.complete for p in every),
        }
    )
    return Results(
        provenance=provenance,
        targets=targets,
        behaviors=behaviors,
        profiles=profiles,
        cases=cases,
        runs=runs,
    )
