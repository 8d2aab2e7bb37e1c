"""Legacy completions options: echo and a list of prompts."""

from __future__ import annotations

from conformance.observation import Observation
from conformance.probes.choices import ChoiceSet, choices
from conformance.probes.client import Reply
from conformance.probes.registry import ProbeContext, Request, probe


def classify_echo(prompt: str, control: str, echoed: str) -> str | None:
    """ "honoured" when the text starts with the prompt (and is not just the control's text),
    "ignored" when it is the control's text, None otherwise."""
    if echoed == control:
        return "ignored"
    if echoed.startswith(prompt):
        return "honoured"
    return None


@probe("echo_prompt", outcomes={"honoured", "ignored", "rejected"})
def echo_prompt(ctx: ProbeContext) -> Observation:
    """Send the same prompt without and with ``echo``; an echo puts the prompt first."""
    prompt = str(ctx.params["prompt"])
    control = ctx.require_ok(ctx.send("control", ctx.body()), "the control request")
    reply = ctx.send("with-echo", ctx.body(echo=True))
    if not reply.ok:
        return ctx.observe("rejected", f"echo was refused with {reply.refusal}")
    outcome = classify_echo(prompt, control.text, reply.text)
    if outcome is None:
        # Neither: one of the two texts may be a divergent one; ask again.
        control, reply = ctx.reconciled(
            [
                Request("control", ctx.body(), "the control request"),
                Request("with-echo", ctx.body(echo=True), "the echo request"),
            ],
            [control, reply],
            lambda replies: classify_echo(prompt, replies[0].text, replies[1].text) is not None,
        )
        outcome = classify_echo(prompt, control.text, reply.text)
    if outcome is None:
        raise ctx.fail(
            f"with-echo: {reply.text!r} neither starts with the prompt nor is the control's "
            f"{control.text!r}"
        )
    if outcome == "ignored":
        return ctx.observe("ignored", f"the text is the control's {control.text!r}")
    rest = reply.text[len(prompt) :]
    after = "the control's text" if rest == control.text else f"{rest!r}"
    return ctx.observe("honoured", f"the text starts with the prompt, then {after}")


def _choice_texts(reply: Reply) -> str:
    found = choices(reply)
    return repr((found.indexes, found.texts(), found.duplicated))


def classify_prompt_list(found: ChoiceSet, alone: tuple[str, str]) -> str | None:
    """ "honoured" for choices 0 and 1 answering the two prompts as each was answered alone,
    "first_only" for one choice answering the first prompt, "merged" for choices that share
    index 0, None otherwise."""
    if found.merged:
        return "merged" if found.indexes == [0] else None
    if found.indexes == [0, 1] and found.texts() == list(alone):
        return "honoured"
    if found.indexes == [0] and found.texts() == [alone[0]]:
        return "first_only"
    return None


@probe("prompt_list", outcomes={"honoured", "first_only", "merged", "rejected"})
def prompt_list(ctx: ProbeContext) -> Observation:
    """Send two prompts alone, then both as one list, and match the choices to the prompts."""
    prompts = (str(ctx.params["prompt"]), str(ctx.params["other_prompt"]))
    alone = [
        ctx.require_ok(ctx.send(f"prompt-{i}-alone", ctx.body(prompt=p)), f"prompt {i} alone")
        for i, p in enumerate(prompts)
    ]
    first, second = (reply.text for reply in alone)
    if first == second:
        raise ctx.not_applicable(
            f"both prompts alone give {first!r}: the choices could not be told apart"
        )
    body = ctx.body(prompt=list(prompts))
    reply = ctx.send("prompt-list", body)
    if not reply.ok:
        return ctx.observe("rejected", f"a list of prompts was refused with {reply.refusal}")
    found = choices(reply)
    outcome = classify_prompt_list(found, (first, second))
    if outcome is None:
        # The texts may differ because one reply diverged: ask again.
        *alone, listed = ctx.reconciled(
            [
                *(
                    Request(f"prompt-{i}-alone", ctx.body(prompt=p), f"prompt {i} alone")
                    for i, p in enumerate(prompts)
                ),
                Request("prompt-list", body, "the list of prompts", key=_choice_texts),
            ],
            [*alone, reply],
            lambda replies: (
                classify_prompt_list(choices(replies[2]), (replies[0].text, replies[1].text))
                is not None
            ),
        )
        first, second = (reply.text for reply in alone)
        found = choices(listed)
        outcome = classify_prompt_list(found, (first, second))
    if outcome is None:
        raise ctx.fail(
            f"prompt-list: choices {found.indexes} with texts {found.texts()} are neither "
            f"{[first, second]} nor [{first!r}] (prompts alone)"
        )
    if outcome == "first_only":
        return ctx.observe("first_only", f"one choice, the first prompt's {first!r}")
    if outcome == "merged":
        return ctx.observe("merged", f"the choices share index 0: texts {found.texts()}")
    return ctx.observe("honoured", "choices 0 and 1 are the two prompts' completions, in order")


def classify_suffix(suffix: str, control: str, with_suffix: str) -> str:
    """ "appended" when the text ends with the suffix itself, "ignored" when it is the
    control's text, "honoured" when it is another text."""
    if with_suffix.endswith(suffix):
        return "appended"
    return "ignored" if with_suffix == control else "honoured"


@probe("suffix_effect", outcomes={"honoured", "appended", "ignored", "rejected"})
def suffix_effect(ctx: ProbeContext) -> Observation:
    """Send the same request without and with ``suffix`` and compare the texts.

    A refusal decides at once, and so does the suffix itself at the end of the text. The
    control must reproduce (``ctx.agreed``), and so must a text that differs from it (a
    second reply with the suffix agreeing with the first), so that one reply that diverged at
    temperature 0 is never taken for a suffix honoured.
    """
    suffix = str(ctx.params["suffix"])
    first_control = ctx.require_ok(ctx.send("control", ctx.body()), "the control request")
    reply = ctx.send("with-suffix", ctx.body(suffix=suffix))
    if not reply.ok:
        return ctx.observe("rejected", f"suffix was refused with {reply.refusal}")
    control = ctx.agreed("control", ctx.body(), "the repeated control", sent=[first_control])
    outcome = classify_suffix(suffix, control.text, reply.text)
    if outcome == "honoured":
        reply = ctx.agreed(
            "with-suffix", ctx.body(suffix=suffix), "the request with suffix", sent=[reply]
        )
        outcome = classify_suffix(suffix, control.text, reply.text)
    summary = {
        "appended": f"the text ends with the suffix itself: {reply.text!r}",
        "ignored": f"the text is the control's {control.text!r}",
        "honoured": f"the text {control.text!r} became {reply.text!r}",
    }[outcome]
    return ctx.observe(outcome, summary)
