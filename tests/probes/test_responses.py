"""The client's Responses path and the pure parts of the responses probes: readers of a body
and of a stream, when a stream is complete, shape checks by event type, "API not served"."""

from __future__ import annotations

import contextlib
import http.server
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.observation import Exchange, NotApplicable, ProbeError, RequestRecord
from conformance.plan import Case
from conformance.probes import client, shape, sse
from conformance.probes.client import ApiNotServed, Endpoint, Reply
from conformance.probes.registry import ProbeContext, registered
from conformance.probes.responses import function_calls
from conformance.recording import Mode
from conformance.spec import Api
from conformance.verdict import Verdict
from tests.conftest import SPECS
from tests.probes._fake import Answer, context, refusal

REGISTRY_PROBES = registered()
EXCHANGE = Exchange(label="test", request=RequestRecord(method="POST", url="", headers={}, body={}))
USAGE = {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
MESSAGE = {
    "type": "message",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "Hi there", "annotations": []}],
}
CALL = {"type": "function_call", "name": "get_time", "arguments": "{}", "call_id": "call_1"}


def _body(**fields: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "output": [MESSAGE], "usage": USAGE, **fields}


def _stream(*events: dict[str, Any], done: bool = False) -> Reply:
    stream = sse.SseStream(chunks=list(events), done=done)
    return Reply(200, EXCHANGE, stream=stream, api=Api.RESPONSES)


def _completed(response: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response.completed", "response": response, "sequence_number": 3}


def test_a_body_is_read_as_a_response() -> None:
    reply = Reply(200, EXCHANGE, body=_body(), api=Api.RESPONSES)
    assert reply.text == "Hi there"
    assert reply.usage == USAGE
    assert (reply.tokens().prompt, reply.tokens().completion) == (7, 3)
    assert client._malformed(reply) is None


def test_a_stream_is_read_from_its_deltas_and_its_terminal_event() -> None:
    reply = _stream(
        {"type": "response.output_text.delta", "delta": "Hi "},
        {"type": "response.output_text.delta", "delta": "there"},
        _completed(_body(output=[MESSAGE, CALL])),
    )
    assert reply.text == "Hi there"
    assert reply.tokens().prompt == 7
    assert [item["name"] for item in function_calls(reply)] == ["get_time"]


def test_a_chat_reply_keeps_its_own_readers() -> None:
    chat = Reply(200, EXCHANGE, body={"usage": {"prompt_tokens": 2, "completion_tokens": 1}})
    assert (chat.tokens().prompt, chat.tokens().completion) == (2, 1)
    assert client._malformed(Reply(200, EXCHANGE, body=_body(), api=Api.RESPONSES)) is None
    assert client._malformed(chat) == "the body has no choices list"


@pytest.mark.parametrize("last", ["response.completed", "response.incomplete", "response.failed"])
def test_a_responses_stream_is_complete_at_its_terminal_event(last: str) -> None:
    stream = sse.SseStream(chunks=[{"type": "response.created"}, {"type": last}])
    assert client._cut_off(Api.RESPONSES, stream) is None


def test_a_responses_stream_without_a_terminal_event_was_cut_off() -> None:
    stream = sse.SseStream(chunks=[{"type": "response.output_text.delta"}], done=True)
    assert "not a terminal event" in str(client._cut_off(Api.RESPONSES, stream))


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        ({"output": "text"}, "no output list"),
        ({"output": ["text"]}, "not an object"),
        ({"output": [], "usage": {"input_tokens": "7"}}, "usage.input_tokens"),
    ],
)
def test_malformed_responses_are_named(response: dict[str, Any], problem: str) -> None:
    reply = Reply(200, EXCHANGE, body=response, api=Api.RESPONSES)
    assert problem in str(client._malformed(reply))


def test_stream_events_are_checked_by_their_type() -> None:
    good = {
        "type": "response.output_text.delta",
        "delta": "x",
        "item_id": "m",
        "output_index": 0,
        "content_index": 0,
        "sequence_number": 1,
        "logprobs": [],
    }
    unknown = {"type": "response.bogus", "sequence_number": 2}
    missing = {**good, "sequence_number": None}
    checked = shape.check(Api.RESPONSES, [good, unknown, missing], chunks=True)
    assert checked.type == "ResponseStreamEvent"
    assert any("response.bogus" in violation for violation in checked.violations)
    assert any(violation.startswith("chunk 2: sequence_number") for violation in checked.violations)
    assert not any(violation.startswith("chunk 0") for violation in checked.violations)


def _endpoint(status: int, body: dict[str, Any]) -> Endpoint:
    target = load(SPECS).targets["reference-openai"]
    transport = httpx2.MockTransport(lambda request: httpx2.Response(status, json=body))
    return Endpoint(target, "http://127.0.0.1:9/v1", "fake-key", transport=transport)


@pytest.mark.parametrize("status", [404, 405])
def test_an_endpoint_not_served_skips_the_case(status: int) -> None:
    endpoint = _endpoint(status, {"detail": "Not Found"})
    with pytest.raises(ApiNotServed, match="API not served") as raised:
        endpoint.send(Api.RESPONSES, {"input": "x"}, label="plain")
    assert isinstance(raised.value, NotApplicable)
    assert raised.value.exchanges, "the 404 is kept as evidence"


def test_a_404_that_answers_the_request_is_a_reply() -> None:
    body = {
        "error": {
            "message": "no",
            "type": "invalid_request_error",
            "param": None,
            "code": "previous_response_not_found",
        }
    }
    reply = _endpoint(404, body).send(Api.RESPONSES, {"input": "x"}, label="plain")
    assert reply.status == 404
    assert _endpoint(404, {}).send(Api.CHAT, {"messages": []}, label="chat").status == 404


