"""Measure the suite: replay speed, a live run under latency, tokens, and report building.

Run with ``nox -s bench`` (or ``python benchmarks/bench.py`` from the repository root). It
prints figures measured once, on this machine, as it is loaded right now: ratios from one
run, not guarantees. Nothing here is a test; nothing fails on a slow figure.

1. Replay: ``conformance run`` over every shipped cassette, against a bare pytest run of as
   many trivial tests (the cost of pytest itself).
2. Live under latency: the reference server answers every request after ``--latency``
   seconds; the whole catalog runs live against it, and its wall time is set against the
   critical path, the longest chain of sequential requests in any one case.
3. Tokens: what each target's cases used, from the replayed results.
4. Report: building index.html for 10 targets x 50 behaviors of synthetic results.
5. Jitter: full live runs per reference dialect against a server whose temperature-0
   requests diverge now and then (``--jitter``), set against a clean run of the same
   dialect: errors, skips the clean run lacks, changed verdicts or outcomes, and tokens.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LIVE_TARGET = "reference-openai"
JITTER_TARGETS = ("reference-openai", "reference-fireworks")


def _timed(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - started


def _cases(report_dir: Path) -> list[dict[str, object]]:
    cases: list[dict[str, object]] = json.loads((report_dir / "results.json").read_text())["cases"]
    return cases


def replay(work: Path) -> None:
    """Time the full replay and a bare pytest run of as many trivial tests."""
    reports = work / "replay"
    command = [sys.executable, "-m", "conformance", "run", "--report-dir", str(reports)]
    seconds = _timed(command, cwd=REPO)
    cases = _cases(reports)
    ran = [case for case in cases if case["verdict"] != "skipped"]

    trivial = work / "test_trivial.py"
    trivial.write_text(
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('n', range({len(cases)}))\n"
        "def test_nothing(n):\n    pass\n"
    )
    bare = _timed(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(trivial)], cwd=work
    )
    parallel = _timed([*command, "--", "-n", "2"], cwd=REPO)
    print("replay of every shipped cassette")
    print(f"  cases:                      {len(cases)} ({len(ran)} replayed, the rest skipped)")
    print(
        f"  conformance run:            {seconds:6.2f} s  ({1000 * seconds / len(cases):.1f} ms a case)"
    )
    print(f"  conformance run -- -n 2:    {parallel:6.2f} s")
    print(f"  bare pytest, {len(cases)} trivial: {bare:6.2f} s")
    print(f"  ratio to bare pytest:       {seconds / bare:6.2f}x (goal: at most 3x; 10 s in all)")


def live(work: Path, latency: float) -> None:
    """Run the catalog live against a reference server that waits ``latency`` per request."""
    sys.path.insert(0, str(REPO))
    from conformance.catalog import load  # noqa: PLC0415
    from conformance.reference import dialect, server  # noqa: PLC0415
    from conformance.reference.faults import FaultSpec  # noqa: PLC0415

    catalog = load()
    target = catalog.targets[LIVE_TARGET]
    key = "bench-reference-key-0000"
    config = server.ServerConfig(
        switches=dialect.switches_for(catalog, target.profile),
        context_window=min(target.window(api) for api in target.apis),
        max_output_tokens=target.output_cap(target.apis[0]),
        api_key=key,
        faults=FaultSpec(kind="slow_first_byte", delay_s=latency),
    )
    reports = work / "live"
    print(
        f"live run of {LIVE_TARGET} against the reference server, {latency * 1000:.0f} ms a request"
    )
    with server.start(config) as running:
        base = [sys.executable, "-m", "conformance", "run", "--mode", "live"]
        args = ["--target", LIVE_TARGET, "--base-url", running.base_url]
        env = {"REFERENCE_API_KEY": key}
        for concurrency in (1, None):
            extra = ["--concurrency", str(concurrency)] if concurrency else []
            seconds = _timed(
                [*base, *args, *extra, "--report-dir", str(reports)], cwd=REPO, env=env
            )
            written = json.loads((reports / "results.json").read_text())
            cases = written["cases"]
            chains = [len(case["evidence"]) for case in cases]
            critical = max(chains) * latency
            # The session, from the plan to the last case: without the interpreter's start.
            provenance = written["provenance"]
            session = (
                dt.datetime.fromisoformat(provenance["finished_at"])
                - dt.datetime.fromisoformat(provenance["started_at"])
            ).total_seconds()
            label = f"--concurrency {concurrency}" if concurrency else "default concurrency"
            print(
                f"  {label:22} {seconds:6.2f} s ({session:.2f} s in the session) for"
                f" {len(cases)} cases, {sum(chains)} requests; critical path {max(chains)}"
                f" requests = {critical:.2f} s; ratio {seconds / critical:.2f}x"
                f" ({session / critical:.2f}x in the session; goal: at most 1.5x)"
            )


def _reference_config(target_name: str, **settings: object) -> object:
    """The ServerConfig a live run of ``target_name`` gets, plus ``settings``."""
    sys.path.insert(0, str(REPO))
    from conformance.catalog import load  # noqa: PLC0415
    from conformance.reference import dialect, server  # noqa: PLC0415

    catalog = load()
    target = catalog.targets[target_name]
    assert target.reference is not None
    return server.ServerConfig(
        switches=dialect.switches_for(catalog, target.reference.dialect, target.reference.set),
        context_window=min(target.window(api) for api in target.apis),
        max_output_tokens=target.output_cap(target.apis[0]),
        **settings,  # type: ignore[arg-type]
    )


def _live_run(target_name: str, report_dir: Path, *, jitter: float, seed: int) -> dict[str, Any]:
    """One full live run of ``target_name`` against a reference server with ``jitter``."""
    from conformance.reference import server  # noqa: PLC0415

    key = "bench-reference-key-0000"
    config = _reference_config(target_name, api_key=key, jitter=jitter, jitter_seed=seed)
    with server.start(config) as running:  # type: ignore[arg-type]
        command = [sys.executable, "-m", "conformance", "run", "--mode", "live"]
        command += ["--target", target_name, "--base-url", running.base_url]
        _timed(
            [*command, "--report-dir", str(report_dir)], cwd=REPO, env={"REFERENCE_API_KEY": key}
        )
    written: dict[str, Any] = json.loads((report_dir / "results.json").read_text())
    return written


@dataclass
class _JitterTally:
    """What jittered runs did against the clean run, summed over runs."""

    cases: int = 0
    errors: int = 0
    extra_skips: int = 0
    changed: int = 0  # a verdict or outcome other than the clean run's, errors and skips aside
    tokens: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, clean: dict[str, tuple[str, str | None]], run: dict[str, Any]) -> None:
        for case in run["cases"]:
            self.cases += 1
            self.tokens += case["tokens"]["prompt"] + case["tokens"]["completion"]
            verdict, observed = case["verdict"], case["observed"]
            before = clean.get(case["id"])
            if verdict == "error":
                self.errors += 1
            elif verdict == "skipped" and (before is None or before[0] != "skipped"):
                self.extra_skips += 1
            elif before != (verdict, observed):
                self.changed += 1
            else:
                continue
            if len(self.examples) < 5:
                self.examples.append(f"{case['id']}: {verdict} {observed}: {case['summary']}")


def jitter(work: Path, runs: int, heavy_runs: int) -> None:
    """Live runs per dialect at 10% and 30% jitter against the clean run's verdicts."""
    print("jitter: full live runs per dialect against a clean run of the same dialect")
    for target_name in JITTER_TARGETS:
        clean_run = _live_run(target_name, work / "clean", jitter=0.0, seed=0)
        clean = {case["id"]: (case["verdict"], case["observed"]) for case in clean_run["cases"]}
        clean_tokens = sum(
            case["tokens"]["prompt"] + case["tokens"]["completion"] for case in clean_run["cases"]
        )
        print(f"  {target_name}: clean run {len(clean)} cases, {clean_tokens:,} tokens")
        for fraction, count in ((0.1, runs), (0.3, heavy_runs)):
            tally = _JitterTally()
            for seed in range(1, count + 1):
                tally.add(
                    clean, _live_run(target_name, work / "jitter", jitter=fraction, seed=seed)
                )
            if not tally.cases:
                continue
            print(
                f"    {fraction:.0%} jitter, {count} runs: {tally.errors} errors"
                f" ({tally.errors / tally.cases:.1%} of cases), {tally.extra_skips} extra skips,"
                f" {tally.changed} changed verdicts or outcomes; tokens"
                f" {tally.tokens / count / clean_tokens:.2f}x the clean run"
            )
            for example in tally.examples:
                print(f"      {example}")
    print(
        "  goals: at 10%, 0 errors, 0 extra skips and 0 changes, tokens at most 1.3x;"
        " at 30%, 0 changes and errors at most 2% of cases"
    )


