"""A strict reader for the server-sent events of an OpenAI-style stream.

The SDK's own stream parser hides comments, `event:` lines and framing mistakes; a
conformance suite needs to see them, so streams are split into lines (``read_lines``) and
parsed (``parse``) here.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
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


def read_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of an event stream arriving in ``chunks`` split anywhere, as UTF-8 text.

    Only CRLF, LF and CR end a line, as the SSE format says: a generic line splitter also
    breaks at U+0085, U+2028 and the like, which JSON may carry raw inside a string. Each
    piece of text is scanned once, so a line of megabytes without a newline costs what
    reading it costs.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending: list[str] = []  # the start of a line not ended yet, in pieces
    held = ""  # a CR at the end of a piece: perhaps the first half of a CRLF
    first = True
    for chunk in _then_none(chunks):
        final = chunk is None
        text = held + decoder.decode(chunk or b"", final=final)
        held = ""
        if first and text:
            text = text.removeprefix("\ufeff")  # one leading BOM is not part of the stream
            first = False
        if text.endswith("\r") and not final:
            text, held = text[:-1], "\r"
        start = 0
        for match in _LINE_END.finditer(text):
            yield "".join([*pending, text[start : match.start()]])
            pending.clear()
            start = match.end()
        if start < len(text):
            pending.append(text[start:])
    if pending:
        yield "".join(pending)


def _then_none(chunks: Iterable[bytes]) -> Iterator[bytes | None]:
    yield from chunks
    yield None  # the end, so the decoder flushes and a last CR ends its line


_LINE_END = re.compile(r"\r\n|\r|\n")
