"""Pure parts of the probes: picking a stop word, naming a usage placement, counting tokens."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conformance.observation import Exchange, RequestRecord
from conformance.probes import sse
from conformance.probes.client import Reply
from conformance.probes.overflow import completion_tokens
from conformance.probes.stop import choose_stop_word
from conformance.probes.stream_usage import compare_usage, usage_placement

words = st.lists(
    st.sampled_from(["alpha", "bravo", "the", "sea", "a", "x", "harbour", ",", "."]), max_size=20
)


@given(st.text(max_size=80) | words.map(" ".join))
def test_stop_word_leaves_text_on_both_sides(text: str) -> None:
    word = choose_stop_word(text)
    if word is None:
        return
    first = text.find(word)
    assert word.isalpha()
    assert len(word) >= 3
    assert first > 0, "something must come before the stop word"
    assert text[first + len(word) :].strip(), "something must come after it"


def test_stop_word_is_from_the_middle() -> None:
    assert choose_stop_word(" alpha bravo charlie delta echo") == "charlie"
    assert choose_stop_word("alpha") is None
    assert choose_stop_word("") is None


def _chunk(
    finish: str | None = None, usage: bool = False, choices: bool = True
) -> dict[str, object]:
    chunk: dict[str, object] = {
        "choices": [{"index": 0, "finish_reason": finish}] if choices else []
    }
    chunk["usage"] = {"prompt_tokens": 1} if usage else None
    return chunk


def test_usage_placements() -> None:
    assert usage_placement([_chunk(), _chunk("stop")]) == "absent"
    assert usage_placement([_chunk(), _chunk("stop", usage=True)]) == "finish_chunk"
    assert (
        usage_placement([_chunk(), _chunk("stop"), _chunk(usage=True, choices=False)])
        == "extra_chunk"
    )
    assert usage_placement([_chunk(usage=True), _chunk("stop", usage=True)]) == "every_chunk"
    # LiteLLM's extra chunk keeps a choice: a placement of its own.
    assert (
        usage_placement([_chunk(), _chunk("stop"), _chunk(usage=True)])
        == "extra_chunk_with_choices"
    )
    # Usage on a content chunk before the finish fits no declared placement.
    assert usage_placement([_chunk(usage=True), _chunk("stop")]) is None


def test_usage_comparison_flags_a_miscount() -> None:
    same = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert compare_usage(same, dict(same)).passed
    assert not compare_usage(same, {**same, "completion_tokens": 5, "total_tokens": 8}).passed


def _streamed(chunks: list[dict[str, object]]) -> Reply:
    request = RequestRecord(
        method="POST", url="http://127.0.0.1:9/v1/completions", headers={}, body={}
    )
    return Reply(200, Exchange(label="probe", request=request), stream=sse.SseStream(chunks=chunks))


def test_streamed_completion_tokens_trust_usage_only_where_it_counts_the_content() -> None:
    def chunk(text: str, usage: dict[str, int] | None) -> dict[str, object]:
        return {"choices": [{"index": 0, "text": text}], "usage": usage}

    counted = {"completion_tokens": 9}
    zeros = {"completion_tokens": 0}  # LiteLLM's streamed completions
    assert completion_tokens(_streamed([chunk("a", None), chunk("b", counted)])) == (9, "usage")
    assert completion_tokens(_streamed([chunk("a", zeros), chunk("b", zeros)])) == (
        2,
        "content chunks, a lower bound; usage says 0",
    )
    assert completion_tokens(_streamed([chunk("a", None), chunk("", None)])) == (
        1,
        "content chunks, a lower bound",
    )
