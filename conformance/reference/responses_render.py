"""Rendering for the Responses API: a generated ``Result`` as a Response object, its output
items and usage, or as the typed events of a stream, framed as server-sent events.

The shapes are the official SDK's (``openai.types.responses``): ``Response``, the
``message``, ``function_call`` and ``reasoning`` output items, and the ``response.*`` stream
events with their ``sequence_number``. The ``responses_*`` switches of the output side
(usage, the content part, the function call, the event sequence, the framing) apply here.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.reference import logprobs, model
from conformance.reference.generation import Choice, Result
from conformance.reference.rendering import REASONING_TEXT
from conformance.reference.responses import Turn
from conformance.reference.switches import Switches

Event = dict[str, Any]


def new_id(prefix: str) -> str:
    """A fresh object id: ``resp_...``, ``msg_...``, ``fc_...``, ``rs_...``."""
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Reply:
    """What one response holds once generated: its output items and how it ended."""

    output: list[dict[str, Any]]
    #: Each output item's stream deltas (message text or call arguments), by position.
    pieces: list[tuple[str, ...]]
    incomplete: bool
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int


def _content_part(choice: Choice, switches: Switches) -> dict[str, Any]:
    mode = switches.responses_content_part
    kind = "text" if mode == "text" else "output_text"
    part: dict[str, Any] = {"type": kind, "text": choice.text}
    if mode != "no_annotations":
        part["annotations"] = []
    part["logprobs"] = logprobs.chat_content(choice.logprobs)
    return part


def _message_item(choice: Choice, incomplete: bool, switches: Switches) -> dict[str, Any]:
    return {
        "id": new_id("msg"),
        "type": "message",
        "status": "incomplete" if incomplete else "completed",
        "role": "assistant",
        "content": [_content_part(choice, switches)],
    }


def _event_logprobs(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log probabilities as the text events carry them: the part's, without ``bytes``."""
    return [
        {
            "token": entry["token"],
            "logprob": entry["logprob"],
            "top_logprobs": [
                {"token": top["token"], "logprob": top["logprob"]} for top in entry["top_logprobs"]
            ],
        }
        for entry in entries
    ]


def _piece_logprobs(part: dict[str, Any], count: int) -> list[list[dict[str, Any]]]:
    """Each of ``count`` deltas' log probabilities: one token each, any rest on the last."""
    entries = _event_logprobs(part["logprobs"])
    if not entries:
        return [[] for _ in range(count)]
    return [entries[i:] if i == count - 1 else entries[i : i + 1] for i in range(count)]


def _function_call_items(choice: Choice, switches: Switches) -> list[dict[str, Any]]:
    items = []
    for call in choice.tool_calls:
        arguments: Any = call.arguments
        if switches.responses_function_call == "object_arguments":
            # Cut short by the limit, the arguments are not JSON: sent as the string they are.
            with contextlib.suppress(ValueError):
                arguments = json.loads(str(call.arguments))
        item: dict[str, Any] = {
            "id": new_id("fc"),
            "type": "function_call",
            "status": "completed",
            "call_id": call.id,
            "name": call.name,
            "arguments": arguments,
        }
        if switches.responses_function_call == "missing_call_id":
            del item["call_id"]
        items.append(item)
    return items


def _reasoning_item() -> dict[str, Any]:
    return {
        "id": new_id("rs"),
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": REASONING_TEXT}],
        "status": "completed",
    }


def reply(turn: Turn, result: Result, switches: Switches) -> Reply:
    """The output items of ``result`` and how the response ended."""
    choice = result.choices[0]
    cut = choice.finish_reason == "length"
    # Text ends naturally after ANSWER_LENGTH tokens; only a limit makes it incomplete.
    incomplete = cut and (turn.limited or bool(choice.tool_calls) or bool(choice.call))
    if turn.generation.response_format is not None:
        incomplete = cut
    # The responses_max_output_tokens switch "complete": cut, but reported completed.
    incomplete = incomplete and not turn.hide_incomplete
    output: list[dict[str, Any]] = []
    pieces: list[tuple[str, ...]] = []
    reasoning_tokens = 0
    if turn.reasoning:
        output.append(_reasoning_item())
        pieces.append(())
        reasoning_tokens = model.count_tokens(REASONING_TEXT)
    if choice.tool_calls:
        output += _function_call_items(choice, switches)
        pieces += [call.pieces for call in choice.tool_calls]
    else:
        output.append(_message_item(choice, incomplete, switches))
        pieces.append(choice.pieces)
    return Reply(
        output,
        pieces,
        incomplete,
        result.prompt_tokens,
        result.completion_tokens + reasoning_tokens,
        reasoning_tokens,
    )


