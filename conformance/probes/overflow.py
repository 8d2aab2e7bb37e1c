"""Probes for prompt + max_tokens beyond the context window."""

from __future__ import annotations

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
    fits = {
        label: _fit(
            ctx.send(label, _overflow_body(ctx, prompt_tokens, **fields)), prompt_tokens, window
        )
        for label, fields in (
            ("overflow-plain", {}),
            ("overflow-error", {parameter: error_value}),
            ("overflow-truncate", {parameter: truncate_value}),
        )
    }
    plain, error, truncate = (
        fits["overflow-plain"],
        fits["overflow-error"],
        fits["overflow-truncate"],
    )
    summary = f"plain: {plain.detail}; error: {error.detail}; truncate: {truncate.detail}"
    if error.kind == "refused" and truncate.kind == "fits":
        return ctx.observe("honoured", summary)
    if error.kind == plain.kind and truncate.kind == plain.kind:
        return ctx.observe("ignored", summary)
    raise ctx.fail(f"no declared outcome fits: {summary}")
