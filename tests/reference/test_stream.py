"""The reference server's stream switches: stream_options without stream, SSE framing, the
role on deltas, keys without a value, and multi-byte characters split across tokens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.reference import model, streaming
from conformance.reference.server import RunningServer
from conformance.reference.switches import Switches
from tests.reference._pool import Pool, server_pool

KEY = "stream-test-key"
PROMPT = "Describe the market square at noon"
WIDE_PROMPT = "Repeat: 東京 café 🙂"
APIS = ["chat", "completions"]


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """Servers by switch settings, started once per module."""
    with server_pool(api_key=KEY) as get:
        yield get


def _post(server: RunningServer, api: str, **params: Any) -> httpx2.Response:
    body: dict[str, Any] = {"model": "toy", "temperature": 0, "max_tokens": 6, **params}
    prompt = body.pop("prompt", PROMPT)
    if api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    path = "/chat/completions" if api == "chat" else "/completions"
    return httpx2.post(
        server.base_url + path,
        content=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {KEY}"},
        timeout=10,
    )


def _chunks(response: httpx2.Response) -> list[dict[str, Any]]:
    """The JSON chunks of a stream, whatever frames them."""
    assert response.status_code == 200, response.text
    found = []
    for line in response.text.split("\n"):
        if line.startswith("data: ") and line != "data: [DONE]":
            found.append(json.loads(line.removeprefix("data: ")))
    return found


def _text(api: str, chunk_or_body: dict[str, Any], *, delta: bool) -> str:
    parts = []
    for choice in chunk_or_body.get("choices") or []:
        if api == "completions":
            parts.append(choice.get("text") or "")
        else:
            holder = choice.get("delta" if delta else "message") or {}
            parts.append(holder.get("content") or "")
    return "".join(parts)


# --------------------------------------------------------------------------- stream_options


@pytest.mark.parametrize("api", APIS)
def test_stream_options_without_stream_is_refused_by_default(pool: Pool, api: str) -> None:
    response = _post(pool(), api, stream_options={"include_usage": True})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "stream_options"
    assert "only allowed when 'stream' is enabled" in error["message"]


@pytest.mark.parametrize("api", APIS)
def test_stream_options_without_stream_can_be_dropped(pool: Pool, api: str) -> None:
    server = pool(stream_options_unstreamed="ignore")
    with_options = _post(server, api, stream_options={"include_usage": True})
    assert with_options.status_code == 200, with_options.text
    plain = _post(server, api)
    assert _text(api, with_options.json(), delta=False) == _text(api, plain.json(), delta=False)
    # A streamed request still honours it.
    streamed = _chunks(_post(server, api, stream=True, stream_options={"include_usage": True}))
    assert streamed[-1]["choices"] == []
    assert streamed[-1]["usage"]


# --------------------------------------------------------------------------- framing


@pytest.mark.parametrize("api", APIS)
def test_strict_framing_is_data_lines_only(pool: Pool, api: str) -> None:
    text = _post(pool(), api, stream=True).text
    blocks = text.split("\n\n")
    assert blocks[-1] == ""
    assert blocks[-2] == "data: [DONE]"
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks[:-1])


def test_comment_framing_puts_a_keep_alive_before_every_event(pool: Pool) -> None:
    lines = _post(pool(stream_framing="comments"), "chat", stream=True).text.split("\n")
    data = [line for line in lines if line.startswith("data: ")]
    assert lines.count(": keep-alive") == len(data)
    assert data[-1] == "data: [DONE]"


def test_event_field_framing_names_and_numbers_every_event(pool: Pool) -> None:
    text = _post(pool(stream_framing="event_fields"), "completions", stream=True).text
    events = [block.split("\n") for block in text.split("\n\n") if block]
    assert all(len(event) == 3 for event in events)
    assert [event[1] for event in events] == [f"id: {n}" for n in range(len(events))]
    assert {event[0] for event in events} == {"event: message"}
    assert events[-1][2] == "data: [DONE]"


def test_done_missing_framing_ends_after_the_finish_chunk(pool: Pool) -> None:
    text = _post(pool(stream_framing="done_missing"), "chat", stream=True).text
    assert "[DONE]" not in text
    blocks = [block for block in text.split("\n\n") if block]
    assert json.loads(blocks[-1].removeprefix("data: "))["choices"][0]["finish_reason"] == "length"


# --------------------------------------------------------------------------- role


def _roles(chunks: list[dict[str, Any]]) -> list[bool]:
    return ["role" in chunk["choices"][0]["delta"] for chunk in chunks]


def test_role_is_on_the_first_delta_by_default(pool: Pool) -> None:
    chunks = _chunks(_post(pool(), "chat", stream=True))
    assert _roles(chunks) == [True] + [False] * (len(chunks) - 1)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_role_can_be_on_every_delta_with_content(pool: Pool) -> None:
    chunks = _chunks(_post(pool(stream_delta_role="every_chunk"), "chat", stream=True))
    for chunk in chunks:
        delta = chunk["choices"][0]["delta"]
        assert ("role" in delta) == bool(delta), delta  # the finish chunk's delta stays {}
        assert delta.get("role", "assistant") == "assistant"


def test_role_can_be_missing(pool: Pool) -> None:
    server = pool(stream_delta_role="missing")
    assert not any(_roles(_chunks(_post(server, "chat", stream=True))))
    assert not any(_roles(_chunks(_post(server, "chat", stream=True, n=2))))


# --------------------------------------------------------------------------- nulls


@pytest.mark.parametrize("api", APIS)
def test_keys_without_a_value_are_null_by_default(pool: Pool, api: str) -> None:
    for chunk in _chunks(_post(pool(), api, stream=True)):
        choice = chunk["choices"][0]
        assert "finish_reason" in choice
        assert "logprobs" in choice
        assert choice["logprobs"] is None


@pytest.mark.parametrize("api", APIS)
def test_keys_without_a_value_can_be_left_out(pool: Pool, api: str) -> None:
    chunks = _chunks(_post(pool(stream_chunk_nulls="absent"), api, stream=True))
    for chunk in chunks:
        assert None not in chunk["choices"][0].values()
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("api", APIS)
def test_keys_without_a_value_can_be_left_out_of_every_other_chunk(pool: Pool, api: str) -> None:
    chunks = _chunks(_post(pool(stream_chunk_nulls="mixed"), api, stream=True))
    kept = ["logprobs" in chunk["choices"][0] for chunk in chunks]
    assert kept == [position % 2 == 0 for position in range(len(chunks))]


# --------------------------------------------------------------------------- utf-8


@pytest.mark.parametrize("api", APIS)
def test_a_wide_prompt_streams_whole_characters(pool: Pool, api: str) -> None:
    server = pool()
    plain = _text(api, _post(server, api, prompt=WIDE_PROMPT, max_tokens=12).json(), delta=False)
    assert plain.startswith(" 東京 ")
    chunks = _chunks(_post(server, api, prompt=WIDE_PROMPT, max_tokens=12, stream=True))
    pieces = [_text(api, chunk, delta=True) for chunk in chunks]
    assert "".join(pieces) == plain
    assert not any("\ufffd" in piece for piece in pieces)


@pytest.mark.parametrize("api", APIS)
def test_a_split_stream_sends_each_token_decoded_alone(pool: Pool, api: str) -> None:
    server = pool(stream_utf8="split")
    plain = _text(api, _post(server, api, prompt=WIDE_PROMPT, max_tokens=12).json(), delta=False)
    chunks = _chunks(_post(server, api, prompt=WIDE_PROMPT, max_tokens=12, stream=True))
    joined = "".join(_text(api, chunk, delta=True) for chunk in chunks)
    assert joined == plain.replace("東京", "\ufffd" * 6)

    # ASCII text streams as before: one delta per word.
    def ascii_pieces(running: RunningServer) -> list[str]:
        return [
            _text(api, chunk, delta=True) for chunk in _chunks(_post(running, api, stream=True))
        ]

    assert ascii_pieces(server) == ascii_pieces(pool())


# --------------------------------------------------------------------------- the shaping itself


def _chunk(text: str | None, *, api: str = "chat", finish: str | None = None) -> dict[str, Any]:
    if api == "chat":
        delta = {} if text is None else {"content": text}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None}
    else:
        choice = {"index": 0, "text": text or "", "logprobs": None}
    choice["finish_reason"] = finish
    return {"id": "x", "object": "chunk", "choices": [choice]}


texts = st.lists(st.text(max_size=8), min_size=1, max_size=6)


@settings(deadline=None)
@given(texts, st.sampled_from(APIS))
def test_default_switches_change_nothing(pieces: list[str], api: str) -> None:
    chunks = [_chunk(piece, api=api) for piece in pieces]
    assert streaming.shape_chunks(chunks, Switches()) == chunks


@settings(deadline=None)
@given(texts, st.sampled_from(APIS))
def test_splitting_keeps_the_ascii_text_and_whole_ascii_deltas(pieces: list[str], api: str) -> None:
    chunks = [_chunk(piece, api=api) for piece in pieces]
    split = streaming.shape_chunks(chunks, Switches(stream_utf8="split"))
    joined = "".join(_text(api, chunk, delta=True) for chunk in split)
    original = "".join(pieces)
    assert [c for c in joined if c.isascii()] == [c for c in original if c.isascii()]
    assert ("\ufffd" in joined) == (not original.isascii() or "\ufffd" in original)
    if original.isascii():
        assert split == chunks


@settings(deadline=None)
@given(st.text(min_size=1, max_size=12))
def test_token_pieces_decode_every_token_alone(text: str) -> None:
    # Every non-ASCII character is byte tokens, and each byte alone is no character.
    broken = "".join(c if c.isascii() else "\ufffd" * len(c.encode()) for c in text)
    assert "".join(model.token_pieces(text)) == broken


def test_sse_frames_every_chunk_then_done() -> None:
    async def collect(framing: str) -> str:
        return "".join([event async for event in streaming.sse([{"a": 1}], framing)])

    assert asyncio.run(collect("strict")) == 'data: {"a":1}\n\ndata: [DONE]\n\n'
    assert asyncio.run(collect("comments")) == (
        ': keep-alive\n\ndata: {"a":1}\n\n: keep-alive\n\ndata: [DONE]\n\n'
    )
    assert asyncio.run(collect("event_fields")) == (
        'event: message\nid: 0\ndata: {"a":1}\n\nevent: message\nid: 1\ndata: [DONE]\n\n'
    )
    assert asyncio.run(collect("done_missing")) == 'data: {"a":1}\n\n'


# --------------------------------------------------------------------------- the toy model


def test_echo_word_is_the_first_word_with_a_non_ascii_character() -> None:
    assert model.echo_word(tuple(model.tokenize(PROMPT))) == ()
    assert model.detokenize(model.echo_word(tuple(model.tokenize(WIDE_PROMPT)))) == " 東京"
    rendered = model.render_chat([{"role": "user", "content": "say «café»."}])
    assert model.detokenize(model.echo_word(tuple(model.tokenize(rendered)))) == " «café»"
    last = model.render_chat([{"role": "user", "content": "ends in naïve"}])
    assert model.detokenize(model.echo_word(tuple(model.tokenize(last)))) == " naïve"


@settings(max_examples=40, deadline=None)
@given(
    st.text(
        alphabet=st.characters(
            min_codepoint=0x80, max_codepoint=0x2FFFF, exclude_categories=("Z", "C")
        ),
        min_size=1,
        max_size=4,
    )
)
def test_a_non_ascii_prompt_word_is_said_first_then_the_walk_goes_on(word: str) -> None:
    prompt = model.tokenize(f"Say {word} now")
    echo = model.echo_word(tuple(prompt))
    generation = model.generate(prompt, model.Sampling(max_tokens=len(echo) + 3, temperature=0))
    said = model.detokenize(echo)
    assert said.startswith(" ")
    assert not said[1:].isascii()
    assert generation.text.startswith(said)
    assert all(token in model.SPACE_WORD_IDS for token in generation.tokens[len(echo) :])
    assert "".join(generation.pieces) == generation.text


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_an_ascii_prompt_never_echoes(text: str) -> None:
    assert model.echo_word(tuple(model.tokenize(text))) == ()
