"""Each expectation's note and quote speak of its own behavior.

A YAML anchor reused across behaviors carries the same note and quote to every one of
them: such shared words must not speak of one of those behaviors alone, or the others get
a note about something else (a best_of note on completions.logprobs).
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from conformance.spec import load_specs
from tests.conftest import SPECS

CATALOG = load_specs(SPECS)


def subject(behavior_id: str) -> str:
    """What a behavior is about, as its words would name it: the option its probe sends,
    or the last part of its id (``best_of``, ``prompt_list``)."""
    option = CATALOG.behaviors[behavior_id].params.get("option")
    return str(option) if option else behavior_id.rsplit(".", 1)[-1]


def names(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", text) is not None


@pytest.mark.parametrize("profile_id", sorted(CATALOG.profiles))
def test_words_shared_by_several_behaviors_speak_of_no_one_alone(profile_id: str) -> None:
    shared: dict[tuple[str | None, str | None], list[str]] = defaultdict(list)
    for behavior_id, expectation in CATALOG.profiles[profile_id].expectations.items():
        if expectation.note or expectation.quote:
            shared[(expectation.note, expectation.quote)].append(behavior_id)
    for (note, quote), behavior_ids in shared.items():
        if len(behavior_ids) < 2:
            continue
        text = f"{note or ''} {quote or ''}"
        named = [b for b in behavior_ids if names(text, subject(b))]
        # Words that list several of the behaviors (a page's list of unsupported fields)
        # speak of each; words that name one of them alone are that one's.
        assert len(named) != 1, (
            f"{profile_id}: the note or quote shared by {sorted(behavior_ids)} speaks of "
            f"{subject(named[0])} ({named[0]}) alone"
        )


def test_the_check_sees_a_note_about_another_behavior() -> None:
    assert names("best_of is a /v1/completions parameter", subject("option.best_of"))
    assert not names("see option.best_of", subject("option.best_of"))
    assert not names("A /v1/completions behavior", subject("completions.logprobs"))
