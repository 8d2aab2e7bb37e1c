"""Concurrent live runs: cases probed ahead on threads, each target's requests bounded."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx2
import pytest

from conformance.ahead import Threads, concurrency
from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.observation import ProbeError
from conformance.plan import Case, plan
from conformance.probes.client import Endpoint
from conformance.recording import Mode
from conformance.reference import server
from conformance.schedule import longest_first
from conformance.spec import Api
from conformance.verdict import Verdict
from tests._cli import conformance
from tests.conftest import REPO, SPECS
from tests.test_plugin import _results

CATALOG = load(SPECS)
REFERENCE = CATALOG.targets["reference-openai"]


class _InFlight:
    """Counts how many calls are inside it at once, and the most there ever were."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self.now -= 1


class _SlowRunner:
    """Stands in for a Runner: each case takes a while, and says which case it was."""

    def __init__(self) -> None:
        self.inside = _InFlight()
        self.executed: list[str] = []

    def execute(self, case: Case) -> Any:
        with self.inside:
            time.sleep(0.05)
        self.executed.append(case.name)
        return case.name


def test_ahead_runs_cases_at_once_and_hands_each_its_own_result() -> None:
    cases = plan(CATALOG, targets=["reference-openai"], behaviors=["option"])[:12]
    runner = _SlowRunner()
    ahead = Threads(runner, cases, workers=4)  # type: ignore[arg-type]
    assert [ahead.result(case) for case in reversed(cases)] == [c.name for c in reversed(cases)]
    assert runner.inside.most == 4
    assert sorted(runner.executed) == sorted(case.name for case in cases)


def test_a_case_that_was_not_scheduled_runs_when_asked() -> None:
    scheduled, other = plan(CATALOG, targets=["reference-openai"], behaviors=["stop"])[:2]
    runner = _SlowRunner()
    ahead = Threads(runner, [scheduled], workers=2)  # type: ignore[arg-type]
    assert ahead.result(other) == other.name
    assert ahead.result(scheduled) == scheduled.name


def test_concurrency_of_live_runs_is_what_the_targets_allow() -> None:
    targets = [REFERENCE, CATALOG.targets["openai"]]
    assert concurrency(Mode.LIVE, targets, None, 100) == REFERENCE.max_concurrency + 4
    assert concurrency(Mode.LIVE, [REFERENCE] * 5, None, 100) == 64  # the cap
    assert concurrency(Mode.LIVE, targets, 3, 100) == 3
    assert concurrency(Mode.RECORD, targets, None, 100) == 1
    assert concurrency(Mode.RECORD, targets, 8, 100) == 1


def test_a_targets_requests_in_flight_stay_within_its_slots() -> None:
    inside = _InFlight()

    def reply(request: httpx2.Request) -> httpx2.Response:
        with inside:
            time.sleep(0.05)
        return httpx2.Response(500, json={"error": {"message": "busy"}})

    slots = threading.BoundedSemaphore(2)

    def send() -> None:
        endpoint = Endpoint(
            REFERENCE.model_copy(update={"retries": 0}),
            "http://127.0.0.1:9/v1",
            "k",
            transport=httpx2.MockTransport(reply),
            slots=slots,
        )
        with pytest.raises(ProbeError):
            endpoint.send(Api.COMPLETIONS, {"prompt": "hi"}, label="probe")

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert inside.most == 2


def test_a_concurrent_live_run_gives_what_a_serial_one_gives() -> None:
    cases = plan(CATALOG, targets=["reference-openai"], behaviors=["stop", "option"])
    with server.start(server.ServerConfig()) as running:
        runner = Runner(CATALOG, Settings(mode=Mode.LIVE, base_url=running.base_url))
        try:
            serial = {case.name: runner.execute(case) for case in cases}
            ahead = Threads(runner, cases, workers=8)
            together = {case.name: ahead.result(case) for case in cases}
        finally:
            runner.close()
    assert {n: r.observed for n, r in together.items()} == {
        n: r.observed for n, r in serial.items()
    }
    assert {r.verdict for r in together.values()} <= {Verdict.PASS, Verdict.OBSERVED}


def test_concurrency_in_record_mode_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "specs").symlink_to(SPECS)
    completed = conformance(
        "run", "--mode", "record", "--concurrency", "4", "--target", "reference-openai",
        cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 4, completed.stdout + completed.stderr
    assert "--concurrency" in completed.stdout + completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr


def test_a_live_run_with_concurrency_writes_every_case(tmp_path: Path) -> None:
    (tmp_path / "specs").symlink_to(SPECS)
    completed = conformance(
        "run",
        "--mode",
        "live",
        "--concurrency",
        "6",
        "--target",
        "reference-openai",
        "--behavior",
        "stop",
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stdout
    written = _results(tmp_path / "reports")
    assert set(written) == {case.name for case in plan(CATALOG, ["reference-openai"], ["stop"])}


def test_a_live_run_starts_and_reports_the_longest_recorded_chains_first(tmp_path: Path) -> None:
    (tmp_path / "specs").symlink_to(SPECS)
    selection = (["reference-openai"], ["completions", "stop"])
    planned = plan(CATALOG, *selection)
    longest = [case.name for case in longest_first(planned, REPO / "cassettes")]
    assert longest != [case.name for case in planned]  # the plan's order would fail here
    completed = conformance(
        "run",
        "--mode",
        "live",
        "--concurrency",
        "2",
        "--cassettes",
        str(REPO / "cassettes"),
        *("--target", selection[0][0], "--behavior", selection[1][0]),
        *("--behavior", selection[1][1]),
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stdout
    junit = ElementTree.parse(tmp_path / "reports" / "junit.xml")
    assert [testcase.get("name") for testcase in junit.iter("testcase")] == longest
