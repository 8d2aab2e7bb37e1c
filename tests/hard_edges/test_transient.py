"""A transient fault is never an outcome: a 5xx, or an error event inside a 200 stream,
counts as the server's answer only when a fresh request gets it again.

The probes whose subject is how a server refuses (messages.*, errors.*,
response_format.json_schema) read a reproduced server failure as the outcome
``server_error``; one that does not reproduce is an ``error`` naming the fault, in every
probe alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.plan import Case
from conformance.recording import Mode
from conformance.reference import dialect
from conformance.reference.faults import FaultSpec
from conformance.reference.server import RunningServer, ServerConfig, start
from conformance.spec import Api
from conformance.verdict import Verdict
from tests._cli import conformance
from tests.conftest import REPO, SPECS
from tests.hard_edges._faulty import execute as _execute

CATALOG = load(SPECS)
TARGET = CATALOG.targets["reference-openai"].model_copy(
    update={"timeout_s": 10.0, "max_retry_wait_s": 0.0}
)
#: Every behavior whose probe classifies server failures, in each of its variants.
CLASSIFYING = [
    Case(CATALOG.behaviors[behavior], TARGET, api, stream)
    for behavior in (
        "messages.name",
        "messages.developer_role",
        "errors.envelope",
        "errors.bad_key",
        "errors.unknown_model",
        "errors.invalid_value",
        "errors.context_overflow",
        "response_format.json_schema",
    )
    for api in CATALOG.behaviors[behavior].apis
    for stream in CATALOG.behaviors[behavior].variants.stream
    if api in TARGET.apis
]
STREAMED = [case for case in CLASSIFYING if case.stream]
MESSAGES = Case(CATALOG.behaviors["messages.name"], TARGET, Api.CHAT, False)
MESSAGES_STREAMED = Case(CATALOG.behaviors["messages.name"], TARGET, Api.CHAT, True)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start(ServerConfig()) as running:
        yield running


def test_the_reported_503_is_an_error_not_a_deviation(server: RunningServer) -> None:
    # The control is answered; the probed request gets a 503 on its try and both retries.
    result = _execute(server, MESSAGES, FaultSpec(kind="server_error_503", after=1, times=3))
    assert result.verdict is Verdict.ERROR, result.summary
    assert result.observed is None
    assert "server error 503 after 2 retries" in result.summary
    assert "a fresh request did not reproduce (it got 200)" in result.summary
    labels = [exchange.label for exchange in result.evidence]
    assert labels == ["control", "with-name", "with-name (confirming)"]


def test_the_reported_command_no_longer_exits_1(tmp_path: Path, server: RunningServer) -> None:
    server.faults.configure(FaultSpec(kind="server_error_503", after=1, times=3))
    completed = conformance(
        "run",
        "--specs",
        str(SPECS),
        "--mode",
        "live",
        "--concurrency",
        "1",
        "--target",
        "reference-openai",
        "--behavior",
        "messages.name",
        "--base-url",
        server.base_url,
        "--report-dir",
        str(tmp_path / "reports"),
        "--",
        "-k",
        "chat-nostream",
        cwd=tmp_path,
    )
    assert completed.returncode != 1, completed.stdout[-2000:]
    assert "transient fault" in (tmp_path / "reports" / "results.json").read_text()


@pytest.mark.parametrize("case", CLASSIFYING, ids=[case.name for case in CLASSIFYING])
def test_a_single_server_failure_anywhere_is_an_error(server: RunningServer, case: Case) -> None:
    clean = _execute(server, case, FaultSpec())
    assert clean.verdict is not Verdict.ERROR, clean.summary
    requests = server.faults.requests
    for position in range(requests):
        result = _execute(server, case, FaultSpec(kind="server_error_500", after=position, times=1))
        where = f"a 500 at request {position}: {result.verdict}: {result.summary}"
        assert result.verdict is Verdict.ERROR, where
        assert "server error 500" in result.summary, where
        assert result.observed is None, where


@pytest.mark.parametrize("case", STREAMED, ids=[case.name for case in STREAMED])
def test_a_single_error_event_in_a_200_stream_is_an_error(
    server: RunningServer, case: Case
) -> None:
    clean = _execute(server, case, FaultSpec())
    assert clean.verdict is not Verdict.ERROR, clean.summary
    faulted = 0
    for position in range(server.faults.requests):
        result = _execute(server, case, FaultSpec(kind="error_event", after=position, times=1))
        faulted += server.faults.faulted
        if server.faults.faulted == 0:
            continue  # the request at this position is not streamed
        where = f"an error event at request {position}: {result.verdict}: {result.summary}"
        assert result.verdict is Verdict.ERROR, where
        assert "stream carried an error event" in result.summary, where
    assert faulted, "no request of the case was streamed"


@pytest.mark.parametrize(
    ("case", "kind", "summary"),
    [
        (MESSAGES, "server_error_500", "refused with 500 server_error"),
        (MESSAGES_STREAMED, "server_error_500", "refused with 500 server_error"),
        (MESSAGES_STREAMED, "error_event", "an error event server_error in a 200 stream"),
    ],
)
def test_a_failure_that_reproduces_is_the_outcome(
    server: RunningServer, case: Case, kind: str, summary: str
) -> None:
    # Every request after the control fails: the probed one, and its confirmation.
    result = _execute(server, case, FaultSpec(kind=kind, after=1))  # type: ignore[arg-type]
    assert result.verdict is Verdict.DEVIATION, result.summary
    assert result.observed == "server_error"
    assert summary in result.summary
    assert [exchange.label for exchange in result.evidence][-1] == "with-name (confirming)"


def test_a_reference_switch_that_always_fails_is_confirmed_and_replayed(tmp_path: Path) -> None:
    case = Case(CATALOG.behaviors["errors.invalid_value"], TARGET, Api.CHAT, False)
    switches = dialect.switches_for(CATALOG, "openai", {"errors.invalid_value": "server_error"})
    with start(ServerConfig(switches=switches)) as running:
        recorded = _execute(running, case, FaultSpec(), Mode.RECORD, cassettes=tmp_path)
    assert recorded.observed == "server_error", recorded.summary
    assert len(recorded.evidence) == 2  # the refused request, and the fresh one that confirms
    runner = Runner(CATALOG, Settings(mode=Mode.REPLAY, cassettes=tmp_path))
    try:
        replayed = runner.execute(case)
    finally:
        runner.close()
    assert replayed.observed == "server_error", replayed.summary


def test_a_500_recorded_once_replays_as_an_error_that_says_why(tmp_path: Path) -> None:
    # llama-cpp-python's recorded 500, with its confirming request taken out, as recordings
    # made before failures were confirmed hold it.
    target = CATALOG.targets["llamacpp"]
    case = Case(CATALOG.behaviors["errors.invalid_value"], target, Api.COMPLETIONS, False)
    shipped = case.cassette(REPO / "cassettes")
    recorded = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    statuses = [i["response"]["status"]["code"] for i in recorded["interactions"]]
    assert statuses[-2:] == [500, 500], "the shipped recording confirms its 500"
    recorded["interactions"] = recorded["interactions"][:-1]
    copy = case.cassette(tmp_path)
    copy.parent.mkdir(parents=True)
    copy.write_text(yaml.safe_dump(recorded), encoding="utf-8")
    runner = Runner(CATALOG, Settings(mode=Mode.REPLAY, cassettes=tmp_path))
    try:
        result = runner.execute(case)
    finally:
        runner.close()
    assert result.verdict is Verdict.ERROR
    assert "server error 500" in result.summary
    assert "the recording holds no fresh request to confirm it" in result.summary
    assert "re-record" in result.summary
