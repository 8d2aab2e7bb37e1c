"""Probes for refused requests: which status a server answers, and in which body."""

from __future__ import annotations

import math
from typing import Any

from conformance import redaction
from conformance.observation import Observation
from conformance.probes.registry import ProbeContext, probe
from conformance.spec import Api


def envelope_shape(body: dict[str, Any] | None) -> tuple[str, str]:
    """The shape of an error body (an outcome of errors.envelope) and why it is that shape.

    ``openai`` is ``{"error": {...}}`` whose object has a string message and type, and a
    param and code that are strings or null; missing param or code count as null, as the
    official SDK's ErrorObject type reads them. ``integer_code`` is the same with a numeric
    code; ``flat`` has message and type at the top level; ``detail`` is FastAPI's.
    """
    if body is None:
        return "nonstandard", "the body is not a JSON object"
    error = body.get("error")
    if isinstance(error, dict):
        if not isinstance(error.get("message"), str) or not isinstance(error.get("type"), str):
            return "nonstandard", "an error object without a string message and type"
        if not isinstance(error.get("param"), str | None):
            return "nonstandard", f"error.param is {type(error['param']).__name__}"
        code = error.get("code")
        if isinstance(code, str | None):
            return "openai", f"error object with code {code!r}"
        if isinstance(code, int | float) and not isinstance(code, bool):
            return "integer_code", f"error object with a numeric code {code!r}"
        return "nonstandard", f"error.code is {type(code).__name__}"
    if isinstance(body.get("message"), str) and isinstance(body.get("type"), str):
        return "flat", f"message and type at the top level, keys {sorted(body)}"
    if "detail" in body:
        return "detail", f"a detail member, keys {sorted(body)}"
    return "nonstandard", f"keys {sorted(body)}"


@probe(
    "error_envelope",
    outcomes={"openai", "integer_code", "flat", "detail", "nonstandard", "accepted"},
)
def error_envelope(ctx: ProbeContext) -> Observation:
    """Send values outside their documented ranges, in turn until one is refused, and
    classify the refusal's body."""
    accepted = []
    for invalid in ctx.params["invalid"]:
        fields = dict(invalid)
        reply = ctx.send("invalid-value", ctx.body(**fields), server_errors=True)
        if not reply.ok:
            shape, why = envelope_shape(reply.body)
            return ctx.observe(shape, f"{fields} was refused with {reply.status}: {why}")
        accepted.append(fields)
    return ctx.observe("accepted", f"every value was accepted: {accepted}")


@probe("bad_key", outcomes={"unauthorized", "forbidden", "accepted", "other_status"})
def bad_key(ctx: ProbeContext) -> Observation:
    """Send one request whose key is an obviously fake one, and look at the status."""
    target = ctx.endpoint.target
    if any(redaction.is_secret_name(name) for name in target.query):
        raise ctx.not_applicable(
            "the target's key travels in the query string, which a request cannot replace"
        )
    fake = str(ctx.params["fake_key"])
    # Every header that may carry the key gets the fake one, in the target's own spelling.
    headers = {"Authorization": f"Bearer {fake}"}
    for name in target.headers:
        if redaction.is_secret_name(name):
            headers[name] = f"Bearer {fake}" if name.lower() == "authorization" else fake
    reply = ctx.send("wrong-key", ctx.body(), headers=headers, server_errors=True)
    if reply.ok:
        return ctx.observe("accepted", f"a wrong key was accepted ({reply.status})")
    outcome = {401: "unauthorized", 403: "forbidden"}.get(reply.status, "other_status")
    return ctx.observe(outcome, f"a wrong key was refused with {reply.refusal}")


@probe("unknown_model", outcomes={"not_found", "bad_request", "accepted", "other_status"})
def unknown_model(ctx: ProbeContext) -> Observation:
    """Name a model that exists nowhere, and look at the status."""
    name = str(ctx.params["model"])
    reply = ctx.send("unknown-model", ctx.body(model=name), server_errors=True)
    if reply.ok:
        answered = (reply.body or {}).get("model") if reply.stream is None else None
        return ctx.observe("accepted", f"model {name!r} was answered (reply names {answered!r})")
    outcome = {404: "not_found", 400: "bad_request"}.get(reply.status, "other_status")
    return ctx.observe(outcome, f"model {name!r} was refused with {reply.refusal}")


