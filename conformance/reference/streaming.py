"""How the reference server shapes and frames a stream: the stream family's switches.

``rendering.render_chunks`` builds the chunks OpenAI sends; the functions here then change
what the ``stream_*`` switches change (how text is split into deltas, where the role goes,
whether keys without a value are sent) and write the chunks as server-sent events.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from conformance.reference import model
from conformance.reference.switches import Switches

Chunk = dict[str, Any]
#: The comment line a server sends to keep a quiet connection open.
KEEP_ALIVE = ": keep-alive\n\n"


def shape_chunks(chunks: Sequence[Chunk], switches: Switches) -> list[Chunk]:
    """``chunks`` (not changed) as the stream switches want them, in a new list."""
    shaped = [copy.deepcopy(chunk) for chunk in chunks]
    if switches.stream_utf8 == "split":
        shaped = [part for chunk in shaped for part in _split_text(chunk)]
    for chunk in shaped:
        for choice in chunk.get("choices") or []:
            _place_role(choice, switches.stream_delta_role)
    if switches.stream_chunk_nulls != "null":
        every = switches.stream_chunk_nulls == "absent"
        for position, chunk in enumerate(shaped):
            if every or position % 2 == 1:
                for choice in chunk.get("choices") or []:
                    for key in [key for key, value in choice.items() if value is None]:
                        del choice[key]
    return shaped


def _split_text(chunk: Chunk) -> list[Chunk]:
    """One chunk per token of the chunk's text when it holds a non-ASCII character, each
    token decoded alone; any other chunk as it is."""
    choices = chunk.get("choices") or []
    if len(choices) != 1:
        return [chunk]
    holder = choices[0].get("delta", choices[0])  # chat: the delta; completions: the choice
    key = "content" if "delta" in choices[0] else "text"
    text = holder.get(key)
    if not isinstance(text, str) or text.isascii():
        return [chunk]
    parts: list[Chunk] = []
    for piece in model.token_pieces(text):
        part = copy.deepcopy(chunk)
        part_choice = part["choices"][0]
        part_choice.get("delta", part_choice)[key] = piece
        parts.append(part)
    return parts


def _place_role(choice: dict[str, Any], placement: str) -> None:
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return  # a completions choice has no role
    if placement == "missing":
        delta.pop("role", None)
    elif placement == "every_chunk" and delta and "role" not in delta:
        choice["delta"] = {"role": "assistant", **delta}


def sse(chunks: Sequence[Chunk], framing: str) -> AsyncIterator[str]:
    """The chunks as server-sent events, then ``data: [DONE]`` (unless ``framing`` is
    done_missing), framed as ``framing`` says."""

    async def events() -> AsyncIterator[str]:
        payloads = [json.dumps(chunk, separators=(",", ":")) for chunk in chunks]
        if framing != "done_missing":
            payloads.append("[DONE]")
        for number, payload in enumerate(payloads):
            if framing == "comments":
                yield KEEP_ALIVE
            fields = f"event: message\nid: {number}\n" if framing == "event_fields" else ""
            yield f"{fields}data: {payload}\n\n"
            if framing == "null_events" and number < len(chunks) and _finishes(chunks[number]):
                yield "data: null\n\n"

    return events()


def _finishes(chunk: Chunk) -> bool:
    """True when ``chunk`` ends one of its choices' streams."""
    return any(choice.get("finish_reason") for choice in chunk.get("choices") or [])
