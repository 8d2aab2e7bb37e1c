"""Probes for the usage object of a reply."""

from __future__ import annotations

from typing import Any

from conformance.observation import Observation
from conformance.probes.registry import ProbeContext, probe

COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
DETAILS = ("prompt_tokens_details", "completion_tokens_details")


def usage_shape(usage: dict[str, Any] | None) -> tuple[str, str]:
    """The outcome of usage.details for ``usage``, and why."""
    if usage is None:
        return "inconsistent", "the reply has no usage object"
    missing = [
        name
        for name in COUNTS
        if isinstance(usage.get(name), bool) or not isinstance(usage.get(name), int)
    ]
    if missing:
        return "inconsistent", f"no integer {', '.join(missing)}"
    prompt, completion, total = (usage[name] for name in COUNTS)
    if total != prompt + completion:
        return "inconsistent", f"total_tokens {total} != {prompt} + {completion}"
    present = [name for name in DETAILS if isinstance(usage.get(name), dict)]
    counts = f"{prompt} + {completion} = {total}"
    if present:
        return "detailed", f"{counts}, with {' and '.join(present)}"
    return "basic", f"{counts}, no details objects"


@probe("usage_details", outcomes={"detailed", "basic", "inconsistent"})
def usage_details(ctx: ProbeContext) -> Observation:
    """Read the usage object of one plain request."""
    reply = ctx.require_ok(ctx.send("usage", ctx.body()), "the request")
    outcome, why = usage_shape(reply.usage)
    return ctx.observe(outcome, why)
