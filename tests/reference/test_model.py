"""The toy model: tokenizer round-trip, determinism, and the effects the probes rely on."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.reference import model
from conformance.spec import load_specs
from tests.conftest import SPECS

PRINTABLE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126))


def _option_prompt(behavior_id: str) -> tuple[str, int]:
    params = load_specs(SPECS).behaviors[behavior_id].params
    return str(params["prompt"]), int(params["max_tokens"])


def _prompts(text: str) -> dict[str, list[int]]:
    """The token ids of ``text`` as a completions prompt and as a chat prompt."""
    return {
        "completions": model.tokenize(text),
        "chat": model.tokenize(model.render_chat([{"role": "user", "content": text}])),
    }


def _greedy(prompt: list[int], **options: object) -> model.Generation:
    return model.generate(prompt, model.Sampling(temperature=0, **options))  # type: ignore[arg-type]


@given(PRINTABLE)
def test_printable_ascii_round_trips(text: str) -> None:
    assert model.detokenize(model.tokenize(text)) == text


@given(st.text())
def test_any_text_round_trips(text: str) -> None:
    assert model.detokenize(model.tokenize(text)) == text


@given(st.lists(st.integers(min_value=0, max_value=model.VOCAB_SIZE - 1), max_size=40))
def test_stream_pieces_join_to_the_text(ids: list[int]) -> None:
    # Byte tokens can split a character; the pieces must still join to the whole text.
    assert "".join(model.stream_pieces(ids)) == model.detokenize(ids)


def test_vocabulary_is_stable() -> None:
    assert model.VOCAB[:3] == model.SPECIALS
    assert model.VOCAB[100] == " " + model.WORDS[97]
    assert model.VOCAB[200].startswith(" ")
    assert model.tokenize(" harbour") == [model.VOCAB.index(" harbour")]
    assert model.tokenize("<|im_start|>") == [model.IM_START]


def test_prompt_token_counts_follow_the_template() -> None:
    messages = [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]
    rendered = model.render_chat(messages)
    assert rendered == (
        "<|im_start|>system\nBe brief<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert model.count_tokens(rendered) == len(model.tokenize(rendered))


@settings(max_examples=25, deadline=None)
@given(PRINTABLE, st.integers(min_value=1, max_value=40))
def test_greedy_is_deterministic_and_exact_length(text: str, max_tokens: int) -> None:
    prompt = model.tokenize(text)
    first = _greedy(prompt, max_tokens=max_tokens)
    assert first == _greedy(prompt, max_tokens=max_tokens)
    assert len(first.tokens) == max_tokens
    assert first.finish_reason == "length"
    assert all(token in model.SPACE_WORD_IDS for token in first.tokens)
    assert first.text == model.detokenize(first.tokens)


@settings(max_examples=25, deadline=None)
@given(st.integers(), st.integers(min_value=0, max_value=3))
def test_seeded_sampling_is_reproducible(seed: int, candidate: int) -> None:
    prompt = model.tokenize("Describe the market square at noon")
    sampling = model.Sampling(max_tokens=12, temperature=1.0, seed=seed)
    assert model.generate(prompt, sampling, candidate=candidate) == model.generate(
        prompt, sampling, candidate=candidate
    )


def test_output_depends_on_the_prompt() -> None:
    texts = {
        _greedy(model.tokenize(prompt), max_tokens=16).text
        for prompt in ("Count the boats", "Describe the market", "What is the weather", "")
    }
    assert len(texts) == 4


def test_output_is_readable_words() -> None:
    text = _greedy(model.tokenize("The lighthouse keeper wrote"), max_tokens=32).text
    words = text.split(" ")
    assert words[0] == ""
    assert all(word in model.WORDS for word in words[1:])


@pytest.mark.parametrize("api", ["completions", "chat"])
@pytest.mark.parametrize("option", ["presence_penalty", "frequency_penalty"])
def test_penalties_change_the_option_prompts(api: str, option: str) -> None:
    text, max_tokens = _option_prompt(f"option.{option}")
    prompt = _prompts(text)[api]
    control = _greedy(prompt, max_tokens=max_tokens)
    assert len(set(control.tokens)) < len(control.tokens), "the control must repeat tokens"
    penalised = _greedy(prompt, max_tokens=max_tokens, **{option: 2.0})
    assert penalised.text != control.text


@pytest.mark.parametrize("api", ["completions", "chat"])
@pytest.mark.parametrize("token", [100, 200])
def test_logit_bias_dominates(api: str, token: int) -> None:
    text, max_tokens = _option_prompt("option.logit_bias")
    prompt = _prompts(text)[api]
    biased = _greedy(prompt, max_tokens=max_tokens, logit_bias={token: 100.0})
    assert biased.text == model.VOCAB[token] * max_tokens
    assert biased.text != _greedy(prompt, max_tokens=max_tokens).text


def test_logit_bias_can_ban_and_raise_non_words() -> None:
    prompt = model.tokenize("Count the boats")
    control = _greedy(prompt, max_tokens=8)
    banned = _greedy(prompt, max_tokens=8, logit_bias={control.tokens[0]: -100.0})
    assert banned.tokens[0] != control.tokens[0]
    comma = model.VOCAB.index(",")
    assert _greedy(prompt, max_tokens=3, logit_bias={comma: 100.0}).text == ",,,"


@pytest.mark.parametrize("keep", [False, True])
def test_stop_cuts_at_the_first_match(keep: bool) -> None:
    prompt = model.tokenize("The lighthouse keeper wrote in the log that night")
    baseline = _greedy(prompt, max_tokens=32)
    word = baseline.text.split(" ")[8]
    stop = " " + word
    at = baseline.text.index(stop)
    stopped = _greedy(prompt, max_tokens=32, stop=(stop, "never said"), keep_stop=keep)
    assert stopped.finish_reason == "stop"
    assert stopped.text == baseline.text[: at + len(stop) if keep else at]
    assert "".join(stopped.pieces) == stopped.text
    # Usage counts the tokens generated, the one that completed the match included.
    assert stopped.tokens == baseline.tokens[: len(stopped.tokens)]
    assert model.detokenize(stopped.tokens).endswith(stop)


def test_stop_inside_a_token_cuts_the_token() -> None:
    prompt = model.tokenize("Count the boats")
    baseline = _greedy(prompt, max_tokens=8)
    second = baseline.text.split(" ")[2]
    stopped = _greedy(prompt, max_tokens=8, stop=(second[1:3],))
    assert stopped.text == baseline.text[: baseline.text.index(second[1:3])]


def test_best_of_ranking_uses_logprobs() -> None:
    prompt = model.tokenize("Describe the market square at noon")
    sampling = model.Sampling(max_tokens=8, temperature=1.0, seed=5)
    candidates = [model.generate(prompt, sampling, candidate=c) for c in range(3)]
    assert len({c.text for c in candidates}) > 1
    assert all(c.logprob < 0 for c in candidates)


def test_function_arguments_are_json_from_the_schema() -> None:
    prompt = model.tokenize(model.render_chat([{"role": "user", "content": "Weather in Lisbon?"}]))
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
    }
    arguments = json.loads(model.function_arguments(prompt, schema))
    assert set(arguments) == {"city", "days", "unit"}
    assert arguments["city"] in model.WORDS
    assert isinstance(arguments["days"], int)
    assert arguments["unit"] == "celsius"
    assert model.function_arguments(prompt, schema) == model.function_arguments(prompt, schema)
