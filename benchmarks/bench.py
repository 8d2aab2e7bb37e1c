"""Measure the suite and print each figure beside its goal.

Run with ``nox -s bench`` (or ``python benchmarks/bench.py`` from the repository root). The
figures are measured on this machine as it is loaded right now: read them as rough. Nothing
here is a test; nothing fails on a slow figure. It prints:

1. Replay: the README's first command (``conformance run --baseline cassettes/baseline.yaml``,
   every shipped cassette) and a bare pytest run of as many trivial tests, alternated over
   ``--rounds`` rounds: each time, the medians and their ratio (goal: at most 2.5x); the
   same replay kept in one process (``--concurrency 1``); and the peak memory of both. The
   package's bytecode is compiled first, as any run after the first finds it.
2. Report: the size of that replay's index.html (goal: at most 6 MB) and its load time in
   headless Chromium (goal: at most 1.5 s), from navigation start to the end of the load
   event, the median of three loads; skipped where Chromium is not installed.
3. Live: the whole catalog of reference-openai against a reference server that answers every
   request after ``--latency`` seconds (default 1), ``--live-runs`` times: the wall time of
   ``conformance run`` (split into before its session, the session, and after it), and the
   throughput-aware bound max(critical path, requests x latency / concurrency), with the
   target's max_concurrency; goal: at most 1.25x the bound.
4. Tokens per target, from the replay (goal: at most 20,000 per target).
5. Report build: index.html for 10 targets x 50 behaviors of synthetic results (goal: 1 s).
6. Jitter: full live runs per reference dialect against a server whose temperature-0
   requests diverge now and then (``--jitter``), set against a clean run of the same
   dialect: errors, skips the clean run lacks, changed verdicts or outcomes, and tokens.
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conformance.reference.server import ServerConfig

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the package and tests.report.devtools, from this checkout

LIVE_TARGET = "reference-openai"
JITTER_TARGETS = ("reference-openai", "reference-fireworks")
BENCH_KEY = "bench-reference-key-0000"
CONFORMANCE = [sys.executable, "-m", "conformance"]
#: The README's first command.
REPLAY = ["run", "--baseline", "cassettes/baseline.yaml"]
PAGE_LOADS = 3


@dataclass(frozen=True)
class Child:
    """What one child process took: wall time, peak memory, exit code."""

    launched_at: dt.datetime
    seconds: float
    peak_rss_bytes: int  # of the largest single process
    peak_tree_pss_bytes: int  # of the child and its descendants together, sampled
    returncode: int


def run_child(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> Child:
    """Run ``command`` to its end, quietly, and measure it.

    Two peaks of memory: ``ru_maxrss`` as ``wait4`` reports it, the largest resident set of
    the child or of any one process it waited for (on Linux, in KiB); and the largest sum
    of the proportional set sizes (PSS, where pages shared between processes are split
    between them) of the child and all its descendants, sampled every 20 ms, for a replay
    whose forked workers share most of their memory with it.
    """
    launched_at = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sampler = _TreeMemory(process.pid)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    sampler.stop()
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Child(launched_at, seconds, usage.ru_maxrss * 1024, sampler.peak, process.returncode)


class _TreeMemory:
    """Samples the summed PSS of a process and its descendants on a thread, keeping the peak."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._pid = pid
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stopped.wait(0.02):
            self.peak = max(self.peak, sum(map(_pss_bytes, _tree(self._pid))))


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, as /proc lists them now (empty where there is no /proc)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pending.extend(int(child) for child in children)
    return found


def _pss_bytes(pid: int) -> int:
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:  # gone, or no /proc
        return 0
    for line in rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def _results(report_dir: Path) -> dict[str, Any]:
    written: dict[str, Any] = json.loads((report_dir / "results.json").read_text())
    return written


def _seconds(values: list[float]) -> str:
    """The median, then every value: ``9.81 s (9.62, 9.81, 10.40)``."""
    each = ", ".join(f"{value:.2f}" for value in values)
    return f"{statistics.median(values):.2f} s ({each})"


