"""Replays run ahead in forked processes: the same results as one process gives, and none
lost when a worker dies."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance import ahead, memory
from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.plan import Case, plan
from conformance.recording import Mode
from conformance.results import CaseResult
from tests._cli import conformance
from tests.conftest import REPO, SPECS
from tests.test_plugin import _results

CATALOG = load(SPECS)
TARGETS = [CATALOG.targets["reference-openai"], CATALOG.targets["vllm"]]

pytestmark = pytest.mark.skipif(not ahead.forks_available(), reason="no fork here")


def _without_timings(value: Any) -> Any:
    """``value`` without the durations, which differ from one run to the next."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in ("duration_s",)}
    if isinstance(value, list):
        return [_without_timings(item) for item in value]
    return value


def _replayer() -> Runner:
    return Runner(CATALOG, Settings(mode=Mode.REPLAY, cassettes=REPO / "cassettes"))


def test_forked_workers_replay_what_one_process_replays() -> None:
    cases = plan(CATALOG, ["reference-openai", "vllm"], ["stop", "stream", "responses"])
    runner = _replayer()
    serial = [runner.execute(case).model_dump(mode="json") for case in cases]
    forks = ahead.Forks(runner, cases, workers=2)
    # Every worker is forked by now, so the run may start threads (the plugin does).
    assert len(multiprocessing.active_children()) == 2
    try:
        forked = [forks.result(case).model_dump(mode="json") for case in cases]
    finally:
        forks.close()
    assert {case["verdict"] for case in serial} >= {"pass", "deviation", "skipped"}
    assert _without_timings(forked) == _without_timings(serial)


class _DyingInWorkers:
    """A runner whose cases end their process when run anywhere but in ``parent``."""

    def __init__(self, parent: int) -> None:
        self.parent = parent
        self.runner = _replayer()

    def execute(self, case: Case) -> CaseResult:
        if os.getpid() != self.parent:
            os._exit(3)  # as a worker killed by the kernel would go
        return self.runner.execute(case)


def test_the_runs_own_process_counts_each_result_it_takes_for_its_sweeps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = plan(CATALOG, ["vllm"], ["stop"])
    forks = ahead.Forks(_replayer(), cases, workers=2)
    counted: list[None] = []  # patched after the fork: the workers count on their own
    monkeypatch.setattr(memory, "count_case", lambda: counted.append(None))
    try:
        for case in cases:
            forks.result(case)
    finally:
        forks.close()
    assert len(counted) == len(cases)


def test_a_case_whose_worker_died_runs_in_the_run_itself() -> None:
    cases = plan(CATALOG, ["reference-openai"], ["stop"])
    forks = ahead.Forks(_DyingInWorkers(os.getpid()), cases, workers=2)
    try:
        results = [forks.result(case) for case in cases]
    finally:
        forks.close()
    assert [result.id for result in results] == [case.name for case in cases]
    assert all(result.verdict.value in ("pass", "skipped") for result in results)


@given(cases=st.integers(1, 100_000), workers=st.integers(1, ahead.MAX_FORKS))
def test_every_worker_is_handed_several_batches_of_at_most_max_batch_cases(
    cases: int, workers: int
) -> None:
    size = ahead.batch_size(cases, workers)
    assert 1 <= size <= ahead.MAX_BATCH
    batches = -(-cases // size)
    assert batches >= min(cases, workers * 4)


def test_a_replay_of_many_cases_takes_a_process_per_core() -> None:
    cores = len(os.sched_getaffinity(0))
    assert ahead.concurrency(Mode.REPLAY, TARGETS, None, 1000) == min(ahead.MAX_FORKS, cores)
    assert ahead.concurrency(Mode.REPLAY, TARGETS, None, ahead.FORK_FROM_CASES - 1) == 1
    assert ahead.concurrency(Mode.REPLAY, TARGETS, 3, 10) == 3  # as asked
    assert ahead.start(Mode.REPLAY, _replayer(), plan(CATALOG, ["vllm"]), 1) is None


def test_a_forked_replay_writes_what_a_serial_one_writes(tmp_path: Path) -> None:
    selection = ("--target", "llamacpp-server", "--target", "transformers")
    written = {}
    for concurrency in ("1", "2"):
        workdir = tmp_path / concurrency
        workdir.mkdir()
        (workdir / "specs").symlink_to(SPECS)
        completed = conformance(
            "run", *selection, "--concurrency", concurrency,
            "--cassettes", str(REPO / "cassettes"), cwd=workdir,
        )  # fmt: skip
        assert completed.returncode in (0, 1), completed.stdout + completed.stderr
        written[concurrency] = _without_timings(_results(workdir / "reports"))
    assert len(written["1"]) > ahead.FORK_FROM_CASES  # enough cases to fork for
    assert written["2"] == written["1"]


#: Starts ``python -m conformance`` with Ctrl-C's default handler (a background job of a
#: non-interactive shell starts its children with SIGINT ignored).
INTERRUPTIBLE = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('conformance', run_name='__main__', alter_sys=True)"
)


