"""Probes of the Responses API's request options (``POST /v1/responses``).

Each request goes through the SDK's ``client.responses`` (see ``client.Endpoint``). An option
is judged from the one reply that carries it wherever that reply shows its effect (a status,
a count, an echoed field); where only a control can tell, the control is sent, and when the
two differ both are asked again until each reproduces (``ctx.agreed``), so that a target
that is not deterministic is never called honoured.
"""

from __future__ import annotations

import json
from typing import Any

from conformance.observation import Check, Observation
from conformance.probes.client import Reply
from conformance.probes.registry import ProbeContext, probe
from conformance.probes.response_format import NOT_JSON, is_object_prefix, parse_json, schema_errors


def request(ctx: ProbeContext, *, stream: bool | None = None, **fields: Any) -> dict[str, Any]:
    """A deterministic Responses request: the behavior's prompt as ``input``, temperature 0,
    its ``max_output_tokens``, then ``fields`` (a field set to None is left out)."""
    body: dict[str, Any] = {"input": ctx.params["prompt"], "temperature": 0}
    if "max_output_tokens" in ctx.params:
        body["max_output_tokens"] = ctx.params["max_output_tokens"]
    if ctx.stream if stream is None else stream:
        body["stream"] = True
    body.update(fields)
    return {name: value for name, value in body.items() if value is not None}


def ask(ctx: ProbeContext, label: str, *, stream: bool | None = None, **fields: Any) -> Reply:
    """Send ``request(ctx, **fields)``; the exchange is kept as evidence."""
    return ctx.send(label, request(ctx, stream=stream, **fields))


def changes_text(ctx: ProbeContext, reply: Reply, fields: dict[str, Any]) -> bool:
    """True when ``reply`` (to a request with ``fields``) differs in text from a control
    without them, and both reproduce (``ctx.agreed``, up to the target's ``attempts``): one
    reply that diverged is never taken for an effect."""
    first = ctx.require_ok(ask(ctx, "control"), "the control request")
    if reply.text == first.text:
        return False
    control = ctx.agreed("control", request(ctx), "the repeated control", sent=[first])
    if reply.text == control.text:
        return False
    confirmed = ctx.agreed(
        reply.exchange.label, request(ctx, **fields), "the repeated request", sent=[reply]
    )
    return confirmed.text != control.text


def function_calls(reply: Reply) -> list[dict[str, Any]]:
    """The reply's function_call output items (in a stream: the terminal event's, or else
    those of the output_item.done events)."""
    items = reply.output
    if not items and reply.stream is not None:
        items = [
            event["item"]
            for event in reply.chunks
            if event.get("type") == "response.output_item.done"
            and isinstance(event.get("item"), dict)
        ]
    return [item for item in items if item.get("type") == "function_call"]


def _refused(ctx: ProbeContext, reply: Reply, what: str) -> Observation:
    return ctx.observe("rejected", f"{what} was refused with {reply.refusal}")


@probe("responses_input_items", outcomes={"accepted", "rejected"})
def responses_input_items(ctx: ProbeContext) -> Observation:
    """Send ``input`` as message items (a system item, then a conversation). A refusal is
    ``rejected`` only when the same prompt as a string is accepted. An image part
    (input_text + input_image) is a secondary check."""
    items = list(ctx.params["items"])
    reply = ctx.send("items", request(ctx, input=items))
    if not reply.ok:
        control = ask(ctx, "string-input")
        if not control.ok:
            raise ctx.fail(f"the input as a string was refused too ({control.refusal})")
        return _refused(ctx, reply, "input as items")
    status = reply.response.get("status")
    if not reply.text:
        raise ctx.fail(f"items: accepted with status {status!r} but no output text")
    image = ctx.send("image", request(ctx, input=list(ctx.params["image_items"])))
    detail = "accepted" if image.ok else f"refused with {image.refusal}"
    check = Check(name="image_input", passed=image.ok, detail=f"input_text + input_image {detail}")
    return ctx.observe(
        "accepted", f"{len(items)} items accepted: status {status!r}, {reply.text!r}", [check]
    )


