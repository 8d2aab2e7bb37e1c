"""The SSE reader: framing, comments, and clean errors on anything malformed, on its own and
as the client uses it."""

from __future__ import annotations

import contextlib
import json

import httpx2
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conformance.observation import ProbeError
from conformance.probes import sse
from conformance.probes.client import Endpoint, Reply
from conformance.spec import Api, load_specs
from tests.conftest import SPECS

# --------------------------------------------------------------------------- through the client
# The properties below go through Endpoint.send, the SDK and httpx, as a case does: the bytes
# arrive in whatever pieces the network makes, and only the transport is replaced.

TARGET = load_specs(SPECS).targets["reference-openai"]
deltas = st.lists(st.text(max_size=6), min_size=1, max_size=6)


class _Served:
    """One endpoint for every example (making an SDK client per example is slow), replying
    with whatever body the example sets."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.stream = True
        self.status = 200
        self.endpoint = Endpoint(
            TARGET,
            "http://127.0.0.1:9/v1",
            "k",
            transport=httpx2.MockTransport(self._reply),
            sleep=lambda _: None,
        )

    def _reply(self, request: httpx2.Request) -> httpx2.Response:
        kind = "text/event-stream" if self.stream else "application/json"
        return httpx2.Response(
            self.status, headers={"content-type": kind}, content=iter(self.pieces)
        )

    def send(
        self, pieces: list[bytes], *, stream: bool = True, status: int = 200
    ) -> tuple[Reply | None, str | None]:
        """Serve ``pieces`` as the body of the reply to one request: the reply, or the
        ProbeError's reason."""
        self.pieces, self.stream, self.status = pieces, stream, status
        self.endpoint.exchanges.clear()
        body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
        try:
            return self.endpoint.send(Api.CHAT, body, label="probe"), None
        except ProbeError as exc:
            return None, exc.reason


SERVED = _Served()
_send = SERVED.send


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=100, deadline=None)
@given(
    texts=deltas,
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.booleans(),
    multiline=st.booleans(),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    split_crlf=st.booleans(),
)
def test_any_rechunking_of_a_valid_stream_gives_the_same_events(
    texts: list[str],
    newline: str,
    comments: bool,
    multiline: bool,
    cuts: list[int],
    split_crlf: bool,
) -> None:
    items = [{"choices": [{"index": 0, "delta": {"content": text}}]} for text in texts]
    # An event's data may span several data: lines, which the reader joins with a newline.
    payloads = [
        json.dumps(item, ensure_ascii=False, indent=1 if multiline else None) for item in items
    ]
    events = [newline.join(f"data: {line}" for line in p.split("\n")) for p in payloads]
    if comments:
        events = [": keep-alive", *events]
    text = "".join(event + newline + newline for event in [*events, "data: [DONE]"])
    data = text.encode()
    if split_crlf:  # the cut that matters most, and that random cuts rarely hit
        cuts = [*cuts, *(i + 1 for i, byte in enumerate(data) if byte == ord("\r"))]
    # Cuts fall anywhere in the bytes: inside a multi-byte character, between \r and \n.
    reply, error = _send(_cut(data, cuts))
    assert error is None, error
    assert reply is not None
    assert reply.chunks == items
    assert reply.text == "".join(texts)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
#: JSON shaped like a chunk, with anything in its places.
chunk_like = st.fixed_dictionaries(
    {},
    optional={
        "choices": json_values
        | st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "index": json_values,
                    "delta": json_values | st.dictionaries(st.just("content"), json_values),
                    "message": json_values | st.dictionaries(st.just("content"), json_values),
                    "text": json_values,
                    "finish_reason": json_values,
                },
            ),
            max_size=2,
        ),
        "usage": json_values
        | st.dictionaries(st.sampled_from(["prompt_tokens", "completion_tokens"]), json_values),
        "error": json_values,
    },
)
sse_lines = st.lists(
    st.one_of(
        st.binary(max_size=20),
        chunk_like.map(lambda c: b"data: " + json.dumps(c).encode()),
        st.sampled_from([b"", b"data: [DONE]", b": ping", b"event: error", b"data: {"]),
    ),
    max_size=8,
).map(b"\n".join)


