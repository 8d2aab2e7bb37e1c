"""Rendering: a ``Result`` as OpenAI's reply, a JSON body or the chunks of a stream.

``render_body`` and ``render_chunks`` give OpenAI's shapes, with usage where the
stream-usage switches put it; ``shaped`` then applies the response switches (an extension
field, a ``created`` of the wrong type). ``streaming`` changes what the stream switches
change in the chunks and frames them as SSE.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conformance import __version__
from conformance.reference import logprobs
from conformance.reference.generation import Choice, Result, ToolCall
from conformance.reference.planning import Plan
from conformance.reference.switches import Switches

if TYPE_CHECKING:
    from conformance.reference.server import ServerConfig

#: The ``server`` header of every response.
SERVER_HEADER = f"conformance-reference/{__version__}"
#: What the toy model "thinks" when the reasoning_effort switch makes it show reasoning.
REASONING_TEXT = "The prompt names a place; the walk goes on from its last word."


def fingerprint(config: ServerConfig) -> str:
    settings = json.dumps(
        [config.switches.model_dump(), config.context_window, config.max_output_tokens],
        sort_keys=True,
    )
    return "fp_" + hashlib.sha256(settings.encode()).hexdigest()[:10]


def _envelope(
    p: Plan, ident: str, created: int, fingerprint: str, *, chunk: bool
) -> dict[str, Any]:
    if p.api == "chat":
        kind = "chat.completion.chunk" if chunk else "chat.completion"
    else:
        kind = "text_completion"
    return {
        "id": ident,
        "object": kind,
        "created": created,
        "model": p.model_name,
        "system_fingerprint": fingerprint,
    }


def _tool_call_body(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _message(choice: Choice, reasoning: bool) -> dict[str, Any]:
    if choice.tool_calls:
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [_tool_call_body(call) for call in choice.tool_calls],
            "refusal": None,
        }
    if choice.call is not None:
        return {
            "role": "assistant",
            "content": None,
            "function_call": {"name": choice.call, "arguments": choice.text},
            "refusal": None,
        }
    message: dict[str, Any] = {"role": "assistant", "content": choice.text, "refusal": None}
    if reasoning:
        message["reasoning_content"] = REASONING_TEXT
    return message


def _logprobs_object(p: Plan, choice: Choice) -> dict[str, Any] | None:
    if p.logprobs_request is None or choice.call is not None:
        return None
    return logprobs.render(p.logprobs_request.shape, choice.logprobs, len(choice.echo))


def _piece_logprobs(p: Plan, choice: Choice) -> list[dict[str, Any] | None]:
    """The ``logprobs`` of each streamed piece: one token per piece, any rest on the last."""
    if p.logprobs_request is None or not choice.pieces:
        return [None] * len(choice.pieces)
    shape = p.logprobs_request.shape
    entries = choice.logprobs
    last = len(choice.pieces) - 1
    rendered: list[dict[str, Any] | None] = []
    offset = len(choice.echo)
    for position, piece in enumerate(choice.pieces):
        mine = entries[position:] if position == last else entries[position : position + 1]
        rendered.append(logprobs.render(shape, mine, offset))
        offset += len(piece)
    return rendered


def _stop_metadata(p: Plan, choice: Choice) -> dict[str, Any]:
    """vLLM's per-choice ``stop_reason`` when the switch asks for it (the matched string),
    at the top of the choice or nested in an extension object."""
    if p.stop_metadata == "present":
        return {"stop_reason": choice.stop_match}
    if p.stop_metadata == "nested":
        return {"provider_specific_fields": {"stop_reason": choice.stop_match}}
    return {}


def render_body(
    p: Plan, result: Result, ident: str, created: int, fingerprint: str
) -> dict[str, Any]:
    """The JSON body of a non-streamed reply."""
    body = _envelope(p, ident, created, fingerprint, chunk=False)
    if p.api == "chat":
        body["choices"] = [
            {
                "index": c.index,
                "message": _message(c, p.reasoning),
                "logprobs": _logprobs_object(p, c),
                "finish_reason": c.finish_reason,
                **_stop_metadata(p, c),
            }
            for c in result.choices
        ]
    else:
        body["choices"] = [
            {
                "index": c.index,
                "text": c.text,
                "logprobs": _logprobs_object(p, c),
                "finish_reason": c.finish_reason,
                **_stop_metadata(p, c),
            }
            for c in result.choices
        ]
        if p.reasoning:
            for choice in body["choices"]:
                choice["reasoning_content"] = REASONING_TEXT
    body["usage"] = result.usage()
    return body


@dataclass
class _Event:
    """One stream chunk's choice, before the envelope and usage are added."""

    choice: dict[str, Any]
    index: int
    finish_tokens: int | None = None  # set on a finish chunk: the choice's exact token count


