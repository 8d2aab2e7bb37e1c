"""The evidence made light: streams folded where they repeat, headers shared, text escaped."""

from __future__ import annotations

import html
import json
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from conformance.report.evidence import (
    FOLD,
    _shared_head,
    common_headers,
    fold_stream,
    group_label,
    own_headers,
    request_body,
    request_group,
    response_group,
    text,
)
from tests.report.factory import case, exchange

ENVELOPE = '"id":"chatcmpl-7","object":"chat.completion.chunk","created":1796640562,"model":"tiny"'


def chunk(content: str, *, finish: str | None = None) -> str:
    """One chat stream chunk's ``data:`` line."""
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    encoded = json.dumps(choice, separators=(",", ":"), ensure_ascii=False)
    return f'data: {{{ENVELOPE},"choices":[{encoded}]}}'


STREAM = [
    line for content in (" alpha", " bravo", " charlie", " delta") for line in (chunk(content), "")
] + [chunk("", finish="length"), "", "data: [DONE]", ""]


def pieces(shown: str) -> list[str]:
    """The parts of a shown line that are not folded."""
    return [piece for piece in shown.split(FOLD) if piece]


def in_order(parts: list[str], line: str) -> bool:
    """Whether ``parts`` occur in ``line`` one after the other."""
    at = 0
    for part in parts:
        found = line.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


def test_a_stream_shows_its_envelope_once_and_what_changed_on_every_line() -> None:
    shown = fold_stream(STREAM)
    lines = shown.text.split("\n")
    assert len(lines) == len(STREAM)  # every line, the empty ones too
    assert shown.text.count('"object":"chat.completion.chunk"') == 1
    assert lines[0] == STREAM[0]  # the first in full
    assert lines[2] == f'{FOLD}"content":" bravo"{FOLD}'
    assert lines[-2] == "data: [DONE]"
    assert shown.folded == 4
    assert len(shown.text) < len("\n".join(STREAM)) / 2


def test_a_stream_that_holds_the_fold_mark_is_shown_as_it_came() -> None:
    stream = [chunk(" alpha"), "", chunk(f" {FOLD} bravo"), ""]
    assert fold_stream(stream) == ("\n".join(stream), 0)


def test_event_lines_are_never_folded_and_data_lines_fold_against_data_lines() -> None:
    delta = '"type":"response.output_text.delta","item_id":"msg_0123456789","output_index":0'
    stream = [
        "event: response.output_text.delta",
        f'data: {{{delta},"delta":" alpha","sequence_number":4}}',
        "",
        "event: response.output_text.delta",
        f'data: {{{delta},"delta":" bravo","sequence_number":5}}',
        "",
    ]
    lines = fold_stream(stream).text.split("\n")
    assert lines[3] == stream[3]
    assert lines[4] == f'{FOLD}"delta":" bravo","sequence_number":5}}'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


@given(
    st.lists(
        st.one_of(
            json_values.map(lambda value: "data: " + json.dumps({"id": "x" * 20, "v": value})),
            st.text(st.characters(blacklist_characters="\r\n"), max_size=30),  # one line
            st.just(""),
        ),
        max_size=12,
    )
)
def test_folding_keeps_every_line_and_only_hides_what_the_line_before_held(
    stream: list[str],
) -> None:
    shown = fold_stream(stream)
    lines = shown.text.split("\n") if stream else []
    assert len(lines) == len(stream)
    before: str | None = None
    for original, line in zip(stream, lines, strict=True):
        if FOLD not in line:
            assert line == original
        else:
            # What is shown is the line's own text, in its order, and the folding saved room.
            assert original.startswith("data:")
            assert before is not None
            assert in_order(pieces(line), original)
            assert len(line) < len(original)
        if original.startswith("data:"):
            before = original
    assert shown.folded == sum(a != b for a, b in zip(lines, stream, strict=True))


@given(st.text())
def test_text_escapes_markup_and_nothing_else(value: str) -> None:
    escaped = text(value)
    assert "<" not in escaped
    assert ">" not in escaped
    assert html.unescape(escaped) == value
    assert escaped.count('"') == value.count('"')  # quotes stay: JSON keeps its size


def test_request_bodies_are_compact_as_the_sdk_sends_them() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hé"}]}
    assert request_body(body) == '{"model":"m","messages":[{"role":"user","content":"hé"}]}'


def test_headers_common_to_a_group_are_found_and_the_rest_are_its_own() -> None:
    first, second, failing = exchange(), exchange(), exchange()
    sdk = {"user-agent": "OpenAI/Python 3.63.0", "x-stainless-lang": "python"}
    first.request.headers = {**sdk, "content-length": "81"}
    second.request.headers = {**sdk, "content-length": "90"}
    failing.request.headers = {**sdk, "content-length": "12"}
    assert failing.response is not None
    failing.response.status = 500
    failing.response.headers = {"server": "acme/1.0", "x-request-id": "abc"}
    cases = [case("acme", evidence=[first, second]), case("acme", evidence=[failing])]
    common = common_headers(cases)
    assert common[request_group(cases[0])] == sdk
    assert own_headers(second.request.headers, common[("acme", "chat")]) == {"content-length": "90"}
    assert common[("acme", "chat", "200", "body")] == {"server": "acme/1.0"}
    assert common[response_group(cases[1], failing.response)] == failing.response.headers
    assert group_label(("acme", "chat", "500", "body")) == "acme · chat · 500 body"
    assert group_label(("acme", "chat")) == "acme · chat"


@given(st.text("ab", max_size=12), st.text("ab", max_size=12), st.integers(0, 14))
def test_a_shared_head_is_found_whatever_the_guess(a: str, b: str, guess: int) -> None:
    true = next((at for at, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    assert _shared_head(a, b, guess) == (min(len(a), len(b)) if true is None else true)


@given(st.lists(st.sampled_from([" alpha", " bravo", " brave", "", " alphabet"]), max_size=8))
def test_each_line_folds_as_it_would_after_its_predecessor_alone(contents: list[str]) -> None:
    """The guesses carried from line to line never change what a line shows."""
    lines = [chunk(content) for content in contents] + [f"data: {{{ENVELOPE}}}"]
    alone = [lines[0]] + [fold_stream([a, b]).text.split("\n")[1] for a, b in pairwise(lines)]
    assert fold_stream(lines).text.split("\n") == alone
