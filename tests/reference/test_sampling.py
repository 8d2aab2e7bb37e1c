"""The reference server's sampling, logprobs and completions switches, over real HTTP."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.probes.logprobs import (
    LEGACY_FIELDS,
    chat_logprobs_problems,
    legacy_logprobs_problems,
)
from conformance.reference import logprobs, model
from conformance.reference.server import RunningServer
from tests.reference._pool import Pool, server_pool

PROMPT = "Say alpha"


@pytest.fixture(scope="module")
def server() -> Iterator[Pool]:
    """Servers by switch settings, started once per module."""
    with server_pool() as get:
        yield get


def _post(running: RunningServer, api: str, **params: Any) -> httpx2.Response:
    body: dict[str, Any] = {"model": "toy", "temperature": 0, "max_tokens": 3, **params}
    if api == "chat":
        body.setdefault("messages", [{"role": "user", "content": PROMPT}])
        path = "/chat/completions"
    else:
        body.setdefault("prompt", PROMPT)
        path = "/completions"
    return httpx2.post(running.base_url + path, json=body, timeout=10)


def _ok(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _refused(response: httpx2.Response, param: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def _chunks(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    lines = [line for line in response.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def _text(api: str, choice: dict[str, Any]) -> str:
    return str(choice["message"]["content"] if api == "chat" else choice["text"])


# --------------------------------------------------------------------------- n and seed


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_n_switch(server: Pool, api: str) -> None:
    assert len(_ok(_post(server(), api, n=2))["choices"]) == 2
    assert len(_ok(_post(server(n="ignore"), api, n=2))["choices"]) == 1
    _refused(_post(server(n="reject"), api, n=2), "n")
    # n 1 is what every request means anyway: never refused.
    assert len(_ok(_post(server(n="reject"), api, n=1))["choices"]) == 1


def _sample(running: RunningServer, seed: int) -> str:
    reply = _ok(_post(running, "completions", temperature=2.0, max_tokens=8, seed=seed))
    return _text("completions", reply["choices"][0])


def test_seed_switch(server: Pool) -> None:
    honour = server()
    assert _sample(honour, 1) == _sample(honour, 1) != _sample(honour, 2)
    ignore = server(seed="ignore")
    assert _sample(ignore, 1) != _sample(ignore, 1)
    insensitive = server(seed="insensitive")
    assert _sample(insensitive, 1) == _sample(insensitive, 2)
    _refused(_post(server(seed="reject"), "chat", seed=1), "seed")


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_temperature_range_switch(server: Pool, api: str) -> None:
    _refused(_post(server(), api, temperature=2.5), "temperature")
    assert _ok(_post(server(temperature_range="accept"), api, temperature=2.5))["choices"]
    # Accepting more does not accept nonsense.
    _refused(_post(server(temperature_range="accept"), api, temperature=-1), "temperature")


# --------------------------------------------------------------------------- logprobs


@pytest.mark.parametrize("stream", [False, True])
def test_chat_logprobs_fit_the_content(server: Pool, stream: bool) -> None:
    response = _post(server(), "chat", logprobs=True, top_logprobs=3, stream=stream)
    if stream:
        chunks = _chunks(response)
        choices = [choice for chunk in chunks for choice in chunk["choices"]]
        content = "".join(choice["delta"].get("content") or "" for choice in choices)
        objects = [choice["logprobs"] for choice in choices if choice["logprobs"]]
    else:
        choice = _ok(response)["choices"][0]
        content, objects = choice["message"]["content"], [choice["logprobs"]]
    assert chat_logprobs_problems(objects, content, 3) == []
    entry = objects[0]["content"][0]
    assert entry["top_logprobs"][0]["logprob"] >= entry["logprob"], "the best comes first"


def test_chat_logprobs_switch(server: Pool) -> None:
    ignored = _ok(_post(server(chat_logprobs="ignore"), "chat", logprobs=True))
    assert ignored["choices"][0]["logprobs"] is None
    _refused(_post(server(chat_logprobs="reject"), "chat", logprobs=True), "logprobs")
    malformed = _ok(_post(server(chat_logprobs="malformed"), "chat", logprobs=True, top_logprobs=2))
    assert set(malformed["choices"][0]["logprobs"]) == set(LEGACY_FIELDS)


def test_top_logprobs_needs_logprobs_and_stays_in_range(server: Pool) -> None:
    _refused(_post(server(), "chat", top_logprobs=2), "top_logprobs")
    _refused(_post(server(), "chat", logprobs=True, top_logprobs=21), "top_logprobs")
    assert _ok(_post(server(), "chat", logprobs=True, top_logprobs=20))


@pytest.mark.parametrize(
    ("limit", "largest"), [("max_5", 5), ("max_10", 10), ("max_20", 20), ("no_max", 40)]
)
def test_top_logprobs_limit_switch(server: Pool, limit: str, largest: int) -> None:
    running = server(top_logprobs_limit=limit)
    reply = _ok(_post(running, "chat", logprobs=True, top_logprobs=largest, max_tokens=1))
    assert len(reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == largest
    if limit != "no_max":
        _refused(_post(running, "chat", logprobs=True, top_logprobs=largest + 1), "top_logprobs")


def test_top_logprobs_refused_outright(server: Pool) -> None:
    running = server(top_logprobs_limit="reject")
    _refused(_post(running, "chat", logprobs=True, top_logprobs=0), "top_logprobs")
    assert _ok(_post(running, "chat", logprobs=True))


@pytest.mark.parametrize("stream", [False, True])
def test_completion_logprobs_fit_the_text(server: Pool, stream: bool) -> None:
    response = _post(server(), "completions", logprobs=2, stream=stream)
    if stream:
        choices = [choice for chunk in _chunks(response) for choice in chunk["choices"]]
        text = "".join(choice["text"] for choice in choices)
        objects = [choice["logprobs"] for choice in choices if choice["logprobs"]]
    else:
        choice = _ok(response)["choices"][0]
        text, objects = choice["text"], [choice["logprobs"]]
    assert legacy_logprobs_problems(objects, text, 2) == []


def test_completion_logprobs_switch(server: Pool) -> None:
    _refused(_post(server(), "completions", logprobs=6), "logprobs")
    ignored = _ok(_post(server(completion_logprobs="ignore"), "completions", logprobs=2))
    assert ignored["choices"][0]["logprobs"] is None
    _refused(_post(server(completion_logprobs="reject"), "completions", logprobs=2), "logprobs")
    malformed = _ok(_post(server(completion_logprobs="malformed"), "completions", logprobs=2))
    assert "content" in malformed["choices"][0]["logprobs"]


def test_echoed_logprobs_offsets_start_after_the_prompt(server: Pool) -> None:
    choice = _ok(_post(server(), "completions", logprobs=1, echo=True))["choices"][0]
    assert choice["logprobs"]["text_offset"][0] == len(PROMPT)
    assert choice["text"] == PROMPT + "".join(choice["logprobs"]["tokens"])


@settings(max_examples=25, deadline=None)
@given(
    prompt=st.lists(st.sampled_from(model.SPACE_WORD_IDS), min_size=1, max_size=6),
    top=st.integers(min_value=0, max_value=8),
    temperature=st.sampled_from([0.0, 1.0, 2.0]),
)
def test_token_logprobs_are_a_distribution(prompt: list[int], top: int, temperature: float) -> None:
    sampling = model.Sampling(max_tokens=4, temperature=temperature, seed=5)
    generation = model.generate(prompt, sampling)
    entries = logprobs.token_logprobs(prompt, generation.tokens, sampling, top)
    assert [entry.token for entry in entries] == list(generation.tokens)
    for entry in entries:
        assert entry.logprob <= 0
        assert len(entry.top) == top
        values = [value for _, value in entry.top]
        assert values == sorted(values, reverse=True)
        assert sum(math.exp(value) for value in values) <= 1 + 1e-9
        if top and entry.token not in dict(entry.top):
            assert entry.logprob <= values[-1], "a token outside the top is no likelier"
    rendered = logprobs.legacy(entries, 0)
    assert "".join(rendered["tokens"]) == generation.text
    assert all(len(alternatives) in (top, top + 1) for alternatives in rendered["top_logprobs"])


def test_logprobs_stop_at_a_stop_match() -> None:
    sampling = model.Sampling(max_tokens=6, temperature=0)
    text = model.generate([5, 6], sampling).text
    word = text.split()[2]
    stopped = model.generate([5, 6], model.Sampling(max_tokens=6, temperature=0, stop=(word,)))
    entries = logprobs.token_logprobs([5, 6], stopped.tokens, sampling, 1)
    kept = logprobs.within(entries, stopped.text)
    assert "".join(logprobs.token_text(entry.token) for entry in kept) == stopped.text.rstrip()


# --------------------------------------------------------------------------- completions


@pytest.mark.parametrize("stream", [False, True])
def test_echo_switch(server: Pool, stream: bool) -> None:
    def text(running: RunningServer, **params: Any) -> str:
        response = _post(running, "completions", stream=stream, **params)
        if stream:
            return "".join(c["text"] for chunk in _chunks(response) for c in chunk["choices"])
        return _text("completions", _ok(response)["choices"][0])

    control = text(server())
    assert text(server(), echo=True) == PROMPT + control
    assert text(server(echo="ignore"), echo=True) == control
    _refused(_post(server(echo="reject"), "completions", echo=True), "echo")


def test_suffix_switch(server: Pool) -> None:
    suffix = " the end."

    def text(running: RunningServer, **params: Any) -> str:
        return _text("completions", _ok(_post(running, "completions", **params))["choices"][0])

    control = text(server())
    honoured = text(server(), suffix=suffix)
    assert honoured != control
    assert not honoured.endswith(suffix)
    assert text(server(suffix="append"), suffix=suffix) == control + suffix
    assert text(server(suffix="ignore"), suffix=suffix) == control
    _refused(_post(server(suffix="reject"), "completions", suffix=suffix), "suffix")


def test_prompt_list_switch(server: Pool) -> None:
    prompts = [PROMPT, "Say mike"]
    alone = [
        _text("completions", _ok(_post(server(), "completions", prompt=p))["choices"][0])
        for p in prompts
    ]
    honoured = _ok(_post(server(), "completions", prompt=prompts))["choices"]
    assert [(c["index"], c["text"]) for c in honoured] == list(enumerate(alone))
    first = _ok(_post(server(prompt_list="first_only"), "completions", prompt=prompts))["choices"]
    assert [c["text"] for c in first] == alone[:1]
    _refused(_post(server(prompt_list="reject"), "completions", prompt=prompts), "prompt")
    # A list holding one prompt is one prompt.
    assert _ok(_post(server(prompt_list="reject"), "completions", prompt=[PROMPT]))
