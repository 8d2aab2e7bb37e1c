"""The stream family's probe logic: framing, role placement, keys without a value, UTF-8
splits, and stream_options on a plain request, on their own and through the client."""

from __future__ import annotations

import codecs
import json
from collections import Counter
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.observation import NotApplicable, Observation, ProbeError
from conformance.probes.client import Endpoint
from conformance.probes.registry import ProbeContext
from conformance.probes.stream_options import stream_options_unstreamed
from conformance.probes.stream_shape import (
    chunk_nulls,
    delta_role,
    framing,
    nulls_outcome,
    role_placement,
    stream_framing,
    valueless,
)
from conformance.probes.stream_utf8 import ascii_skeleton, utf8_outcome, utf8_split
from conformance.spec import Api, load_specs
from tests.conftest import SPECS

CATALOG = load_specs(SPECS)
TARGET = CATALOG.targets["reference-openai"]

# --------------------------------------------------------------------------- framing


def test_data_lines_alone_are_strict() -> None:
    lines = ["data: {}", "", "data: [DONE]", ""]
    assert framing(lines, comments=0).outcome == "strict"


def test_comment_lines_are_comments() -> None:
    lines = [": keep-alive", "", "data: {}", "", "data: [DONE]", ""]
    assert framing(lines, comments=1).outcome == "comments"


@pytest.mark.parametrize("field", ["event: message", "id: 3", "retry: 100", "custom: x", "event"])
def test_any_other_field_is_event_fields(field: str) -> None:
    found = framing([field, "data: {}", "", "data: [DONE]", ""], comments=1)
    assert found.outcome == "event_fields"
    assert found.fields == Counter({field.partition(":")[0]: 1})


def test_a_stream_without_done_is_done_missing_whatever_else_framed_it() -> None:
    lines = [": keep-alive", "event: message", "data: {}", ""]
    assert framing(lines, comments=1, done=False).outcome == "done_missing"


def test_the_evidence_excerpt_marker_is_not_a_field() -> None:
    lines = ["data: {}", "", ": ... 300 lines omitted ...", "data: [DONE]", ""]
    assert framing(lines, comments=0).outcome == "strict"


# --------------------------------------------------------------------------- role

ROLE = {"role": "assistant"}


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        ([{**ROLE, "content": ""}, {"content": "a"}, {"content": "b"}, {}], "first_chunk"),
        ([{**ROLE, "content": "a"}, {"content": "b"}, {}], "first_chunk"),
        (
            [{**ROLE, "content": ""}, {**ROLE, "content": "a"}, {**ROLE, "content": "b"}, {}],
            "every_chunk",
        ),
        ([{"content": ""}, {**ROLE, "content": "a"}, {**ROLE, "content": "b"}], "every_chunk"),
        ([{"content": "a"}, {"content": "b"}, {}], "missing"),
        ([{"role": None, "content": "a"}, {"content": "b"}], "missing"),
        ([{"content": "a"}, {**ROLE, "content": "b"}, {"content": "c"}], None),
        ([{**ROLE, "content": "a"}, {**ROLE, "content": "b"}, {"content": "c"}], None),
    ],
)
def test_role_placement(deltas: list[dict[str, Any]], expected: str | None) -> None:
    assert role_placement(deltas) == expected


# --------------------------------------------------------------------------- nulls


def test_valueless_keys_are_found_through_lists() -> None:
    chunk = {
        "choices": [
            {"finish_reason": None, "logprobs": None},
            {"logprobs": {"content": []}},
            {"finish_reason": "stop"},
        ]
    }
    assert list(valueless(chunk, "choices[].finish_reason")) == [True, False]
    assert list(valueless(chunk, "choices[].logprobs")) == [True, False]
    assert list(valueless({"choices": []}, "choices[].logprobs")) == []
    assert list(valueless({"usage": None}, "usage")) == [True]
    assert list(valueless({}, "usage")) == [False]


def test_a_path_that_is_not_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a field path"):
        list(valueless({}, "choices[0].x"))


@settings(deadline=None)
@given(st.lists(st.booleans()))
def test_nulls_outcome_names_what_was_seen(seen: list[bool]) -> None:
    outcome = nulls_outcome(seen)
    if not seen:
        assert outcome is None
    elif all(seen):
        assert outcome == "null"
    elif not any(seen):
        assert outcome == "absent"
    else:
        assert outcome == "mixed"


