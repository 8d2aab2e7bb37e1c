"""A strict reader for the server-sent events of an OpenAI-style stream.

The SDK's own stream parser hides comments, `event:` lines and framing mistakes; a
conformance suite needs to see them, so streams are read line by line here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance.observation import clip

DONE = "[DONE]"
#: How much of a payload an error message quotes.
QUOTE = 120


class SseError(ValueError):
    """The stream is not a well-formed OpenAI event stream."""


@dataclass
class SseStream:
    """The events of one stream, in order, and what framed them."""

    chunks: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    comments: int = 0
    event_names: list[str] = field(default_factory=list)
    #: ``data: null`` events: no chunk, but some servers send them between two prompts' streams.
    nulls: int = 0
    #: The first error event (``{"error": ...}`` without choices, or ``event: error``): the
    #: server failed after its 200.
    error: dict[str, Any] | None = None


def parse(lines: Iterable[str]) -> SseStream:
    """Parse SSE lines (without line terminators) into JSON chunks.

    Comment lines (``:``) and ``data: null`` events are counted and tolerated; an error
    event is kept in ``error`` for the client to judge. A ``data:`` payload that is not a
    JSON object, or data after ``[DONE]``, raises SseError.
    """
    stream = SseStream()
    data: list[str] = []
    name = ""

    def dispatch() -> None:
        nonlocal name
        event, name = name, ""
        if not data:
            return
        payload = "\n".join(data)
        data.clear()
        if stream.done:
            raise SseError(f"data after [DONE]: {clip(payload, QUOTE)!r}")
        if payload.strip() == DONE:
            stream.done = True
            return
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise SseError(
                f"a data line is not JSON ({exc.msg}): {clip(payload, QUOTE)!r}"
            ) from None
        if chunk is None:
            stream.nulls += 1
            return
        if not isinstance(chunk, dict):
            raise SseError(f"a data line is JSON but not an object: {clip(payload, QUOTE)!r}")
        if event == "error" or ("error" in chunk and "choices" not in chunk):
            if stream.error is None:
                stream.error = chunk
            return
        stream.chunks.append(chunk)

    for line in lines:
        if line == "":
            dispatch()
        elif line.startswith(":"):
            stream.comments += 1
        else:
            field_name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field_name == "data":
                data.append(value)
            elif field_name == "event":
                stream.event_names.append(value)
                name = value
            # "id" and "retry" carry nothing an OpenAI stream uses; other names are ignored per spec.
    dispatch()
    return stream
