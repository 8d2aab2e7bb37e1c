"""The reference server's tools, response_format and message checks, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)

from conformance.probes.response_format import is_object_prefix, schema_errors
from conformance.reference import model
from conformance.reference.server import RunningServer
from tests.reference._pool import Pool, server_pool

PROMPT = "What is the weather in Lisbon? Reply in JSON."


def _tool(name: str, parameter: str, values: list[str]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {parameter: {"type": "string", "enum": values}},
        "required": [parameter],
        "additionalProperties": False,
    }
    return {"type": "function", "function": {"name": name, "parameters": schema}}


WEATHER = _tool("get_weather", "unit", ["celsius", "fahrenheit"])
TIME = _tool("get_time", "zone", ["utc", "local"])
TOOLS = [WEATHER, TIME]
COLOUR = {
    "type": "object",
    "properties": {"color": {"type": "string", "enum": ["octarine", "smaragdine"]}},
    "required": ["color"],
    "additionalProperties": False,
}
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "c", "strict": True, "schema": COLOUR},
}


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """Servers by switch settings, started once per module."""
    with server_pool() as get:
        yield get


def _post(server: RunningServer, **fields: Any) -> httpx2.Response:
    body = {
        "model": "toy",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 48,
        "temperature": 0,
        **fields,
    }
    return httpx2.post(server.base_url + "/chat/completions", json=body, timeout=10)


def _choice(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    choice: dict[str, Any] = response.json()["choices"][0]
    return choice


def _chunks(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    lines = [line for line in response.text.split("\n") if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def _error(response: httpx2.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _streamed_calls(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls joined from their deltas, as a client joins them."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for part in chunk["choices"][0]["delta"].get("tool_calls") or []:
            call = calls.setdefault(part["index"], {"arguments": ""})
            call.update({k: part[k] for k in ("id", "type") if k in part})
            function = part.get("function", {})
            if "name" in function:
                call["name"] = function["name"]
            if isinstance(function.get("arguments"), dict):
                call["arguments"] = function["arguments"]
            else:
                call["arguments"] += function.get("arguments", "")
    return [calls[index] for index in sorted(calls)]


def _names(choice: dict[str, Any]) -> list[str]:
    return [call["function"]["name"] for call in choice["message"].get("tool_calls") or []]


# --------------------------------------------------------------------------- tool_choice


def test_required_calls_every_tool_through_the_sdk(pool: Pool) -> None:
    client = openai.OpenAI(base_url=pool().base_url, api_key="k", max_retries=0)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]
    reply = client.chat.completions.create(
        model="toy",
        messages=messages,
        tools=cast("list[ChatCompletionFunctionToolParam]", TOOLS),
        tool_choice="required",
        max_tokens=48,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = [
        call
        for call in choice.message.tool_calls or []
        if isinstance(call, ChatCompletionMessageFunctionToolCall)
    ]
    assert [call.function.name for call in calls] == ["get_weather", "get_time"]
    assert len({call.id for call in calls}) == 2
    assert [json.loads(call.function.arguments) for call in calls] == [
        {"unit": "celsius"},
        {"zone": "utc"},
    ]
    assert reply.usage is not None
    spent = sum(model.count_tokens(call.function.arguments) for call in calls)
    assert reply.usage.completion_tokens == spent


def test_streamed_calls_match_the_body(pool: Pool) -> None:
    body = _choice(_post(pool(), tools=TOOLS, tool_choice="required"))
    chunks = _chunks(_post(pool(), tools=TOOLS, tool_choice="required", stream=True))
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant"
    assert first["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    joined = _streamed_calls(chunks)
    assert joined == [
        {"id": c["id"], "type": "function", "name": c["function"]["name"], **c["function"]}
        for c in body["message"]["tool_calls"]
    ]


def test_auto_and_no_choice_never_call(pool: Pool) -> None:
    plain = _choice(_post(pool(), tools=TOOLS))
    auto = _choice(_post(pool(), tools=TOOLS, tool_choice="auto"))
    assert plain == auto
    assert plain["finish_reason"] == "length"
    assert "tool_calls" not in plain["message"]


@pytest.mark.parametrize(
    ("settings", "choice", "called"),
    [
        ({}, "required", ["get_weather", "get_time"]),
        ({"tool_choice_required": "ignore"}, "required", []),
        ({}, {"type": "function", "function": {"name": "get_time"}}, ["get_time"]),
        (
            {"tool_choice_named": "wrong_tool"},
            {"type": "function", "function": {"name": "get_time"}},
            ["get_weather"],
        ),
        (
            {"tool_choice_named": "ignore"},
            {"type": "function", "function": {"name": "get_time"}},
            [],
        ),
        ({}, "none", []),
        ({"tool_choice_none": "force"}, "none", ["get_weather", "get_time"]),
    ],
)
def test_tool_choice_switches(
    pool: Pool, settings: dict[str, str], choice: Any, called: list[str]
) -> None:
    reply = _choice(_post(pool(**settings), tools=TOOLS, tool_choice=choice))
    assert _names(reply) == called
    assert reply["finish_reason"] == ("tool_calls" if called else "length")


@pytest.mark.parametrize(
    ("switch", "choice"),
    [
        ("tool_choice_required", "required"),
        ("tool_choice_none", "none"),
        ("tool_choice_named", {"type": "function", "function": {"name": "get_time"}}),
    ],
)
def test_tool_choice_rejections(pool: Pool, switch: str, choice: Any) -> None:
    assert _error(_post(pool(**{switch: "reject"}), tools=TOOLS, tool_choice=choice))["param"] == (
        "tool_choice"
    )
    # Other tool_choice values still work.
    assert _post(pool(**{switch: "reject"}), tools=TOOLS, tool_choice="auto").status_code == 200


def test_parallel_tool_calls(pool: Pool) -> None:
    one = _choice(_post(pool(), tools=TOOLS, tool_choice="required", parallel_tool_calls=False))
    assert _names(one) == ["get_weather"]
    allowed = _post(pool(), tools=TOOLS, tool_choice="required", parallel_tool_calls=True)
    assert _names(_choice(allowed)) == ["get_weather", "get_time"]
    ignored = _post(
        pool(parallel_tool_calls="ignore"),
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
    )
    assert _names(_choice(ignored)) == ["get_weather", "get_time"]
    refused = _post(pool(parallel_tool_calls="reject"), tools=TOOLS, parallel_tool_calls=True)
    assert _error(refused)["param"] == "parallel_tool_calls"
    assert _error(_post(pool(), tools=TOOLS, parallel_tool_calls="no"))["code"] == "invalid_type"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": []}, "tools"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
    ],
)
def test_invalid_tools_are_400(pool: Pool, fields: dict[str, Any], param: str) -> None:
    assert _error(_post(pool(), **fields))["param"] == param


@pytest.mark.parametrize("stream", [False, True])
def test_arguments_formats(pool: Pool, stream: bool) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    found = {}
    for kind in ("json_string", "object", "invalid_json"):
        response = _post(pool(tool_arguments=kind), tools=TOOLS, tool_choice=named, stream=stream)
        if stream:
            found[kind] = _streamed_calls(_chunks(response))[0]["arguments"]
        else:
            found[kind] = _choice(response)["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(found["json_string"]) == {"unit": "celsius"}
    assert found["object"] == {"unit": "celsius"}
    assert isinstance(found["invalid_json"], str)
    with pytest.raises(json.JSONDecodeError):
        json.loads(found["invalid_json"])


@settings(max_examples=25, deadline=None)
@given(max_tokens=st.integers(min_value=1, max_value=14), stream=st.booleans())
def test_calls_share_max_tokens(pool: Pool, max_tokens: int, stream: bool) -> None:
    """Arguments are cut where max_tokens runs out, streamed or not, and usage counts them."""
    fields = {"tools": TOOLS, "tool_choice": "required", "max_tokens": max_tokens}
    whole = _choice(_post(pool(), **{**fields, "max_tokens": 48}))["message"]["tool_calls"]
    full = "".join(call["function"]["arguments"] for call in whole)
    response = _post(pool(), **fields, stream=stream)
    if stream:
        chunks = _chunks(response)
        arguments = [call["arguments"] for call in _streamed_calls(chunks)]
        finish = chunks[-1]["choices"][0]["finish_reason"]
    else:
        choice = _choice(response)
        arguments = [call["function"]["arguments"] for call in choice["message"]["tool_calls"]]
        finish = choice["finish_reason"]
        assert response.json()["usage"]["completion_tokens"] == sum(
            model.count_tokens(text) for text in arguments
        )
    joined = "".join(arguments)
    assert full.startswith(joined)
    assert (finish == "length") is (joined != full)


# --------------------------------------------------------------------------- response_format


@pytest.mark.parametrize("stream", [False, True])
def test_json_mode(pool: Pool, stream: bool) -> None:
    def content(server: RunningServer, **fields: Any) -> str:
        response = _post(server, stream=stream, **fields)
        if stream:
            return "".join(c["choices"][0]["delta"].get("content") or "" for c in _chunks(response))
        return str(_choice(response)["message"]["content"])

    json_mode = {"response_format": {"type": "json_object"}}
    assert isinstance(json.loads(content(pool(), **json_mode)), dict)
    ignored = pool(response_format_json_object="ignore")
    assert content(ignored, **json_mode) == content(ignored)
    assert not is_object_prefix(content(ignored))
    text = {"response_format": {"type": "text"}}
    assert content(pool(), **text) == content(pool())


def test_json_mode_needs_json_in_the_messages_and_can_be_refused(pool: Pool) -> None:
    no_json = [{"role": "user", "content": "Describe the harbour"}]
    refused = _post(pool(), messages=no_json, response_format={"type": "json_object"})
    assert "json" in _error(refused)["message"]
    rejected = _post(
        pool(response_format_json_object="reject"), response_format={"type": "json_object"}
    )
    assert _error(rejected)["code"] == "unsupported_value"


def test_json_schema_modes(pool: Pool) -> None:
    def content(**switches: str) -> tuple[str, str]:
        choice = _choice(_post(pool(**switches), response_format=JSON_SCHEMA))
        return str(choice["message"]["content"]), str(choice["finish_reason"])

    honoured, finish = content()
    assert json.loads(honoured) == {"color": "octarine"}
    assert finish == "stop"
    assert schema_errors(json.loads(honoured), COLOUR) == []
    json_only, _ = content(response_format_json_schema="json_only")
    assert isinstance(json.loads(json_only), dict)
    assert schema_errors(json.loads(json_only), COLOUR)
    cut_off, finish = content(response_format_json_schema="cut_off")
    assert cut_off.startswith('{"color"')
    assert is_object_prefix(cut_off)
    assert finish == "length"
    ignored, _ = content(response_format_json_schema="ignore")
    assert not is_object_prefix(ignored)
    rejected = _post(pool(response_format_json_schema="reject"), response_format=JSON_SCHEMA)
    assert _error(rejected)["code"] == "unsupported_value"
    failed = _post(pool(response_format_json_schema="fail"), response_format=JSON_SCHEMA)
    assert _error(failed, 500)["type"] == "server_error"
    nameless = {"type": "json_schema", "json_schema": {"schema": COLOUR}}
    assert _error(_post(pool(), response_format=nameless))["code"] == "missing_required_parameter"
    assert _error(_post(pool(), response_format={"type": "yaml"}))["param"] == (
        "response_format.type"
    )


# --------------------------------------------------------------------------- messages


def test_message_name_and_developer_role(pool: Pool) -> None:
    named = [{"role": "user", "content": "Say alpha", "name": "harbour_master"}]
    developer = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert _post(pool(), messages=named).status_code == 200
    assert _post(pool(), messages=developer).status_code == 200
    assert _error(_post(pool(message_name="reject"), messages=named))["param"] == "messages[0].name"
    assert _error(_post(pool(message_name="fail"), messages=named), 500)["type"] == "server_error"
    assert _error(_post(pool(developer_role="reject"), messages=developer))["param"] == (
        "messages[0].role"
    )
    assert _error(_post(pool(developer_role="fail"), messages=developer), 500)
    # The switches touch only what they are about.
    assert _post(pool(message_name="reject"), messages=developer).status_code == 200
    assert _post(pool(developer_role="reject"), messages=named).status_code == 200
    not_text = [{"role": "user", "content": "Hi", "name": 7}]
    assert _error(_post(pool(), messages=not_text))["code"] == "invalid_type"


def test_tool_messages_are_part_of_the_prompt(pool: Pool) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    history: list[dict[str, Any]] = [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    reply = _post(pool(), messages=history, tools=TOOLS, max_tokens=1)
    expected = model.render_chat(history, None, [WEATHER["function"], TIME["function"]])
    assert reply.json()["usage"]["prompt_tokens"] == model.count_tokens(expected)
    assert "get_weather(unit)" in expected
