"""The reference server's Responses API over real HTTP: through the official SDK's
``client.responses``, checked against the SDK's own types, and every ``responses_*`` switch
shown to change what the server does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from conformance.probes.shape import EVENT_TYPES, refused, undeclared
from conformance.reference import model
from conformance.reference.responses import ANSWER_LENGTH
from conformance.reference.server import RunningServer
from tests.reference._pool import Pool, server_pool

KEY = "test-key"
WINDOW = 256
PROMPT = "Describe the market square at noon"
COLOUR = {
    "type": "object",
    "properties": {"color": {"type": "string", "enum": ["octarine", "smaragdine"]}},
    "required": ["color"],
    "additionalProperties": False,
}


def _tool(name: str, parameter: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {parameter: {"type": "string"}}}
    return {"type": "function", "name": name, "parameters": schema}


WEATHER = _tool("get_weather", "city")
TIME = _tool("get_time", "zone")
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
FULL_SEQUENCE = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """Servers by switch settings, started once per module."""
    with server_pool(api_key=KEY) as get:
        yield get


@pytest.fixture(scope="module")
def server(pool: Pool) -> RunningServer:
    return pool()


def _client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)


def _url(server: RunningServer, ident: str = "") -> str:
    return server.base_url + "/responses" + (f"/{ident}" if ident else "")


def _call(server: RunningServer, method: str, ident: str) -> httpx2.Response:
    headers = {"authorization": f"Bearer {KEY}"}
    return httpx2.request(method, _url(server, ident), headers=headers, timeout=10)


def _post(server: RunningServer, **fields: Any) -> httpx2.Response:
    body = {"model": "toy", "input": PROMPT, "temperature": 0, **fields}
    body = {name: value for name, value in body.items() if value is not None}
    headers = {"authorization": f"Bearer {KEY}"}
    return httpx2.post(_url(server), json=body, headers=headers, timeout=10)


def _ok(response: httpx2.Response) -> dict[str, Any]:
    """A 200 reply's body, which must be a valid Response by the SDK's types, with nothing
    the types do not declare."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert refused(Response, body) == []
    assert undeclared(Response, body) == set()
    return body


