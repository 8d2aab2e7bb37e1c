"""response_shape: do a target's replies fit the openai SDK's response types?"""

from __future__ import annotations

from conformance.observation import Observation
from conformance.probes.registry import ProbeContext, probe


@probe("response_extensions", outcomes={"none", "present"})
def response_extensions(ctx: ProbeContext) -> Observation:
    """One plain request; are there fields the SDK's types do not declare?"""
    reply = ctx.require_ok(ctx.send("request", ctx.body()), "the request")
    checked = reply.exchange.shape
    assert checked is not None  # every 2xx reply is checked
    if checked.extensions:
        return ctx.observe(
            "present", f"fields outside {checked.type}: {', '.join(checked.extensions)}"
        )
    return ctx.observe("none", f"every field is declared by {checked.type}")


@probe("response_schema", outcomes={"valid", "invalid"})
def response_schema(ctx: ProbeContext) -> Observation:
    """One plain request; does the SDK's validation accept every reply object?"""
    reply = ctx.require_ok(ctx.send("request", ctx.body()), "the request")
    checked = reply.exchange.shape
    assert checked is not None
    if checked.violations:
        shown = "; ".join(checked.violations[:3])
        more = len(checked.violations) - 3
        return ctx.observe(
            "invalid", f"{checked.type} refuses: {shown}" + (f" (+{more} more)" if more > 0 else "")
        )
    return ctx.observe("valid", f"{checked.type} validates the reply")
