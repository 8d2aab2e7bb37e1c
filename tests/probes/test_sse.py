"""The SSE reader: framing, comments, and clean errors on anything malformed."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.probes import sse

chunks = st.lists(
    st.dictionaries(
        st.sampled_from(["id", "text", "n"]), st.text(max_size=8) | st.integers(), max_size=3
    ),
    max_size=6,
)


def _stream(items: list[dict[str, object]]) -> str:
    return "".join(f"data: {json.dumps(item)}\n\n" for item in items) + "data: [DONE]\n\n"


@given(items=chunks, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_any_rechunking_parses_to_the_same_events(
    items: list[dict[str, object]], cuts: list[int]
) -> None:
    text = _stream(items)
    # Split the byte stream at arbitrary points, then join it back into lines as a client would.
    pieces, last = [], 0
    for cut in sorted(c for c in cuts if c < len(text)):
        pieces.append(text[last:cut])
        last = cut
    pieces.append(text[last:])
    parsed = sse.parse("".join(pieces).split("\n"))
    assert parsed.chunks == items
    assert parsed.done


def test_comments_are_counted_and_tolerated() -> None:
    parsed = sse.parse([": keep-alive", "", 'data: {"a": 1}', "", ": ping", "data: [DONE]", ""])
    assert parsed.chunks == [{"a": 1}]
    assert parsed.comments == 2
    assert parsed.done


def test_missing_done_is_reported() -> None:
    assert not sse.parse(['data: {"a": 1}', ""]).done


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        (["data: {not json", ""], "not JSON"),
        (["data: [1, 2]", ""], "not an object"),
        (["data: [DONE]", "", 'data: {"a": 1}', ""], "after [DONE]"),
        (['data: {"error": {"message": "boom"}}', ""], "error event"),
    ],
)
def test_malformed_streams_raise(lines: list[str], words: str) -> None:
    with pytest.raises(sse.SseError, match=words.replace("[", r"\[").replace("]", r"\]")):
        sse.parse(lines)


@given(st.lists(st.text(max_size=30), max_size=10))
def test_arbitrary_lines_parse_or_raise_cleanly(lines: list[str]) -> None:
    with contextlib.suppress(sse.SseError):
        sse.parse(lines)
