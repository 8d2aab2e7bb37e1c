"""Cases run ahead of pytest, several at a time, while pytest reports them one by one.

A live run waits on the network, so worker threads (``Threads``) overlap the waits. A
replay waits on nothing but the CPU, so forked worker processes (``Forks``) spread it over
the cores. Either keeps each case's result until its pytest item asks for it (``result``).
A recording runs one case at a time: vcrpy's cassettes patch the HTTP clients of the whole
process. Once the cases are done, one piece of work may run in a forked process beside the
rest of the run's (``beside``): the run writes its HTML report so, where it can fork.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Protocol

from conformance import memory
from conformance.plan import Case
from conformance.recording import Mode
from conformance.results import CaseResult
from conformance.spec import Target

#: A replay of fewer cases than this runs in the one process: forking costs more than it saves.
FORK_FROM_CASES = 64
#: Processes a replay spreads over at most, however many cores there are.
MAX_FORKS = 4
#: Cases a worker is handed at once, at most. Each hand-over waits on a thread of the run's
#: own process, which shares its interpreter with pytest; one case at a time, the workers
#: spent a good part of a replay waiting for it.
MAX_BATCH = 32


class Runner(Protocol):
    """What runs a case (``execute.Runner``)."""

    def execute(self, case: Case) -> CaseResult:
        """Probe ``case`` and judge it."""
        ...


class Ahead(Protocol):
    """Cases run ahead: each result waits until its pytest item asks for it."""

    def result(self, case: Case) -> CaseResult:
        """``case``'s result, waiting for it; a case that was not scheduled runs here."""
        ...

    def close(self) -> None:
        """Stop running ahead; results not yet asked for are dropped."""
        ...


def concurrency(mode: Mode, targets: Sequence[Target], asked: int | None, cases: int) -> int:
    """How many of ``cases`` cases run at once: ``asked``, or else, live, what the targets
    allow together (at most 64); a replay of many cases, a process per core (at most
    MAX_FORKS); a recording, one."""
    if mode is Mode.RECORD:
        return 1
    if asked is not None:
        return asked
    if mode is Mode.LIVE:
        return min(64, sum(target.max_concurrency for target in targets))
    if cases < FORK_FROM_CASES or not forks_available():
        return 1
    return min(MAX_FORKS, len(os.sched_getaffinity(0)))


def start(mode: Mode, runner: Runner, cases: Sequence[Case], workers: int) -> Ahead | None:
    """Run ``cases`` ahead on ``workers`` threads (live) or processes (replay); None when
    they run one at a time, as pytest asks for them."""
    if workers < 2 or len(cases) < 2 or mode is Mode.RECORD:
        return None
    if mode is Mode.LIVE:
        return Threads(runner, cases, workers)
    return Forks(runner, cases, workers) if forks_available() else None


def forks_available() -> bool:
    """Whether worker processes can be forked: on Linux (macOS's system libraries are not
    safe to use in a forked child)."""
    return sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()


class Threads:
    """Cases probed on worker threads, for live runs that wait on the network.

    The threads take the cases in the order given (the plugin gives the longest chains of
    requests first, see ``schedule``). They are daemons: an interrupted run does not wait
    for requests in flight. Each target's ``max_concurrency`` still bounds its requests in
    flight.
    """

    def __init__(self, runner: Runner, cases: Sequence[Case], workers: int) -> None:
        self._runner = runner
        self._pending: queue.SimpleQueue[Case | None] = queue.SimpleQueue()
        self._done: dict[str, CaseResult] = {}
        self._ready = threading.Condition()
        self._scheduled = {case.name for case in cases}
        for case in cases:
            self._pending.put(case)
        self._threads = [
            threading.Thread(target=self._work, name=f"conformance-case-{n}", daemon=True)
            for n in range(max(1, min(workers, len(cases))))
        ]
        for thread in self._threads:
            self._pending.put(None)  # one stop marker per thread
            thread.start()

    def _work(self) -> None:
        while (case := self._pending.get()) is not None:
            result = self._runner.execute(case)
            with self._ready:
                self._done[case.name] = result
                self._ready.notify_all()

    def result(self, case: Case) -> CaseResult:
        """``case``'s result, waiting for it; a case that was not scheduled runs here."""
        if case.name not in self._scheduled:
            return self._runner.execute(case)
        with self._ready:
            self._ready.wait_for(lambda: case.name in self._done)
            return self._done.pop(case.name)

    def close(self) -> None:
        """Nothing to stop: the daemon threads end with the process."""


