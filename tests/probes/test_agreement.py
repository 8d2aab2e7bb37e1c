"""Asking again: probes against a target whose replies to one request sometimes differ.

The fake target answers each distinct request body from a script, one reply after another,
so that a divergent reply can be placed exactly where a probe would be misled by it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from conformance.observation import ProbeError
from conformance.probes.limits import stop_metadata
from conformance.probes.options import option_effect
from conformance.probes.registry import ProbeContext
from conformance.probes.stop import choose_stop_word, stop_sequence
from tests.probes._fake import TARGET, completion, context

BASELINE = " alpha bravo charlie delta echo foxtrot golf hotel"
WORD = choose_stop_word(BASELINE) or ""


def _scripted(
    script: Callable[[dict[str, Any]], Sequence[str]],
) -> Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]:
    """Answer each distinct body with its script's texts in turn (the last one repeats)."""
    seen: dict[str, int] = defaultdict(int)

    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key = json.dumps(body, sort_keys=True)
        texts = script(body)
        text = texts[min(seen[key], len(texts) - 1)]
        seen[key] += 1
        finish = "stop" if body.get("stop") and text != BASELINE else "length"
        return completion(text, finish_reason=finish)

    return answer


def _option_script(controls: Sequence[str], optioned: Sequence[str]) -> Any:
    return _scripted(lambda body: optioned if "presence_penalty" in body else controls)


def _labels(ctx: ProbeContext) -> list[str]:
    return [exchange.label for exchange in ctx.endpoint.exchanges]


def _with_attempts(ctx: ProbeContext, attempts: int) -> ProbeContext:
    ctx.endpoint.target = TARGET.model_copy(update={"attempts": attempts})
    return ctx


def test_a_steady_target_gets_the_recorded_requests_and_no_more() -> None:
    ctx, sent = context("option.presence_penalty", _option_script(["a b"], ["c d"]))
    observation = option_effect(ctx)
    assert observation.outcome == "honoured"
    # The control twice and the option twice, as every shipped cassette holds them.
    assert _labels(ctx) == [
        "control",
        "with-presence_penalty",
        "control-repeat",
        "with-presence_penalty-repeat",
    ]
    assert sum("presence_penalty" in body for body in sent) == 2


def test_one_divergent_reply_against_a_steady_control_is_not_honoured() -> None:
    # The control reproduces at once; the option's first reply diverged, and then twice
    # matches the control: the option was ignored, not honoured.
    ctx, _ = context("option.presence_penalty", _option_script(["a b"], ["a y", "a b", "a b"]))
    assert option_effect(ctx).outcome == "ignored"


def test_a_divergent_control_is_asked_again_and_decided_by_agreement() -> None:
    ctx, _ = context("option.presence_penalty", _option_script(["a b", "a x", "a b"], ["c d"]))
    observation = option_effect(ctx)
    assert observation.outcome == "honoured"
    assert "control-attempt-3" in _labels(ctx)


def test_honoured_is_never_one_divergent_reply() -> None:
    # The control diverged once, so the target is not deterministic; the option's reply
    # differs once, then twice matches the control: the option was ignored.
    ctx, _ = context(
        "option.presence_penalty", _option_script(["a b", "a x", "a b"], ["a y", "a b", "a b"])
    )
    observation = option_effect(ctx)
    assert observation.outcome == "ignored"
    assert _labels(ctx).count("with-presence_penalty-repeat") == 1


def test_an_effect_that_reproduces_against_a_stable_control_is_honoured() -> None:
    ctx, _ = context(
        "option.presence_penalty", _option_script(["a b", "a x", "a b"], ["c d", "c e", "c d"])
    )
    assert option_effect(ctx).outcome == "honoured"


def test_replies_that_never_agree_are_an_error_that_says_so() -> None:
    controls = [f"text {n}" for n in range(10)]
    ctx, _ = context("option.presence_penalty", _option_script(controls, ["c d"]))
    with pytest.raises(ProbeError, match="control: 5 attempts disagreed") as raised:
        option_effect(ctx)
    # Every attempt stays in the evidence.
    assert len(raised.value.exchanges) == 6


def test_the_number_of_attempts_is_the_targets() -> None:
    controls = [f"text {n}" for n in range(10)]
    ctx, _ = context("option.presence_penalty", _option_script(controls, ["c d"]))
    with pytest.raises(ProbeError, match="control: 3 attempts disagreed"):
        option_effect(_with_attempts(ctx, 3))