# --------------------------------------------------------------------------- utf-8

wide_text = st.text(min_size=1, max_size=12).filter(lambda text: not text.isascii())


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _inside_a_character(text: str, points: set[int]) -> bool:
    """Whether a byte offset in ``points`` falls inside one character's UTF-8 bytes."""
    offset = 0
    for character in text:
        width = len(character.encode())
        if any(offset < point < offset + width for point in points):
            return True
        offset += width
    return False


@settings(max_examples=200, deadline=None)
@given(wide_text, st.lists(st.integers(min_value=0), max_size=8))
def test_decoding_each_piece_alone_splits_exactly_the_characters_a_cut_breaks(
    text: str, cuts: list[int]
) -> None:
    data = text.encode()
    pieces = _cut(data, cuts)
    alone = "".join(piece.decode("utf-8", errors="replace") for piece in pieces)
    points = {sum(len(p) for p in pieces[:i]) for i in range(1, len(pieces))}
    expected = "split" if _inside_a_character(text, points) else "intact"
    assert utf8_outcome(alone, text) == expected
    # A decoder that holds an incomplete character back never splits one.
    decoder = codecs.getincrementaldecoder("utf-8")()
    held = "".join(decoder.decode(piece) for piece in pieces) + decoder.decode(b"", final=True)
    assert utf8_outcome(held, text) == "intact"


@settings(deadline=None)
@given(wide_text, st.text(max_size=6))
def test_another_text_is_not_a_split(text: str, other: str) -> None:
    streamed = ascii_skeleton(text) + "x" + other
    assert utf8_outcome(streamed, text) is None


def test_mojibake_and_dropped_characters_are_splits() -> None:
    text = " café 東京"
    assert utf8_outcome(text.encode().decode("latin-1"), text) == "split"
    assert utf8_outcome(" caf ", text) == "split"


# --------------------------------------------------------------------------- through the client


class _Target:
    """A fake target for the probes: a completion of ``text``, streamed as ``deltas`` (or
    ``text``'s characters), with ``sse`` around the events; one endpoint for all examples."""

    def __init__(self) -> None:
        self.text = ""
        self.deltas: list[str] | None = None
        self.chunk_extra: dict[str, Any] = {"logprobs": None, "finish_reason": None}
        self.refuse_options = False
        self.done = True
        self.cuts: list[int] = []
        self.endpoint = Endpoint(
            TARGET,
            "http://127.0.0.1:9/v1",
            "k",
            transport=httpx2.MockTransport(self._reply),
            sleep=lambda _: None,
        )

    def _reply(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        chat = "messages" in body
        if body.get("stream_options") and not body.get("stream") and self.refuse_options:
            error = {"message": "no", "type": "invalid_request_error", "param": "stream_options"}
            return httpx2.Response(400, json={"error": error})
        if not body.get("stream"):
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": self.text}
            else:
                choice["text"] = self.text
            return httpx2.Response(200, json={"object": "x", "choices": [choice]})
        events = []
        pieces = self.deltas if self.deltas is not None else list(self.text)
        for position, piece in enumerate(pieces):
            choice = {"index": 0, **self.chunk_extra}
            if chat:
                choice["delta"] = (
                    {"role": "assistant", "content": piece} if position == 0 else {"content": piece}
                )
            else:
                choice["text"] = piece
            events.append({"object": "chunk", "choices": [choice]})
        lines = "".join(f"data: {json.dumps(event, ensure_ascii=False)}\n\n" for event in events)
        lines += "data: [DONE]\n\n" if self.done else ""
        return httpx2.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=iter(_cut(lines.encode(), self.cuts)),
        )

    def run(self, probe: Any, behavior_id: str, api: Api = Api.CHAT) -> Observation:
        self.endpoint.exchanges.clear()
        behavior = CATALOG.behaviors[behavior_id]
        stream = behavior.variants.stream[0]
        result: Observation = probe(ProbeContext(self.endpoint, api, stream, behavior.params))
        return result


FAKE = _Target()


@settings(max_examples=50, deadline=None)
@given(wide_text, st.lists(st.integers(min_value=0), max_size=10))
def test_network_pieces_never_look_like_a_split(text: str, cuts: list[int]) -> None:
    # The client decodes the byte stream as a whole, so the network may cut anywhere.
    FAKE.text, FAKE.deltas, FAKE.cuts = text, None, cuts
    assert FAKE.run(utf8_split, "stream.utf8_split").outcome == "intact"


