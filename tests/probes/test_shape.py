"""Replies against the openai SDK's types: extensions found by path, violations by place."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conformance.probes import shape
from conformance.spec import Api


def chat_body(**extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        **extra,
    }


def completion_chunk(finish: str | None) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "text": "a", "logprobs": None, "finish_reason": finish}],
    }


def test_an_openai_reply_has_no_extension_and_no_violation() -> None:
    checked = shape.check(Api.CHAT, [chat_body()], chunks=False)
    assert checked.type == "ChatCompletion"
    assert checked.extensions == []
    assert checked.violations == []


def test_extensions_are_found_at_every_depth_and_named_once_per_path() -> None:
    body = chat_body(kv_transfer_params=None)
    body["choices"].append(copy.deepcopy(body["choices"][0]) | {"index": 1})
    for choice in body["choices"]:
        choice["stop_reason"] = None
        choice["message"]["reasoning_content"] = "thinking"
    body["usage"]["prompt_tokens_details"] = {"cached_tokens": 0, "cache_misses": 1}
    checked = shape.check(Api.CHAT, [body], chunks=False)
    assert checked.extensions == [
        "choices[].message.reasoning_content",
        "choices[].stop_reason",
        "kv_transfer_params",
        "usage.prompt_tokens_details.cache_misses",
    ]
    assert checked.violations == []


def test_a_missing_field_and_a_wrong_type_are_violations_with_their_place() -> None:
    body = chat_body()
    del body["model"]
    body["created"] = "2026-12-01T00:00:00Z"
    checked = shape.check(Api.CHAT, [body], chunks=False)
    assert any(v.startswith("created:") for v in checked.violations), checked.violations
    assert any(v.startswith("model:") for v in checked.violations), checked.violations


def test_a_finish_reason_outside_openais_enum_is_a_violation() -> None:
    body = chat_body()
    body["choices"][0]["finish_reason"] = "eos"
    checked = shape.check(Api.CHAT, [body], chunks=False)
    assert [v.split(":")[0] for v in checked.violations] == ["choices[0].finish_reason"]


def test_streamed_completions_may_carry_a_null_finish_reason_until_the_end() -> None:
    chunks = [completion_chunk(None), completion_chunk("length")]
    checked = shape.check(Api.COMPLETIONS, chunks, chunks=True)
    assert checked.type == "CompletionChunk"
    assert checked.violations == []
    # ...but a non-streamed completion must say why it ended.
    assert shape.check(Api.COMPLETIONS, [completion_chunk(None)], chunks=False).violations


def test_violations_name_their_chunk_and_are_not_repeated() -> None:
    chunk = completion_chunk(None)
    del chunk["created"]
    checked = shape.check(Api.COMPLETIONS, [chunk, chunk], chunks=True)
    assert checked.violations == [
        "chunk 0: created: Field required",
        "chunk 1: created: Field required",
    ]


def test_tool_calls_descend_into_the_union_member_that_fits() -> None:
    body = chat_body()
    body["choices"][0]["message"]["tool_calls"] = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "f", "arguments": "{}", "strict": True},
        }
    ]
    checked = shape.check(Api.CHAT, [body], chunks=False)
    assert checked.extensions == ["choices[].message.tool_calls[].function.strict"]


_KEY = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12).map(
    lambda name: "zz_" + name
)
_VALUE = st.none() | st.integers() | st.text(max_size=5) | st.dictionaries(_KEY, st.integers())
_PLACES = st.sampled_from(["", "choices", "message", "usage"])


@given(key=_KEY, value=_VALUE, place=_PLACES)
def test_any_undeclared_key_anywhere_is_reported_at_exactly_its_path(
    key: str, value: Any, place: str
) -> None:
    body = chat_body()
    holder, path = {
        "": (body, key),
        "choices": (body["choices"][0], f"choices[].{key}"),
        "message": (body["choices"][0]["message"], f"choices[].message.{key}"),
        "usage": (body["usage"], f"usage.{key}"),
    }[place]
    holder[key] = value
    checked = shape.check(Api.CHAT, [body], chunks=False)
    assert checked.extensions == [path]
    assert checked.violations == []