def _trivial_tests(work: Path, count: int) -> Path:
    path = work / "test_trivial.py"
    path.write_text(
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('n', range({count}))\n"
        "def test_nothing(n):\n    pass\n"
    )
    return path


def replay(work: Path, rounds: int) -> Path:
    """Time the full replay (as the README runs it, and in one process) against a bare pytest
    run, alternating; return the report folder of the README's command."""
    # Every run but the first reads the package's bytecode from __pycache__, as a bare pytest
    # run reads pytest's (compiled when it was installed); where PYTHONDONTWRITEBYTECODE is
    # set, as on some machines, no run writes it, and each would compile the package anew.
    compiled = compileall.compile_dir(REPO / "conformance", quiet=1)
    reports = work / "replay"
    command = [*CONFORMANCE, *REPLAY, "--report-dir", str(reports)]
    serial_command = [*command[:-1], str(work / "serial"), "--concurrency", "1"]
    replays: list[Child] = []
    serial: list[Child] = []
    bare: list[Child] = []
    trivial: Path | None = None
    for _ in range(rounds):
        replays.append(run_child(command, cwd=REPO))
        if trivial is None:  # as many trivial tests as the replay has cases
            trivial = _trivial_tests(work, len(_results(reports)["cases"]))
        bare_command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        bare.append(run_child([*bare_command, str(trivial)], cwd=work))
        serial.append(run_child(serial_command, cwd=REPO))
    cases = _results(reports)["cases"]
    replayed = sum(1 for case in cases if case["verdict"] != "skipped")
    replay_s = [child.seconds for child in replays]
    bare_s = [child.seconds for child in bare]
    ratio = statistics.median(replay_s) / statistics.median(bare_s)
    serial_ratio = statistics.median(child.seconds for child in serial) / statistics.median(bare_s)
    codes = sorted({child.returncode for child in [*replays, *serial]})
    workers = _replay_workers(len(cases))
    print(f"replay of every shipped cassette (conformance {' '.join(REPLAY)}), {rounds} round(s)")
    _figure("cases", f"{len(cases):,} ({replayed:,} replayed, the rest skipped)")
    _figure("exit code", f"{', '.join(map(str, codes))} (0: the recorded outcomes)")
    _figure("bytecode", "compiled before the first round" if compiled else "NOT compiled")
    how = f"{workers} worker processes" if workers > 1 else "one process"
    _figure(f"conformance run ({how})", _seconds(replay_s))
    _figure(f"bare pytest, {len(cases):,} trivial tests", _seconds(bare_s))
    _figure("ratio of the medians", f"{ratio:.2f}x", goal="at most 2.5x", met=ratio <= 2.5)
    _figure("the same in one process", _seconds([child.seconds for child in serial]))
    _figure("  its ratio", f"{serial_ratio:.2f}x")
    for label, runs in (("replay", replays), ("replay in one process", serial)):
        largest = max(child.peak_rss_bytes for child in runs) / 2**20
        together = max(child.peak_tree_pss_bytes for child in runs) / 2**20
        _figure(
            f"peak memory, {label}",
            f"{largest:.0f} MiB RSS of its largest process; {together:.0f} MiB PSS of all",
        )
    return reports


def _replay_workers(cases: int) -> int:
    """How many processes a replay of ``cases`` cases runs in by default, as the run decides."""
    from conformance.ahead import concurrency  # noqa: PLC0415
    from conformance.recording import Mode  # noqa: PLC0415

    return concurrency(Mode.REPLAY, [], None, cases)


def _figure(label: str, value: str, *, goal: str | None = None, met: bool = False) -> None:
    """One line of figures: what, how much, and the goal with whether it is met."""
    verdict = f"  [goal: {goal}: {'met' if met else 'NOT met'}]" if goal else ""
    print(f"  {label:<36} {value}{verdict}")


