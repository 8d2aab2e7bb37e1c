"""The reference server over real HTTP, through the official openai SDK as the suite uses it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import Function

from conformance import __version__
from conformance.reference import model
from conformance.reference.server import RunningServer, ServerConfig, start
from tests.reference._pool import Pool, server_pool

KEY = "test-key"
WINDOW = 256
PROMPT = "Describe the market square at noon"
MESSAGES = [{"role": "user", "content": PROMPT}]
SDK_MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]
APIS = ["chat", "completions"]


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """Servers by switch settings, started once per module."""
    with server_pool(api_key=KEY) as get:
        yield get


@pytest.fixture(scope="module")
def server(pool: Pool) -> RunningServer:
    return pool()


def _client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)


def _request(api: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "toy", **params}
    if api == "chat":
        body.setdefault("messages", MESSAGES)
    else:
        body.setdefault("prompt", PROMPT)
    return body


def _prompt_tokens(api: str, text: str = PROMPT) -> int:
    if api == "chat":
        return model.count_tokens(model.render_chat([{"role": "user", "content": text}]))
    return model.count_tokens(text)


def _post(server: RunningServer, api: str, body: Any, *, key: str | None = KEY) -> httpx2.Response:
    path = "/chat/completions" if api == "chat" else "/completions"
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(server.base_url + path, content=content, headers=headers, timeout=10)


def _events(response: httpx2.Response) -> list[dict[str, Any]]:
    """The JSON chunks of an SSE body, checking the framing on the way."""
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = response.text.split("\n\n")
    assert blocks[-1] == "", "the stream must end with a blank line"
    assert blocks[-2] == "data: [DONE]"
    chunks = []
    for block in blocks[:-2]:
        assert block.startswith("data: ")
        assert "\n" not in block
        chunks.append(json.loads(block.removeprefix("data: ")))
    return chunks


def _text(api: str, body: dict[str, Any]) -> str:
    choice = body["choices"][0]
    return str(choice["message"]["content"] if api == "chat" else choice["text"])


def _streamed_text(api: str, chunks: list[dict[str, Any]]) -> str:
    key = "delta" if api == "chat" else None
    parts = []
    for chunk in chunks:
        for choice in chunk["choices"]:
            parts.append((choice[key].get("content") or "") if key else choice["text"])
    return "".join(parts)


def _ok(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _error(response: httpx2.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# --------------------------------------------------------------------------- plain replies


def test_chat_reply_through_the_sdk(server: RunningServer) -> None:
    raw = _client(server).chat.completions.with_raw_response.create(
        model="toy", messages=SDK_MESSAGES, max_tokens=8, temperature=0
    )
    assert raw.headers["server"] == f"conformance-reference/{__version__}"
    reply = raw.parse()
    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert reply.model == "toy"
    assert reply.system_fingerprint
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == _prompt_tokens("chat")
    assert reply.usage.completion_tokens == 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 8
    text = reply.choices[0].message.content or ""
    assert model.count_tokens(text) == 8


def test_completion_reply_through_the_sdk(server: RunningServer) -> None:
    client = _client(server)
    reply = client.completions.create(model="toy", prompt=PROMPT, max_tokens=5, temperature=0)
    assert reply.object == "text_completion"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == _prompt_tokens("completions")
    again = client.completions.create(model="toy", prompt=PROMPT, max_tokens=5, temperature=0)
    assert again.choices[0].text == reply.choices[0].text
    other = client.completions.create(model="toy", prompt="Count", max_tokens=5, temperature=0)
    assert other.choices[0].text != reply.choices[0].text


def test_default_max_tokens_and_seeded_sampling(server: RunningServer) -> None:
    client = _client(server)
    first = client.completions.create(model="toy", prompt=PROMPT, seed=3)
    second = client.completions.create(model="toy", prompt=PROMPT, seed=3)
    assert first.usage is not None
    assert first.usage.completion_tokens == model.DEFAULT_MAX_TOKENS
    assert first.choices[0].text == second.choices[0].text


def test_n_choices_and_prompt_lists(server: RunningServer) -> None:
    body = _ok(_post(server, "completions", _request("completions", prompt=["a", "b"], n=2)))
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert body["usage"]["completion_tokens"] == 4 * model.DEFAULT_MAX_TOKENS
    assert body["usage"]["prompt_tokens"] == 2
    chat = _ok(_post(server, "chat", _request("chat", n=3, max_tokens=2)))
    assert [c["index"] for c in chat["choices"]] == [0, 1, 2]


def test_models_list(server: RunningServer) -> None:
    models = _client(server).models.list()
    assert [m.id for m in models.data] == ["toy"]


def test_unknown_fields_are_ignored(pool: Pool) -> None:
    # OpenAI refuses unknown fields (tests/reference/test_request_errors.py); this switch drops them.
    server = pool(unknown_field="ignore")
    plain = _ok(_post(server, "chat", _request("chat", temperature=0)))
    extra = _ok(_post(server, "chat", _request("chat", temperature=0, top_k=3, whatever={"a": 1})))
    assert _text("chat", extra) == _text("chat", plain)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": "many"}, "max_tokens"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"frequency_penalty": -3}, "frequency_penalty"),
        ({"logit_bias": {"100": 101}}, "logit_bias"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"n": 0}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"model": None}, "model"),
    ],
)
@pytest.mark.parametrize("api", APIS)
def test_invalid_values_are_400(
    server: RunningServer, api: str, params: dict[str, Any], param: str
) -> None:
    error = _error(_post(server, api, _request(api, **params)))
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", '{"a": "\xe9"}'.encode("latin-1")])
def test_a_body_that_is_not_a_json_object_is_400(server: RunningServer, content: bytes) -> None:
    _error(_post(server, "chat", content))


def test_chat_needs_messages(server: RunningServer) -> None:
    assert _error(_post(server, "chat", {"model": "toy"}))["param"] == "messages"
    bad_role = {"model": "toy", "messages": [{"role": "robot", "content": "hi"}]}
    assert _error(_post(server, "chat", bad_role))["param"] == "messages[0].role"


def test_api_key_is_required(server: RunningServer) -> None:
    assert _error(_post(server, "chat", _request("chat"), key=None), 401)["type"]
    assert (
        _error(_post(server, "chat", _request("chat"), key="wrong"), 401)["code"]
        == "invalid_api_key"
    )
    wrong = openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_unknown_paths_are_enveloped(server: RunningServer) -> None:
    response = httpx2.get(server.base_url + "/nowhere", headers={"authorization": f"Bearer {KEY}"})
    assert _error(response, 404)["message"] == "Invalid URL (GET /v1/nowhere)"
    assert response.headers["server"].startswith("conformance-reference/")
    _error(
        httpx2.get(
            server.base_url + "/chat/completions", headers={"authorization": f"Bearer {KEY}"}
        ),
        405,
    )


def test_no_key_configured_means_no_check() -> None:
    with start(ServerConfig()) as open_server:
        _ok(_post(open_server, "chat", _request("chat", max_tokens=1), key=None))


# --------------------------------------------------------------------------- streams


@pytest.mark.parametrize("api", APIS)
def test_stream_framing(server: RunningServer, api: str) -> None:
    plain = _ok(_post(server, api, _request(api, max_tokens=6, temperature=0)))
    response = _post(server, api, _request(api, max_tokens=6, temperature=0, stream=True))
    assert response.headers["server"].startswith("conformance-reference/")
    chunks = _events(response)
    kind = "chat.completion.chunk" if api == "chat" else "text_completion"
    assert {c["object"] for c in chunks} == {kind}
    assert len({c["id"] for c in chunks}) == 1
    assert all("usage" not in c for c in chunks), "no usage unless asked (OpenAI)"
    final = chunks[-1]["choices"][0]
    assert final["finish_reason"] == "length"
    if api == "chat":
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert final["delta"] == {}
        tokens = chunks[1:-1]
    else:
        assert final["text"] == ""
        tokens = chunks[:-1]
    assert len(tokens) == 6, "one token per chunk"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert _streamed_text(api, chunks) == _text(api, plain)


def test_stream_through_the_sdk(server: RunningServer) -> None:
    stream = _client(server).chat.completions.create(
        model="toy", messages=SDK_MESSAGES, max_tokens=4, temperature=0, stream=True
    )
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks).count(" ") == 4


def _usage_positions(chunks: list[dict[str, Any]]) -> list[int]:
    return [i for i, chunk in enumerate(chunks) if chunk.get("usage")]


@pytest.mark.parametrize("requested", [False, True])
@pytest.mark.parametrize("placement", ["absent", "finish_chunk", "extra_chunk", "every_chunk"])
@pytest.mark.parametrize("api", APIS)
def test_stream_usage_placement(pool: Pool, api: str, placement: str, requested: bool) -> None:
    switch = "stream_usage_requested" if requested else "stream_usage"
    params: dict[str, Any] = {"max_tokens": 5, "temperature": 0, "stream": True}
    if requested:
        params["stream_options"] = {"include_usage": True}
    running = pool(**{switch: placement})
    plain = _ok(_post(running, api, _request(api, max_tokens=5, temperature=0)))
    chunks = _events(_post(running, api, _request(api, **params)))
    positions = _usage_positions(chunks)
    finish = [i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["finish_reason"]]
    if placement == "absent":
        assert positions == []
        return
    assert chunks[positions[-1]]["usage"] == plain["usage"]
    if placement == "finish_chunk":
        assert positions == finish
    elif placement == "extra_chunk":
        assert positions == [len(chunks) - 1]
        assert chunks[-1]["choices"] == []
        assert finish == [len(chunks) - 2]
        assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    else:
        assert positions == list(range(len(chunks)))
        counts = [c["usage"]["completion_tokens"] for c in chunks]
        assert counts == sorted(counts)


def test_include_usage_false_uses_the_unrequested_placement(pool: Pool) -> None:
    running = pool(stream_usage="finish_chunk")
    params = {"stream": True, "max_tokens": 3, "stream_options": {"include_usage": False}}
    chunks = _events(_post(running, "chat", _request("chat", **params)))
    assert _usage_positions(chunks) == [len(chunks) - 1]


def test_stream_options_can_be_refused(pool: Pool) -> None:
    running = pool(stream_usage_requested="reject")
    params = {"stream": True, "stream_options": {"include_usage": True}}
    assert _error(_post(running, "chat", _request("chat", **params)))["param"] == "stream_options"
    _events(_post(running, "chat", _request("chat", stream=True)))


# --------------------------------------------------------------------------- context overflow


def _overflowing(api: str, **params: Any) -> dict[str, Any]:
    room = WINDOW - _prompt_tokens(api)
    return _request(api, max_tokens=room + 8, temperature=0, **params)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", APIS)
def test_overflow_reject(pool: Pool, api: str, stream: bool) -> None:
    running = pool(overflow="reject")
    error = _error(_post(running, api, _overflowing(api, stream=stream)))
    assert error["code"] == "context_length_exceeded"
    prompt = _prompt_tokens(api)
    room = WINDOW - prompt
    assert error["message"].startswith(
        f"This model's maximum context length is {WINDOW} tokens. However, you requested "
        f"{prompt + room + 8} tokens ({prompt} in the"
    )


@pytest.mark.parametrize("api", APIS)
def test_overflow_clamp(pool: Pool, api: str) -> None:
    room = WINDOW - _prompt_tokens(api)
    running = pool(overflow="clamp")
    body = _ok(_post(running, api, _overflowing(api)))
    chunks = _events(_post(running, api, _overflowing(api, stream=True)))
    assert body["usage"]["completion_tokens"] == room
    assert body["choices"][0]["finish_reason"] == "length"
    assert _streamed_text(api, chunks) == _text(api, body)


@pytest.mark.parametrize("api", APIS)
def test_overflow_exceed(pool: Pool, api: str) -> None:
    room = WINDOW - _prompt_tokens(api)
    running = pool(overflow="exceed")
    body = _ok(_post(running, api, _overflowing(api)))
    capped = _ok(_post(running, api, _request(api, max_tokens=100_000)))
    assert body["usage"]["completion_tokens"] == room + 8
    assert capped["usage"]["completion_tokens"] == 4 * WINDOW


@pytest.mark.parametrize("mode", ["reject", "clamp", "exceed"])
def test_a_prompt_longer_than_the_window_is_always_400(pool: Pool, mode: str) -> None:
    running = pool(overflow=mode)
    error = _error(
        _post(running, "completions", _request("completions", prompt="x" * (WINDOW + 1)))
    )
    assert error["code"] == "context_length_exceeded"


@pytest.mark.parametrize("api", APIS)
def test_overflow_param_reject(pool: Pool, api: str) -> None:
    running = pool(overflow_param="reject")
    fitting = _request(api, max_tokens=2, context_length_exceeded_behavior="truncate")
    error = _error(_post(running, api, fitting))
    assert (
        error["message"]
        == "Unrecognized request argument supplied: context_length_exceeded_behavior"
    )


@pytest.mark.parametrize("api", APIS)
def test_overflow_param_ignore(pool: Pool, api: str) -> None:
    running = pool(overflow_param="ignore", overflow="reject")
    _ok(_post(running, api, _request(api, max_tokens=2, context_length_exceeded_behavior="x")))
    error = _error(
        _post(running, api, _overflowing(api, context_length_exceeded_behavior="truncate"))
    )
    assert error["code"] == "context_length_exceeded"


@pytest.mark.parametrize("api", APIS)
def test_overflow_param_honour(pool: Pool, api: str) -> None:
    room = WINDOW - _prompt_tokens(api)
    running = pool(overflow_param="honour", overflow="exceed")
    error = _error(_post(running, api, _overflowing(api, context_length_exceeded_behavior="error")))
    truncated = _ok(
        _post(running, api, _overflowing(api, context_length_exceeded_behavior="truncate"))
    )
    plain = _ok(_post(running, api, _overflowing(api)))
    _error(_post(running, api, _overflowing(api, context_length_exceeded_behavior="explode")))
    assert error["code"] == "context_length_exceeded"
    assert truncated["usage"]["completion_tokens"] == room
    assert plain["usage"]["completion_tokens"] == room + 8


# --------------------------------------------------------------------------- stop


def _stop_word(text: str) -> str:
    return " " + text.split(" ")[8]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("mode", ["strip", "keep", "ignore"])
@pytest.mark.parametrize("api", APIS)
def test_stop_modes(pool: Pool, api: str, mode: str, stream: bool) -> None:
    params = {"max_tokens": 32, "temperature": 0, "seed": 7}
    running = pool(stop=mode)
    baseline = _text(api, _ok(_post(running, api, _request(api, **params))))
    stop = _stop_word(baseline)
    response = _post(running, api, _request(api, stop=[stop], stream=stream, **params))
    text = _streamed_text(api, _events(response)) if stream else _text(api, _ok(response))
    at = baseline.index(stop)
    expected = {"strip": baseline[:at], "keep": baseline[: at + len(stop)], "ignore": baseline}
    assert text == expected[mode]


def test_stop_finish_reason_and_usage(server: RunningServer) -> None:
    params = {"max_tokens": 32, "temperature": 0}
    baseline = _text("chat", _ok(_post(server, "chat", _request("chat", **params))))
    stop = _stop_word(baseline)
    body = _ok(_post(server, "chat", _request("chat", stop=stop, **params)))
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == model.count_tokens(
        baseline[: baseline.index(stop) + len(stop)]
    )


@pytest.mark.parametrize("api", APIS)
def test_stop_reject(pool: Pool, api: str) -> None:
    running = pool(stop="reject")
    assert _error(_post(running, api, _request(api, stop=["x"])))["param"] == "stop"
    _ok(_post(running, api, _request(api, max_tokens=1)))


# --------------------------------------------------------------------------- options


OPTION_PROMPT = "The old clock in the hall struck the hour again and again"


def _option_text(running: RunningServer, api: str, stream: bool, **option: Any) -> str:
    body = _request(
        api,
        max_tokens=32,
        seed=11,
        temperature=0,
        stream=stream,
        **option,
        **(
            {"messages": [{"role": "user", "content": OPTION_PROMPT}]}
            if api == "chat"
            else {"prompt": OPTION_PROMPT}
        ),
    )
    response = _post(running, api, body)
    return _streamed_text(api, _events(response)) if stream else _text(api, _ok(response))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("option", "value"),
    [("presence_penalty", 2.0), ("frequency_penalty", 2.0), ("logit_bias", {"100": 100})],
)
@pytest.mark.parametrize("api", APIS)
def test_option_switches(pool: Pool, api: str, option: str, value: Any, stream: bool) -> None:
    for mode in ("honour", "ignore"):
        running = pool(**{option: mode})
        control = _option_text(running, api, stream)
        changed = _option_text(running, api, stream, **{option: value})
        assert (changed != control) == (mode == "honour"), mode
    running = pool(**{option: "reject"})
    error = _error(_post(running, api, _request(api, **{option: value})))
    assert error["param"] == option
    assert option in error["message"]


def test_logit_bias_repeats_the_token(server: RunningServer) -> None:
    text = _option_text(server, "completions", False, logit_bias={"100": 100})
    assert text == model.VOCAB[100] * 32


def test_best_of_switch(pool: Pool) -> None:
    params = {"max_tokens": 8, "seed": 11, "temperature": 0}
    running = pool(best_of="honour")
    honoured = _ok(_post(running, "completions", _request("completions", best_of=3, **params)))
    assert len(honoured["choices"]) == 1
    assert (
        _error(_post(running, "completions", _request("completions", best_of=1, n=2)))["param"]
        == "best_of"
    )
    streamed = _request("completions", best_of=3, stream=True)
    assert "cannot be streamed" in _error(_post(running, "completions", streamed))["message"]
    sampled = _ok(_post(running, "completions", _request("completions", best_of=4, n=2, seed=1)))
    assert len(sampled["choices"]) == 2
    assert sampled["usage"]["completion_tokens"] == 4 * model.DEFAULT_MAX_TOKENS
    assert honoured["usage"]["completion_tokens"] == 3 * 8
    running = pool(best_of="ignore")
    ignored = _ok(_post(running, "completions", _request("completions", best_of=3, **params)))
    _events(_post(running, "completions", _request("completions", best_of=3, stream=True)))
    assert ignored["usage"]["completion_tokens"] == 8
    running = pool(best_of="reject")
    assert (
        _error(_post(running, "completions", _request("completions", best_of=3)))["param"]
        == "best_of"
    )


FUNCTION: Function = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
FORCED = {"functions": [FUNCTION], "function_call": {"name": "get_weather"}, "max_tokens": 32}


def test_functions_honoured(pool: Pool) -> None:
    weather = [{"role": "user", "content": "What is the weather in Lisbon?"}]
    running = pool(functions="honour")
    reply = _client(running).chat.completions.create(
        model="toy",
        messages=[{"role": "user", "content": "What is the weather in Lisbon?"}],
        functions=[FUNCTION],
        function_call={"name": "get_weather"},
        max_tokens=32,
    )
    chunks = _events(
        _post(running, "chat", _request("chat", messages=weather, stream=True, **FORCED))
    )
    unforced = _ok(_post(running, "chat", _request("chat", functions=[FUNCTION])))
    unknown = _request("chat", functions=[FUNCTION], function_call={"name": "nope"})
    assert _error(_post(running, "chat", unknown))["param"] == "function_call"
    choice = reply.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.content is None
    assert choice.message.function_call is not None
    assert choice.message.function_call.name == "get_weather"
    arguments = json.loads(choice.message.function_call.arguments)
    assert list(arguments) == ["city"]
    first = chunks[0]["choices"][0]["delta"]
    assert first["function_call"] == {"name": "get_weather", "arguments": ""}
    pieces = "".join(
        c["choices"][0]["delta"].get("function_call", {}).get("arguments", "") for c in chunks
    )
    assert pieces == choice.message.function_call.arguments
    assert chunks[-1]["choices"][0]["finish_reason"] == "function_call"
    assert unforced["choices"][0]["message"]["content"]


def test_functions_ignored_and_rejected(pool: Pool) -> None:
    running = pool(functions="ignore")
    plain = _ok(_post(running, "chat", _request("chat", max_tokens=32, temperature=0)))
    ignored = _ok(_post(running, "chat", _request("chat", temperature=0, **FORCED)))
    assert ignored["choices"][0]["message"] == plain["choices"][0]["message"]
    assert ignored["choices"][0]["finish_reason"] == "length"
    running = pool(functions="reject")
    assert _error(_post(running, "chat", _request("chat", **FORCED)))["param"] == "functions"


# --------------------------------------------------------------------------- lifecycle


def test_stop_releases_the_port() -> None:
    running = start(ServerConfig())
    port = running.port
    _ok(_post(running, "chat", _request("chat", max_tokens=1), key=None))
    running.stop()
    running.stop()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
