"""Probes against reference servers switched to the quirks real servers show: choices
merged under one index, a finish for one choice only, the stop named in a nested extension
object, and no logprobs at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance.observation import NotApplicable, Observation
from conformance.probes.client import Endpoint
from conformance.probes.registry import ProbeContext, registered
from conformance.spec import Api
from tests.probes._fake import CATALOG, TARGET
from tests.reference._pool import Pool, server_pool


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with server_pool() as get:
        yield get


def _probe(pool: Pool, behavior_id: str, api: Api, stream: bool, **switches: str) -> Observation:
    behavior = CATALOG.behaviors[behavior_id]
    endpoint = Endpoint(TARGET, pool(**switches).base_url, "k")
    context = ProbeContext(endpoint, api, stream, behavior.params)
    return registered()[behavior.probe].run(context)


@pytest.mark.parametrize("api", [Api.CHAT, Api.COMPLETIONS])
@pytest.mark.parametrize("stream", [False, True])
def test_choices_merged_under_index_0_are_merged_not_ignored(
    pool: Pool, api: Api, stream: bool
) -> None:
    assert _probe(pool, "sampling.n", api, stream, n="merged").outcome == "merged"
    assert _probe(pool, "sampling.n", api, stream, n="ignore").outcome == "ignored"


@pytest.mark.parametrize("stream", [False, True])
def test_a_merged_prompt_list_is_merged(pool: Pool, stream: bool) -> None:
    observation = _probe(
        pool, "completions.prompt_list", Api.COMPLETIONS, stream, prompt_list="merged"
    )
    assert observation.outcome == "merged"


@pytest.mark.parametrize("stream", [False, True])
def test_a_finish_for_one_choice_only_is_a_failing_check(pool: Pool, stream: bool) -> None:
    observation = _probe(pool, "sampling.n", Api.CHAT, stream, finish_chunks="first_choice")
    assert observation.outcome == "honoured"
    (check,) = observation.checks
    assert (check.name, check.passed) == ("every-choice-finishes", False)
    assert "[1]" in check.detail
    steady = _probe(pool, "sampling.n", Api.CHAT, stream)
    assert [c.passed for c in steady.checks] == [True]


@pytest.mark.parametrize("stream", [False, True])
def test_the_stop_named_in_a_nested_extension_object_is_found(pool: Pool, stream: bool) -> None:
    observation = _probe(
        pool, "finish_reason.stop_metadata", Api.CHAT, stream, stop_metadata="nested"
    )
    assert observation.outcome == "present"
    assert observation.summary.startswith("provider_specific_fields.stop_reason name the stop")


def test_no_logprobs_at_all_leaves_the_top_logprobs_range_not_applicable(pool: Pool) -> None:
    with pytest.raises(NotApplicable, match="no logprobs at all"):
        _probe(pool, "logprobs.top_logprobs_limit", Api.CHAT, False, chat_logprobs="ignore")
    assert _probe(pool, "logprobs.top_logprobs_limit", Api.CHAT, False).outcome == "up_to_20"


@pytest.fixture(scope="module")
def slotted() -> Iterator[Pool]:
    # llama.cpp started with two slots: each request gets half the 256 tokens declared.
    with server_pool(slots=2) as get:
        yield get


@pytest.mark.parametrize(
    ("behavior_id", "switches"),
    [
        ("max_tokens.overflow", {}),
        ("max_tokens.overflow", {"overflow": "clamp"}),
        ("max_tokens.overflow.behavior_param", {"overflow_param": "honour"}),
    ],
)
@pytest.mark.parametrize("api", [Api.CHAT, Api.COMPLETIONS])
def test_a_window_other_than_the_declared_one_is_a_warning_not_a_verdict(
    slotted: Pool, pool: Pool, behavior_id: str, switches: dict[str, str], api: Api
) -> None:
    with pytest.raises(NotApplicable) as raised:
        _probe(slotted, behavior_id, api, False, **switches)
    assert raised.value.warning is not None
    assert "128" in raised.value.warning
    assert "context_window 256" in raised.value.warning
    # The declared window, as the target does it: a verdict and no warning.
    assert _probe(pool, behavior_id, api, False, **switches).outcome
