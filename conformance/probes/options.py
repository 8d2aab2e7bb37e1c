"""Probes that decide whether a request option is rejected, ignored or honoured."""

from __future__ import annotations

from typing import Any

from conformance.observation import Observation
from conformance.probes.client import Reply
from conformance.probes.registry import ProbeContext, probe


@probe("option_effect", outcomes={"rejected", "ignored", "honoured"})
def option_effect(ctx: ProbeContext) -> Observation:
    """Compare the option's effect with a control request that differs only by the option.

    ``effect: text`` looks for a different text; ``effect: usage`` for more completion tokens.
    A refusal decides at once. Otherwise the control must reproduce (``ctx.agreed``), and an
    effect must reproduce too (a second reply with the option agreeing with the first), so
    that one reply that diverged is never taken for an option honoured.
    """
    option, effect = str(ctx.params["option"]), str(ctx.params["effect"])
    first_control = ctx.require_ok(ctx.send("control", ctx.body()), "the control request")
    control: Reply | None = None
    baseline: Any = None
    for value in ctx.params["values"]:
        body = ctx.body(**{option: value})
        reply = ctx.send(f"with-{option}", body)
        if not reply.ok:
            return ctx.observe("rejected", f"{option}={value!r} was refused with {reply.refusal}")
        if control is None:
            control = ctx.agreed(
                "control",
                ctx.body(),
                "the repeated control request",
                sent=[first_control],
                key=lambda reply: _measure(ctx, reply, effect),
            )
            baseline = _measure(ctx, control, effect)
        measured = _measure(ctx, reply, effect)
        if measured != baseline:
            reply = ctx.agreed(
                f"with-{option}",
                body,
                f"the request with {option}",
                sent=[reply],
                key=lambda reply: _measure(ctx, reply, effect),
            )
            measured = _measure(ctx, reply, effect)
        if measured != baseline:
            return ctx.observe(
                "honoured", f"{option}={value!r}: {effect} {baseline!r} became {measured!r}"
            )
    return ctx.observe("ignored", f"{option} accepted; {effect} stayed {baseline!r}")


def _measure(ctx: ProbeContext, reply: Reply, effect: str) -> Any:
    if effect == "text":
        return reply.text
    if effect == "usage":
        completion = (reply.usage or {}).get("completion_tokens")
        if not isinstance(completion, int):
            raise ctx.fail(f"{reply.exchange.label}: no usage.completion_tokens to compare")
        return completion
    raise ctx.fail(f"unknown effect {effect!r} in the behavior's params")


@probe("forced_function", outcomes={"rejected", "ignored", "honoured"})
def forced_function(ctx: ProbeContext) -> Observation:
    """Send one function with function_call naming it, which forces the call."""
    function = dict(ctx.params["function"])
    name = function["name"]
    reply = ctx.send("forced-call", ctx.body(functions=[function], function_call={"name": name}))
    if not reply.ok:
        return ctx.observe("rejected", f"functions was refused with {reply.refusal}")
    called = _called(reply)
    if name in called.get("function_call", set()):
        return ctx.observe("honoured", f"message.function_call names {name!r}")
    if name in called.get("tool_calls", set()):
        return ctx.observe("honoured", f"tool_calls (not function_call) name {name!r}")
    return ctx.observe("ignored", f"no call of {name!r}; finish_reason {reply.finish_reason!r}")


def _called(reply: Reply) -> dict[str, set[str]]:
    """Function names called in the reply, by where they appeared."""
    holders = (
        [
            choice.get("delta") or {}
            for chunk in reply.chunks
            for choice in chunk.get("choices") or []
        ]
        if reply.stream is not None
        else [reply.message]
    )
    found: dict[str, set[str]] = {"function_call": set(), "tool_calls": set()}
    for holder in holders:
        call = holder.get("function_call")
        if isinstance(call, dict) and call.get("name"):
            found["function_call"].add(str(call["name"]))
        for tool_call in holder.get("tool_calls") or []:
            function = tool_call.get("function") if isinstance(tool_call, dict) else None
            if isinstance(function, dict) and function.get("name"):
                found["tool_calls"].add(str(function["name"]))
    return found