def _error(response: httpx2.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def _text(body: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in body["output"]
        if item["type"] == "message"
        for part in item["content"]
    )


def _events(response: httpx2.Response, *, event_lines: bool = True) -> list[dict[str, Any]]:
    """The events of an SSE body, each checked against the SDK's event types, and its
    framing: an ``event:`` line naming each event's type, and no ``[DONE]``."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = response.text.split("\n\n")
    assert blocks[-1] == ""
    events = []
    for block in blocks[:-1]:
        lines = block.split("\n")
        data = json.loads(lines[-1].removeprefix("data: "))
        if event_lines:
            assert lines == [f"event: {data['type']}", lines[-1]]
        else:
            assert len(lines) == 1
        EVENTS.validate_python(data)
        assert undeclared(EVENT_TYPES[data["type"]], data) == set()
        events.append(data)
    return events


def _prompt_tokens(text: str, role: str = "user") -> int:
    return model.count_tokens(model.render_chat([{"role": role, "content": text}]))


# --------------------------------------------------------------------------- through the SDK


def test_sdk_creates_a_response(server: RunningServer) -> None:
    client = _client(server)
    reply = client.responses.create(model="toy", input=PROMPT, temperature=0)
    assert reply.id.startswith("resp_")
    assert reply.object == "response"
    assert reply.status == "completed"
    assert reply.model == "toy"
    assert reply.output[0].type == "message"
    assert reply.output_text.strip()
    assert reply.usage is not None
    assert reply.usage.input_tokens == _prompt_tokens(PROMPT)
    assert reply.usage.output_tokens == ANSWER_LENGTH
    assert reply.usage.total_tokens == reply.usage.input_tokens + ANSWER_LENGTH
    assert reply.usage.input_tokens_details.cached_tokens == 0
    assert reply.usage.output_tokens_details.reasoning_tokens == 0
    again = client.responses.create(model="toy", input=PROMPT, temperature=0)
    assert again.output_text == reply.output_text, "temperature 0 is deterministic"
    other = client.responses.create(model="toy", input="Describe the harbour", temperature=0)
    assert other.output_text != reply.output_text


def test_sdk_streams_a_response(server: RunningServer) -> None:
    client = _client(server)
    plain = client.responses.create(model="toy", input=PROMPT, temperature=0)
    events = list(client.responses.create(model="toy", input=PROMPT, temperature=0, stream=True))
    kinds = [event.type for event in events]
    assert [kind for i, kind in enumerate(kinds) if i == 0 or kinds[i - 1] != kind] == (
        FULL_SEQUENCE
    )
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) == ANSWER_LENGTH
    assert "".join(deltas) == plain.output_text
    created, completed = events[0], events[-1]
    assert created.type == "response.created"
    assert created.response.status == "in_progress"
    assert created.response.output == []
    assert completed.type == "response.completed"
    assert completed.response.output_text == plain.output_text
    assert completed.response.usage == plain.usage


def test_sdk_stream_helper_accumulates_the_events(pool: Pool) -> None:
    """The SDK's ``responses.stream`` rebuilds the response from the events, so it fails on
    an event out of place (a delta before its item was added, an unknown item id)."""
    client = _client(pool())
    plain = client.responses.create(model="toy", input=PROMPT, temperature=0)
    with client.responses.stream(model="toy", input=PROMPT, temperature=0) as stream:
        final = stream.get_final_response()
    assert final.output_text == plain.output_text
    tools: Any = [WEATHER]
    with client.responses.stream(
        model="toy", input=PROMPT, tools=tools, tool_choice="required"
    ) as stream:
        called = stream.get_final_response()
    assert [item.type for item in called.output] == ["function_call"]
    reasoning = _client(pool(responses_reasoning="reason"))
    with reasoning.responses.stream(
        model="toy", input=PROMPT, temperature=0, reasoning={"effort": "low"}
    ) as stream:
        reasoned = stream.get_final_response()
    assert [item.type for item in reasoned.output] == ["reasoning", "message"]


def test_stream_framing_and_event_types(server: RunningServer) -> None:
    events = _events(_post(server, stream=True))
    assert [event["type"] for event in events][:4] == FULL_SEQUENCE[:4]
    done = next(event for event in events if event["type"] == "response.output_text.done")
    deltas = [event["delta"] for event in events if event["type"].endswith("text.delta")]
    assert done["text"] == "".join(deltas)
    item_ids = {event["item_id"] for event in events if "item_id" in event}
    assert item_ids == {events[-1]["response"]["output"][0]["id"]}


def test_a_plain_reply_matches_the_sdk_types(server: RunningServer) -> None:
    body = _ok(_post(server))
    part = body["output"][0]["content"][0]
    assert part["type"] == "output_text"
    assert part["annotations"] == []
    assert body["output"][0]["status"] == "completed"
    assert body["incomplete_details"] is None
    assert body["temperature"] == 0
    assert body["truncation"] == "disabled"


# --------------------------------------------------------------------------- input and instructions


def test_input_items_read_as_the_string(server: RunningServer) -> None:
    as_string = _ok(_post(server))
    as_items = _ok(_post(server, input=[{"role": "user", "content": PROMPT}]))
    as_parts = _ok(
        _post(
            server,
            input=[
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": PROMPT}],
                }
            ],
        )
    )
    assert _text(as_string) == _text(as_items) == _text(as_parts)
    assert as_string["usage"] == as_items["usage"] == as_parts["usage"]


def test_text_and_image_parts_are_taken(server: RunningServer) -> None:
    parts = [
        {"type": "input_text", "text": PROMPT},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
    ]
    body = _ok(_post(server, input=[{"type": "message", "role": "user", "content": parts}]))
    assert _text(body) == _text(_ok(_post(server)))


def test_a_conversation_of_items_is_read_whole(server: RunningServer) -> None:
    turns = [
        {"type": "message", "role": "user", "content": "My name is Alice."},
        {"type": "message", "role": "assistant", "content": "Hello Alice!"},
        {"type": "message", "role": "user", "content": "What is my name?"},
    ]
    whole = _ok(_post(server, input=turns))
    last = _ok(_post(server, input=turns[-1:]))
    assert whole["status"] == "completed"
    assert whole["usage"]["input_tokens"] > last["usage"]["input_tokens"]
    assert _text(whole) != _text(last)


@pytest.mark.parametrize(
    "item",
    [
        {"type": "message", "role": "robot", "content": "hi"},
        {"type": "message", "role": "user", "content": 3},
        {"type": "web_search_call", "id": "ws_1"},
        "hello",
    ],
)
def test_malformed_input_items_are_refused(server: RunningServer, item: Any) -> None:
    assert _error(_post(server, input=[item]))["param"].startswith("input[0]")


def test_input_items_refused_by_a_string_only_server(pool: Pool) -> None:
    server = pool(responses_input_items="string_only")
    _ok(_post(server))
    assert _error(_post(server, input=[{"role": "user", "content": PROMPT}]))["param"] == "input"


def test_instructions_are_a_system_message(pool: Pool) -> None:
    server = pool()
    instructed = _ok(_post(server, instructions="You are a pirate."))
    as_item = _ok(
        _post(
            server,
            input=[
                {"role": "system", "content": "You are a pirate."},
                {"role": "user", "content": PROMPT},
            ],
        )
    )
    plain = _ok(_post(server))
    assert instructed["instructions"] == "You are a pirate."
    assert _text(instructed) == _text(as_item) != _text(plain)
    assert instructed["usage"]["input_tokens"] == as_item["usage"]["input_tokens"]
    ignored = _ok(_post(pool(responses_instructions="ignore"), instructions="You are a pirate."))
    assert _text(ignored) == _text(plain)
    refused_by = pool(responses_instructions="reject")
    assert _error(_post(refused_by, instructions="x"))["param"] == "instructions"


# --------------------------------------------------------------------------- limits and sampling


def test_max_output_tokens_cuts_the_reply_incomplete(server: RunningServer) -> None:
    body = _ok(_post(server, max_output_tokens=16))
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"
    assert body["usage"]["output_tokens"] == 16
    assert body["max_output_tokens"] == 16
    roomy = _ok(_post(server, max_output_tokens=100))
    assert roomy["status"] == "completed"
    assert roomy["usage"]["output_tokens"] == ANSWER_LENGTH
    events = _events(_post(server, max_output_tokens=16, stream=True))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    words=st.lists(st.sampled_from(model.WORDS), min_size=1, max_size=12),
    limit=st.one_of(st.none(), st.integers(16, 40)),
)
def test_plain_and_streamed_replies_agree(
    server: RunningServer, words: list[str], limit: int | None
) -> None:
    prompt = " ".join(words)
    body = _ok(_post(server, input=prompt, max_output_tokens=limit))
    events = _events(_post(server, input=prompt, max_output_tokens=limit, stream=True))
    final = events[-1]["response"]
    cut = limit is not None and limit < ANSWER_LENGTH
    assert body["status"] == final["status"] == ("incomplete" if cut else "completed")
    assert body["usage"]["output_tokens"] == min(limit or ANSWER_LENGTH, ANSWER_LENGTH)
    assert body["usage"] == final["usage"]
    assert _text(body) == _text(final)
    deltas = [event["delta"] for event in events if event["type"].endswith("text.delta")]
    assert "".join(deltas) == _text(body)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))


def test_max_output_tokens_below_openai_minimum(server: RunningServer) -> None:
    error = _error(_post(server, max_output_tokens=15))
    assert error["param"] == "max_output_tokens"
    assert error["code"] == "integer_below_min_value"
    assert "16" in error["message"]


@pytest.mark.parametrize(
    ("mode", "status", "tokens"),
    [("complete", "completed", 16), ("ignore", "completed", ANSWER_LENGTH)],
)
def test_max_output_tokens_switch(pool: Pool, mode: str, status: str, tokens: int) -> None:
    body = _ok(_post(pool(responses_max_output_tokens=mode), max_output_tokens=16))
    assert body["status"] == body["output"][0]["status"] == status
    assert body["incomplete_details"] is None
    assert body["usage"]["output_tokens"] == tokens


def test_max_output_tokens_rejected(pool: Pool) -> None:
    server = pool(responses_max_output_tokens="reject")
    _ok(_post(server))
    assert _error(_post(server, max_output_tokens=64))["param"] == "max_output_tokens"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("temperature", 2.5, "decimal_above_max_value"),
        ("temperature", -0.5, "decimal_below_min_value"),
        ("temperature", "hot", "invalid_type"),
        ("top_p", 1.5, "decimal_above_max_value"),
    ],
)
def test_sampling_out_of_range(server: RunningServer, field: str, value: Any, code: str) -> None:
    error = _error(_post(server, **{field: value}))
    assert (error["param"], error["code"], error["type"]) == (field, code, "invalid_request_error")


def test_temperature_range_switch(pool: Pool) -> None:
    body = _ok(_post(pool(responses_temperature_range="accept"), temperature=2.5, top_p=0.5))
    assert body["temperature"] == 2.5
    assert body["top_p"] == 0.5


def test_sampling_is_honoured(server: RunningServer) -> None:
    greedy = {_text(_ok(_post(server, temperature=0))) for _ in range(2)}
    hot = {_text(_ok(_post(server, temperature=2))) for _ in range(3)}
    assert len(greedy) == 1
    assert len(hot) > 1


# --------------------------------------------------------------------------- the window


def _words(count: int) -> str:
    return " ".join(["alpha"] * count)


def _filling(room: int) -> str:
    """A user input that leaves ``room`` tokens of the window."""
    base = _prompt_tokens("")
    text = _words(WINDOW - room - base)
    assert WINDOW - _prompt_tokens(text) == room
    return text


def test_input_over_the_window_is_refused(server: RunningServer) -> None:
    error = _error(_post(server, input=_words(300)))
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "input"
    error = _error(_post(server, input=_words(300), truncation="auto"))
    assert error["code"] == "context_length_exceeded", "one item cannot be dropped"


def test_truncation_auto_drops_the_oldest_items(pool: Pool) -> None:
    turns = [
        {"role": "user", "content": _words(150)},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": _words(150)},
    ]
    server = pool()
    assert _error(_post(server, input=turns))["code"] == "context_length_exceeded"
    assert _error(_post(server, input=turns, truncation="disabled"))["code"] == (
        "context_length_exceeded"
    )
    body = _ok(_post(server, input=turns, truncation="auto"))
    assert body["status"] == "completed"
    assert body["truncation"] == "auto"
    assert body["usage"]["input_tokens"] + ANSWER_LENGTH <= WINDOW
    ignored = pool(responses_truncation="ignore")
    assert _error(_post(ignored, input=turns, truncation="auto"))["code"] == (
        "context_length_exceeded"
    )
    assert _error(_post(pool(responses_truncation="reject"), truncation="auto"))["param"] == (
        "truncation"
    )
    assert _error(_post(server, truncation="sometimes"))["param"] == "truncation"


@pytest.mark.parametrize(
    ("mode", "status", "tokens"),
    [("clamp", "incomplete", 10), ("exceed", "completed", ANSWER_LENGTH)],
)
def test_output_past_the_window(pool: Pool, mode: str, status: str, tokens: int) -> None:
    body = _ok(_post(pool(responses_output_overflow=mode), input=_filling(10)))
    assert body["status"] == status
    assert body["usage"]["output_tokens"] == tokens


def test_output_past_the_window_rejected(pool: Pool) -> None:
    server = pool(responses_output_overflow="reject")
    _ok(_post(server, input=_filling(ANSWER_LENGTH + 16), max_output_tokens=16))
    error = _error(_post(server, input=_filling(ANSWER_LENGTH + 16), max_output_tokens=64))
    assert error["code"] == "context_length_exceeded"


# --------------------------------------------------------------------------- text.format


def test_json_schema_output_follows_the_schema(server: RunningServer) -> None:
    form = {"type": "json_schema", "name": "colour", "schema": COLOUR, "strict": True}
    body = _ok(_post(server, text={"format": form}))
    assert json.loads(_text(body))["color"] in ("octarine", "smaragdine")
    assert body["text"]["format"]["name"] == "colour"
    streamed = _events(_post(server, text={"format": form}, stream=True))
    assert json.loads(_text(streamed[-1]["response"])) == json.loads(_text(body))


def test_json_schema_in_chat_shape_is_refused(server: RunningServer) -> None:
    chat_shape = {"type": "json_schema", "json_schema": {"name": "c", "schema": COLOUR}}
    assert _error(_post(server, text={"format": chat_shape}))["param"] == "text.format.name"


def test_json_object_needs_json_in_the_input(server: RunningServer) -> None:
    form = {"format": {"type": "json_object"}}
    assert _error(_post(server, text=form))["param"] == "input"
    body = _ok(_post(server, input="Answer in JSON.", text=form))
    assert isinstance(json.loads(_text(body)), dict)


@pytest.mark.parametrize("mode", ["json_only", "ignore", "reject"])
def test_json_schema_switch(pool: Pool, mode: str) -> None:
    form = {"format": {"type": "json_schema", "name": "colour", "schema": COLOUR}}
    response = _post(pool(responses_json_schema=mode), text=form)
    if mode == "reject":
        assert _error(response)["param"] == "text.format.type"
        return
    text = _text(_ok(response))
    if mode == "json_only":
        assert "color" not in json.loads(text)
    else:
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)


# --------------------------------------------------------------------------- tools


def _calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in body["output"] if item["type"] == "function_call"]


def test_tool_choice_required_calls_every_tool(server: RunningServer) -> None:
    body = _ok(_post(server, tools=[WEATHER, TIME], tool_choice="required"))
    calls = _calls(body)
    assert [call["name"] for call in calls] == ["get_weather", "get_time"]
    for call in calls:
        assert call["id"].startswith("fc_")
        assert call["call_id"].startswith("call_")
        assert call["status"] == "completed"
        assert isinstance(json.loads(call["arguments"]), dict)
    assert body["tool_choice"] == "required"
    assert body["tools"][0]["name"] == "get_weather"
    one = _ok(
        _post(server, tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=False)
    )
    assert [call["name"] for call in _calls(one)] == ["get_weather"]
    assert one["parallel_tool_calls"] is False


def test_tool_choice_named_none_and_auto(server: RunningServer) -> None:
    named = _ok(
        _post(server, tools=[WEATHER, TIME], tool_choice={"type": "function", "name": "get_time"})
    )
    assert [call["name"] for call in _calls(named)] == ["get_time"]
    for choice in ("none", "auto", None):
        body = _ok(_post(server, tools=[WEATHER], tool_choice=choice))
        assert _calls(body) == []
        assert body["output"][0]["type"] == "message"


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        ([{"type": "function", "function": {"name": "get_weather"}}], None, "tools[0].name"),
        ([{"type": "web_search"}], None, "tools[0].type"),
        ([WEATHER], {"type": "function", "name": "nope"}, "tool_choice"),
        (None, "required", "tool_choice"),
    ],
)
def test_malformed_tools_are_refused(
    server: RunningServer, tools: Any, choice: Any, param: str
) -> None:
    assert _error(_post(server, tools=tools, tool_choice=choice))["param"] == param


def test_streamed_function_call_events(server: RunningServer) -> None:
    events = _events(_post(server, tools=[WEATHER], tool_choice="required", stream=True))
    kinds = [event["type"] for event in events]
    assert "response.content_part.added" not in kinds
    added = next(event for event in events if event["type"] == "response.output_item.added")
    assert added["item"]["type"] == "function_call"
    assert added["item"]["arguments"] == ""
    deltas = "".join(e["delta"] for e in events if e["type"].endswith("arguments.delta"))
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == deltas == events[-1]["response"]["output"][0]["arguments"]
    assert kinds[-2:] == ["response.output_item.done", "response.completed"]


@pytest.mark.parametrize(
    ("mode", "names"),
    [("auto_only", []), ("wrong_tool", ["get_weather"])],
)
def test_tool_choice_switch(pool: Pool, mode: str, names: list[str]) -> None:
    choice = {"type": "function", "name": "get_time"}
    body = _ok(_post(pool(responses_tool_choice=mode), tools=[WEATHER, TIME], tool_choice=choice))
    assert [call["name"] for call in _calls(body)] == names


def test_tool_choice_rejected(pool: Pool) -> None:
    server = pool(responses_tool_choice="reject")
    _ok(_post(server, tools=[WEATHER], tool_choice="auto"))
    assert _error(_post(server, tools=[WEATHER], tool_choice="required"))["param"] == (
        "tool_choice"
    )


def test_parallel_tool_calls_switch(pool: Pool) -> None:
    fields = {"tools": [WEATHER, TIME], "tool_choice": "required", "parallel_tool_calls": False}
    ignored = _ok(_post(pool(responses_parallel_tool_calls="ignore"), **fields))
    assert len(_calls(ignored)) == 2
    refused_by = pool(responses_parallel_tool_calls="reject")
    assert _error(_post(refused_by, **fields))["param"] == "parallel_tool_calls"


@pytest.mark.parametrize("mode", ["object_arguments", "missing_call_id"])
def test_function_call_shape_switch(pool: Pool, mode: str) -> None:
    response = _post(pool(responses_function_call=mode), tools=[WEATHER], tool_choice="required")
    assert response.status_code == 200
    body = response.json()
    problems = refused(Response, body)
    assert problems, "the SDK's types refuse the item"
    where = "arguments" if mode == "object_arguments" else "call_id"
    assert any(where in problem for problem in problems)


def test_function_call_output_continues_the_call(server: RunningServer) -> None:
    called = _ok(_post(server, tools=[WEATHER], tool_choice="required"))
    call = _calls(called)[0]
    answer = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    continued = _ok(_post(server, previous_response_id=called["id"], input=[answer]))
    assert continued["status"] == "completed"
    assert continued["previous_response_id"] == called["id"]
    inline = _ok(
        _post(
            server,
            input=[
                {"role": "user", "content": PROMPT},
                {key: call[key] for key in ("type", "call_id", "name", "arguments")},
                answer,
            ],
        )
    )
    assert _text(inline)
    stranger = {**answer, "call_id": "call_unknown"}
    assert _error(_post(server, input=[stranger]))["param"] == "input[0]"


# --------------------------------------------------------------------------- store, GET, DELETE


def test_stored_responses_are_fetched_and_deleted(server: RunningServer) -> None:
    created = _ok(_post(server, metadata={"run": "1"}))
    fetched = _call(server, "GET", created["id"])
    assert _ok(fetched) == created
    gone = _call(server, "DELETE", created["id"])
    assert gone.status_code == 200
    assert gone.json() == {"id": created["id"], "object": "response", "deleted": True}
    assert _error(_call(server, "GET", created["id"]), 404)["message"]
    assert _error(_call(server, "DELETE", created["id"]), 404)["message"]


def test_sdk_retrieves_and_deletes(server: RunningServer) -> None:
    client = _client(server)
    created = client.responses.create(model="toy", input=PROMPT, temperature=0)
    assert client.responses.retrieve(created.id).output_text == created.output_text
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_store_false_is_not_kept(server: RunningServer) -> None:
    unstored = _ok(_post(server, store=False))
    _error(_call(server, "GET", unstored["id"]), 404)
    error = _error(_post(server, previous_response_id=unstored["id"]), 404)
    assert error["param"] == "previous_response_id"
    assert error["code"] == "previous_response_not_found"


def test_previous_response_id_carries_the_conversation(server: RunningServer) -> None:
    first = _ok(_post(server))
    follow = _ok(_post(server, previous_response_id=first["id"], input="And at night?"))
    fresh = _ok(_post(server, input="And at night?"))
    assert follow["usage"]["input_tokens"] > (
        first["usage"]["input_tokens"] + fresh["usage"]["input_tokens"] - 1
    )
    assert _text(follow) != _text(fresh)
    chained = _ok(_post(server, previous_response_id=follow["id"], input="And at dawn?"))
    assert chained["usage"]["input_tokens"] > follow["usage"]["input_tokens"]
    assert _error(_post(server, previous_response_id="resp_unknown"), 404)["code"] == (
        "previous_response_not_found"
    )


@pytest.mark.parametrize(
    ("mode", "kept_by_default", "kept_when_false"),
    [("default_off", False, False), ("never", False, False), ("always", True, True)],
)
def test_store_switch(pool: Pool, mode: str, kept_by_default: bool, kept_when_false: bool) -> None:
    server = pool(responses_store=mode)
    for store, kept in ((None, kept_by_default), (False, kept_when_false)):
        ident = _ok(_post(server, store=store))["id"]
        assert _call(server, "GET", ident).status_code == (200 if kept else 404)
    asked = _ok(_post(server, store=True))["id"]
    assert _call(server, "GET", asked).status_code == (404 if mode == "never" else 200)


def test_previous_response_switch(pool: Pool) -> None:
    server = pool(responses_previous_response="ignore")
    first = _ok(_post(server))
    follow = _ok(_post(server, previous_response_id=first["id"], input="And at night?"))
    assert _text(follow) == _text(_ok(_post(server, input="And at night?")))
    refused_by = pool(responses_previous_response="reject")
    first = _ok(_post(refused_by))
    error = _error(_post(refused_by, previous_response_id=first["id"]))
    assert error["param"] == "previous_response_id"


def test_delete_switch(pool: Pool) -> None:
    server = pool(responses_delete="not_found")
    ident = _ok(_post(server))["id"]
    _error(_call(server, "DELETE", ident), 404)
    _ok(_call(server, "GET", ident))


# --------------------------------------------------------------------------- metadata, include, reasoning


def test_metadata_is_echoed(pool: Pool) -> None:
    server = pool()
    assert _ok(_post(server, metadata={"run": "7"}))["metadata"] == {"run": "7"}
    assert _ok(_post(server))["metadata"] == {}
    assert _ok(_post(pool(responses_metadata="drop"), metadata={"run": "7"}))["metadata"] == {}
    assert _error(_post(pool(responses_metadata="reject"), metadata={"a": "b"}))["param"] == (
        "metadata"
    )
    too_many = {str(i): "x" for i in range(17)}
    assert _error(_post(server, metadata=too_many))["param"] == "metadata"
    assert _error(_post(server, metadata={"a": "x" * 513}))["code"] == "string_above_max_length"


def test_include_adds_logprobs(server: RunningServer) -> None:
    plain = _ok(_post(server))
    assert plain["output"][0]["content"][0]["logprobs"] == []
    include = ["message.output_text.logprobs"]
    body = _ok(_post(server, include=include, top_logprobs=2))
    scored = body["output"][0]["content"][0]["logprobs"]
    assert len(scored) == ANSWER_LENGTH
    assert "".join(entry["token"] for entry in scored) == _text(body) == _text(plain)
    assert all(len(entry["top_logprobs"]) == 2 for entry in scored)
    assert body["top_logprobs"] == 2
    events = _events(_post(server, include=include, stream=True))
    deltas = [e["logprobs"] for e in events if e["type"] == "response.output_text.delta"]
    assert [(entry["token"], entry["logprob"]) for entries in deltas for entry in entries] == [
        (entry["token"], entry["logprob"]) for entry in scored
    ]
    assert _error(_post(server, include=["everything"]))["param"] == "include"


def test_reasoning_effort(pool: Pool) -> None:
    refused_by = _error(_post(pool(), reasoning={"effort": "low"}))
    assert (refused_by["param"], refused_by["code"]) == (
        "reasoning.effort",
        "unsupported_parameter",
    )
    ignored = _ok(_post(pool(responses_reasoning="ignore"), reasoning={"effort": "low"}))
    assert [item["type"] for item in ignored["output"]] == ["message"]
    server = pool(responses_reasoning="reason")
    reasoned = _ok(_post(server, reasoning={"effort": "low"}))
    assert [item["type"] for item in reasoned["output"]] == ["reasoning", "message"]
    details = reasoned["usage"]["output_tokens_details"]
    assert details["reasoning_tokens"] > 0
    assert reasoned["usage"]["output_tokens"] == ANSWER_LENGTH + details["reasoning_tokens"]
    assert reasoned["reasoning"]["effort"] == "low"
    assert _error(_post(server, reasoning={"effort": "extreme"}))["param"] == "reasoning.effort"
    _events(_post(server, reasoning={"effort": "low"}, stream=True))


# --------------------------------------------------------------------------- usage and content


def test_usage_switches(pool: Pool) -> None:
    absent = _ok(_post(pool(responses_usage="absent")))
    assert absent["usage"] is None
    zero = _ok(_post(pool(responses_usage="zero")))
    assert zero["usage"]["input_tokens"] == zero["usage"]["output_tokens"] == 0
    basic = _post(pool(responses_usage_details="basic")).json()
    assert set(basic["usage"]) == {"input_tokens", "output_tokens", "total_tokens"}
    assert any("input_tokens_details" in problem for problem in refused(Response, basic))
    events = _events(_post(pool(responses_usage="absent"), stream=True))
    assert events[-1]["response"]["usage"] is None


@pytest.mark.parametrize("mode", ["no_annotations", "text"])
def test_content_part_switch(pool: Pool, mode: str) -> None:
    body = _post(pool(responses_content_part=mode)).json()
    assert refused(Response, body), "the SDK's types refuse the part"


# --------------------------------------------------------------------------- stream variants


def test_stream_events_text_only(pool: Pool) -> None:
    events = _events(_post(pool(responses_stream_events="text_only"), stream=True))
    kinds = {event["type"] for event in events}
    assert kinds == {"response.created", "response.output_text.delta", "response.completed"}
    client = _client(pool(responses_stream_events="text_only"))
    with (
        pytest.raises(RuntimeError, match="before receiving its output item"),
        client.responses.stream(model="toy", input=PROMPT) as stream,
    ):
        stream.get_final_response()


def test_sequence_number_absent(pool: Pool) -> None:
    response = _post(pool(responses_sequence_number="absent"), stream=True)
    for block in response.text.strip().split("\n\n"):
        assert "sequence_number" not in json.loads(block.split("data: ", 1)[1])


def test_stream_framing_switch(pool: Pool) -> None:
    events = _events(
        _post(pool(responses_stream_framing="data_only"), stream=True), event_lines=False
    )
    assert events[-1]["type"] == "response.completed"
    sentinel = _post(pool(responses_stream_framing="done_sentinel"), stream=True)
    assert sentinel.text.endswith("data: [DONE]\n\n")
    client = _client(pool(responses_stream_framing="done_sentinel"))
    streamed = list(client.responses.create(model="toy", input=PROMPT, stream=True))
    assert streamed[-1].type == "response.completed"


# --------------------------------------------------------------------------- fields and errors


def test_unknown_fields_and_stop(pool: Pool) -> None:
    server = pool()
    error = _error(_post(server, frobnicate=1))
    assert (error["param"], error["code"]) == ("frobnicate", "unknown_parameter")
    assert error["message"] == "Unknown parameter: 'frobnicate'."
    assert _error(_post(server, stop=["x"]))["code"] == "unknown_parameter"
    _ok(_post(pool(responses_unknown_field="ignore"), frobnicate=1))
    plain = _text(_ok(_post(server)))
    assert _text(_ok(_post(pool(responses_stop="ignore"), stop=[plain.split()[2]]))) == plain
    cut = _text(_ok(_post(pool(responses_stop="honour"), stop=[plain.split()[2]])))
    assert plain.startswith(cut)
    assert len(cut) < len(plain)


@pytest.mark.parametrize(
    ("envelope", "keys"),
    [
        ("integer_code", {"error"}),
        ("flat", {"object", "message", "type", "param", "code"}),
        ("detail", {"detail"}),
    ],
)
def test_error_envelope_switch(pool: Pool, envelope: str, keys: set[str]) -> None:
    response = _post(pool(responses_error_envelope=envelope), temperature=9)
    assert response.status_code == 400
    assert set(response.json()) == keys


def test_errors_through_the_sdk(server: RunningServer) -> None:
    client = _client(server)
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="toy", input=PROMPT, temperature=3)
    assert bad.value.param == "temperature"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model="toy", input=PROMPT, previous_response_id="resp_x")
    assert unknown.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="other", input=PROMPT)
    keyless = openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        keyless.responses.create(model="toy", input=PROMPT)
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.create(model="toy")
    assert missing.value.param == "input"
