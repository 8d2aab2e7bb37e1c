"""stop_sequence: is the matched stop sequence part of the returned text?"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.observation import Observation
from conformance.probes.client import Reply
from conformance.probes.registry import Disagreement, ProbeContext, Request, probe

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


@dataclass(frozen=True)
class Cut:
    """Where a stop word falls in a baseline text."""

    word: str
    before: str
    through: str
    baseline: str

    @classmethod
    def of(cls, text: str, word: str) -> Cut:
        """The baseline ``text`` cut at the first ``word``."""
        at = text.index(word)
        return cls(word, text[:at], text[: at + len(word)], text)

    def applied(self, text: str) -> bool:
        """True when ``text`` ends at the stop word: just before it, or just after it."""
        return text.rstrip() == self.before.rstrip() or text == self.through


@dataclass
class StopBaseline:
    """A baseline reply and the stop word taken from it, settled again on demand.

    A reply that the baseline does not explain may be a divergent one, or the baseline may
    be: ``explained`` asks again for both.
    """

    ctx: ProbeContext
    reply: Reply
    cut: Cut

    @classmethod
    def take(cls, ctx: ProbeContext) -> StopBaseline:
        """Send the baseline request and choose the stop word."""
        reply = ctx.require_ok(ctx.send("baseline", ctx.body()), "the baseline request")
        return cls(ctx, reply, _cut(ctx, reply))

    def explained(
        self,
        label: str,
        fields: Callable[[Cut], dict[str, Any]],
        why: str,
        fits: Callable[[Reply, Cut], bool],
        first: Reply | None = None,
        *,
        fresh: bool = True,
    ) -> Reply:
        """The reply to the case's request plus ``fields(cut)``, as the baseline explains it.

        ``first`` (or a first reply sent here) that ``fits`` the cut is taken. Otherwise the
        reply or the baseline may have diverged: both are asked again
        (``ProbeContext.reconciled``) until a baseline explains a reply, which becomes the
        baseline; or until both reproduce, and the reply is returned unexplained for the
        probe to judge as a steady target's. A steady baseline without the stop word, or a
        usual one when the replies never agree, starts over once with a word of its own.
        """
        ctx, body = self.ctx, self.ctx.body(**fields(self.cut))
        reply = first or ctx.require_ok(ctx.send(label, body), why)
        if fits(reply, self.cut):
            return reply
        word = self.cut.word

        def explains(replies: Sequence[Reply]) -> bool:
            baseline, candidate = replies
            return word in baseline.text and fits(candidate, Cut.of(baseline.text, word))

        try:
            baseline, reply = ctx.reconciled(
                [
                    Request("baseline", ctx.body(), "the baseline request"),
                    Request(label, body, why),
                ],
                [self.reply, reply],
                explains,
            )
        except Disagreement as disagreement:
            # The word came from a divergent baseline that the target's usual one lacks.
            texts = Counter(reply.text for reply in disagreement.pools[0])
            usual = next(r for r in disagreement.pools[0] if r.text == texts.most_common(1)[0][0])
            if not fresh or word in usual.text:
                raise
            baseline = usual
        if word in baseline.text:
            self.reply, self.cut = baseline, Cut.of(baseline.text, word)
            return reply
        if not fresh:
            raise ctx.fail(f"baseline: the stop word {word!r} is not in {baseline.text!r}")
        self.reply, self.cut = baseline, _cut(ctx, baseline)
        return self.explained(label, fields, why, fits, fresh=False)


def _cut(ctx: ProbeContext, baseline: Reply) -> Cut:
    word = choose_stop_word(baseline.text)
    if word is None:
        raise ctx.fail(f"baseline: no word to stop on in {baseline.text!r}")
    return Cut.of(baseline.text, word)


def classify_stop(text: str, cut: Cut) -> str | None:
    """What the text of a request stopped on ``cut.word`` says, against the baseline's cut;
    None when the baseline does not explain it."""
    if text.rstrip() == cut.before.rstrip():
        return "omitted"
    if text == cut.through:
        return "included"
    if text.startswith(cut.through):
        return "not_applied"
    return None


@probe("stop_sequence", outcomes={"omitted", "included", "not_applied", "rejected"})
def stop_sequence(ctx: ProbeContext) -> Observation:
    """Take a baseline, stop on a word from its middle, and compare the two texts.

    A stopped text that the baseline does not explain (a target that is not deterministic)
    is asked for again, with the baseline, until the replies agree.
    """
    baseline = StopBaseline.take(ctx)
    stopped = ctx.send("with-stop", ctx.body(stop=[baseline.cut.word]))
    if not stopped.ok:
        return ctx.observe(
            "rejected", f"stop {baseline.cut.word!r} was refused with {stopped.status}"
        )
    stopped = baseline.explained(
        "with-stop",
        lambda cut: {"stop": [cut.word]},
        "the request with a stop word",
        lambda reply, cut: classify_stop(reply.text, cut) is not None,
        first=stopped,
    )
    word = baseline.cut.word
    outcome = classify_stop(stopped.text, baseline.cut)
    finish = f"finish_reason {stopped.finish_reason!r}"
    if outcome is None:
        raise ctx.fail(
            f"with-stop: the text {stopped.text!r} is neither the baseline cut at {word!r} nor "
            "the baseline"
        )
    summary = {
        "omitted": f"text ends just before stop {word!r}; {finish}",
        "included": f"text ends with stop {word!r}; {finish}",
        "not_applied": f"text runs past stop {word!r}; {finish}",
    }[outcome]
    return ctx.observe(outcome, summary)