def test_a_target_with_one_attempt_is_trusted_on_its_first_reply() -> None:
    ctx, _ = context("option.presence_penalty", _option_script(["a b", "a x"], ["c d"]))
    assert option_effect(_with_attempts(ctx, 1)).outcome == "honoured"
    assert _labels(ctx) == ["control", "with-presence_penalty"]


def _stop_script(stopped: Sequence[str], baselines: Sequence[str] = (BASELINE,)) -> Any:
    return _scripted(lambda body: stopped if body.get("stop") else baselines)


def test_a_divergent_stopped_text_is_asked_again() -> None:
    cut = BASELINE[: BASELINE.index(WORD)]
    ctx, _ = context("stop.inclusion", _stop_script([" alpha zulu yankee", cut]))
    observation = stop_sequence(ctx)
    assert observation.outcome == "omitted"
    assert "with-stop-repeat" in _labels(ctx)


def test_a_divergent_baseline_is_asked_again_and_the_reply_it_explains_decides() -> None:
    # The first baseline diverged after "alpha"; the stop word comes from it, and the
    # steady baseline explains the stopped text.
    divergent = " alpha kilo lima mike echo november oscar papa"
    assert choose_stop_word(divergent) == WORD
    stopped = BASELINE[: BASELINE.index(WORD)]
    ctx, _ = context("stop.inclusion", _stop_script([stopped], [divergent, BASELINE]))
    observation = stop_sequence(ctx)
    assert observation.outcome == "omitted"
    assert _labels(ctx)[:3] == ["baseline", "with-stop", "baseline-repeat"]


def test_a_steady_text_the_baseline_does_not_explain_stays_an_error_of_its_own() -> None:
    ctx, _ = context("stop.inclusion", _stop_script([" zulu"]))
    with pytest.raises(ProbeError, match="neither the baseline cut"):
        stop_sequence(ctx)
    # Asked twice more each: both reproduced, so the target is steady and nothing else is sent.
    assert len(ctx.endpoint.exchanges) == 6


def test_stopped_texts_that_never_fit_after_every_attempt_are_an_error() -> None:
    ctx, _ = context("stop.inclusion", _stop_script([f" zulu {n}" for n in range(10)]))
    with pytest.raises(ProbeError, match="5 attempts disagreed"):
        stop_sequence(ctx)


def _metadata_answer(extra: Mapping[str, Any]) -> Any:
    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not body.get("stop"):
            return completion(BASELINE)
        status, reply = completion(BASELINE[: BASELINE.index(WORD)], finish_reason="stop")
        reply["choices"][0].update(extra)
        return status, reply

    return answer


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"stop_reason": "echo"}, "stop_reason"),
        (
            {"provider_specific_fields": {"stop_reason": "echo"}},
            "provider_specific_fields.stop_reason",
        ),
        ({"meta": {"matched": ["x", "echo"]}}, "meta.matched[1]"),
    ],
)
def test_stop_metadata_finds_the_stop_wherever_the_choice_carries_it(
    extra: dict[str, Any], where: str
) -> None:
    ctx, _ = context("finish_reason.stop_metadata", _metadata_answer(extra))
    observation = stop_metadata(ctx)
    assert observation.outcome == "present"
    assert observation.summary.startswith(f"{where} name the stop 'echo'")


def test_stop_metadata_is_absent_where_no_field_names_the_stop() -> None:
    ctx, _ = context(
        "finish_reason.stop_metadata", _metadata_answer({"provider_specific_fields": {"x": 1}})
    )
    assert stop_metadata(ctx).outcome == "absent"


def test_a_stop_word_from_a_divergent_baseline_is_taken_again_from_the_usual_one() -> None:
    divergent = " alpha kilo lima mike zulu november oscar papa"
    assert choose_stop_word(divergent) not in BASELINE

    def script(body: dict[str, Any]) -> Sequence[str]:
        if not body.get("stop"):
            return [divergent, BASELINE]
        (word,) = body["stop"]
        # The usual text never says the divergent word, so that stop never ends it.
        return [BASELINE[: BASELINE.index(word)] if word in BASELINE else BASELINE]

    ctx, _ = context("stop.inclusion", _scripted(script))
    observation = stop_sequence(ctx)
    assert observation.outcome == "omitted"
    assert f"stop {WORD!r}" in observation.summary
