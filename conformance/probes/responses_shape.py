"""Probes of the Responses API's reply shapes: items, usage, streamed events and errors."""

from __future__ import annotations

import json
from typing import Any

from conformance.observation import Check, Observation
from conformance.probes.client import Reply
from conformance.probes.errors import envelope_shape
from conformance.probes.registry import ProbeContext, probe
from conformance.probes.responses import ask, function_calls

#: OpenAI's streamed events for one text message, in the order they first appear.
TEXT_SEQUENCE = (
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
)
#: The streamed events of a function call, besides the response's own.
CALL_EVENTS = (
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
)


def _shape_check(reply: Reply) -> Check:
    """Whether the reply (or each streamed event) is valid by the SDK's types."""
    shape = reply.exchange.shape
    violations = shape.violations if shape is not None else []
    detail = "; ".join(violations[:3]) if violations else "valid by the SDK's types"
    return Check(name="sdk_types", passed=not violations, detail=detail)


def _event_types(reply: Reply) -> list[str]:
    return [str(event.get("type")) for event in reply.chunks]


@probe("responses_function_call", outcomes={"standard", "object_arguments", "missing_call_id"})
def responses_function_call(ctx: ProbeContext) -> Observation:
    """One tool and tool_choice "required": the function_call item's ``arguments`` and
    ``call_id``. In a stream, the call's events are a secondary check."""
    reply = ask(ctx, "forced-call", tools=list(ctx.params["tools"]), tool_choice="required")
    ctx.require_ok(reply, 'tool_choice "required"')
    calls = function_calls(reply)
    if not calls:
        raise ctx.not_applicable('no function_call item: tool_choice "required" not honoured')
    call = calls[0]
    checks = [_shape_check(reply)]
    if reply.stream is not None:
        seen = set(_event_types(reply))
        missing = [name for name in CALL_EVENTS if name not in seen]
        checks.append(
            Check(
                name="call_events",
                passed=not missing,
                detail=f"missing {missing}" if missing else "every function-call event",
            )
        )
    arguments = call.get("arguments")
    if not isinstance(arguments, str):
        kind = type(arguments).__name__
        return ctx.observe("object_arguments", f"arguments is a {kind}: {arguments!r}", checks)
    if not isinstance(call.get("call_id"), str) or not call["call_id"]:
        return ctx.observe("missing_call_id", f"no call_id; item keys {sorted(call)}", checks)
    return ctx.observe("standard", f"{call.get('name')}({arguments}) as {call['call_id']}", checks)


@probe("responses_usage", outcomes={"present", "absent", "zero"})
def responses_usage(ctx: ProbeContext) -> Observation:
    """Where the response (in a stream: response.completed's) carries usage, and its counts."""
    reply = ctx.require_ok(ask(ctx, "plain"), "the request")
    usage = reply.usage
    if usage is None:
        return ctx.observe("absent", "the response's usage is null or missing")
    counts = {name: usage.get(name) for name in ("input_tokens", "output_tokens")}
    if not any(counts.values()):
        return ctx.observe("zero", f"usage counts {counts} for the text {reply.text!r}")
    return ctx.observe("present", f"usage counts {counts}")


@probe("responses_usage_details", outcomes={"detailed", "basic"})
def responses_usage_details(ctx: ProbeContext) -> Observation:
    """Whether usage has ``input_tokens_details`` and ``output_tokens_details``."""
    reply = ctx.require_ok(ask(ctx, "plain"), "the request")
    usage = reply.usage
    if usage is None:
        raise ctx.not_applicable("the response carries no usage")
    details = ("input_tokens_details", "output_tokens_details")
    if all(isinstance(usage.get(name), dict) for name in details):
        return ctx.observe("detailed", f"usage keys {sorted(usage)}")
    return ctx.observe("basic", f"usage keys {sorted(usage)}")


