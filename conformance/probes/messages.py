"""message_accepted: is a message shape (a field, a role) accepted in chat requests?"""

from __future__ import annotations

from conformance.observation import Observation
from conformance.probes.registry import ProbeContext, probe


@probe("message_accepted", outcomes={"accepted", "rejected", "server_error"})
def message_accepted(ctx: ProbeContext) -> Observation:
    """Send ``params.messages``, after a control (``params.control``) that must be accepted.

    The control differs only by what the behavior is about, so a refusal of the probed
    messages is a refusal of that difference and not of the request as a whole; a 5xx (or
    an error event in the stream) that a fresh request reproduces is then a refusal too,
    with the wrong status (``server_error``).
    """
    label = str(ctx.params.get("label", "probed"))
    control = ctx.send("control", ctx.body(messages=list(ctx.params["control"])))
    ctx.require_ok(control, "the control request")
    reply = ctx.send(label, ctx.body(messages=list(ctx.params["messages"])), server_errors=True)
    if reply.ok:
        return ctx.observe("accepted", f"{label}: accepted; finish_reason {reply.finish_reason!r}")
    param = reply.error.get("param")
    where = f" (param {param!r})" if param else ""
    outcome = "server_error" if reply.failure else "rejected"
    return ctx.observe(outcome, f"{label}: refused with {reply.refusal}{where}")