def usage(done: Reply, switches: Switches) -> dict[str, Any] | None:
    """The response's usage, as the usage switches have it."""
    if switches.responses_usage == "absent":
        return None
    zero = switches.responses_usage == "zero"
    counts = (0, 0, 0) if zero else (done.input_tokens, done.output_tokens, done.reasoning_tokens)
    body: dict[str, Any] = {
        "input_tokens": counts[0],
        "output_tokens": counts[1],
        "total_tokens": counts[0] + counts[1],
    }
    if switches.responses_usage_details == "detailed":
        body["input_tokens_details"] = {"cached_tokens": 0, "cache_write_tokens": 0}
        body["output_tokens_details"] = {"reasoning_tokens": counts[2]}
    return body


def response_body(
    turn: Turn, ident: str, created: int, done: Reply | None, switches: Switches
) -> dict[str, Any]:
    """The Response object: in progress (``done`` None, no output yet) or finished."""
    status = "in_progress"
    details = None
    if done is not None:
        status = "incomplete" if done.incomplete else "completed"
        if done.incomplete:
            details = {"reason": "max_output_tokens"}
    return {
        "id": ident,
        "object": "response",
        "created_at": created,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": details,
        "output": [] if done is None else done.output,
        "usage": None if done is None else usage(done, switches),
        "background": False,
        "max_tool_calls": None,
        "service_tier": "default",
        "user": None,
        **turn.echo,
    }


def _output_events(index: int, item: dict[str, Any], pieces: Sequence[str]) -> list[Event]:
    """The events that stream output item ``index``: added, its deltas, the .done events."""
    kind = item["type"]
    item_id = item["id"]
    if kind == "function_call":
        opening = {**item, "status": "in_progress", "arguments": ""}
        arguments = item["arguments"]
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        return [
            {"type": "response.output_item.added", "output_index": index, "item": opening},
            *(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item_id,
                    "output_index": index,
                    "delta": piece,
                }
                for piece in pieces
            ),
            {
                "type": "response.function_call_arguments.done",
                "item_id": item_id,
                "output_index": index,
                "arguments": text,
            },
            {"type": "response.output_item.done", "output_index": index, "item": item},
        ]
    if kind != "message":
        return [
            {"type": "response.output_item.added", "output_index": index, "item": item},
            {"type": "response.output_item.done", "output_index": index, "item": item},
        ]
    part = item["content"][0]
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    return [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            **where,
            "part": {**part, "text": "", "logprobs": []},
        },
        *(
            {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": scored}
            for piece, scored in zip(pieces, _piece_logprobs(part, len(pieces)), strict=True)
        ),
        {
            "type": "response.output_text.done",
            **where,
            "text": part["text"],
            "logprobs": _event_logprobs(part["logprobs"]),
        },
        {"type": "response.content_part.done", **where, "part": part},
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def stream_events(
    turn: Turn, ident: str, created: int, done: Reply, switches: Switches
) -> list[Event]:
    """The events of a streamed response, in order, numbered as the switches have them."""
    started = response_body(turn, ident, created, None, switches)
    finished = response_body(turn, ident, created, done, switches)
    end = "response.incomplete" if finished["status"] == "incomplete" else "response.completed"
    events: list[Event] = [{"type": "response.created", "response": started}]
    if switches.responses_stream_events == "full":
        events.append({"type": "response.in_progress", "response": started})
        for index, (item, pieces) in enumerate(zip(done.output, done.pieces, strict=True)):
            events += _output_events(index, item, pieces)
    else:
        events += [
            event
            for index, (item, pieces) in enumerate(zip(done.output, done.pieces, strict=True))
            for event in _output_events(index, item, pieces)
            if event["type"].endswith(".delta")
        ]
    events.append({"type": end, "response": finished})
    for number, event in enumerate(events):
        if switches.responses_sequence_number == "counting":
            event["sequence_number"] = number
    return events


def sse(events: Sequence[Event], switches: Switches) -> AsyncIterator[str]:
    """The events as server-sent events, framed as the framing switch says."""
    framing = switches.responses_stream_framing

    async def frames() -> AsyncIterator[str]:
        for event in events:
            data = json.dumps(event, separators=(",", ":"))
            line = "" if framing == "data_only" else f"event: {event['type']}\n"
            yield f"{line}data: {data}\n\n"
        if framing == "done_sentinel":
            yield "data: [DONE]\n\n"

    return frames()