def test_ctrl_c_stops_a_forked_replay_with_the_finished_cases_written(tmp_path: Path) -> None:
    """Ctrl-C reaches the run and its workers (one process group): the run stops as it
    does in one process, no worker prints a traceback, and no worker outlives it."""
    (tmp_path / "specs").symlink_to(SPECS)
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTIBLE, "run", "--concurrency", "2", "--cassettes",
         str(REPO / "cassettes"), "--", "-v"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    try:
        for line in process.stdout:
            seen.append(line)
            if sum(" PASSED" in line for line in seen) >= 20:
                os.killpg(process.pid, signal.SIGINT)
                break
        output = "".join(seen) + process.stdout.read()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 2, output  # interrupted
    assert "Traceback" not in output
    written = json.loads((tmp_path / "reports" / "results.json").read_text())
    assert written["provenance"]["complete"] is False
    assert 20 <= len(written["cases"]) < len(plan(CATALOG)), output
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # nothing is left in the run's process group
        os.killpg(process.pid, 0)


class _Pid:
    """Work for ``ahead.beside`` that writes the id of the process it ran in; it fails
    anywhere but in ``only_in``, when given."""

    def __init__(self, path: Path, *, only_in: int | None = None) -> None:
        self.path = path
        self.only_in = only_in

    def __call__(self) -> None:
        if self.only_in is not None and os.getpid() != self.only_in:
            raise OSError("not here")
        self.path.write_text(str(os.getpid()))

    def ran_in(self) -> int:
        return int(self.path.read_text())


def test_work_beside_the_block_runs_in_a_child_at_the_same_time(tmp_path: Path) -> None:
    started = tmp_path / "block started"

    def work() -> None:
        # It waits for the block: run after it, in this process, it would wait in vain.
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        _Pid(tmp_path / "pid")()

    running = [thread.name for thread in threading.enumerate()]
    assert len(running) == 1, f"a thread left running by another test stops the fork: {running}"
    with ahead.beside(work):
        started.touch()
    assert _Pid(tmp_path / "pid").ran_in() != os.getpid()


def test_work_that_failed_beside_runs_again_here(tmp_path: Path) -> None:
    work = _Pid(tmp_path / "pid", only_in=os.getpid())
    with ahead.beside(work):
        pass
    assert work.ran_in() == os.getpid()
    failing = _Pid(tmp_path / "no such folder" / "pid")
    with pytest.raises(FileNotFoundError), ahead.beside(failing):
        pass  # its error is raised here, as if it had run here alone


def test_no_fork_beside_while_another_thread_runs(tmp_path: Path) -> None:
    release = threading.Event()
    waiting = threading.Thread(target=release.wait)
    waiting.start()
    try:
        work = _Pid(tmp_path / "pid")
        with ahead.beside(work):
            assert not (tmp_path / "pid").exists()  # not yet: after the block, here
        assert work.ran_in() == os.getpid()
    finally:
        release.set()
        waiting.join()


def test_a_block_that_raises_waits_for_the_work_beside_and_raises(tmp_path: Path) -> None:
    work = _Pid(tmp_path / "pid")
    with pytest.raises(KeyError), ahead.beside(work):
        raise KeyError("the block's own error")
    assert work.ran_in() != os.getpid()  # the child's work is done, and not run again here
