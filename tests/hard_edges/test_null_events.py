"""``data: null`` events: some servers send them between the streams of two prompts. The
client skips them, the evidence keeps them, and stream.framing names them; they no longer
hide that a list of prompts is honoured."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.plan import Case
from conformance.recording import Mode
from conformance.reference import dialect
from conformance.reference.server import RunningServer, ServerConfig, start
from conformance.results import CaseResult
from conformance.spec import Api
from conformance.verdict import Verdict
from tests.conftest import SPECS

CATALOG = load(SPECS)
TARGET = CATALOG.targets["reference-openai"]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    switches = dialect.switches_for(CATALOG, "openai", {"stream.framing": "null_events"})
    with start(ServerConfig(switches=switches)) as running:
        yield running


def _execute(server: RunningServer, behavior: str, api: Api) -> CaseResult:
    runner = Runner(CATALOG, Settings(mode=Mode.LIVE, base_url=server.base_url))
    try:
        return runner.execute(Case(CATALOG.behaviors[behavior], TARGET, api, True))
    finally:
        runner.close()


def _sse(result: CaseResult) -> list[str]:
    return [line for exchange in result.evidence for line in exchange.response.sse or []]  # type: ignore[union-attr]


def test_a_prompt_list_with_null_events_between_its_streams_is_honoured(
    server: RunningServer,
) -> None:
    result = _execute(server, "completions.prompt_list", Api.COMPLETIONS)
    assert result.verdict is Verdict.PASS, result.summary
    assert result.observed == "honoured"
    assert "data: null" in _sse(result)  # the evidence keeps what was skipped


@pytest.mark.parametrize("api", [Api.CHAT, Api.COMPLETIONS])
def test_stream_framing_names_the_null_events(server: RunningServer, api: Api) -> None:
    result = _execute(server, "stream.framing", api)
    assert result.observed == "null_events", result.summary
    assert result.verdict is Verdict.DEVIATION  # OpenAI's streams carry none
    assert "1 data: null event(s) skipped" in result.summary
    assert "data: null" in _sse(result)


@pytest.mark.parametrize(
    "behavior", ["stop.inclusion", "stream.usage.include_usage", "stream.first_delta_role"]
)
def test_other_stream_probes_are_not_misled(server: RunningServer, behavior: str) -> None:
    result = _execute(server, behavior, Api.CHAT)
    assert result.verdict is Verdict.PASS, result.summary
