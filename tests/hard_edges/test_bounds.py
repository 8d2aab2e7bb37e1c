"""Every exchange is bounded in time and size, and so is what the evidence quotes of it.

A server may send one byte a second, a body of hundreds of megabytes, an endless stream of
valid chunks or a line of megabytes without a newline. Each is an ``error`` with its
reason, in about the time the target allows, and the run goes on to the next case.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.observation import SUMMARY_LIMIT, Observation, ProbeError
from conformance.plan import Case
from conformance.probes.client import BODY_EXCERPT, LINE_EXCERPT, sse_lines
from conformance.recording import Mode
from conformance.reference.faults import FaultSpec
from conformance.reference.server import RunningServer, ServerConfig, start
from conformance.results import CaseResult
from conformance.spec import Api, Target
from conformance.verdict import Verdict
from tests.conftest import SPECS

CATALOG = load(SPECS)
TARGET = CATALOG.targets["reference-openai"].model_copy(
    update={"timeout_s": 10.0, "max_retry_wait_s": 0.0}
)
STOP = CATALOG.behaviors["stop.inclusion"]
#: The longest an evidence record may be, as JSON, whatever the server sent.
EVIDENCE_LIMIT = 3 * BODY_EXCERPT + 2 * LINE_EXCERPT + 10_000


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start(ServerConfig()) as running:
        yield running


def _execute(
    server: RunningServer, spec: FaultSpec, *, target: Target = TARGET, stream: bool = False
) -> tuple[CaseResult, float]:
    server.faults.configure(spec)
    runner = Runner(CATALOG, Settings(mode=Mode.LIVE, base_url=server.base_url))
    started = time.monotonic()
    try:
        return runner.execute(Case(STOP, target, Api.CHAT, stream)), time.monotonic() - started
    finally:
        runner.close()


def _evidence_size(result: CaseResult) -> int:
    return len(json.dumps([exchange.model_dump(mode="json") for exchange in result.evidence]))


@pytest.mark.parametrize("stream", [False, True])
def test_timeout_s_bounds_the_whole_exchange_not_the_gap_between_bytes(
    server: RunningServer, stream: bool
) -> None:
    # Each byte comes well within the timeout; the whole reply would take about 20 s.
    target = TARGET.model_copy(update={"timeout_s": 1.0})
    result, took = _execute(
        server, FaultSpec(kind="trickle", delay_s=0.05), target=target, stream=stream
    )
    assert result.verdict is Verdict.ERROR, result.summary
    assert "the exchange exceeded timeout_s (1 s)" in result.summary
    assert took < 5, took
    assert result.evidence[-1].response is not None  # what arrived is kept


def test_a_huge_body_is_cut_at_max_reply_bytes(server: RunningServer) -> None:
    result, took = _execute(server, FaultSpec(kind="huge_body", size=200_000_000))
    assert result.verdict is Verdict.ERROR, result.summary
    assert "the reply exceeded max_reply_bytes (8000000 bytes)" in result.summary
    assert took < 30, took
    body = result.evidence[-1].response.body  # type: ignore[union-attr]
    assert body is not None
    assert body.startswith('{"id": "huge", "padding": "xxx')
    assert body.endswith("bytes)")  # "... (cut after N bytes)"
    assert _evidence_size(result) < EVIDENCE_LIMIT


def test_max_reply_bytes_is_set_per_target(server: RunningServer) -> None:
    small = TARGET.model_copy(update={"max_reply_bytes": 4096})
    result, _ = _execute(server, FaultSpec(kind="huge_body", size=10_000), target=small)
    assert "the reply exceeded max_reply_bytes (4096 bytes)" in result.summary
    roomy = TARGET.model_copy(update={"max_reply_bytes": 20_000})
    result, _ = _execute(server, FaultSpec(kind="huge_body", size=10_000), target=roomy)
    # Read whole, it is what it is: JSON without choices.
    assert "malformed reply: the body has no choices list" in result.summary


def test_an_endless_stream_is_cut_at_max_sse_events(server: RunningServer) -> None:
    result, took = _execute(server, FaultSpec(kind="endless_stream"), stream=True)
    assert result.verdict is Verdict.ERROR, result.summary
    assert "the stream exceeded max_sse_events (20000)" in result.summary
    assert took < 60, took
    assert _evidence_size(result) < EVIDENCE_LIMIT
    few = TARGET.model_copy(update={"max_sse_events": 50})
    result, _ = _execute(server, FaultSpec(kind="endless_stream"), target=few, stream=True)
    assert "the stream exceeded max_sse_events (50)" in result.summary


def test_a_long_line_without_newline_is_read_once_and_quoted_short(server: RunningServer) -> None:
    roomy = TARGET.model_copy(update={"max_reply_bytes": 40_000_000})
    result, took = _execute(
        server, FaultSpec(kind="long_line", size=16_000_000), target=roomy, stream=True
    )
    assert result.verdict is Verdict.ERROR, result.summary
    assert "malformed stream: a data line is not JSON" in result.summary
    assert "more characters)" in result.summary
    assert took < 8, took  # rescanning the buffer per chunk took about 11 s
    lines = result.evidence[-1].response.sse  # type: ignore[union-attr]
    assert lines is not None
    assert max(len(line) for line in lines) < LINE_EXCERPT + 100
    assert any(line.endswith("more characters)") for line in lines)
    assert _evidence_size(result) < EVIDENCE_LIMIT


def test_the_sse_reader_is_linear() -> None:
    line = b"data: " + b"x" * 16_000_000
    chunks = [line[start : start + 16384] for start in range(0, len(line), 16384)]
    started = time.monotonic()
    lines = list(sse_lines(chunks))
    assert time.monotonic() - started < 5  # the quadratic reader took about 11 s
    assert lines == [line.decode()]


def test_the_run_goes_on_after_a_fault(server: RunningServer) -> None:
    # The first request gets a huge body; the cases after it are answered as usual.
    server.faults.configure(FaultSpec(kind="huge_body", times=1))
    runner = Runner(CATALOG, Settings(mode=Mode.LIVE, base_url=server.base_url))
    try:
        first = runner.execute(Case(STOP, TARGET, Api.CHAT, False))
        second = runner.execute(Case(STOP, TARGET, Api.CHAT, True))
    finally:
        runner.close()
    assert first.verdict is Verdict.ERROR
    assert second.verdict is Verdict.PASS, second.summary


def test_summaries_and_reasons_are_cut_with_a_note() -> None:
    long = "y" * (SUMMARY_LIMIT * 5)
    summary = Observation(outcome="x", summary=long).summary
    assert summary == "y" * SUMMARY_LIMIT + f"... ({SUMMARY_LIMIT * 4} more characters)"
    assert ProbeError(long).reason == summary
