"""stop_sequence: is the matched stop sequence part of the returned text?"""

from __future__ import annotations

import re

from conformance.observation import Observation
from conformance.probes.registry import ProbeContext, probe

_WORD = re.compile(r"[A-Za-z]{3,}")


def choose_stop_word(text: str) -> str | None:
    """A word from the middle of ``text`` that makes a good stop sequence, or None.

    The word's first occurrence must start after the beginning of the text and be followed
    by more non-blank text, so that "omitted", "included" and "ran past it" all look
    different; and it must not occur earlier inside another word.
    """
    end = len(text.rstrip())
    candidates = []
    for match in _WORD.finditer(text):
        word = match.group()
        first = text.find(word)
        if first != match.start() or first == 0 or match.end() >= end:
            continue
        candidates.append((abs(match.start() - len(text) / 2), match.start(), word))
    return min(candidates)[2] if candidates else None


@probe("stop_sequence", outcomes={"omitted", "included", "not_applied", "rejected"})
def stop_sequence(ctx: ProbeContext) -> Observation:
    """Take a baseline, stop on a word from its middle, and compare the two texts."""
    baseline = ctx.require_ok(ctx.send("baseline", ctx.body()), "the baseline request")
    word = choose_stop_word(baseline.text)
    if word is None:
        raise ctx.fail(f"baseline: no word to stop on in {baseline.text!r}")
    stopped = ctx.send("with-stop", ctx.body(stop=[word]))
    if not stopped.ok:
        return ctx.observe("rejected", f"stop {word!r} was refused with {stopped.status}")

    cut = baseline.text.index(word)
    before, through = baseline.text[:cut], baseline.text[: cut + len(word)]
    text = stopped.text
    finish = f"finish_reason {stopped.finish_reason!r}"
    if text.rstrip() == before.rstrip():
        return ctx.observe("omitted", f"text ends just before stop {word!r}; {finish}")
    if text == through:
        return ctx.observe("included", f"text ends with stop {word!r}; {finish}")
    if text.startswith(through):
        return ctx.observe("not_applied", f"text runs past stop {word!r}; {finish}")
    raise ctx.fail(
        f"with-stop: the text {text!r} is neither the baseline cut at {word!r} nor the baseline "
        "(is the target deterministic at temperature 0 with a seed?)"
    )