def tokens(work: Path) -> None:
    """Tokens per target in the replay, as each target's usage reported them."""
    sys.path.insert(0, str(REPO))
    from conformance import results  # noqa: PLC0415

    replayed = results.load(work / "replay" / "results.json")
    print("tokens per target (as usage reports them; a stream without usage counts none)")
    for name, spent in results.token_totals(replayed.cases).items():
        if spent.total:
            print(
                f"  {name:20} {spent.total:7,} ({spent.prompt:,} prompt + "
                f"{spent.completion:,} completion)"
            )
    print("  goal: at most 20,000 per target for the full catalog")


def report_build() -> None:
    """Build index.html for 10 targets x 50 behaviors of synthetic results."""
    sys.path.insert(0, str(REPO))
    from conformance.observation import Exchange, RequestRecord, ResponseRecord  # noqa: PLC0415
    from conformance.report import html  # noqa: PLC0415
    from conformance.results import (  # noqa: PLC0415
        BehaviorDoc,
        CaseResult,
        ExpectationDoc,
        OutcomeDoc,
        ProfileDoc,
        Provenance,
        Results,
        TargetInfo,
    )
    from conformance.verdict import Verdict  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC)
    outcomes = {"yes": OutcomeDoc(meaning="it does"), "no": OutcomeDoc(meaning="it does not")}
    behaviors = {
        f"family{b % 8}.behavior{b}": BehaviorDoc(
            title=f"Behavior {b}", family=f"family{b % 8}", description="", outcomes=outcomes
        )
        for b in range(50)
    }
    expectation = ExpectationDoc(
        expected=["yes"], source="https://example.org/docs", read=now.date(), declared_in="openai"
    )
    profiles = {
        name: ProfileDoc(
            title=name,
            description="",
            extends=None,
            expectations=dict.fromkeys(behaviors, expectation),
        )
        for name in ("openai", "fireworks")
    }
    exchange = Exchange(
        label="probe",
        request=RequestRecord(
            method="POST",
            url="http://127.0.0.1/v1/chat/completions",
            headers={},
            body={"model": "m"},
        ),
        response=ResponseRecord(status=200, headers={}, body='{"choices": []}' * 20),
    )
    cases = [
        CaseResult(
            id=f"{behavior}[t{t}-{api}-{variant}]",
            behavior=behavior,
            target=f"t{t}",
            api=api,
            stream=variant == "stream",
            profile="openai",
            expected=["yes"],
            observed="yes" if (t + n) % 3 else "no",
            verdict=Verdict.PASS if (t + n) % 3 else Verdict.DEVIATION,
            summary="what the probe saw",
            evidence=[exchange, exchange],
        )
        for t in range(10)
        for n, behavior in enumerate(behaviors)
        for api in ("chat", "completions")
        for variant in ("nostream", "stream")
    ]
    results = Results(
        provenance=Provenance(
            suite_version="bench",
            git_revision=None,
            specs_digest="",
            openai_version="",
            python_version=platform.python_version(),
            mode="replay",
            started_at=now,
            finished_at=now,
            complete=True,
        ),
        targets={
            f"t{t}": TargetInfo(title=f"t{t}", profile="openai", base_url="", models={})
            for t in range(10)
        },
        behaviors=behaviors,
        profiles=profiles,
        cases=cases,
    )
    html.render(results)  # templates compiled once, as in a run
    started = time.perf_counter()
    page = html.render(results)
    seconds = time.perf_counter() - started
    print("report build, 10 targets x 50 behaviors x 4 variants")
    print(
        f"  {len(cases)} cases, {len(page) / 1e6:.1f} MB of HTML in {seconds:.2f} s (goal: at most 1 s)"
    )


def main() -> int:
    """Print every figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds a live request waits")
    parser.add_argument("--skip-live", action="store_true", help="leave out the live run")
    parser.add_argument(
        "--jitter-runs",
        type=int,
        nargs=2,
        default=(10, 10),
        metavar=("AT_10", "AT_30"),
        help="live runs per dialect at 10%% and at 30%% jitter (0 0 leaves them out)",
    )
    parser.add_argument("--only-jitter", action="store_true", help="the jitter runs alone")
    options = parser.parse_args()
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} · {platform.machine()} · "
        f"{os.cpu_count()} cores · Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="conformance-bench-") as temporary:
        work = Path(temporary)
        if not options.only_jitter:
            replay(work)
            if not options.skip_live:
                live(work, options.latency)
            tokens(work)
            report_build()
        if any(options.jitter_runs):
            jitter(work, *options.jitter_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
