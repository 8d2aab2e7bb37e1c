"""The stop-list, finish_reason and length-limit probes, against a scripted fake server.

The mutation matrix shows every outcome against the reference server; these tests cover
what the reference server cannot show: a model that ends by itself, a stream whose text
differs from the same request unstreamed, a server that takes the smaller of two limits,
extra per-choice fields, and targets without an output cap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.catalog import load
from conformance.observation import NotApplicable, Observation, ProbeError
from conformance.probes.client import Endpoint
from conformance.probes.limits import (
    both_limits,
    completion_limit,
    decoys,
    default_max_tokens,
    finish_reason_vocabulary,
    max_tokens_limit,
    output_cap,
    stop_list_limit,
    stop_metadata,
)
from conformance.probes.registry import ProbeContext
from conformance.probes.stop import Cut, choose_stop_word
from conformance.spec import Api, Target
from tests.conftest import SPECS

CATALOG = load(SPECS)
TARGET = CATALOG.targets["reference-openai"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: Distinct three-letter words, so that the probes can pick stop words from them.
WORDS = [f" w{first}{second}" for first in LETTERS for second in LETTERS][:300]
PROMPT_TOKENS = 10


@dataclass
class Fake:
    """A deterministic OpenAI-like server: token i of every completion is WORDS[i]."""

    natural_end: int | None = None  # the model ends by itself after this many tokens
    default: int = 16  # tokens generated without a limit
    max_tokens_option: bool = True  # max_tokens honoured
    completion_option: bool = True  # max_completion_tokens honoured
    smaller_wins: bool = False  # with both limits, the smaller one applies
    stop_limit: int | None = None  # stop sequences applied (None: all)
    apply_stop: bool = True
    stream_usage: int | None = None  # completion_tokens the stream's own usage claims
    finish_labels: Mapping[str, str | None] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # extra per-choice fields
    stream_suffix: str = ""  # appended to streamed text only (a stream that runs on)
    stream_prefix: str = ""  # put before streamed text only (a stream that differs)

    def reply(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        tokens, finish = self._generate(body)
        text = "".join(tokens)
        finish, stop_match = self._stop(body, text, finish)
        if stop_match is not None:
            text = text[: text.index(stop_match)]
        label = self.finish_labels.get(finish, finish)
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": len(tokens),
            "total_tokens": PROMPT_TOKENS + len(tokens),
        }
        chat = "messages" in body
        if not body.get("stream"):
            choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": label}
            choice.update({"message": {"role": "assistant", "content": text}} if chat else {})
            choice.update({} if chat else {"text": text})
            choice.update(self.extra)
            reply = {"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage}
            return httpx2.Response(200, json=reply)
        text = self.stream_prefix + text + self.stream_suffix
        chunks = [self._chunk(chat, piece, None) for piece in _pieces(text)]
        chunks.append(self._chunk(chat, "", label))
        if self.stream_usage is not None:
            chunks[-1]["usage"] = {**usage, "completion_tokens": self.stream_usage}
        chunks[-1]["choices"][0].update(self.extra)
        lines = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=lines.encode()
        )

    def _generate(self, body: Mapping[str, Any]) -> tuple[list[str], str]:
        limits = [body.get("max_tokens")] if self.max_tokens_option else []
        if self.completion_option:
            limits.append(body.get("max_completion_tokens"))
        given_limits = [limit for limit in limits if limit is not None]
        if not given_limits:
            limit = self.default
        elif self.smaller_wins:
            limit = min(given_limits)
        else:
            limit = given_limits[-1]
        if self.natural_end is not None and self.natural_end < limit:
            return WORDS[: self.natural_end], "stop"
        return WORDS[:limit], "length"

    def _stop(self, body: Mapping[str, Any], text: str, finish: str) -> tuple[str, str | None]:
        stops = body.get("stop") or []
        if not self.apply_stop:
            return finish, None
        stops = stops[: self.stop_limit] if self.stop_limit is not None else stops
        found = sorted((text.index(stop), stop) for stop in stops if stop in text)
        return ("stop", found[0][1]) if found else (finish, None)

    @staticmethod
    def _chunk(chat: bool, piece: str, finish: str | None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish}
        choice.update({"delta": {"content": piece}} if chat else {"text": piece})
        return {"id": "x", "object": "chunk", "choices": [choice]}


def _pieces(text: str) -> list[str]:
    return [" " + word for word in text.split(" ") if word]


def _run(
    probe: Callable[[ProbeContext], Observation],
    behavior_id: str,
    fake: Fake,
    *,
    api: Api = Api.CHAT,
    stream: bool = False,
    target: Target = TARGET,
    params: Mapping[str, Any] | None = None,
) -> tuple[Observation, ProbeContext]:
    endpoint = Endpoint(
        target,
        "http://127.0.0.1:9/v1",
        "k",
        transport=httpx2.MockTransport(fake.reply),
        sleep=lambda _: None,
    )
    merged = {**CATALOG.behaviors[behavior_id].params, **(params or {})}
    ctx = ProbeContext(endpoint, api, stream, merged)
    return probe(ctx), ctx


def _labels(ctx: ProbeContext) -> list[str]:
    return [exchange.label for exchange in ctx.endpoint.exchanges]


# --------------------------------------------------------------------------- pure parts


@given(st.text(alphabet="#~0123456789 ab", max_size=60), st.integers(min_value=0, max_value=6))
def test_decoys_never_occur_in_the_text(text: str, count: int) -> None:
    found = decoys(text, count)
    assert len(found) == count
    assert len(set(found)) == count
    assert not any(decoy in text for decoy in found)


def test_a_cut_is_applied_just_before_or_just_after_its_word() -> None:
    cut = Cut.of(" alpha bravo charlie delta", "charlie")
    assert cut.applied(" alpha bravo ")
    assert cut.applied(" alpha bravo")
    assert cut.applied(" alpha bravo charlie")
    assert not cut.applied(" alpha bravo charlie delta")
    assert not cut.applied(" alpha")


# --------------------------------------------------------------------------- token counts


def test_a_stream_is_counted_by_the_same_request_unstreamed() -> None:
    observation, ctx = _run(max_tokens_limit, "max_tokens.limit", Fake(), stream=True)
    assert observation.outcome == "honoured"
    assert "unstreamed" in observation.summary
    assert _labels(ctx) == ["limited", "limited-unstreamed"]


@pytest.mark.parametrize("claimed", [0, 50])
def test_a_streams_own_usage_is_not_trusted(claimed: int) -> None:
    # LiteLLM's completions streams claim 0 tokens; an overcount would read as "exceeded".
    fake = Fake(stream_usage=claimed)
    observation, _ = _run(max_tokens_limit, "max_tokens.limit", fake, stream=True)
    assert observation.outcome == "honoured"
    assert "5 completion tokens" in observation.summary


def test_a_stream_that_runs_on_past_its_unstreamed_twin_has_more_tokens() -> None:
    fake = Fake(stream_suffix=" wzz")
    observation, _ = _run(max_tokens_limit, "max_tokens.limit", fake, stream=True)
    assert observation.outcome == "exceeded"
    assert "at least 6 completion tokens" in observation.summary
    # A lower bound within the limit cannot show that the limit was kept.
    short = Fake(natural_end=2, stream_suffix=" wzz")
    with pytest.raises(ProbeError, match=r"at least 3 completion tokens.*not an exact count"):
        _run(max_tokens_limit, "max_tokens.limit", short, stream=True)


def test_a_stream_that_differs_from_its_unstreamed_twin_is_no_count() -> None:
    with pytest.raises(ProbeError, match="differs from the same request unstreamed"):
        _run(max_tokens_limit, "max_tokens.limit", Fake(stream_prefix=" wzz"), stream=True)


@pytest.mark.parametrize("stream", [False, True])
def test_more_tokens_than_max_tokens_is_exceeded(stream: bool) -> None:
    ignoring = Fake(max_tokens_option=False)
    observation, _ = _run(max_tokens_limit, "max_tokens.limit", ignoring, stream=stream)
    assert observation.outcome == "exceeded"
    assert "16 completion tokens" in observation.summary


# --------------------------------------------------------------------------- limits


def test_more_tokens_than_max_completion_tokens_is_ignored() -> None:
    ignoring = Fake(completion_option=False)
    observation, ctx = _run(completion_limit, "max_tokens.max_completion_tokens", ignoring)
    assert observation.outcome == "ignored"
    assert len(_labels(ctx)) == 1, "the first value already decides"


def test_max_completion_tokens_honoured_needs_both_values_to_show() -> None:
    observation, ctx = _run(completion_limit, "max_tokens.max_completion_tokens", Fake())
    assert observation.outcome == "honoured"
    assert len(_labels(ctx)) == 2


def test_a_model_that_ends_by_itself_cannot_show_max_completion_tokens() -> None:
    with pytest.raises(NotApplicable, match="ended by itself"):
        _run(completion_limit, "max_tokens.max_completion_tokens", Fake(natural_end=3))


def test_the_smaller_of_two_limits_winning_is_no_declared_outcome() -> None:
    with pytest.raises(ProbeError, match="neither parameter wins both times"):
        _run(both_limits, "max_tokens.both", Fake(smaller_wins=True))


@pytest.mark.parametrize(
    ("fake", "outcome"),
    [
        (Fake(), "max_completion_tokens_wins"),
        (Fake(completion_option=False), "max_tokens_wins"),
    ],
)
def test_the_parameter_that_wins_both_times(fake: Fake, outcome: str) -> None:
    observation, _ = _run(both_limits, "max_tokens.both", fake)
    assert observation.outcome == outcome


def test_both_limits_on_a_model_that_ends_by_itself_is_not_applicable() -> None:
    with pytest.raises(NotApplicable):
        _run(both_limits, "max_tokens.both", Fake(natural_end=2))


# --------------------------------------------------------------------------- defaults


def test_a_small_default_is_capped_with_its_size() -> None:
    observation, _ = _run(default_max_tokens, "max_tokens.default", Fake(), api=Api.COMPLETIONS)
    assert observation.outcome == "capped"
    assert "16 tokens" in observation.summary


def test_a_default_past_the_threshold_is_uncapped_even_with_a_natural_end() -> None:
    fake = Fake(default=200, natural_end=100)
    observation, _ = _run(default_max_tokens, "max_tokens.default.chat", fake)
    assert observation.outcome == "uncapped"


def test_a_default_that_fills_a_small_window_is_uncapped() -> None:
    small = TARGET.model_copy(update={"context_window": 40})
    observation, _ = _run(
        default_max_tokens, "max_tokens.default.chat", Fake(default=30), target=small
    )
    assert observation.outcome == "uncapped"
    assert "window of 40 is full" in observation.summary


def test_a_natural_end_below_the_threshold_shows_no_default() -> None:
    with pytest.raises(NotApplicable, match="ended by itself"):
        _run(default_max_tokens, "max_tokens.default.chat", Fake(natural_end=5))


# --------------------------------------------------------------------------- output cap


def test_no_output_cap_in_the_target_file_is_not_applicable() -> None:
    uncapped = TARGET.model_copy(update={"max_output_tokens": None})
    with pytest.raises(NotApplicable, match="gives no max_output_tokens"):
        _run(output_cap, "max_tokens.output_cap", Fake(), target=uncapped)


def test_a_cap_too_close_to_the_window_is_not_applicable() -> None:
    tight = TARGET.model_copy(update={"max_output_tokens": 250})
    with pytest.raises(NotApplicable, match="would not fit the window"):
        _run(output_cap, "max_tokens.output_cap", Fake(), target=tight)


def test_a_per_api_cap_is_read_for_the_case_api() -> None:
    per_api = TARGET.model_copy(update={"max_output_tokens": {Api.COMPLETIONS: 20}})
    with pytest.raises(NotApplicable, match="for chat"):
        _run(output_cap, "max_tokens.output_cap", Fake(), target=per_api)
    # No cap at the fake server: max_tokens 28 gives 28 tokens, past the cap of 20.
    observation, _ = _run(
        output_cap, "max_tokens.output_cap", Fake(), target=per_api, api=Api.COMPLETIONS
    )
    assert observation.outcome == "exceeded"


def test_a_natural_end_below_the_cap_decides_nothing() -> None:
    with pytest.raises(NotApplicable, match="below the cap"):
        _run(output_cap, "max_tokens.output_cap", Fake(natural_end=50))


# --------------------------------------------------------------------------- stop lists


def test_a_list_cut_to_four_is_told_apart_by_the_control() -> None:
    observation, ctx = _run(stop_list_limit, "stop.max_sequences", Fake(stop_limit=4))
    assert observation.outcome == "truncated"
    assert _labels(ctx) == ["baseline", "long-list", "control-word-first"]


def test_a_target_that_applies_no_stop_cannot_show_a_cut_list() -> None:
    with pytest.raises(NotApplicable, match="applies no stop sequence"):
        _run(stop_list_limit, "stop.max_sequences", Fake(apply_stop=False))


# --------------------------------------------------------------------------- finish_reason


def test_a_missing_finish_reason_is_nonstandard() -> None:
    observation, _ = _run(
        finish_reason_vocabulary,
        "finish_reason.vocabulary",
        Fake(finish_labels={"length": None}),
        stream=True,
    )
    assert observation.outcome == "nonstandard"


def test_a_value_only_chat_knows_is_nonstandard_on_completions() -> None:
    fake = Fake(finish_labels={"stop": "tool_calls"})
    observation, _ = _run(finish_reason_vocabulary, "finish_reason.vocabulary", fake)
    assert observation.outcome == "mislabelled"
    observation, _ = _run(
        finish_reason_vocabulary, "finish_reason.vocabulary", fake, api=Api.COMPLETIONS
    )
    assert observation.outcome == "nonstandard"


def test_a_model_that_ends_before_the_cut_cannot_show_length() -> None:
    with pytest.raises(NotApplicable, match="not a proper prefix"):
        _run(finish_reason_vocabulary, "finish_reason.vocabulary", Fake(natural_end=3))


@pytest.mark.parametrize("stream", [False, True])
def test_an_extra_field_holding_the_stop_word_is_present(stream: bool) -> None:
    word = choose_stop_word("".join(WORDS[:32]))  # the probe's choice from the baseline
    fake = Fake(extra={"stop_reason": word, "token_ids": [1, 2]})
    observation, _ = _run(stop_metadata, "finish_reason.stop_metadata", fake, stream=stream)
    assert observation.outcome == "present"
    assert "stop_reason" in observation.summary
    assert "token_ids=[1, 2]" in observation.summary


def test_extra_fields_that_do_not_name_the_stop_are_listed_but_absent() -> None:
    fake = Fake(extra={"stop_reason": None, "token_ids": [1, 2]})
    observation, _ = _run(stop_metadata, "finish_reason.stop_metadata", fake)
    assert observation.outcome == "absent"
    assert "stop_reason=None" in observation.summary