def _chromium() -> str | None:
    from tests.report.conftest import BROWSERS  # noqa: PLC0415  (the tests' own list)

    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def report_page(reports: Path) -> None:
    """The size of the replay's index.html and its load time in headless Chromium."""
    page = reports / "index.html"
    size = page.stat().st_size
    print("report of the replay (index.html)")
    _figure("size", f"{size / 1e6:.1f} MB ({size:,} bytes)", goal="at most 6 MB", met=size <= 6e6)
    chromium = _chromium()
    if chromium is None:
        _figure("load time in headless Chromium", "skipped: Chromium is not installed")
        return
    from tests.report.devtools import Browser  # noqa: PLC0415  (needs Chromium)

    with Browser(chromium, 1400, 900) as browser:
        loads = [_load_seconds(browser, page) for _ in range(PAGE_LOADS)]
    met = statistics.median(loads) <= 1.5
    _figure("load time in headless Chromium", _seconds(loads), goal="at most 1.5 s", met=met)
    print(f"    (navigation start to loadEventEnd, by Navigation Timing; {PAGE_LOADS} fresh loads)")


def _load_seconds(browser: Any, page: Path) -> float:
    """One fresh load of ``page``: navigation start to loadEventEnd, in seconds."""
    browser.send("Page.navigate", url="about:blank")
    browser.open(page)
    timing = "performance.getEntriesByType('navigation')[0].loadEventEnd"
    deadline = time.monotonic() + 60
    while not (end := browser.evaluate(timing)):  # readyState is complete before load ends
        if time.monotonic() > deadline:
            raise TimeoutError(f"{page} never finished its load event")
        time.sleep(0.05)
    return float(end) / 1000  # milliseconds since navigation start


def _reference_config(target_name: str, **settings: Any) -> ServerConfig:
    """The ServerConfig a live run of ``target_name`` gets, plus ``settings``."""
    from conformance.catalog import load  # noqa: PLC0415
    from conformance.execute import reference_config  # noqa: PLC0415

    catalog = load()
    return dataclasses.replace(
        reference_config(catalog, catalog.targets[target_name], api_key=None), **settings
    )


def _live_command(target_name: str, base_url: str, report_dir: Path) -> list[str]:
    return [
        *CONFORMANCE,
        *("run", "--mode", "live"),
        *("--target", target_name, "--base-url", base_url, "--report-dir", str(report_dir)),
    ]


@dataclass(frozen=True)
class LiveRun:
    """One live run's figures, against its throughput-aware bound."""

    wall_s: float
    #: From the launch to the session's start: the interpreter, imports, specs and plan.
    before_s: float
    #: From the plan to the last case's result.
    session_s: float
    cases: int
    requests: int
    longest_chain: int

    @classmethod
    def of(cls, child: Child, written: dict[str, Any]) -> LiveRun:
        """The figures of a run that took ``child`` and wrote ``written``."""
        started = dt.datetime.fromisoformat(written["provenance"]["started_at"])
        finished = dt.datetime.fromisoformat(written["provenance"]["finished_at"])
        before = (started - child.launched_at).total_seconds()
        session = (finished - started).total_seconds()
        chains = [len(case["evidence"]) for case in written["cases"]]
        return cls(child.seconds, before, session, len(chains), sum(chains), max(chains))

    @property
    def after_s(self) -> float:
        """From the last result to the exit: the reports written, the interpreter's end."""
        return self.wall_s - self.before_s - self.session_s

    def bound_s(self, latency: float, concurrency: int) -> float:
        """max(critical path, requests x latency / concurrency)."""
        return max(self.longest_chain * latency, self.requests * latency / concurrency)