def test_a_404_naming_a_param_or_a_stored_response_is_an_answer() -> None:
    """vLLM answers an unknown previous_response_id with a 404 naming param response_id."""
    body = {
        "error": {
            "message": "Response with id 'r' not found.",
            "type": "invalid_request_error",
            "param": "response_id",
            "code": 404,
        }
    }
    assert _endpoint(404, body).send(Api.RESPONSES, {"input": "x"}, label="p").status == 404
    plain = _endpoint(404, {"detail": "Not Found"})
    linked = {"input": "x", "previous_response_id": "r"}
    assert plain.send(Api.RESPONSES, linked, label="p").status == 404


class _NotFound(http.server.BaseHTTPRequestHandler):
    """A server with no /v1/responses: every POST is FastAPI's 404."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b'{"detail": "Not Found"}'
        self.send_response(404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@contextlib.contextmanager
def _not_found_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_an_api_not_served_is_recorded_and_replayed_as_a_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 404 is kept in the cassette, so the replay skips with the same reason."""
    monkeypatch.setenv("REFERENCE_API_KEY", "fake-key-for-tests")
    catalog = load(SPECS)
    case = Case(
        catalog.behaviors["responses.usage"],
        catalog.targets["reference-openai"],
        Api.RESPONSES,
        False,
    )
    with _not_found_server() as base_url:
        for mode in (Mode.RECORD, Mode.RECORD, Mode.REPLAY):
            settings = Settings(mode=mode, base_url=base_url, cassettes=tmp_path)
            result = Runner(catalog, settings).execute(case)
            assert result.verdict is Verdict.SKIPPED, result.summary
            assert result.summary.startswith("API not served"), result.summary
            assert "old cassette" not in result.summary, "the 404 is recorded anew"
            assert result.evidence


# --------------------------------------------------------------------------- probe logic


def _response(
    text: str, *, status: str = "completed", output_tokens: int = 16, **usage: int
) -> tuple[int, dict[str, Any]]:
    """A 200 Responses body with one message."""
    message = {**MESSAGE, "content": [{"type": "output_text", "text": text, "annotations": []}]}
    counts = {"input_tokens": 10, "output_tokens": output_tokens, **usage}
    return 200, {
        "id": "resp_1",
        "object": "response",
        "status": status,
        "output": [message],
        "usage": counts,
    }


def _responses_context(
    behavior_id: str, answer: Answer
) -> tuple[ProbeContext, list[dict[str, Any]]]:
    ctx, sent = context(behavior_id, answer)
    ctx.api = Api.RESPONSES
    return ctx, sent


def _sized(total: int, status: str) -> Answer:
    """Measuring requests count one token per unit; the overflowing one reports ``total``."""

    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = str(body["input"])
        if len(text) < 100:
            return _response("a", input_tokens=text.count("alpha") + 5)
        return _response("a" * 16, status=status, input_tokens=total - 16)

    return answer


def test_output_stopped_exactly_at_the_window_is_clamped_whatever_its_status() -> None:
    ctx, _ = _responses_context("responses.window_overflow", _sized(256, "completed"))
    observed = REGISTRY_PROBES["responses_window_overflow"].run(ctx)
    assert observed.outcome == "clamped"
    assert [check.passed for check in observed.checks] == [False]


def test_output_that_ends_within_the_window_by_itself_is_not_applicable() -> None:
    ctx, _ = _responses_context("responses.window_overflow", _sized(250, "completed"))
    with pytest.raises(NotApplicable, match="ended by itself"):
        REGISTRY_PROBES["responses_window_overflow"].run(ctx)


def test_a_json_object_cut_by_the_limit_is_not_applicable() -> None:
    ctx, _ = _responses_context(
        "responses.text_format_json_schema",
        lambda body: _response('{"color"\n\n', status="incomplete"),
    )
    with pytest.raises(NotApplicable, match="before it closed"):
        REGISTRY_PROBES["responses_json_schema"].run(ctx)


def test_a_follow_up_whose_first_response_is_not_found_is_not_applicable() -> None:
    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return refusal(404, "not_found") if "previous_response_id" in body else _response("a")

    ctx, _ = _responses_context("responses.previous_response_id", answer)
    with pytest.raises(NotApplicable, match="not stored"):
        REGISTRY_PROBES["responses_previous_response"].run(ctx)


def test_a_control_that_does_not_repeat_itself_decides_nothing() -> None:
    controls = (f"control {n}" for n in range(100))
    texts = itertools.chain(["pirate"], controls)
    ctx, sent = _responses_context("responses.instructions", lambda body: _response(next(texts)))
    attempts = ctx.endpoint.target.attempts
    with pytest.raises(ProbeError, match=f"{attempts} attempts disagreed"):
        REGISTRY_PROBES["responses_instructions"].run(ctx)
    assert len(sent) == 1 + attempts, "one effect request, then the control: bounded"


def test_one_divergent_reply_with_instructions_is_not_honoured() -> None:
    # The reply with instructions differs once, then reproduces the control's text.
    texts = iter(["pirate", "control", "control", "control", "control"])
    ctx, sent = _responses_context("responses.instructions", lambda body: _response(next(texts)))
    assert REGISTRY_PROBES["responses_instructions"].run(ctx).outcome == "ignored"
    texts = iter(["pirate", "control", "control", "pirate"])
    ctx, sent = _responses_context("responses.instructions", lambda body: _response(next(texts)))
    assert REGISTRY_PROBES["responses_instructions"].run(ctx).outcome == "honoured"
    assert [body.get("instructions") is not None for body in sent] == [True, False, False, True]
