"""Probes of stored responses: ``store``, ``previous_response_id``, GET and DELETE."""

from __future__ import annotations

from conformance.observation import Observation
from conformance.probes.client import Reply
from conformance.probes.registry import ProbeContext, probe
from conformance.probes.responses import ask


def _created(ctx: ProbeContext, label: str, **fields: object) -> str:
    reply = ctx.require_ok(ask(ctx, label, stream=False, **fields), f"the {label} request")
    ident = reply.response.get("id")
    if not isinstance(ident, str) or not ident:
        raise ctx.fail(f"{label}: the response has no id")
    return ident


def _kept(ctx: ProbeContext, label: str, ident: str) -> bool:
    """True when GET finds the response, False on a 404; anything else is no answer."""
    reply = ctx.endpoint.stored("GET", ident, label=label)
    if reply.ok:
        return True
    if reply.status == 404:
        return False
    raise ctx.fail(f"{label}: GET answered {reply.refusal}, neither the response nor a 404")


@probe("responses_store", outcomes={"default_on", "default_off", "never", "always"})
def responses_store(ctx: ProbeContext) -> Observation:
    """Which responses a GET finds: one created without ``store``, then one with ``store:
    false`` (if the first was kept) or with ``store: true`` (if it was not)."""
    by_default = _kept(ctx, "get-default", _created(ctx, "default"))
    if by_default:
        opted_out = _kept(ctx, "get-store-false", _created(ctx, "store-false", store=False))
        if opted_out:
            return ctx.observe("always", "kept by default, and with store: false too")
        return ctx.observe("default_on", "kept by default, not with store: false")
    asked = _kept(ctx, "get-store-true", _created(ctx, "store-true", store=True))
    if asked:
        return ctx.observe("default_off", "not kept by default, kept with store: true")
    return ctx.observe("never", "not kept by default, nor with store: true")


def _input_tokens(ctx: ProbeContext, reply: Reply) -> int:
    counted = (reply.usage or {}).get("input_tokens")
    if not isinstance(counted, int):
        raise ctx.fail(f"{reply.exchange.label}: no usage.input_tokens to compare")
    return counted


@probe("responses_previous_response", outcomes={"honoured", "ignored", "rejected"})
def responses_previous_response(ctx: ProbeContext) -> Observation:
    """A follow-up naming a stored response, against the same input alone: honoured when the
    follow-up counts the stored conversation in its input tokens (a count, not a text, so
    that a nondeterministic target is judged from one pair)."""
    first = _created(ctx, "first", store=True)
    follow_up = str(ctx.params["follow_up"])
    reply = ask(ctx, "follow-up", input=follow_up, previous_response_id=first)
    if not reply.ok:
        if reply.status == 404:
            raise ctx.not_applicable(
                f"the first response (store: true) was not found ({reply.refusal}): not stored"
            )
        return ctx.observe("rejected", f"previous_response_id was refused with {reply.refusal}")
    alone = ctx.require_ok(ask(ctx, "alone", input=follow_up), "the control request")
    linked, fresh = _input_tokens(ctx, reply), _input_tokens(ctx, alone)
    about = f"{linked} input tokens with previous_response_id, {fresh} without"
    return ctx.observe("honoured" if linked > fresh else "ignored", about)


@probe("responses_delete", outcomes={"deleted", "not_found"})
def responses_delete(ctx: ProbeContext) -> Observation:
    """Create a stored response, check a GET finds it, DELETE it, and GET it again."""
    ident = _created(ctx, "create", store=True)
    if not _kept(ctx, "get-before", ident):
        raise ctx.not_applicable("the response (store: true) is not stored, so nothing to delete")
    reply = ctx.endpoint.stored("DELETE", ident, label="delete")
    if reply.status == 404:
        return ctx.observe("not_found", "DELETE of a stored response answered 404")
    if not reply.ok:
        raise ctx.fail(f"delete: answered {reply.refusal}, neither a deletion nor a 404")
    if _kept(ctx, "get-after", ident):
        raise ctx.fail("delete: answered 200, but a GET still finds the response")
    return ctx.observe("deleted", f"DELETE answered {reply.status}; a GET then answers 404")