@settings(max_examples=200, deadline=None)
@example(body=b"data: " + b"[" * 50_000 + b"\n\n", stream=True, status=200, cuts=[])
@example(body=b"[" * 50_000, stream=False, status=200, cuts=[])
@example(body=b'data: {"a": ' + b"1" * 5000 + b"}\n\n", stream=True, status=200, cuts=[])
@example(body=b'{"a": ' + b"1" * 5000 + b"}", stream=False, status=200, cuts=[])
@given(
    body=st.binary(max_size=200) | sse_lines | chunk_like.map(lambda c: json.dumps(c).encode()),
    stream=st.booleans(),
    status=st.sampled_from([200, 200, 200, 400, 429, 500]),
    cuts=st.lists(st.integers(min_value=0), max_size=4),
)
def test_arbitrary_bytes_give_a_reply_or_a_clean_error(
    body: bytes, stream: bool, status: int, cuts: list[int]
) -> None:
    reply, error = _send(_cut(body, cuts), stream=stream, status=status)
    if reply is None:
        assert error, "a ProbeError carries a reason"
        return
    assert status in (200, 400)
    if not reply.ok:
        # A refusal: probes read its status and error object, and nothing else.
        assert isinstance(reply.error, dict)
        return
    # A completion is readable by any probe without a crash.
    assert isinstance(reply.text, str)
    assert reply.finish_reason is None or isinstance(reply.finish_reason, str)
    assert reply.usage is None or isinstance(reply.usage, dict)
    reply.tokens()
    assert isinstance(reply.message, dict)


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
    ],
)
def test_malformed_streams_raise(lines: list[str], words: str) -> None:
    with pytest.raises(sse.SseError, match=words.replace("[", r"\[").replace("]", r"\]")):
        sse.parse(lines)


@pytest.mark.parametrize(
    "lines",
    [
        ['data: {"a": 1}', "", 'data: {"error": {"message": "boom"}}', ""],
        ['data: {"a": 1}', "", "event: error", 'data: {"message": "boom"}', ""],
    ],
)
def test_an_error_event_is_kept_for_the_client_to_judge(lines: list[str]) -> None:
    parsed = sse.parse(lines)
    assert parsed.chunks == [{"a": 1}]
    assert parsed.error is not None
    assert "boom" in json.dumps(parsed.error)


def test_data_null_is_counted_and_tolerated() -> None:
    parsed = sse.parse(
        ['data: {"a": 1}', "", "data: null", "", 'data: {"b": 2}', "", "data: [DONE]"]
    )
    assert parsed.chunks == [{"a": 1}, {"b": 2}]
    assert parsed.nulls == 1
    assert parsed.done
    assert parsed.error is None


def test_an_event_named_error_resets_with_its_event() -> None:
    # The event field names one event only: the next one is a plain chunk again.
    parsed = sse.parse(["event: error", "", 'data: {"a": 1}', ""])
    assert parsed.error is None
    assert parsed.chunks == [{"a": 1}]


#: Lines an event stream is made of, with anything after the field name.
stream_lines = st.one_of(
    st.text(max_size=30),
    st.text(max_size=30).map("data: ".__add__),
    json_values.map(lambda value: "data: " + json.dumps(value)),
    st.sampled_from(["", "data: [DONE]", ": ping", "event: error", "data: {"]),
)


@given(st.lists(stream_lines, max_size=10))
def test_arbitrary_lines_parse_or_raise_cleanly(lines: list[str]) -> None:
    with contextlib.suppress(sse.SseError):
        sse.parse(lines)


def _chunk(content: str, finish: str | None = None, index: int = 0) -> bytes:
    choice = {"index": index, "delta": {"content": content}, "finish_reason": finish}
    return b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"


def test_a_stream_whose_every_choice_finished_is_complete_without_done() -> None:
    # transformers serve ends its streams this way; the SDK reads them to the end too.
    reply, reason = _send([_chunk("a"), _chunk("b", "length")])
    assert reason is None
    assert reply is not None
    assert reply.text == "ab"
    assert reply.stream is not None
    assert not reply.stream.done


@pytest.mark.parametrize(
    "pieces",
    [
        [_chunk("a"), _chunk("b")],  # no choice finished
        [_chunk("a", "stop", 0), _chunk("b", None, 1)],  # the second choice never finished
        [],  # nothing at all
    ],
    ids=["unfinished", "one-of-two-unfinished", "empty"],
)
def test_a_stream_cut_off_before_every_choice_finished_is_an_error(pieces: list[bytes]) -> None:
    reply, reason = _send(pieces)
    assert reply is None
    assert reason is not None
    assert "the stream ended without data: [DONE] before every choice finished" in reason
