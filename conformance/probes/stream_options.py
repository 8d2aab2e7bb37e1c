"""stream_options_unstreamed: what a server does with stream_options on a plain request."""

from __future__ import annotations

from conformance.observation import Check, Observation
from conformance.probes.registry import ProbeContext, probe


@probe("stream_options_unstreamed", outcomes={"rejected", "ignored"})
def stream_options_unstreamed(ctx: ProbeContext) -> Observation:
    """Send a request that is not streamed with and without stream_options.

    The control (without) must succeed, so that a refusal of the other is the option's.
    """
    control = ctx.require_ok(
        ctx.send("control", ctx.body(stream=False)), "the request without stream_options"
    )
    options = {"include_usage": True}
    reply = ctx.send("stream-options", ctx.body(stream=False, stream_options=options))
    if not reply.ok:
        error = reply.error
        named = "stream_options" in f"{error.get('param')} {error.get('message')}"
        check = Check(
            name="error-names-stream-options",
            passed=named,
            detail=f"param {error.get('param')!r}: {str(error.get('message'))[:160]}",
        )
        return ctx.observe(
            "rejected",
            f"stream_options without stream was refused with {reply.refusal}",
            checks=[check],
        )
    same = reply.text == control.text
    check = Check(
        name="text-matches-control",
        passed=same,
        detail="the text is the control's" if same else "the text differs from the control's",
    )
    return ctx.observe(
        "ignored", "stream_options without stream got a normal completion", checks=[check]
    )