@probe("invalid_value", outcomes={"bad_request", "unprocessable", "server_error", "accepted"})
def invalid_value(ctx: ProbeContext) -> Observation:
    """Send an out-of-range value, and look at the status."""
    invalid = dict(ctx.params["invalid"])
    reply = ctx.send("invalid-value", ctx.body(**invalid), server_errors=True)
    if reply.ok:
        return ctx.observe("accepted", f"{invalid} was accepted ({reply.status})")
    summary = f"{invalid} was refused with {reply.refusal}"
    if reply.failure:
        return ctx.observe("server_error", summary)
    outcome = {400: "bad_request", 422: "unprocessable"}.get(reply.status)
    if outcome is None:
        raise ctx.fail(f"no declared outcome fits: {summary}")
    return ctx.observe(outcome, summary)


def _text_body(ctx: ProbeContext, text: str) -> dict[str, Any]:
    """The case's request with ``text`` as the whole prompt (chat: the one user message)."""
    body = ctx.body(stream=False)
    if ctx.api is Api.CHAT:
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = text
    return body


def _prompt_tokens(ctx: ProbeContext, label: str, text: str) -> int:
    reply = ctx.require_ok(ctx.send(label, _text_body(ctx, text)), "the measuring request")
    counted = (reply.usage or {}).get("prompt_tokens")
    if not isinstance(counted, int) or counted <= 0:
        raise ctx.fail(f"{label}: the reply has no usage.prompt_tokens to size the prompt")
    return counted


@probe(
    "prompt_overflow",
    outcomes={"context_length_exceeded", "other_error", "truncated", "exceeded", "server_error"},
)
def prompt_overflow(ctx: ProbeContext) -> Observation:
    """Send a prompt that alone is longer than the context window, sized with the target's
    own token counts, and see what comes back.

    Two measuring requests (the unit text once, and ``sample`` times) give the tokens per
    repetition and the fixed cost around it (chat template, BOS); the prompt then repeats
    the unit until it is ``overflow`` tokens past the window.
    """
    window = ctx.endpoint.target.window(ctx.api)
    unit = str(ctx.params["prompt"])
    sample, overflow = int(ctx.params["sample"]), int(ctx.params["overflow"])
    once = _prompt_tokens(ctx, "measure-once", unit)
    repeated = _prompt_tokens(ctx, f"measure-{sample}-times", unit * sample)
    per_unit = (repeated - once) / (sample - 1)
    if per_unit <= 0:
        raise ctx.fail(f"repeating {unit!r} did not add tokens ({once} vs {repeated})")
    count = 1 + math.ceil((window + overflow - once) / per_unit)
    sent = round(once + (count - 1) * per_unit)
    reply = ctx.send("overflowing-prompt", _text_body(ctx, unit * count), server_errors=True)
    about = f"a prompt of about {sent} tokens ({count} x {unit!r}) against a window of {window}"
    if reply.failure:
        return ctx.observe("server_error", f"{about}: {reply.status}")
    if not reply.ok:
        code = reply.error.get("code")
        outcome = "context_length_exceeded" if code == "context_length_exceeded" else "other_error"
        return ctx.observe(outcome, f"{about}: refused with {reply.refusal}")
    counted = (reply.usage or {}).get("prompt_tokens")
    if not isinstance(counted, int):
        raise ctx.fail(f"{about}: accepted, with no usage.prompt_tokens to tell whether it was cut")
    if counted > window:
        return ctx.observe(
            "exceeded", f"{about}: accepted whole, counted as {counted} prompt tokens"
        )
    return ctx.observe("truncated", f"{about}: accepted, counted as {counted} prompt tokens")