@probe("responses_content_part", outcomes={"output_text", "no_annotations", "text"})
def responses_content_part(ctx: ProbeContext) -> Observation:
    """The message item's content part: its type, and whether it has ``annotations``. That
    the reply is a completed response with a message item is a secondary check."""
    reply = ctx.require_ok(ask(ctx, "plain"), "the request")
    messages = [item for item in reply.output if item.get("type") == "message"]
    parts = [part for item in messages for part in item.get("content") or []]
    if not parts or not isinstance(parts[0], dict):
        raise ctx.fail(f"plain: no message content part; output {reply.output!r:.120}")
    part = parts[0]
    status = reply.response.get("status")
    checks = [
        _shape_check(reply),
        Check(
            name="completed_message",
            passed=status == "completed" and messages[0].get("role") == "assistant",
            detail=f"status {status!r}, a message item of role {messages[0].get('role')!r}",
        ),
    ]
    kind = part.get("type")
    if kind != "output_text":
        return ctx.observe("text", f"the part's type is {kind!r}", checks)
    if not isinstance(part.get("annotations"), list):
        return ctx.observe("no_annotations", f"output_text with keys {sorted(part)}", checks)
    return ctx.observe("output_text", "output_text with an annotations list", checks)


@probe("responses_stream_events", outcomes={"full", "text_only"})
def responses_stream_events(ctx: ProbeContext) -> Observation:
    """Which of OpenAI's events a text stream sends. Full means every event of the
    sequence, in order of first appearance; the events' validity by the SDK's types is a
    secondary check."""
    reply = ctx.require_ok(ask(ctx, "streamed", stream=True), "the stream")
    seen = list(dict.fromkeys(_event_types(reply)))
    order = [name for name in seen if name in TEXT_SEQUENCE]
    missing = [name for name in TEXT_SEQUENCE if name not in seen]
    checks = [_shape_check(reply)]
    if missing:
        return ctx.observe("text_only", f"missing {missing}; sent {seen}", checks)
    if order != list(TEXT_SEQUENCE):
        raise ctx.fail(f"every event was sent, but out of order: {order}")
    return ctx.observe("full", f"{len(reply.chunks)} events, the whole sequence in order", checks)


@probe("responses_sequence_number", outcomes={"counting", "absent"})
def responses_sequence_number(ctx: ProbeContext) -> Observation:
    """Each streamed event's ``sequence_number``: counting up from the first, or absent."""
    reply = ctx.require_ok(ask(ctx, "streamed", stream=True), "the stream")
    numbers = [event.get("sequence_number") for event in reply.chunks]
    if any(number is None for number in numbers):
        missing = sum(number is None for number in numbers)
        return ctx.observe("absent", f"{missing} of {len(numbers)} events have none")
    start = numbers[0]
    expected = list(range(start, start + len(numbers))) if isinstance(start, int) else []
    if numbers != expected:
        raise ctx.fail(f"sequence_number is present but does not count up by one: {numbers[:12]}")
    return ctx.observe("counting", f"{start} to {numbers[-1]} over {len(numbers)} events")


@probe("responses_stream_framing", outcomes={"event_lines", "data_only", "done_sentinel"})
def responses_stream_framing(ctx: ProbeContext) -> Observation:
    """How the events are framed: ``event:`` lines naming each event's type, ``data:``
    lines only, or either ended by chat's ``data: [DONE]``."""
    reply = ctx.require_ok(ask(ctx, "streamed", stream=True), "the stream")
    assert reply.stream is not None
    names = reply.stream.event_names
    types = _event_types(reply)
    if reply.stream.done:
        return ctx.observe("done_sentinel", f"{len(types)} events, then data: [DONE]")
    if not names:
        return ctx.observe("data_only", f"{len(types)} events without event: lines")
    check = Check(
        name="event_names_match",
        passed=names == types,
        detail="each event: line names its data's type"
        if names == types
        else f"event: lines {names[:4]} vs types {types[:4]}",
    )
    return ctx.observe("event_lines", f"{len(names)} event: lines for {len(types)} events", [check])


@probe(
    "responses_error_envelope", outcomes={"openai", "integer_code", "flat", "detail", "nonstandard"}
)
def responses_error_envelope(ctx: ProbeContext) -> Observation:
    """Send values outside their documented ranges, in turn until one is refused, and
    classify the refusal's body; a target that refuses none is not applicable."""
    accepted: list[dict[str, Any]] = []
    for invalid in ctx.params["invalid"]:
        fields = dict(invalid)
        reply = ask(ctx, "invalid-value", **fields)
        if not reply.ok:
            shape, why = envelope_shape(reply.body)
            return ctx.observe(
                shape, f"{json.dumps(fields)} was refused with {reply.status}: {why}"
            )
        accepted.append(fields)
    raise ctx.not_applicable(f"every value was accepted: {accepted}")
