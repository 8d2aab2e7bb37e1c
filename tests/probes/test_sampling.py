"""Pure parts of the sampling, logprobs and completions probes: how observations are named."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.catalog import load
from conformance.observation import Exchange, RequestRecord
from conformance.probes import sse
from conformance.probes.choices import ChoiceSet, ChoiceView, choices
from conformance.probes.client import Reply
from conformance.probes.completions import classify_echo, classify_prompt_list, classify_suffix
from conformance.probes.logprobs import chat_logprobs_problems, legacy_logprobs_problems
from conformance.probes.sampling import classify_choice_count, classify_seed
from tests.conftest import SPECS

EXCHANGE = Exchange(label="test", request=RequestRecord(method="POST", url="", headers={}, body={}))
tokens = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=8)


def _body_reply(body: dict[str, Any]) -> Reply:
    return Reply(200, EXCHANGE, body=body)


def _stream_reply(chunks: list[dict[str, Any]]) -> Reply:
    return Reply(200, EXCHANGE, stream=sse.SseStream(chunks=chunks, done=True))


def _set(*views: ChoiceView, duplicated: list[int] | None = None) -> ChoiceSet:
    return ChoiceSet({view.index: view for view in views}, duplicated or [])


# --------------------------------------------------------------------------- choices


def test_stream_choices_are_joined_by_index() -> None:
    reply = _stream_reply(
        [
            {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]},
            {"choices": [{"index": 1, "delta": {"content": "b"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": "c"}, "finish_reason": "length"}]},
            {"choices": [{"index": 1, "delta": {}, "finish_reason": "stop", "logprobs": {"x": 1}}]},
        ]
    )
    found = choices(reply)
    assert found.indexes == [0, 1]
    assert found.texts() == ["ac", "b"]
    assert found.by_index[1].finish_reason == "stop"
    assert found.by_index[1].logprobs == [{"x": 1}]
    assert not found.duplicated


def test_a_body_that_repeats_index_0_has_merged_choices() -> None:
    body = {"choices": [{"index": 0, "text": "a"}, {"index": 0, "text": "b"}]}
    found = choices(_body_reply(body))
    assert found.duplicated == [0]
    assert classify_choice_count(found, 2) == "merged"


def test_a_stream_index_that_finishes_twice_has_merged_choices() -> None:
    reply = _stream_reply(
        [
            {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "length"}]},
            {"choices": [{"index": 0, "delta": {"content": "c"}, "finish_reason": "length"}]},
        ]
    )
    found = choices(reply)
    assert found.merged
    assert classify_choice_count(found, 2) == "merged"
    assert classify_prompt_list(found, ("ab", "c")) == "merged"


def test_choice_count() -> None:
    two = _set(ChoiceView(0, "a", "length"), ChoiceView(1, "a", "length"))
    assert classify_choice_count(two, 2) == "honoured"
    assert classify_choice_count(_set(ChoiceView(0, "a", "length")), 2) == "ignored"
    # A choice without finish_reason is still a choice: a failing check says the rest.
    unfinished = _set(ChoiceView(0, "a", "length"), ChoiceView(1, "a", None))
    assert classify_choice_count(unfinished, 2) == "honoured"
    assert classify_choice_count(_set(ChoiceView(1, "a", "stop")), 2) is None


@given(st.text(), st.text(), st.text())
def test_seed_outcomes_cover_every_triple(first: str, again: str, other: str) -> None:
    outcome = classify_seed((first, again), other)
    if first != again:
        assert outcome == "ignored"
    elif other == first:
        assert outcome == "insensitive"
    else:
        assert outcome == "honoured"


# --------------------------------------------------------------------------- logprobs


def _chat_entry(token: str, top: int) -> dict[str, Any]:
    alternative = {"token": token, "logprob": -0.5, "bytes": list(token.encode())}
    return {**alternative, "top_logprobs": [alternative] * top}


@given(tokens, st.integers(min_value=0, max_value=5), st.booleans())
def test_chat_logprobs_in_openai_shape_pass(parts: list[str], top: int, chunked: bool) -> None:
    entries = [_chat_entry(token, top) for token in parts]
    objects = [{"content": [e]} for e in entries] if chunked else [{"content": entries}]
    assert chat_logprobs_problems(objects, "".join(parts), top) == []


@given(tokens, st.integers(min_value=1, max_value=5))
def test_chat_logprobs_that_do_not_fit_fail(parts: list[str], top: int) -> None:
    content = "".join(parts)
    good = [_chat_entry(token, top) for token in parts]
    assert chat_logprobs_problems([{"content": good}], content + "x", top)
    assert chat_logprobs_problems([{"content": good}], content, top + 1)
    missing_bytes = [{k: v for k, v in e.items() if k != "bytes"} for e in good]
    assert chat_logprobs_problems([{"content": missing_bytes}], content, top)
    positive = [{**e, "logprob": 0.5} for e in good]
    assert chat_logprobs_problems([{"content": positive}], content, top)
    legacy = {"tokens": parts, "token_logprobs": [-1.0] * len(parts)}
    assert "no content list" in chat_logprobs_problems([legacy], content, top)[0]


def _legacy(parts: list[str], top: int, start: int = 0) -> dict[str, Any]:
    offsets, offset = [], start
    for token in parts:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": parts,
        "token_logprobs": [-1.0] * len(parts),
        "top_logprobs": [{f"t{i}": -1.0 for i in range(top)} for _ in parts],
        "text_offset": offsets,
    }


@given(tokens, st.integers(min_value=0, max_value=5), st.integers(min_value=0, max_value=40))
def test_legacy_logprobs_in_shape_pass(parts: list[str], top: int, start: int) -> None:
    assert legacy_logprobs_problems([_legacy(parts, top, start)], "".join(parts), top) == []
    # A stream splits the lists over chunks; the offsets run on.
    whole = _legacy(parts, top, start)
    chunks = [{name: [values[i]] for name, values in whole.items()} for i in range(len(parts))]
    assert legacy_logprobs_problems(chunks, "".join(parts), top) == []


@given(tokens, st.integers(min_value=1, max_value=5))
def test_legacy_logprobs_that_do_not_fit_fail(parts: list[str], top: int) -> None:
    text = "".join(parts)
    good = _legacy(parts, top)
    assert legacy_logprobs_problems([good], text + "x", top)
    assert legacy_logprobs_problems([{**good, "tokens": parts[:-1]}], text, top)
    assert legacy_logprobs_problems([good], text, top + 2)
    assert legacy_logprobs_problems([{"content": []}], text, top)
    if len(parts) > 1:
        shifted = [0, *[offset + 1 for offset in good["text_offset"][1:]]]
        assert legacy_logprobs_problems([{**good, "text_offset": shifted}], text, top)


def test_the_sampled_token_may_make_one_more_alternative() -> None:
    entry = _legacy(["a"], 2)
    entry["top_logprobs"] = [{"x": -1.0, "y": -2.0, "a": -3.0}]
    assert legacy_logprobs_problems([entry], "a", 2) == []


# --------------------------------------------------------------------------- completions


def test_echo() -> None:
    assert classify_echo("Say", " a b", "Say a b") == "honoured"
    assert classify_echo("Say", " a b", "Say c") == "honoured"
    assert classify_echo("Say", " a b", " a b") == "ignored"
    assert classify_echo("Say", " a b", " c") is None


@given(st.text(min_size=1), st.text(), st.text())
def test_suffix_outcomes(suffix: str, control: str, with_suffix: str) -> None:
    outcome = classify_suffix(suffix, control, with_suffix)
    if with_suffix.endswith(suffix):
        assert outcome == "appended"
    elif with_suffix == control:
        assert outcome == "ignored"
    else:
        assert outcome == "honoured"


def test_prompt_list() -> None:
    alone = (" a", " b")
    both = _set(ChoiceView(0, " a", "length"), ChoiceView(1, " b", "length"))
    assert classify_prompt_list(both, alone) == "honoured"
    assert classify_prompt_list(_set(ChoiceView(0, " a")), alone) == "first_only"
    swapped = _set(ChoiceView(0, " b"), ChoiceView(1, " a"))
    assert classify_prompt_list(swapped, alone) is None
    assert classify_prompt_list(_set(ChoiceView(0, " a b")), alone) is None
    merged = _set(ChoiceView(0, " a"), duplicated=[0])
    assert classify_prompt_list(merged, alone) == "merged"


# --------------------------------------------------------------------------- the ladder spec


@pytest.mark.parametrize("behavior_id", ["logprobs.top_logprobs_limit"])
def test_ladder_names_declared_outcomes_in_order(behavior_id: str) -> None:
    behavior = load(SPECS).behaviors[behavior_id]
    ladder = behavior.params["ladder"]
    values = [step["top_logprobs"] for step in ladder]
    assert values == sorted(set(values)), "values rise, so the first refusal bounds the range"
    named = [step["refused"] for step in ladder] + [behavior.params["all_accepted"]]
    assert len(set(named)) == len(named)
    assert set(named) == set(behavior.outcomes), "every outcome is one ladder position"
