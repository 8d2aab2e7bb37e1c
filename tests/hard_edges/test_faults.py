"""Provider faults: each is an ``error`` with a reason, never a ``pass`` or a ``deviation``.

The reference server injects every fault (``conformance/reference/faults.py``) into every
request position of a few cases whose probes read refusals as outcomes, so a fault
mistaken for a refusal or a reply would show up as a verdict here.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.observation import ProbeError
from conformance.plan import Case
from conformance.probes.client import Endpoint, retry_after
from conformance.recording import Mode
from conformance.reference.faults import FAULTS, STREAM_FAULTS, FaultSpec
from conformance.reference.server import RunningServer, ServerConfig, start
from conformance.spec import Api, Target
from conformance.verdict import Verdict
from tests.conftest import SPECS
from tests.hard_edges._faulty import execute as _execute

CATALOG = load(SPECS)
#: Retries as shipped, but no real waiting: Retry-After is tested on its own below.
TARGET = CATALOG.targets["reference-openai"].model_copy(
    update={"timeout_s": 10.0, "max_retry_wait_s": 0.01}
)
#: The same, impatient: slow_first_byte's delay is longer (a loaded machine is not).
IMPATIENT = TARGET.model_copy(update={"timeout_s": 0.25})
STOP = CATALOG.behaviors["stop.inclusion"]
#: Cases whose probes turn a non-2xx reply into an outcome ("rejected", "refused").
CASES = [
    Case(STOP, TARGET, Api.CHAT, True),
    Case(CATALOG.behaviors["option.logit_bias"], TARGET, Api.CHAT, False),
    Case(CATALOG.behaviors["max_tokens.overflow"], TARGET, Api.COMPLETIONS, False),
    Case(CATALOG.behaviors["stream.usage.include_usage"], TARGET, Api.CHAT, True),
]
PLAIN = Case(STOP, TARGET, Api.CHAT, False)
#: What the reason says, by fault.
REASONS = {
    "rate_limit": "rate limited (429) after 2 retries",
    "server_error_500": "server error 500",
    "server_error_503": "server error 503 after 2 retries",
    "reset_before_stream": "connection failed 3 times",
    "reset_mid_stream": "connection failed 3 times",
    "truncated_stream": "the stream ended without data: [DONE]",
    "malformed_chunk": "malformed stream",
    "slow_first_byte": "timed out after 0.25 s",  # IMPATIENT's timeout
    "error_event": "the 200 stream carried an error event",
    "long_line": "the reply exceeded max_reply_bytes (8000000 bytes)",
    "endless_stream": "the stream exceeded max_sse_events (20000)",
    "huge_body": "the reply exceeded max_reply_bytes (8000000 bytes)",
}
#: Faults with tests of their own: bounds (test_bounds.py) and redirects (test_redirects.py).
ELSEWHERE = {"trickle", "redirect_307", "redirect_308", "redirect_loop", "redirect_away"}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start(ServerConfig()) as running:
        yield running


def test_every_fault_is_named() -> None:
    assert set(FAULTS) == {*REASONS, "keep_alive", *ELSEWHERE}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_fault_at_any_request_is_an_error_never_a_verdict(
    server: RunningServer, case: Case
) -> None:
    clean = _execute(server, case, FaultSpec())
    assert clean.verdict is Verdict.PASS, clean.summary
    requests = server.faults.requests
    assert requests >= 1
    for kind, reason in REASONS.items():
        slow = kind == "slow_first_byte"
        faulted_case = Case(case.behavior, IMPATIENT, case.api, case.stream) if slow else case
        # A timeout is the same wherever it happens, and each one costs the whole timeout.
        for position in range(1 if slow else requests):
            spec = FaultSpec(kind=kind, after=position, retry_after_s=0, delay_s=0.6)  # type: ignore[arg-type]
            result = _execute(server, faulted_case, spec)
            where = f"{kind} at request {position}: {result.verdict}: {result.summary}"
            if server.faults.faulted == 0:
                # A stream fault on a request that does not stream changes nothing.
                assert kind in STREAM_FAULTS, where
                assert result.verdict is clean.verdict, where
                continue
            assert result.verdict is Verdict.ERROR, where
            assert reason in result.summary, where
            assert result.observed is None, where
            assert result.evidence, where


def test_stream_faults_meet_a_stream() -> None:
    """The matrix above is not vacuous: each stream fault fires in some streamed case."""
    assert any(case.stream for case in CASES)
    assert set(FAULTS) >= STREAM_FAULTS


def test_keep_alive_comments_are_tolerated(server: RunningServer) -> None:
    case = CASES[0]
    result = _execute(server, case, FaultSpec(kind="keep_alive"))
    assert server.faults.faulted >= 1
    assert result.verdict is Verdict.PASS, result.summary
    lines = [line for exchange in result.evidence for line in exchange.response.sse or []]  # type: ignore[union-attr]
    assert ": keep-alive" in lines


@pytest.mark.parametrize("kind", ["rate_limit", "server_error_503", "reset_before_stream"])
def test_a_transient_fault_is_retried_and_the_retry_is_evidence(
    server: RunningServer, kind: str
) -> None:
    spec = FaultSpec(kind=kind, times=1, retry_after_s=0)  # type: ignore[arg-type]
    result = _execute(server, PLAIN, spec)
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence[0].retries == 1
    assert server.faults.requests == len(result.evidence) + 1


def test_retries_are_bounded_and_counted(server: RunningServer) -> None:
    target = TARGET.model_copy(update={"retries": 4})
    case = Case(STOP, target, Api.CHAT, False)
    result = _execute(server, case, FaultSpec(kind="server_error_503"))
    assert result.verdict is Verdict.ERROR
    assert "after 4 retries" in result.summary
    assert result.evidence[-1].retries == 4
    assert server.faults.requests == 5


def _endpoint(server: RunningServer, target: Target, waits: list[float]) -> Endpoint:
    return Endpoint(target, server.base_url, "k", sleep=waits.append)


def _chat() -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 4}


def test_backoff_honours_retry_after(server: RunningServer) -> None:
    waits: list[float] = []
    server.faults.configure(FaultSpec(kind="rate_limit", times=1, retry_after_s=1.5))
    target = TARGET.model_copy(update={"max_retry_wait_s": 30})
    reply = _endpoint(server, target, waits).send(Api.CHAT, _chat(), label="x")
    assert reply.ok
    assert waits == [1.5]
    assert reply.exchange.retries == 1


def test_retry_after_is_capped_per_target(server: RunningServer) -> None:
    waits: list[float] = []
    server.faults.configure(FaultSpec(kind="rate_limit", retry_after_s=3600))
    target = TARGET.model_copy(update={"max_retry_wait_s": 0.5, "retries": 2})
    with pytest.raises(ProbeError, match=r"rate limited \(429\) after 2 retries"):
        _endpoint(server, target, waits).send(Api.CHAT, _chat(), label="x")
    assert waits == [0.5, 0.5]
    assert server.faults.requests == 3


def test_without_retry_after_the_backoff_doubles(server: RunningServer) -> None:
    waits: list[float] = []
    server.faults.configure(FaultSpec(kind="server_error_503", times=2))
    target = TARGET.model_copy(update={"max_retry_wait_s": 30})
    assert _endpoint(server, target, waits).send(Api.CHAT, _chat(), label="x").ok
    assert waits == [0.5, 1.0]


def test_the_wait_is_real_outside_replay(server: RunningServer) -> None:
    target = TARGET.model_copy(update={"max_retry_wait_s": 30})
    case = Case(STOP, target, Api.CHAT, False)
    result = _execute(server, case, FaultSpec(kind="rate_limit", times=1, retry_after_s=0.4))
    assert result.verdict is Verdict.PASS
    assert result.evidence[0].retries == 1
    assert result.evidence[0].duration_s >= 0.4


def test_a_recorded_retry_replays_without_waiting(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    target = TARGET.model_copy(update={"max_retry_wait_s": 30})
    case = Case(STOP, target, Api.CHAT, False)
    spec = FaultSpec(kind="rate_limit", times=1, retry_after_s=5)
    recorded = _execute(server, case, spec, Mode.RECORD, cassettes=tmp_path)
    assert waits == [5]
    replayed = _execute(server, case, FaultSpec(), Mode.REPLAY, cassettes=tmp_path)
    assert recorded.verdict is replayed.verdict is Verdict.PASS
    assert replayed.evidence[0].retries == 1  # the cassette holds the 429 and what followed
    assert waits == [5], "the replay waited"


@pytest.mark.parametrize(
    ("key", "body", "status"),
    [
        ("k", {**_chat(), "temperature": 5}, 400),  # a refusal is an answer
        ("wrong", _chat(), 401),
    ],
)
def test_a_4xx_other_than_429_is_never_retried(
    key: str, body: dict[str, object], status: int
) -> None:
    waits: list[float] = []
    with start(ServerConfig(api_key="k")) as keyed:
        endpoint = Endpoint(TARGET, keyed.base_url, key, sleep=waits.append)
        reply = endpoint.send(Api.CHAT, body, label="x")
        assert reply.status == status
        assert reply.exchange.retries == 0
        assert keyed.faults.requests == 1
    assert waits == []


def test_timeouts_are_set_per_target(server: RunningServer) -> None:
    server.faults.configure(FaultSpec(kind="slow_first_byte", delay_s=0.3))
    impatient = TARGET.model_copy(update={"timeout_s": 0.1})
    patient = TARGET.model_copy(update={"timeout_s": 5.0})
    runner = Runner(CATALOG, Settings(mode=Mode.LIVE, base_url=server.base_url))
    try:
        timed_out = runner.execute(Case(STOP, impatient, Api.CHAT, False))
        waited = runner.execute(Case(STOP, patient, Api.CHAT, False))
    finally:
        runner.close()
    assert timed_out.verdict is Verdict.ERROR
    assert "timed out after 0.1 s" in timed_out.summary
    assert waited.verdict is Verdict.PASS, waited.summary


def _raw_post(server: RunningServer, stream: bool) -> tuple[bytes, BaseException | None]:
    """POST a chat request on a raw socket; what arrived, and how the connection ended."""
    body = (
        b'{"model": "toy", "messages": [{"role": "user", "content": "Hi"}], "stream": '
        + (b"true" if stream else b"false")
        + b"}"
    )
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    received = b""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except OSError as exc:
                return received, exc
            if not data:
                return received, None
            received += data
    return received, None


@pytest.mark.parametrize(
    ("kind", "stream", "before_reset"),
    [("reset_before_stream", False, b""), ("reset_mid_stream", True, b"data: ")],
)
def test_a_reset_is_a_reset_on_the_wire(
    server: RunningServer, kind: str, stream: bool, before_reset: bytes
) -> None:
    server.faults.configure(FaultSpec(kind=kind))  # type: ignore[arg-type]
    received, ended = _raw_post(server, stream)
    assert isinstance(ended, ConnectionResetError), (received, ended)
    assert before_reset in received
    if not before_reset:
        assert received == b""
    else:
        assert b"[DONE]" not in received


def test_retry_after_forms() -> None:
    assert retry_after({"Retry-After": "2"}) == 2.0
    assert retry_after({"retry-after": "0.5"}) == 0.5
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({"retry-after": "nan"}) is None
    assert retry_after({}) is None