@pytest.mark.parametrize("api", [Api.CHAT, Api.COMPLETIONS])
def test_replacement_characters_in_deltas_are_a_split(api: Api) -> None:
    FAKE.text, FAKE.deltas, FAKE.cuts = (
        " 東京 alpha",
        [" ", "\ufffd\ufffd\ufffd", "京", " alpha"],
        [],
    )
    observed = FAKE.run(utf8_split, "stream.utf8_split", api)
    assert observed.outcome == "split"
    assert "U+FFFD in delta(s) [1]" in observed.summary


def test_an_ascii_text_is_not_applicable() -> None:
    FAKE.text, FAKE.deltas, FAKE.cuts = " alpha bravo", None, []
    with pytest.raises(NotApplicable, match="no non-ASCII character"):
        FAKE.run(utf8_split, "stream.utf8_split")
    assert len(FAKE.endpoint.exchanges) == 1, "the stream is not sent when it cannot decide"


def test_a_different_streamed_text_is_an_error() -> None:
    FAKE.text, FAKE.deltas, FAKE.cuts = " 東京 alpha", [" 東京", " bravo"], []
    with pytest.raises(ProbeError, match="another text"):
        FAKE.run(utf8_split, "stream.utf8_split")


def test_too_few_content_deltas_cannot_place_the_role() -> None:
    FAKE.text, FAKE.deltas, FAKE.cuts = " alpha", [" alpha"], []
    with pytest.raises(NotApplicable, match="two are needed"):
        FAKE.run(delta_role, "stream.first_delta_role")


def test_a_role_on_the_first_delta_is_first_chunk() -> None:
    FAKE.text, FAKE.deltas, FAKE.cuts = "", ["a", "b", "c"], []
    observed = FAKE.run(delta_role, "stream.first_delta_role")
    assert observed.outcome == "first_chunk"
    assert observed.checks[0].passed


@pytest.mark.parametrize("api", [Api.CHAT, Api.COMPLETIONS])
def test_chunk_nulls_reads_the_params_list(api: Api) -> None:
    FAKE.text, FAKE.deltas, FAKE.cuts = "", ["a", "b"], []
    FAKE.chunk_extra = {"finish_reason": None}  # logprobs left out
    try:
        observed = FAKE.run(chunk_nulls, "stream.chunk_nulls", api)
    finally:
        FAKE.chunk_extra = {"logprobs": None, "finish_reason": None}
    # chat lists only finish_reason; completions lists logprobs too, which is missing here.
    assert observed.outcome == ("null" if api is Api.CHAT else "mixed")


def test_framing_reads_the_raw_lines() -> None:
    FAKE.text, FAKE.deltas, FAKE.cuts = "", ["a"], []
    assert FAKE.run(stream_framing, "stream.framing").outcome == "strict"


def test_a_finished_stream_without_done_is_done_missing_and_a_cut_one_an_error() -> None:
    FAKE.text, FAKE.deltas, FAKE.cuts, FAKE.done = "", ["a"], [], False
    try:
        FAKE.chunk_extra = {"logprobs": None, "finish_reason": "stop"}
        assert FAKE.run(stream_framing, "stream.framing").outcome == "done_missing"
        FAKE.chunk_extra = {"logprobs": None, "finish_reason": None}
        with pytest.raises(ProbeError, match="before every choice finished"):
            FAKE.run(stream_framing, "stream.framing")
    finally:
        FAKE.done = True
        FAKE.chunk_extra = {"logprobs": None, "finish_reason": None}


def test_stream_options_refused_only_with_a_working_control() -> None:
    FAKE.text, FAKE.deltas, FAKE.refuse_options = " alpha", None, True
    try:
        observed = FAKE.run(stream_options_unstreamed, "stream.options_without_stream")
    finally:
        FAKE.refuse_options = False
    assert observed.outcome == "rejected"
    assert observed.checks[0].passed
    assert [e.label for e in FAKE.endpoint.exchanges] == ["control", "stream-options"]
    assert FAKE.run(stream_options_unstreamed, "stream.options_without_stream").outcome == "ignored"
