"""Probes of tool calling: tool_choice, parallel_tool_calls and the arguments' format.

Every request forces (or forbids) calls through tool_choice, so no outcome rests on the model
deciding to call a tool. Calls are read from message.tool_calls, or in a stream assembled
from the tool_calls deltas by their index, the argument fragments concatenated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from conformance.observation import Observation
from conformance.probes.client import Reply
from conformance.probes.registry import ProbeContext, probe


@dataclass(frozen=True)
class ToolCall:
    """One tool call of a reply's first choice."""

    name: str | None
    #: The arguments as sent: a string (in a stream, the joined fragments), or whatever
    #: else the server put there (an object, null).
    arguments: Any


def tool_calls(reply: Reply) -> list[ToolCall]:
    """The tool calls of the first choice, in order."""
    if reply.stream is None:
        listed = reply.message.get("tool_calls")
        return [_call(part) for part in listed if isinstance(part, dict)] if listed else []
    calls: dict[int, dict[str, Any]] = {}
    for part in _streamed_parts(reply):
        index = part.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            # Without an index, a part with a new id starts a call; otherwise it continues one.
            opens = part.get("id") is not None and all(
                call["id"] != part["id"] for call in calls.values()
            )
            index = len(calls) if opens or not calls else max(calls)
        call = calls.setdefault(index, {"id": None, "name": None, "arguments": None})
        call["id"] = call["id"] or part.get("id")
        function = part.get("function")
        if not isinstance(function, dict):
            continue
        call["name"] = call["name"] or function.get("name") or None
        fragment = function.get("arguments")
        if isinstance(fragment, str):
            so_far = call["arguments"]
            call["arguments"] = (so_far if isinstance(so_far, str) else "") + fragment
        elif fragment is not None:
            call["arguments"] = fragment
    return [ToolCall(call["name"], call["arguments"]) for _, call in sorted(calls.items())]


def _streamed_parts(reply: Reply) -> Iterator[dict[str, Any]]:
    for chunk in reply.chunks:
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            for part in delta.get("tool_calls") or []:
                if isinstance(part, dict):
                    yield part


def _call(part: dict[str, Any]) -> ToolCall:
    function = part.get("function")
    if not isinstance(function, dict):
        return ToolCall(None, None)
    name = function.get("name")
    return ToolCall(name if isinstance(name, str) else None, function.get("arguments"))


def arguments_format(arguments: Any) -> str:
    """How a call's arguments came: ``json_string`` (JSON text of an object, as OpenAI
    sends them), ``object`` (the object itself), or ``invalid_json`` (anything else)."""
    if isinstance(arguments, dict):
        return "object"
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except (ValueError, RecursionError):
            return "invalid_json"
        return "json_string" if isinstance(parsed, dict) else "invalid_json"
    return "invalid_json"


def _names(calls: list[ToolCall]) -> str:
    return ", ".join(repr(call.name) for call in calls) or "none"


def _tools(ctx: ProbeContext) -> list[dict[str, Any]]:
    return [dict(tool) for tool in ctx.params["tools"]]


