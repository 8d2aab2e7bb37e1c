"""Probes for prompt + max_tokens beyond the context window."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from conformance.observation import Observation
from conformance.probes.client import Reply
from conformance.probes.registry import ProbeContext, probe


@dataclass(frozen=True)
class Fit:
    """How an overflowing request came back: refused, within the window, or past it."""

    kind: str  # "refused", "fits" or "exceeds"
    detail: str


def _prompt_tokens(ctx: ProbeContext) -> int:
    control = ctx.require_ok(
        ctx.send("measure-prompt", ctx.body(stream=False, max_tokens=1)),
        "the prompt-measuring request",
    )
    usage = control.usage or {}
    prompt_tokens = usage.get("prompt_tokens")
    if not isinstance(prompt_tokens, int) or prompt_tokens <= 0:
        raise ctx.fail("measure-prompt: the reply has no usage.prompt_tokens to size the overflow")
    return prompt_tokens


def completion_tokens(reply: Reply) -> tuple[int, str]:
    """The completion tokens of ``reply``, and what counted them."""
    # In a stream every non-empty delta holds at least one token: a lower bound that also
    # catches a usage object that undercounts (LiteLLM streams zeros on every chunk).
    deltas = sum(
        1 for chunk in reply.chunks for choice in chunk.get("choices") or [] if _has_text(choice)
    )
    reported = (reply.usage or {}).get("completion_tokens")
    if not isinstance(reported, int):
        return deltas, "content chunks, a lower bound"
    if reported < deltas:
        return deltas, f"content chunks, a lower bound; usage says {reported}"
    return reported, "usage"


def _has_text(choice: dict[str, object]) -> bool:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return bool(delta.get("content"))
    return bool(choice.get("text"))


def _fit(reply: Reply, prompt_tokens: int, window: int) -> Fit:
    if not reply.ok:
        return Fit("refused", reply.refusal)
    completion, counted_by = completion_tokens(reply)
    total = prompt_tokens + completion
    detail = (
        f"200 with {completion} completion tokens ({counted_by}); {prompt_tokens} + {completion} = "
        f"{total} against a window of {window}; finish_reason {reply.finish_reason!r}"
    )
    return Fit("exceeds" if total > window else "fits", detail)


#: How refusals state a window: "maximum context length is 4096 tokens" (OpenAI, vLLM),
#: "context window of 4096", "n_ctx ... 4096" (llama.cpp).
_STATED_WINDOW = re.compile(
    r"(?:context(?: length| window| size)?|n_ctx(?:_slot)?)\D{0,24}?(\d{2,7})", re.IGNORECASE
)


def window_mismatch(reply: Reply, prompt_tokens: int, declared: int) -> str | None:
    """What ``reply`` shows of a context window other than the ``declared`` one, or None.

    A refusal may state the window it applied; a reply cut by length before the declared
    window is full stopped at the target's own window. Either way the target file's
    context_window is not what this target does (e.g. a llama.cpp server whose slots each
    get a share of the window), and the overflow cases cannot be judged against it.
    """
    if not reply.ok:
        message = str(reply.error.get("message") or "")
        stated = [int(number) for number in _STATED_WINDOW.findall(message)]
        if isinstance(reply.error.get("n_ctx"), int):  # llama.cpp's error object
            stated.append(int(reply.error["n_ctx"]))
        others = [number for number in stated if number != declared and number >= prompt_tokens]
        if others and declared not in stated:
            return (
                f"the target refuses with a context window of {others[0]} tokens, but its "
                f"target file declares context_window {declared}"
            )
        return None
    completion, _ = completion_tokens(reply)
    if reply.finish_reason == "length" and prompt_tokens + completion < declared:
        return (
            f"the target stopped at {prompt_tokens} + {completion} = {prompt_tokens + completion}"
            f" tokens, short of the context_window {declared} its target file declares"
        )
    return None


def _judged_window(ctx: ProbeContext, reply: Reply, prompt_tokens: int) -> None:
    """Not applicable, with a warning on the target, when ``reply`` shows another window."""
    declared = ctx.endpoint.target.window(ctx.api)
    mismatch = window_mismatch(reply, prompt_tokens, declared)
    if mismatch is not None:
        raise ctx.not_applicable(
            f"{reply.exchange.label}: {mismatch}; the overflow is judged against a window the "
            "target does not have",
            warning=f"{ctx.api.value}: {mismatch}",
        )


def _overflow_body(ctx: ProbeContext, prompt_tokens: int, **fields: Any) -> dict[str, Any]:
    window = ctx.endpoint.target.window(ctx.api)
    max_tokens = window - prompt_tokens + int(ctx.params["overflow"])
    return ctx.body(max_tokens=max_tokens, **fields)


@probe("context_overflow", outcomes={"rejected", "clamped", "exceeded"})
def context_overflow(ctx: ProbeContext) -> Observation:
    """Ask for max_tokens that fit alone but not with the prompt, and see what comes back."""
    window = ctx.endpoint.target.window(ctx.api)
    prompt_tokens = _prompt_tokens(ctx)
    reply = ctx.send("overflow", _overflow_body(ctx, prompt_tokens))
    _judged_window(ctx, reply, prompt_tokens)
    fit = _fit(reply, prompt_tokens, window)
    outcome = {"refused": "rejected", "fits": "clamped", "exceeds": "exceeded"}[fit.kind]
    return ctx.observe(outcome, fit.detail)


@probe("overflow_behavior_param", outcomes={"honoured", "ignored", "rejected"})
def overflow_behavior_param(ctx: ProbeContext) -> Observation:
    """Send the overflow with no parameter, with its error value and with its truncate value."""
    parameter = str(ctx.params["parameter"])
    error_value, truncate_value = ctx.params["error_value"], ctx.params["truncate_value"]
    window = ctx.endpoint.target.window(ctx.api)
    prompt_tokens = _prompt_tokens(ctx)

    fitting = ctx.send("fits-with-parameter", ctx.body(max_tokens=1, **{parameter: truncate_value}))
    if not fitting.ok:
        return ctx.observe(
            "rejected", f"{parameter}={truncate_value!r} on a request that fits: {fitting.status}"
        )
    replies = [
        ctx.send(label, _overflow_body(ctx, prompt_tokens, **fields))
        for label, fields in (
            ("overflow-plain", {}),
            ("overflow-error", {parameter: error_value}),
            ("overflow-truncate", {parameter: truncate_value}),
        )
    ]
    fits = {reply.exchange.label: _fit(reply, prompt_tokens, window) for reply in replies}
    plain, error, truncate = (
        fits["overflow-plain"],
        fits["overflow-error"],
        fits["overflow-truncate"],
    )
    for exchange_reply in replies:
        _judged_window(ctx, exchange_reply, prompt_tokens)
    summary = f"plain: {plain.detail}; error: {error.detail}; truncate: {truncate.detail}"
    if error.kind == "refused" and truncate.kind == "fits":
        return ctx.observe("honoured", summary)
    if error.kind == plain.kind and truncate.kind == plain.kind:
        return ctx.observe("ignored", summary)
    raise ctx.fail(f"no declared outcome fits: {summary}")