def live(work: Path, latency: float, runs: int) -> None:
    """Run the catalog live against a reference server that waits ``latency`` per request."""
    from conformance.catalog import load  # noqa: PLC0415
    from conformance.reference import server  # noqa: PLC0415
    from conformance.reference.faults import FaultSpec  # noqa: PLC0415

    concurrency = load().targets[LIVE_TARGET].max_concurrency
    config = _reference_config(
        LIVE_TARGET, api_key=BENCH_KEY, faults=FaultSpec(kind="slow_first_byte", delay_s=latency)
    )
    reports = work / "live"
    measured: list[LiveRun] = []
    with server.start(config) as running:
        command = _live_command(LIVE_TARGET, running.base_url, reports)
        for _ in range(runs):
            child = run_child(command, cwd=REPO, env={"REFERENCE_API_KEY": BENCH_KEY})
            measured.append(LiveRun.of(child, _results(reports)))
    first = measured[0]
    bound = first.bound_s(latency, concurrency)
    throughput = first.requests * latency / concurrency
    ratio = statistics.median(run.wall_s for run in measured) / bound
    print(f"live run of {LIVE_TARGET}, {latency:g} s a request, {runs} run(s)")
    _figure("cases, requests", f"{first.cases}, {first.requests}")
    critical = first.longest_chain * latency
    _figure("critical path", f"{critical:.2f} s ({first.longest_chain} requests in one case)")
    _figure(
        "requests x latency / concurrency",
        f"{throughput:.2f} s ({first.requests} x {latency:g} s / {concurrency}, the target's"
        " max_concurrency)",
    )
    _figure("bound, the larger of the two", f"{bound:.2f} s")
    _figure("wall time of conformance run", _seconds([run.wall_s for run in measured]))
    _figure("  before the session", _seconds([run.before_s for run in measured]))
    _figure("  in the session", _seconds([run.session_s for run in measured]))
    _figure("  after the session", _seconds([run.after_s for run in measured]))
    _figure(
        "median wall time to the bound", f"{ratio:.2f}x", goal="at most 1.25x", met=ratio <= 1.25
    )


def _live_run(target_name: str, report_dir: Path, *, jitter: float, seed: int) -> dict[str, Any]:
    """One full live run of ``target_name`` against a reference server with ``jitter``."""
    from conformance.reference import server  # noqa: PLC0415

    config = _reference_config(target_name, api_key=BENCH_KEY, jitter=jitter, jitter_seed=seed)
    with server.start(config) as running:
        command = _live_command(target_name, running.base_url, report_dir)
        run_child(command, cwd=REPO, env={"REFERENCE_API_KEY": BENCH_KEY})
    return _results(report_dir)


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


def tokens(reports: Path) -> None:
    """Tokens per target in the replay, as each target's usage reported them."""
    from conformance import results  # noqa: PLC0415

    replayed = results.load(reports / "results.json")
    print("tokens per target (as usage reports them; a stream without usage counts none)")
    for name, spent in results.token_totals(replayed.cases).items():
        if spent.total:
            _figure(
                name,
                f"{spent.total:,} ({spent.prompt:,} prompt + {spent.completion:,} completion)",
                goal="at most 20,000",
                met=spent.total <= 20_000,
            )


def report_build() -> None:
    """Build index.html for 10 targets x 50 behaviors of synthetic results."""
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
    print("report build, 10 targets x 50 behaviors x 4 variants (synthetic)")
    _figure(
        f"{len(cases):,} cases, {len(page) / 1e6:.1f} MB of HTML",
        f"{seconds:.2f} s",
        goal="at most 1 s",
        met=seconds <= 1,
    )


def main() -> int:
    """Print every figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=5, help="replays and bare pytest runs, alternated"
    )
    parser.add_argument("--latency", type=float, default=1.0, help="seconds a live request waits")
    parser.add_argument("--live-runs", type=int, default=3, help="live runs (0 leaves them out)")
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
        f"{os.cpu_count()} cores · Python {platform.python_version()} · "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="conformance-bench-") as temporary:
        work = Path(temporary)
        if not options.only_jitter:
            reports = replay(work, options.rounds)
            report_page(reports)
            if options.live_runs:
                live(work, options.latency, options.live_runs)
            tokens(reports)
            report_build()
        if any(options.jitter_runs):
            jitter(work, *options.jitter_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