def _named_choice(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def _summary(reply: Reply, calls: list[ToolCall]) -> str:
    return f"{len(calls)} call(s): {_names(calls)}; finish_reason {reply.finish_reason!r}"


@probe("tool_choice_required", outcomes={"honoured", "ignored", "rejected"})
def tool_choice_required(ctx: ProbeContext) -> Observation:
    """tool_choice "required": the reply must call a tool."""
    reply = ctx.send("required", ctx.body(tools=_tools(ctx), tool_choice="required"))
    if not reply.ok:
        return ctx.observe("rejected", f'tool_choice "required" was refused with {reply.refusal}')
    calls = tool_calls(reply)
    if calls:
        return ctx.observe("honoured", _summary(reply, calls))
    return ctx.observe("ignored", f"no tool call; finish_reason {reply.finish_reason!r}")


@probe("tool_choice_named", outcomes={"honoured", "wrong_tool", "ignored", "rejected"})
def tool_choice_named(ctx: ProbeContext) -> Observation:
    """tool_choice naming one of the tools: the reply must call that one, and only it."""
    name = str(ctx.params["call"])
    reply = ctx.send("named", ctx.body(tools=_tools(ctx), tool_choice=_named_choice(name)))
    if not reply.ok:
        return ctx.observe("rejected", f"tool_choice {name!r} was refused with {reply.refusal}")
    calls = tool_calls(reply)
    if not calls:
        return ctx.observe("ignored", f"no tool call; finish_reason {reply.finish_reason!r}")
    if all(call.name == name for call in calls):
        return ctx.observe("honoured", _summary(reply, calls))
    return ctx.observe("wrong_tool", f"{name!r} was named; {_summary(reply, calls)}")


@probe("tool_choice_none", outcomes={"honoured", "ignored", "rejected"})
def tool_choice_none(ctx: ProbeContext) -> Observation:
    """tool_choice "none" with tools given: the reply must be a message, not a call."""
    reply = ctx.send("none", ctx.body(tools=_tools(ctx), tool_choice="none"))
    if not reply.ok:
        return ctx.observe("rejected", f'tool_choice "none" was refused with {reply.refusal}')
    calls = tool_calls(reply)
    if calls:
        return ctx.observe("ignored", _summary(reply, calls))
    return ctx.observe("honoured", f"no tool call; content {reply.text[:40]!r}")


@probe("parallel_tool_calls", outcomes={"honoured", "ignored", "rejected"})
def parallel_tool_calls(ctx: ProbeContext) -> Observation:
    """parallel_tool_calls false with tool_choice "required": at most one call.

    A refusal is put down to parallel_tool_calls only if the same request without it is
    accepted. A reply without any call says nothing about the limit, nor does a refusal of
    tool_choice "required" itself: the case is not applicable.
    """
    body = ctx.body(tools=_tools(ctx), tool_choice="required", parallel_tool_calls=False)
    reply = ctx.send("not-parallel", body)
    if not reply.ok:
        control = ctx.send("without-option", ctx.body(tools=_tools(ctx), tool_choice="required"))
        if not control.ok:
            raise ctx.not_applicable(
                f'tool_choice "required" is refused ({control.refusal}) with or without '
                "parallel_tool_calls, so the option cannot show"
            )
        return ctx.observe(
            "rejected",
            f"parallel_tool_calls false was refused with {reply.refusal}; the request "
            "without it was accepted",
        )
    calls = tool_calls(reply)
    if not calls:
        raise ctx.not_applicable(
            f'no tool call even with tool_choice "required" (finish_reason '
            f"{reply.finish_reason!r}), so a limit on parallel calls cannot show"
        )
    if len(calls) == 1:
        return ctx.observe("honoured", _summary(reply, calls))
    return ctx.observe("ignored", _summary(reply, calls))


@probe("tool_arguments", outcomes={"json_string", "object", "invalid_json"})
def tool_arguments(ctx: ProbeContext) -> Observation:
    """A call forced by a named tool_choice: in what form do its arguments come?

    A refused request, or one whose reply calls no tool, has no arguments to look at: the
    case is not applicable.
    """
    name = str(ctx.params["call"])
    reply = ctx.send("forced-call", ctx.body(tools=_tools(ctx), tool_choice=_named_choice(name)))
    if not reply.ok:
        raise ctx.not_applicable(
            f"the forced call was refused with {reply.refusal}: no arguments to look at"
        )
    calls = tool_calls(reply)
    if not calls:
        raise ctx.not_applicable(
            f"the reply calls no tool (finish_reason {reply.finish_reason!r}): no arguments "
            "to look at"
        )
    arguments = calls[0].arguments
    shown = json.dumps(arguments)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return ctx.observe(arguments_format(arguments), f"{calls[0].name!r} arguments: {shown}")
