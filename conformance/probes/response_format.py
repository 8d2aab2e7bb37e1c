"""Probes of response_format: JSON mode (json_object) and Structured Outputs (json_schema).

Neither rests on the model obeying the prompt: each is decided against a control request
without response_format, and a target whose control reply already has the shape asked for
cannot show the option's effect (the case is not applicable).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from conformance.observation import Observation
from conformance.probes.client import Reply
from conformance.probes.registry import ProbeContext, probe

#: Keywords that say nothing about validity.
_ANNOTATIONS = frozenset({"title", "description", "$schema", "$comment", "default", "examples"})
_VALIDATED = frozenset({"type", "enum", "const", "properties", "required"})
_VALIDATED |= {"additionalProperties", "items"}
_TYPES: Mapping[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
}


class _NoJson:
    """The marker for text that is not JSON (``None`` is JSON's null)."""


NOT_JSON = _NoJson()


def parse_json(text: str) -> Any:
    """The JSON value ``text`` holds (surrounding whitespace allowed), or ``NOT_JSON``."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return NOT_JSON


_WHITESPACE = " \t\n\r"
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_LITERALS = ("true", "false", "null")
_ESCAPES = frozenset('"\\/bfnrt')
_HEX = frozenset("0123456789abcdefABCDEF")


def is_object_prefix(text: str) -> bool:
    """True when ``text`` opens a JSON object (after whitespace) and every character so far
    is valid JSON: the beginning of an object, possibly cut off mid-way."""
    stripped = text.lstrip(_WHITESPACE)
    return stripped.startswith("{") and _valid_so_far(stripped)


def _valid_so_far(text: str) -> bool:
    """True when some continuation would make ``text`` one valid JSON value."""
    stack: list[str] = []
    expect = "value"  # also: value_or_close, key, key_or_close, colon, comma_or_close, end
    position = 0
    while position < len(text):
        char = text[position]
        if char in _WHITESPACE:
            position += 1
            continue
        if expect == "end":
            return False
        if expect == "colon":
            if char != ":":
                return False
            expect, position = "value", position + 1
            continue
        if expect == "comma_or_close":
            if char == ",":
                expect = "key" if stack[-1] == "{" else "value"
            elif char == ("}" if stack[-1] == "{" else "]"):
                stack.pop()
                expect = "comma_or_close" if stack else "end"
            else:
                return False
            position += 1
            continue
        if expect in ("key", "key_or_close"):
            if char == "}" and expect == "key_or_close":
                stack.pop()
                expect, position = ("comma_or_close" if stack else "end"), position + 1
                continue
            if char != '"':
                return False
            end = _string_end(text, position + 1)
            if end is None or end == len(text) + 1:
                return end is not None
            expect, position = "colon", end
            continue
        # A value is expected.
        if char == "]" and expect == "value_or_close":
            stack.pop()
            expect, position = ("comma_or_close" if stack else "end"), position + 1
            continue
        if char in "{[":
            stack.append(char)
            expect = "key_or_close" if char == "{" else "value_or_close"
            position += 1
            continue
        if char == '"':
            end = _string_end(text, position + 1)
            if end is None or end == len(text) + 1:
                return end is not None
        else:
            end = position
            while end < len(text) and text[end] not in _WHITESPACE + ",]}":
                end += 1
            token = text[position:end]
            if end == len(text):
                return _token_prefix(token)
            if not (token in _LITERALS or _NUMBER.fullmatch(token)):
                return False
        expect, position = ("comma_or_close" if stack else "end"), end
    return True


def _string_end(text: str, start: int) -> int | None:
    """Where the string whose content starts at ``start`` ends (just past its closing quote);
    ``len(text) + 1`` when the text ends inside it, None when it is not a valid string."""
    position = start
    while position < len(text):
        char = text[position]
        if char == '"':
            return position + 1
        if ord(char) < 0x20:
            return None
        if char == "\\":
            escape = text[position + 1 : position + 2]
            if escape == "u":
                digits = text[position + 2 : position + 6]
                if not all(d in _HEX for d in digits):
                    return None
                position += 6
                continue
            if escape and escape not in _ESCAPES:
                return None
            position += 2
            continue
        position += 1
    return len(text) + 1


def _token_prefix(token: str) -> bool:
    """True when a number or literal cut off as ``token`` could still be completed."""
    if any(literal.startswith(token) for literal in _LITERALS):
        return True
    return any(_NUMBER.fullmatch(token + end) for end in ("", "0"))


def schema_errors(value: Any, schema: Mapping[str, Any], where: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema``; empty when it validates.

    Covers the subset of JSON Schema that Structured Outputs' strict mode is built on: type,
    enum, const, properties, required, additionalProperties and items. ValueError for a
    schema using any other keyword, so that a probe never passes a check it cannot make.
    """
    unknown = set(schema) - _ANNOTATIONS - _VALIDATED
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} are not supported by the check")
    errors: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        for name in names:
            if name not in _TYPES:
                raise ValueError(f"unknown JSON type {name!r} in the schema")
        if not any(_TYPES[name](value) for name in names):
            return [f"{where}: {_short(value)} is not of type {' or '.join(names)}"]
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        errors.append(f"{where}: {_short(value)} is not one of {schema['enum']!r}")
    if "const" in schema and not _same(value, schema["const"]):
        errors.append(f"{where}: {_short(value)} is not {schema['const']!r}")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, where)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{index}]")
    return errors