@probe("responses_instructions", outcomes={"honoured", "ignored", "rejected"})
def responses_instructions(ctx: ProbeContext) -> Observation:
    """``instructions`` against a control without them: honoured when the text changes."""
    fields = {"instructions": ctx.params["instructions"]}
    reply = ask(ctx, "with-instructions", **fields)
    if not reply.ok:
        return _refused(ctx, reply, "instructions")
    if changes_text(ctx, reply, fields):
        return ctx.observe("honoured", f"the text changed to {reply.text!r}")
    return ctx.observe("ignored", f"the text is the control's {reply.text!r}")


@probe(
    "responses_max_output_tokens", outcomes={"honoured", "completed_status", "ignored", "rejected"}
)
def responses_max_output_tokens(ctx: ProbeContext) -> Observation:
    """One reply with ``max_output_tokens``: its usage and status decide."""
    limit = int(ctx.params["max_output_tokens"])
    reply = ask(ctx, "limited")
    if not reply.ok:
        return _refused(ctx, reply, f"max_output_tokens={limit}")
    response = reply.response
    status = response.get("status")
    reason = (response.get("incomplete_details") or {}).get("reason")
    output = (reply.usage or {}).get("output_tokens")
    if not isinstance(output, int):
        raise ctx.fail("limited: the reply has no usage.output_tokens to compare with the limit")
    about = f"{output} output tokens for a limit of {limit}, status {status!r}"
    if output > limit:
        return ctx.observe("ignored", about)
    if status == "incomplete":
        outcome = "honoured" if reason == "max_output_tokens" else None
        if outcome is None:
            raise ctx.fail(f"{about}, but incomplete_details.reason is {reason!r}")
        return ctx.observe(outcome, f"{about}, reason {reason!r}")
    if output < limit:
        raise ctx.not_applicable(f"{about}: the reply ended by itself within the limit")
    return ctx.observe("completed_status", f"{about}: cut at the limit but reported completed")


def _tokens_of(ctx: ProbeContext, label: str, text: str) -> int:
    reply = ctx.require_ok(ask(ctx, label, stream=False, input=text), "the measuring request")
    counted = (reply.usage or {}).get("input_tokens")
    if not isinstance(counted, int) or counted <= 0:
        raise ctx.fail(f"{label}: the reply has no usage.input_tokens to size the input")
    return counted


def filler(ctx: ProbeContext, tokens: int) -> str:
    """An input of about ``tokens`` input tokens: the unit repeated, sized with two
    measuring requests (the unit once and ``sample`` times) on the target's own counts."""
    unit, sample = str(ctx.params["unit"]), int(ctx.params["sample"])
    once = _tokens_of(ctx, "measure-once", unit)
    repeated = _tokens_of(ctx, f"measure-{sample}-times", unit * sample)
    per_unit = (repeated - once) / (sample - 1)
    if per_unit <= 0:
        raise ctx.fail(f"repeating {unit!r} did not add tokens ({once} vs {repeated})")
    return unit * (1 + round((tokens - once) / per_unit))


@probe("responses_window_overflow", outcomes={"clamped", "rejected", "exceeded"})
def responses_window_overflow(ctx: ProbeContext) -> Observation:
    """An input that leaves ``room`` tokens of the window, and max_output_tokens above that
    room: refused, stopped within the window, or generated past it."""
    window = ctx.endpoint.target.window(ctx.api)
    room, limit = int(ctx.params["room"]), int(ctx.params["max_output_tokens"])
    reply = ask(ctx, "overflow", input=filler(ctx, window - room))
    if not reply.ok:
        return _refused(ctx, reply, f"input + max_output_tokens={limit} past the window")
    usage = reply.usage or {}
    used, output = usage.get("input_tokens"), usage.get("output_tokens")
    if not isinstance(used, int) or not isinstance(output, int):
        raise ctx.fail("overflow: accepted, with no usage to tell where the output stopped")
    status = reply.response.get("status")
    about = f"{used} + {output} tokens against a window of {window}, status {status!r}"
    if used + output > window:
        return ctx.observe("exceeded", about)
    # Stopped exactly at the window is clamped, whatever the status says (a check does).
    if status != "incomplete" and used + output < window:
        raise ctx.not_applicable(f"{about}: the reply ended by itself within the window")
    check = Check(name="incomplete_status", passed=status == "incomplete", detail=about)
    return ctx.observe("clamped", about, [check])


