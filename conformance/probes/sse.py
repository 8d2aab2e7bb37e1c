"""A strict reader for the server-sent events of an OpenAI-style stream.

The SDK's own stream parser hides comments, `event:` lines and framing mistakes; a
conformance suite needs to see them, so streams are read line by line here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DONE = "[DONE]"


class SseError(ValueError):
    """The stream is not a well-formed OpenAI event stream."""


@dataclass
class SseStream:
    """The events of one stream, in order, and what framed them."""

    chunks: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    comments: int = 0
    event_names: list[str] = field(default_factory=list)


def parse(lines: Iterable[str]) -> SseStream:
    """Parse SSE lines (without line terminators) into JSON chunks.

    Comment lines (``:``) are counted and tolerated, as a correct client must. A ``data:``
    payload that is not JSON, data after ``[DONE]``, or an ``error`` event raises SseError.
    """
    stream = SseStream()
    data: list[str] = []

    def dispatch() -> None:
        if not data:
            return
        payload = "\n".join(data)
        data.clear()
        if stream.done:
            raise SseError(f"data after [DONE]: {payload[:120]!r}")
        if payload.strip() == DONE:
            stream.done = True
            return
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise SseError(f"a data line is not JSON ({exc.msg}): {payload[:120]!r}") from None
        if not isinstance(chunk, dict):
            raise SseError(f"a data line is JSON but not an object: {payload[:120]!r}")
        if "error" in chunk and "choices" not in chunk:
            raise SseError(f"the stream carried an error event: {payload[:200]}")
        stream.chunks.append(chunk)

    for line in lines:
        if line == "":
            dispatch()
        elif line.startswith(":"):
            stream.comments += 1
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                stream.event_names.append(value)
            # "id" and "retry" carry nothing an OpenAI stream uses; other names are ignored per spec.
    dispatch()
    return stream