def _object_errors(value: dict[str, Any], schema: Mapping[str, Any], where: str) -> list[str]:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    errors = [
        f"{where}: the required property {name!r} is missing"
        for name in schema.get("required") or []
        if name not in value
    ]
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            errors += schema_errors(item, properties[name], f"{where}.{name}")
        elif extra is False:
            errors.append(f"{where}: the property {name!r} is not allowed")
        elif isinstance(extra, dict):
            errors += schema_errors(item, extra, f"{where}.{name}")
    return errors


def _same(value: Any, option: Any) -> bool:
    # JSON equality: true is not 1, and 1 is 1.0.
    return bool(isinstance(value, bool) == isinstance(option, bool) and value == option)


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _refused(ctx: ProbeContext, reply: Reply, what: str) -> Observation:
    outcome = "server_error" if reply.failure else "rejected"
    return ctx.observe(outcome, f"{what} was refused with {reply.refusal}")


def _excerpt(reply: Reply) -> str:
    text = reply.text
    shown = text if len(text) <= 60 else text[:57] + "..."
    return f"{shown!r} (finish_reason {reply.finish_reason!r})"


@probe("json_mode", outcomes={"honoured", "ignored", "rejected"})
def json_mode(ctx: ProbeContext) -> Observation:
    """response_format json_object: is the content a JSON object where the control's is not?"""
    response_format = dict(ctx.params["response_format"])
    control = ctx.require_ok(ctx.send("control", ctx.body()), "the control request")
    if is_object_prefix(control.text):
        raise ctx.not_applicable(
            "control: the reply is (the beginning of) a JSON object without response_format "
            "too, so JSON mode cannot show"
        )
    reply = ctx.send("json-object", ctx.body(response_format=response_format))
    if not reply.ok:
        return _refused(ctx, reply, "response_format json_object")
    if isinstance(parse_json(reply.text), dict):
        return ctx.observe("honoured", f"the content is a JSON object: {_excerpt(reply)}")
    if reply.finish_reason == "length" and is_object_prefix(reply.text):
        # OpenAI documents that JSON-mode content may be cut off when max_tokens runs out.
        return ctx.observe(
            "honoured", f"the content is a JSON object cut off at max_tokens: {_excerpt(reply)}"
        )
    return ctx.observe("ignored", f"the content is not a JSON object: {_excerpt(reply)}")


@probe(
    "structured_output",
    outcomes={"honoured", "json_only", "cut_off", "ignored", "rejected", "server_error"},
)
def structured_output(ctx: ProbeContext) -> Observation:
    """response_format json_schema: does the content follow the schema, or is it only JSON?

    The schema asks for values the model would not say unprompted, so only a server that
    constrains decoding to the schema produces them. Content cut off at max_tokens while
    still valid JSON cannot be checked against the schema, and is an outcome of its own; a
    5xx for the request (the control having been answered) is one too.
    """
    response_format = dict(ctx.params["response_format"])
    schema = response_format["json_schema"]["schema"]
    control = ctx.require_ok(ctx.send("control", ctx.body()), "the control request")
    try:
        control_value = parse_json(control.text)
        if control_value is not NOT_JSON and not schema_errors(control_value, schema):
            raise ctx.not_applicable(
                "control: the reply follows the schema without response_format too"
            )
        body = ctx.body(response_format=response_format)
        reply = ctx.send("json-schema", body, server_errors=True)
        if not reply.ok:
            return _refused(ctx, reply, "response_format json_schema")
        value = parse_json(reply.text)
        if value is NOT_JSON and reply.finish_reason == "length" and is_object_prefix(reply.text):
            return ctx.observe(
                "cut_off",
                f"the content is valid JSON as far as it goes, cut off at max_tokens: "
                f"{_excerpt(reply)}",
            )
        if value is NOT_JSON:
            return ctx.observe("ignored", f"the content is not JSON: {_excerpt(reply)}")
        errors = schema_errors(value, schema)
    except ValueError as exc:
        raise ctx.fail(f"the behavior's schema cannot be checked: {exc}") from None
    if not errors:
        return ctx.observe("honoured", f"the content follows the schema: {_excerpt(reply)}")
    if control_value is not NOT_JSON:
        raise ctx.not_applicable(
            "control: the reply is JSON without response_format too, so JSON that misses the "
            "schema does not show what response_format did"
        )
    return ctx.observe(
        "json_only", f"the content is JSON but {errors[0]}; {len(errors)} error(s) in all"
    )
