"""Probes for what a server does with request fields it may not know."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from conformance.observation import Observation
from conformance.probes.client import Reply
from conformance.probes.registry import ProbeContext, probe


@probe("unknown_field", outcomes={"rejected", "ignored"})
def unknown_field(ctx: ProbeContext) -> Observation:
    """Send one request carrying a top-level field that no API defines."""
    field, value = str(ctx.params["field"]), ctx.params["value"]
    reply = ctx.send("unknown-field", ctx.body(**{field: value}))
    if reply.ok:
        return ctx.observe("ignored", f"{field}={value!r} was accepted ({reply.status})")
    return ctx.observe("rejected", f"{field}={value!r} was refused with {reply.refusal}")


def _holders(reply: Reply) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object of a reply that may carry reasoning text, with where it sits."""
    if reply.stream is not None:
        for position, chunk in enumerate(reply.chunks):
            for choice in chunk.get("choices") or []:
                yield f"chunk {position} choice", choice
                if isinstance(choice.get("delta"), dict):
                    yield f"chunk {position} delta", choice["delta"]
        return
    for choice in (reply.body or {}).get("choices") or []:
        if isinstance(choice, dict):
            yield "choice", choice
            if isinstance(choice.get("message"), dict):
                yield "message", choice["message"]


def reasoning_found(reply: Reply, fields: Iterable[str]) -> list[str]:
    """Where ``reply`` carries reasoning: non-empty text in one of ``fields`` of a message,
    delta or choice, or a positive ``usage.completion_tokens_details.reasoning_tokens``."""
    names = list(fields)
    found = [
        f"{where}.{name}"
        for where, holder in _holders(reply)
        for name in names
        if isinstance(holder.get(name), str) and holder[name].strip()
    ]
    details = (reply.usage or {}).get("completion_tokens_details")
    tokens = details.get("reasoning_tokens") if isinstance(details, dict) else None
    if isinstance(tokens, int) and tokens > 0:
        found.append(f"usage.completion_tokens_details.reasoning_tokens = {tokens}")
    return list(dict.fromkeys(found))


@probe("reasoning_effort", outcomes={"rejected", "ignored", "reasoning_output"})
def reasoning_effort(ctx: ProbeContext) -> Observation:
    """Send reasoning_effort and look for reasoning in the reply."""
    value = ctx.params["value"]
    reply = ctx.send("reasoning-effort", ctx.body(reasoning_effort=value))
    if not reply.ok:
        return ctx.observe(
            "rejected", f"reasoning_effort={value!r} was refused with {reply.refusal}"
        )
    found = reasoning_found(reply, ctx.params["fields"])
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        return ctx.observe("reasoning_output", f"reasoning_effort={value!r}: reasoning in {shown}")
    return ctx.observe(
        "ignored", f"reasoning_effort={value!r} was accepted; the reply carries no reasoning"
    )