def _choice_events(p: Plan, c: Choice) -> list[_Event]:
    def chat(
        delta: dict[str, Any], finish: str | None = None, scored: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"index": c.index, "delta": delta, "logprobs": scored, "finish_reason": finish}

    def text(
        piece: str, finish: str | None = None, scored: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"index": c.index, "text": piece, "logprobs": scored, "finish_reason": finish}

    scored_pieces = list(zip(c.pieces, _piece_logprobs(p, c), strict=True))

    events: list[_Event] = []
    if p.api == "chat":
        if c.call is not None:
            first = {
                "role": "assistant",
                "content": None,
                "function_call": {"name": c.call, "arguments": ""},
            }
            events.append(_Event(chat(first), c.index))
            events += [_Event(chat({"function_call": {"arguments": s}}), c.index) for s in c.pieces]
        elif c.tool_calls:
            events += _tool_call_events(c, chat)
        else:
            opening: dict[str, Any] = {"role": "assistant", "content": ""}
            if p.reasoning:
                opening["reasoning_content"] = REASONING_TEXT
            events.append(_Event(chat(opening), c.index))
            events += [_Event(chat({"content": s}, None, lp), c.index) for s, lp in scored_pieces]
        events.append(
            _Event({**chat({}, c.finish_reason), **_stop_metadata(p, c)}, c.index, c.tokens)
        )
    else:
        if c.echo:
            events.append(_Event(text(c.echo), c.index))
        events += [_Event(text(s, None, lp), c.index) for s, lp in scored_pieces]
        events.append(
            _Event({**text("", c.finish_reason), **_stop_metadata(p, c)}, c.index, c.tokens)
        )
        if p.reasoning:
            events[0].choice["reasoning_content"] = REASONING_TEXT
    return events


def _tool_call_events(c: Choice, chat: Callable[[dict[str, Any]], dict[str, Any]]) -> list[_Event]:
    """OpenAI's tool-call deltas: each call opens with its id, type and name (and, sent as an
    object, its arguments), then its argument text follows one token per chunk."""
    events: list[_Event] = []
    for position, call in enumerate(c.tool_calls):
        opening = _tool_call_body(call)
        if call.pieces or not isinstance(call.arguments, dict):
            opening["function"]["arguments"] = ""
        delta: dict[str, Any] = {"tool_calls": [{"index": position, **opening}]}
        if position == 0:
            delta = {"role": "assistant", "content": None, **delta}
        events.append(_Event(chat(delta), c.index))
        events += [
            _Event(
                chat({"tool_calls": [{"index": position, "function": {"arguments": piece}}]}),
                c.index,
            )
            for piece in call.pieces
        ]
    return events


def render_chunks(
    p: Plan, result: Result, ident: str, created: int, fingerprint: str
) -> list[dict[str, Any]]:
    """The chunks of a streamed reply, one token each, with usage where the switches put it."""
    per_choice = [_choice_events(p, c) for c in result.choices]
    # Choices are interleaved position by position, as a batched server sends them.
    events = [
        lane[position]
        for position in range(max(len(lane) for lane in per_choice))
        for lane in per_choice
        if position < len(lane)
    ]
    placement = p.usage_placement
    last_finish = max(i for i, event in enumerate(events) if event.finish_tokens is not None)
    done = dict.fromkeys((c.index for c in result.choices), 0)
    chunks: list[dict[str, Any]] = []
    for position, event in enumerate(events):
        chunk = _envelope(p, ident, created, fingerprint, chunk=True)
        chunk["choices"] = [event.choice]
        # Running count for every_chunk: a content chunk is one token, a finish chunk exact.
        if event.finish_tokens is not None:
            done[event.index] = event.finish_tokens
        elif "role" not in event.choice.get("delta", {}):
            done[event.index] += 1
        if placement == "every_chunk":
            chunk["usage"] = result.usage(min(sum(done.values()), result.completion_tokens))
            if position == last_finish:
                chunk["usage"] = result.usage()
        elif placement == "finish_chunk" and position == last_finish:
            chunk["usage"] = result.usage()
        elif placement == "extra_chunk":
            chunk["usage"] = None  # OpenAI: every other chunk carries usage: null
        chunks.append(chunk)
    if placement in ("extra_chunk", "extra_chunk_with_choices"):
        extra = _envelope(p, ident, created, fingerprint, chunk=True)
        extra["choices"] = []
        if placement == "extra_chunk_with_choices":
            empty: dict[str, Any] = {"delta": {}} if p.api == "chat" else {"text": ""}
            extra["choices"] = [{"index": 0, **empty, "logprobs": None, "finish_reason": None}]
        extra["usage"] = result.usage()
        chunks.append(extra)
    return chunks


def shaped(item: dict[str, Any], switches: Switches) -> dict[str, Any]:
    """A reply object as the response switches have it: with an extension field, with
    ``created`` in a type OpenAI's response types refuse, or its choices labelled as the
    n, prompt_list and finish_chunks switches say."""
    if switches.response_extensions == "present":
        item["x_reference"] = {"server": SERVER_HEADER}
    if switches.response_schema == "invalid":
        item["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item["created"]))
    merged = switches.n == "merged" or switches.prompt_list == "merged"
    for choice in item.get("choices") or []:
        if choice.get("index", 0) > 0 and switches.finish_chunks == "first_choice":
            choice["finish_reason"] = None
        if merged:
            choice["index"] = 0
    return item
