"""Redirects: a 307 or 308 within the target's origin is followed as the SDK would, every
hop kept as evidence; anything else is a clear ``error``, never a crash, and no redirect
takes the key to another origin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.observation import ProbeError
from conformance.plan import Case
from conformance.probes.client import MAX_REDIRECTS, Endpoint
from conformance.recording import Mode
from conformance.reference.faults import FaultSpec
from conformance.reference.server import RunningServer, ServerConfig, start
from conformance.spec import Api
from conformance.verdict import Verdict
from tests.conftest import SPECS
from tests.hard_edges._faulty import execute as _execute

CATALOG = load(SPECS)
TARGET = CATALOG.targets["reference-openai"].model_copy(update={"timeout_s": 10.0})
KEY = "redirect-test-key-0123456789"
CASES = [
    Case(CATALOG.behaviors["stop.inclusion"], TARGET, Api.CHAT, stream) for stream in (False, True)
]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start(ServerConfig(api_key=KEY)) as running:
        yield running


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TARGET.api_key_env is not None
    monkeypatch.setenv(TARGET.api_key_env, KEY)


@pytest.mark.parametrize("kind", ["redirect_307", "redirect_308"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_307_or_308_within_the_origin_is_followed_and_both_hops_are_evidence(
    server: RunningServer, case: Case, kind: str
) -> None:
    result = _execute(server, case, FaultSpec(kind=kind))  # type: ignore[arg-type]
    assert result.verdict is Verdict.PASS, result.summary
    redirected = [e for e in result.evidence if e.label.endswith("(redirected)")]
    assert redirected, [e.label for e in result.evidence]
    for hop in redirected:
        assert hop.response is not None
        assert hop.response.status == (308 if kind == "redirect_308" else 307)
        assert "?again=" not in hop.request.url
        assert hop.response.headers["location"].endswith("?again=1")
        followed = result.evidence[result.evidence.index(hop) + 1]
        assert followed.request.url.endswith("?again=1")
        assert followed.request.body == hop.request.body  # the same request, body and all
        assert followed.response is not None
        assert followed.response.status == 200


def test_a_redirect_loop_is_an_error(server: RunningServer) -> None:
    result = _execute(server, CASES[0], FaultSpec(kind="redirect_loop"))
    assert result.verdict is Verdict.ERROR
    assert f"more than {MAX_REDIRECTS} redirects" in result.summary
    assert len(result.evidence) == MAX_REDIRECTS + 1


def test_a_redirect_to_another_origin_is_not_followed(server: RunningServer) -> None:
    with start(ServerConfig()) as elsewhere:
        location = f"{elsewhere.base_url}/chat/completions"
        result = _execute(server, CASES[0], FaultSpec(kind="redirect_away", location=location))
        assert elsewhere.faults.requests == 0  # the key never went there
    assert result.verdict is Verdict.ERROR
    assert "redirected (307) to another origin" in result.summary
    assert f"127.0.0.1:{elsewhere.port}" in result.summary
    assert "not followed" in result.summary


def test_a_followed_redirect_is_recorded_and_replays(server: RunningServer, tmp_path: Path) -> None:
    recorded = _execute(
        server, CASES[1], FaultSpec(kind="redirect_307"), Mode.RECORD, cassettes=tmp_path
    )
    assert recorded.verdict is Verdict.PASS, recorded.summary
    cassette = CASES[1].cassette(tmp_path).read_text()
    assert "again=1" in cassette
    assert KEY not in cassette
    runner = Runner(CATALOG, Settings(mode=Mode.REPLAY, cassettes=tmp_path))
    try:
        replayed = runner.execute(CASES[1])
    finally:
        runner.close()
    assert replayed.verdict is Verdict.PASS, replayed.summary
    assert [e.label for e in replayed.evidence] == [e.label for e in recorded.evidence]


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_redirect_that_would_drop_the_body_is_an_error(status: int) -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"location": "/v1/elsewhere"})

    endpoint = Endpoint(
        TARGET, "http://127.0.0.1:9/v1", "k", transport=httpx2.MockTransport(answer)
    )
    body = {"messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(
        ProbeError, match=f"redirected \\({status}\\) to '/v1/elsewhere'.*not followed"
    ):
        endpoint.send(Api.CHAT, body, label="x")
    assert [exchange.response.status for exchange in endpoint.exchanges] == [status]  # type: ignore[union-attr]
