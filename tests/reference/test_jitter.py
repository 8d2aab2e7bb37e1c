"""Jitter: a share of temperature-0 requests diverge after a few tokens, on every endpoint."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from conformance.reference import model
from conformance.reference.jitter import FIRST_DIVERGENT_TOKEN, Jitter
from conformance.reference.server import RunningServer, ServerConfig, start
from tests.conftest import SPECS

PROMPT = "The lighthouse keeper wrote in the log that night"


@pytest.fixture(scope="module")
def always() -> Iterator[RunningServer]:
    with start(ServerConfig(jitter=1.0, jitter_seed=5)) as running:
        yield running


@pytest.fixture(scope="module")
def steady() -> Iterator[RunningServer]:
    with start(ServerConfig()) as running:
        yield running


def _texts(server: RunningServer, api: str, stream: bool, count: int, **options: Any) -> list[str]:
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    texts = []
    for _ in range(count):
        if api == "chat":
            messages: Any = [{"role": "user", "content": PROMPT}]
            reply: Any = client.chat.completions.create(
                model="toy",
                messages=messages,
                stream=stream,
                **options,
            )
            pieces = (
                [chunk.choices[0].delta.content or "" for chunk in reply if chunk.choices]
                if stream
                else [reply.choices[0].message.content]
            )
        else:
            reply = client.completions.create(model="toy", prompt=PROMPT, stream=stream, **options)
            pieces = (
                [chunk.choices[0].text for chunk in reply if chunk.choices]
                if stream
                else [reply.choices[0].text]
            )
        texts.append("".join(pieces))
    return texts


@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("stream", [False, True])
def test_greedy_requests_diverge_after_a_few_tokens(
    always: RunningServer, steady: RunningServer, api: str, stream: bool
) -> None:
    options = {"temperature": 0, "max_tokens": 24, "seed": 1}
    (clean,) = _texts(steady, api, stream, 1, **options)
    jittered = _texts(always, api, stream, 8, **options)
    words = clean.split()
    # The same request, sent again, differs: from the clean text and among its replies.
    assert any(text != clean for text in jittered)
    assert len(set(jittered)) > 1
    for text in jittered:
        # Divergence comes after the first tokens, and the length stays what was asked.
        assert text.split()[:FIRST_DIVERGENT_TOKEN] == words[:FIRST_DIVERGENT_TOKEN]
        assert len(model.tokenize(text)) == len(model.tokenize(clean))


def test_without_jitter_the_same_request_gives_the_same_text(steady: RunningServer) -> None:
    texts = _texts(steady, "chat", False, 4, temperature=0, max_tokens=24)
    assert len(set(texts)) == 1


def test_sampled_requests_are_left_alone(always: RunningServer, steady: RunningServer) -> None:
    options = {"temperature": 1.0, "seed": 11, "max_tokens": 24}
    assert _texts(always, "chat", False, 3, **options) == _texts(
        steady, "chat", False, 3, **options
    )


def test_a_large_logit_bias_is_no_near_tie(always: RunningServer) -> None:
    texts = _texts(always, "chat", False, 4, temperature=0, max_tokens=12, logit_bias={"100": 100})
    assert set(texts) == {model.detokenize([100]) * 12}


def test_the_fraction_is_kept_and_the_draws_are_seeded() -> None:
    plan = _plan()
    first, second = Jitter(0.3, seed=9), Jitter(0.3, seed=9)
    sequence = [first.apply(plan).sampling.diverge_from for _ in range(2000)]
    assert sequence == [second.apply(plan).sampling.diverge_from for _ in range(2000)]
    share = sum(position is not None for position in sequence) / len(sequence)
    assert 0.25 < share < 0.35
    assert Jitter(0.0).apply(plan) is plan


def test_a_fraction_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Jitter(1.5)


def _plan() -> Any:
    from conformance.reference.planning import plan_request  # noqa: PLC0415

    body = {"model": "toy", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0}
    return plan_request(body, "chat", ServerConfig())


def test_conformance_serve_takes_the_jitter_and_its_seed(steady: RunningServer) -> None:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    command = [sys.executable, "-m", "conformance", "serve", "--port", str(port)]
    command += ["--jitter", "1", "--jitter-seed", "4", "--specs", str(SPECS)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline, "conformance serve did not start"
                time.sleep(0.1)
        (clean,) = _texts(steady, "completions", False, 1, temperature=0, max_tokens=24)
        reply = client.completions.create(model="toy", prompt=PROMPT, temperature=0, max_tokens=24)
        assert reply.choices[0].text != clean
    finally:
        process.terminate()
        process.wait(10)