@probe("responses_truncation", outcomes={"honoured", "ignored", "rejected"})
def responses_truncation(ctx: ProbeContext) -> Observation:
    """Input items that overflow the window together, not one by one, with ``truncation
    "auto"``. A refusal is ``rejected`` when a short input with the option is refused too,
    ``ignored`` when that one is accepted (the overflow was refused as without it)."""
    window = ctx.endpoint.target.window(ctx.api)
    turns = int(ctx.params["turns"])
    text = filler(ctx, window // 2)
    items = [{"role": "user", "content": text} for _ in range(turns - 1)]
    items.append({"role": "user", "content": ctx.params["prompt"]})
    reply = ask(ctx, "overflowing-items", input=items, truncation="auto")
    if reply.ok:
        used = (reply.usage or {}).get("input_tokens")
        return ctx.observe("honoured", f"{turns} items accepted; {used} input tokens counted")
    short = ask(ctx, "short-with-truncation", truncation="auto")
    if not short.ok:
        return _refused(ctx, short, 'truncation "auto" on a short input')
    return ctx.observe(
        "ignored", f"the overflowing items were refused with {reply.refusal} in spite of it"
    )


@probe("responses_temperature_range", outcomes={"rejected", "accepted"})
def responses_temperature_range(ctx: ProbeContext) -> Observation:
    """One request with a temperature above OpenAI's 0-2 range."""
    value = ctx.params["temperature"]
    reply = ask(ctx, "out-of-range", temperature=value)
    if not reply.ok:
        return _refused(ctx, reply, f"temperature={value}")
    return ctx.observe("accepted", f"temperature={value} was accepted")


@probe("responses_json_schema", outcomes={"honoured", "json_only", "ignored", "rejected"})
def responses_json_schema(ctx: ProbeContext) -> Observation:
    """``text.format`` json_schema: the output text is parsed and checked against the schema."""
    form = dict(ctx.params["format"])
    reply = ask(ctx, "json-schema", text={"format": form})
    if not reply.ok:
        return _refused(ctx, reply, "text.format json_schema")
    value = parse_json(reply.text)
    if value is NOT_JSON:
        if reply.response.get("status") == "incomplete" and is_object_prefix(reply.text):
            raise ctx.not_applicable(
                f"the output limit cut a JSON object before it closed: {reply.text[:80]!r}"
            )
        return ctx.observe("ignored", f"the output is not JSON: {reply.text[:80]!r}")
    errors = schema_errors(value, form["schema"])
    if errors:
        return ctx.observe("json_only", f"JSON that breaks the schema: {errors[0]}")
    return ctx.observe("honoured", f"JSON that follows the schema: {json.dumps(value)[:80]}")


@probe("responses_tool_choice", outcomes={"honoured", "wrong_tool", "ignored", "rejected"})
def responses_tool_choice(ctx: ProbeContext) -> Observation:
    """Two tools and a tool_choice naming the second one."""
    name = str(ctx.params["call"])
    choice = {"type": "function", "name": name}
    reply = ask(ctx, "named-tool", tools=list(ctx.params["tools"]), tool_choice=choice)
    if not reply.ok:
        return _refused(ctx, reply, "a named tool_choice")
    called = [str(item.get("name")) for item in function_calls(reply)]
    if not called:
        return ctx.observe("ignored", f"no function_call item; text {reply.text[:60]!r}")
    if set(called) == {name}:
        return ctx.observe("honoured", f"calls {called}")
    return ctx.observe("wrong_tool", f"calls {called}, not only {name!r}")


@probe("responses_parallel_tool_calls", outcomes={"honoured", "ignored", "rejected"})
def responses_parallel_tool_calls(ctx: ProbeContext) -> Observation:
    """Two tools, tool_choice "required" and parallel_tool_calls false: at most one call."""
    tools = list(ctx.params["tools"])
    reply = ask(ctx, "one-call", tools=tools, tool_choice="required", parallel_tool_calls=False)
    if not reply.ok:
        return _refused(ctx, reply, "parallel_tool_calls false")
    called = [str(item.get("name")) for item in function_calls(reply)]
    if not called:
        raise ctx.not_applicable('no function_call at all: tool_choice "required" not honoured')
    outcome = "honoured" if len(called) == 1 else "ignored"
    return ctx.observe(outcome, f"{len(called)} call(s): {called}")


@probe("responses_unknown_field", outcomes={"rejected", "ignored"})
def responses_unknown_field(ctx: ProbeContext) -> Observation:
    """One request with a top-level field the Responses API does not have."""
    fields = dict(ctx.params["field"])
    reply = ask(ctx, "unknown-field", **fields)
    if not reply.ok:
        return _refused(ctx, reply, f"the unknown field {sorted(fields)}")
    return ctx.observe("ignored", f"{sorted(fields)} was accepted")


@probe("responses_stop", outcomes={"rejected", "ignored", "honoured"})
def responses_stop(ctx: ProbeContext) -> Observation:
    """``stop`` (not a Responses field) set to a word of the control's own text: refused,
    without effect, or the text cut before that word."""
    control = ctx.require_ok(ask(ctx, "control"), "the control request")
    words = control.text.split()
    position = int(ctx.params["word"])
    if len(words) <= position:
        raise ctx.not_applicable(f"the control's text has no word {position}: {control.text!r}")
    word = words[position]
    reply = ask(ctx, "with-stop", stop=[word])
    if not reply.ok:
        return _refused(ctx, reply, "stop")
    if reply.text == control.text:
        return ctx.observe("ignored", f"stop={[word]!r}: the text is the control's")
    if control.text.startswith(reply.text) and word not in reply.text:
        return ctx.observe("honoured", f"stop={[word]!r} cut the text to {reply.text!r}")
    raise ctx.fail(
        f"with-stop: {reply.text!r} is neither the control's {control.text!r} nor cut at {word!r}"
    )


@probe("responses_metadata", outcomes={"echoed", "dropped", "rejected"})
def responses_metadata(ctx: ProbeContext) -> Observation:
    """One request with ``metadata``: is it on the response?"""
    metadata = dict(ctx.params["metadata"])
    reply = ask(ctx, "with-metadata", metadata=metadata)
    if not reply.ok:
        return _refused(ctx, reply, "metadata")
    echoed = reply.response.get("metadata")
    if echoed == metadata:
        return ctx.observe("echoed", f"metadata {echoed}")
    return ctx.observe("dropped", f"sent {metadata}, the response has {echoed!r}")


@probe("responses_reasoning", outcomes={"rejected", "ignored", "reasoned"})
def responses_reasoning(ctx: ProbeContext) -> Observation:
    """``reasoning.effort``: refused, accepted without reasoning, or a reasoning item (or
    reasoning tokens) in the reply."""
    reply = ask(ctx, "with-reasoning", reasoning={"effort": ctx.params["effort"]})
    if not reply.ok:
        return _refused(ctx, reply, "reasoning.effort")
    kinds = [item.get("type") for item in reply.output]
    details = (reply.usage or {}).get("output_tokens_details") or {}
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    if "reasoning" in kinds or (isinstance(reasoning, int) and reasoning > 0):
        return ctx.observe("reasoned", f"output items {kinds}, reasoning_tokens {reasoning!r}")
    return ctx.observe("ignored", f"accepted; output items {kinds}, no reasoning")
