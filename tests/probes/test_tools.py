"""The tool probes: reading calls (streamed deltas too), classifying arguments, and the
decisions the reference server never makes them take."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.observation import Exchange, NotApplicable, RequestRecord
from conformance.probes import sse
from conformance.probes.client import Reply
from conformance.probes.tools import (
    ToolCall,
    arguments_format,
    parallel_tool_calls,
    tool_arguments,
    tool_calls,
    tool_choice_named,
    tool_choice_none,
)
from tests.probes._fake import completion, context, refusal, tool_call

_EXCHANGE = Exchange(
    label="x", request=RequestRecord(method="POST", url="http://x", headers={}, body=None)
)


def _streamed(deltas: list[dict[str, Any]]) -> Reply:
    chunks = [{"choices": [{"index": 0, "delta": delta}]} for delta in deltas]
    return Reply(200, _EXCHANGE, stream=sse.SseStream(chunks=chunks, done=True))


def _replied(message: dict[str, Any]) -> Reply:
    return Reply(200, _EXCHANGE, body={"choices": [{"index": 0, "message": message}]})


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({cut % (len(text) + 1) for cut in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


names = st.sampled_from(["get_weather", "get_time", "look_up"])
arguments = st.dictionaries(st.text(max_size=4), st.text(max_size=6), max_size=3).map(json.dumps)


@given(st.lists(st.tuples(names, arguments, st.lists(st.integers(0), max_size=4)), max_size=3))
def test_streamed_calls_join_their_fragments_by_index(
    calls: list[tuple[str, str, list[int]]],
) -> None:
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None}]
    for index, (name, text, cuts) in enumerate(calls):
        opening = {"index": index, "id": f"c{index}", "type": "function"}
        deltas.append({"tool_calls": [{**opening, "function": {"name": name, "arguments": ""}}]})
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": part}}]}
            for part in _split(text, cuts)
        ]
    assert tool_calls(_streamed(deltas)) == [ToolCall(name, text) for name, text, _ in calls]


def test_streamed_calls_without_an_index_are_told_apart_by_id() -> None:
    whole: list[dict[str, Any]] = [
        {"tool_calls": [{"id": "a", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"tool_calls": [{"id": "b", "function": {"name": "get_time", "arguments": "{"}}]},
        {"tool_calls": [{"function": {"arguments": "}"}}]},
    ]
    assert tool_calls(_streamed(whole)) == [
        ToolCall("get_weather", "{}"),
        ToolCall("get_time", "{}"),
    ]


def test_an_object_in_a_stream_stays_an_object() -> None:
    deltas = [{"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": {"a": 1}}}]}]
    assert tool_calls(_streamed(deltas)) == [ToolCall("f", {"a": 1})]


def test_calls_of_a_message() -> None:
    assert tool_calls(_replied({"content": "hi"})) == []
    assert tool_calls(_replied({"content": "hi", "tool_calls": []})) == []
    message = {"tool_calls": [tool_call("f", '{"a": 1}'), {"type": "function"}, "junk"]}
    assert tool_calls(_replied(message)) == [ToolCall("f", '{"a": 1}'), ToolCall(None, None)]


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3))
def test_arguments_of_an_object(value: dict[str, Any]) -> None:
    assert arguments_format(json.dumps(value)) == "json_string"
    assert arguments_format(value) == "object"


@pytest.mark.parametrize(
    "value", ["{'unit': 'celsius'}", '{"unit": ', "[1]", '"{}"', "", None, 3, ["a"]]
)
def test_arguments_that_are_no_json_object_text(value: Any) -> None:
    assert arguments_format(value) == "invalid_json"


def test_parallel_refusal_is_put_down_to_the_option_only_without_it_accepted() -> None:
    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "parallel_tool_calls" in body:
            return refusal(code="unsupported_parameter")
        return completion(None, finish_reason="tool_calls", tool_calls=[tool_call("get_time")])

    ctx, sent = context("tools.parallel_tool_calls", answer)
    observation = parallel_tool_calls(ctx)
    assert observation.outcome == "rejected"
    assert [("parallel_tool_calls" in body) for body in sent] == [True, False]


def test_parallel_is_not_applicable_when_required_itself_is_refused() -> None:
    ctx, _ = context("tools.parallel_tool_calls", lambda body: refusal())
    with pytest.raises(NotApplicable, match="with or without"):
        parallel_tool_calls(ctx)


def test_parallel_is_not_applicable_without_a_call() -> None:
    ctx, _ = context("tools.parallel_tool_calls", lambda body: completion("text"))
    with pytest.raises(NotApplicable, match="no tool call"):
        parallel_tool_calls(ctx)


@pytest.mark.parametrize(
    "answer",
    [lambda body: refusal(), lambda body: completion("no call")],
    ids=["refused", "no call"],
)
def test_arguments_need_a_call(answer: Any) -> None:
    ctx, _ = context("tools.arguments_format", answer)
    with pytest.raises(NotApplicable, match="no arguments"):
        tool_arguments(ctx)


def test_a_named_choice_with_another_call_beside_it_is_wrong_tool() -> None:
    calls = [tool_call("get_time"), tool_call("get_weather")]
    ctx, sent = context(
        "tools.tool_choice_named",
        lambda body: completion(None, finish_reason="tool_calls", tool_calls=calls),
    )
    assert tool_choice_named(ctx).outcome == "wrong_tool"
    assert sent[0]["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


def test_tool_choice_none_sends_the_tools() -> None:
    ctx, sent = context("tools.tool_choice_none", lambda body: completion("text"))
    assert tool_choice_none(ctx).outcome == "honoured"
    assert sent[0]["tool_choice"] == "none"
    assert [tool["function"]["name"] for tool in sent[0]["tools"]] == ["get_weather", "get_time"]
