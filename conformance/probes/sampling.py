"""Sampling options: how many choices n gives, what seed does, how far temperature goes."""

from __future__ import annotations

from conformance.observation import Check, Observation
from conformance.probes.choices import ChoiceSet, choices
from conformance.probes.registry import ProbeContext, probe


def classify_choice_count(found: ChoiceSet, n: int) -> str | None:
    """ "merged" for choices that share index 0, "honoured" for choices 0..n-1, "ignored"
    for a lone choice 0, None when the choices fit none of these."""
    if found.merged:
        return "merged" if found.indexes == [0] else None
    if found.indexes == list(range(n)):
        return "honoured"
    if found.indexes == [0]:
        return "ignored"
    return None


@probe("choice_count", outcomes={"honoured", "ignored", "merged", "rejected"})
def choice_count(ctx: ProbeContext) -> Observation:
    """Ask for ``n`` choices and read which indexes come back, each with its finish_reason.

    In a stream the choices are put together from the chunks by index, so honoured means
    the chunks carry every index; two choices under one index are merged. Every choice
    should finish: one without a finish_reason is a failing check. The request samples at
    the params' temperature: some servers refuse several choices of greedy decoding, which
    is not what n is about.
    """
    n = int(ctx.params["n"])
    reply = ctx.send(f"n-{n}", ctx.body(n=n, temperature=float(ctx.params["temperature"])))
    if not reply.ok:
        return ctx.observe("rejected", f"n={n} was refused with {reply.refusal}")
    found = choices(reply)
    reasons = {index: found.by_index[index].finish_reason for index in found.indexes}
    outcome = classify_choice_count(found, n)
    if outcome is None:
        duplicated = f", index repeated: {found.duplicated}" if found.duplicated else ""
        raise ctx.fail(
            f"n={n}: choices {found.indexes} with finish_reasons {reasons}{duplicated}: "
            f"neither {n} choices indexed 0..{n - 1}, nor a single choice 0, nor merged ones"
        )
    summary = f"n={n}: choice indexes {found.indexes}, finish_reasons {reasons}"
    if outcome == "merged":
        summary = f"n={n}: the choices share index 0 ({_merged_detail(found)})"
    return ctx.observe(outcome, summary, [every_choice_finishes(found)])


def every_choice_finishes(found: ChoiceSet) -> Check:
    """A check that every choice has a finish_reason."""
    unfinished = [index for index in found.indexes if not found.by_index[index].finish_reason]
    return Check(
        name="every-choice-finishes",
        passed=not unfinished,
        detail=f"choices without a finish_reason: {unfinished}"
        if unfinished
        else "every choice has a finish_reason",
    )


def _merged_detail(found: ChoiceSet) -> str:
    if found.duplicated:
        return f"index repeated in the body: {found.duplicated}"
    finishes = {index: view.finishes for index, view in found.by_index.items()}
    return f"finish chunks per index: {finishes}"


def classify_seed(same_seed: tuple[str, str], other_seed: str) -> str:
    """Name what two texts sampled with one seed and one with another say about the seed."""
    first, again = same_seed
    if first != again:
        return "ignored"
    return "honoured" if other_seed != first else "insensitive"


@probe("seed_determinism", outcomes={"honoured", "ignored", "insensitive", "rejected"})
def seed_determinism(ctx: ProbeContext) -> Observation:
    """Sample at a high temperature with one seed twice and with another seed once.

    The temperature makes texts vary from draw to draw, so a reproduced text is the seed's
    doing; a different seed giving the very same text says the output does not depend on
    the seed at all (sampling may not be happening).
    """
    temperature = float(ctx.params["temperature"])
    seed, other = (int(value) for value in ctx.params["seeds"])
    first = ctx.send("seed", ctx.body(temperature=temperature, seed=seed))
    if not first.ok:
        return ctx.observe("rejected", f"seed {seed} was refused with {first.refusal}")
    again = ctx.require_ok(
        ctx.send("same-seed", ctx.body(temperature=temperature, seed=seed)), "the same seed again"
    )
    different = ctx.require_ok(
        ctx.send("other-seed", ctx.body(temperature=temperature, seed=other)), "another seed"
    )
    texts = (first.text, again.text, different.text)
    if not any(texts):
        raise ctx.not_applicable("all three samples are empty: nothing to compare")
    outcome = classify_seed((first.text, again.text), different.text)
    summary = {
        "ignored": f"seed {seed} twice gave different texts: {first.text!r} and {again.text!r}",
        "honoured": f"seed {seed} twice gave {first.text!r}; seed {other} gave {different.text!r}",
        "insensitive": f"seeds {seed} and {other} both gave {first.text!r} at temperature "
        f"{temperature:g}",
    }[outcome]
    return ctx.observe(outcome, summary)


@probe("temperature_range", outcomes={"rejected", "accepted"})
def temperature_range(ctx: ProbeContext) -> Observation:
    """Send a temperature above the documented range, after a control the target accepts."""
    value = float(ctx.params["temperature"])
    ctx.require_ok(ctx.send("control", ctx.body()), "the control request (temperature 0)")
    reply = ctx.send(f"temperature-{value:g}", ctx.body(temperature=value))
    if not reply.ok:
        return ctx.observe("rejected", f"temperature {value:g} was refused with {reply.refusal}")
    return ctx.observe("accepted", f"temperature {value:g} was accepted ({len(reply.text)} chars)")