#: What the forked workers inherit: the run's runner and its cases by name. Set before the
#: pool forks, so a worker is handed a case's name only, not the case.
_INHERITED: tuple[Runner, dict[str, Case]] | None = None


def _execute_inherited(names: list[str]) -> list[CaseResult]:
    assert _INHERITED is not None, "a worker forked before the cases were set"
    runner, cases = _INHERITED
    return [runner.execute(cases[name]) for name in names]


def batch_size(cases: int, workers: int) -> int:
    """How many cases a worker is handed at once: enough that hand-overs are rare, few
    enough that every worker gets several batches and the first results come soon."""
    return max(1, min(MAX_BATCH, cases // (workers * 4)))


def _as_worker() -> None:
    # Ctrl-C reaches the whole process group: the run stops in the parent, which stops the
    # pool; a worker must not print its own traceback. SIGTERM ends a worker at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Forks:
    """Replayed cases run in forked worker processes, in the order given, in batches
    (``batch_size``).

    Each worker is a copy of the run as it stood when the cases were planned, so it replays
    a case exactly as the run itself would; its batch's results come back pickled. A case
    whose worker failed (it died, or its results did not come back) runs again in the run's
    own process, so a broken pool costs time, never a result. The workers are all forked
    once the instance is made: from then on, the run may start threads.
    """

    def __init__(self, runner: Runner, cases: Sequence[Case], workers: int) -> None:
        global _INHERITED  # noqa: PLW0603  (read by the forked workers, never written there)
        _INHERITED = (runner, {case.name: case for case in cases})
        self._runner = runner
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_as_worker,
        )
        # The workers fork at the first submit. Frozen, what they inherit stays out of their
        # collector's sight: scanning it would write to every page they share with the run,
        # and so copy them all.
        gc.freeze()
        names = [case.name for case in cases]
        size = batch_size(len(names), workers)
        #: By case: the future of its batch, and its place in the batch.
        self._futures: dict[str, tuple[Future[list[CaseResult]], int]] = {}
        try:
            for start in range(0, len(names), size):
                batch = names[start : start + size]
                future = self._pool.submit(_execute_inherited, batch)
                self._futures.update((name, (future, n)) for n, name in enumerate(batch))
        finally:
            gc.unfreeze()

    def result(self, case: Case) -> CaseResult:
        """``case``'s result, waiting for its worker; run here when it has none."""
        memory.count_case()  # the run's own process sweeps what its items leave, too
        batch = self._futures.pop(case.name, None)
        if batch is None:
            return self._runner.execute(case)
        future, place = batch
        try:
            return future.result()[place]
        except Exception:  # the worker died or its results could not come back
            return self._runner.execute(case)

    def close(self) -> None:
        """Drop the cases not yet started and let the workers end. Once every result was
        taken, the workers are idle: the pool is waited for, so that none of its threads
        outlives the cases."""
        self._pool.shutdown(wait=not self._futures, cancel_futures=True)


@contextlib.contextmanager
def beside(work: Callable[[], object]) -> Iterator[None]:
    """Run ``work`` in a forked process while the block runs, and wait for it as the block
    ends. Where it cannot be forked safely (not on Linux, or while other threads run: a
    fork copies them mid-step), or it failed there, ``work`` runs here after the block, so
    its failure is raised here and nothing it writes is lost."""
    forked = _fork(work) if forks_available() and threading.active_count() == 1 else None
    succeeded = False
    try:
        yield
    finally:
        if forked is not None:
            _, status = os.waitpid(forked, 0)
            succeeded = os.waitstatus_to_exitcode(status) == 0
    if not succeeded:
        work()


def _fork(work: Callable[[], object]) -> int | None:
    """The process id of a forked child that does ``work`` and exits (0: it succeeded)."""
    gc.freeze()  # as Forks does: the child's collector leaves what it inherits alone
    try:
        child = os.fork()
    except OSError:
        gc.unfreeze()
        return None
    if child == 0:
        code = 1
        try:
            _as_worker()
            work()
            code = 0
        finally:
            os._exit(code)  # none of the run's own ending: no flush, no atexit, no pytest
    gc.unfreeze()
    return child
