"""Replies checked against the openai SDK's own response types.

A field that the types do not declare is an *extension* (vLLM's ``stop_reason``, llama.cpp's
``timings``, ...); a value that the types refuse is a *violation*. Neither stops a probe:
both go into the evidence, and the report lists them per target. The SDK is the reference
because it is what clients parse with, and it is generated from OpenAI's API specification.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple

from openai import BaseModel as SdkModel
from openai.types import Completion, CompletionChoice
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import ValidationError

from conformance.observation import ShapeCheck
from conformance.spec import Api


class CompletionChunkChoice(CompletionChoice):
    """A streamed legacy completion choice: finish_reason is null until the choice ends."""

    finish_reason: Literal["stop", "length", "content_filter"] | None = None  # type: ignore[assignment]


class CompletionChunk(Completion):
    """A legacy completions stream chunk. The SDK parses chunks as ``Completion``, whose
    choices require a finish_reason that OpenAI itself sends as null until the last chunk."""

    choices: list[CompletionChunkChoice]  # type: ignore[assignment]


#: The SDK type of a reply, by API and by whether it is a stream chunk.
REPLY_TYPES: Mapping[tuple[Api, bool], type[SdkModel]] = {
    (Api.CHAT, False): ChatCompletion,
    (Api.CHAT, True): ChatCompletionChunk,
    (Api.COMPLETIONS, False): Completion,
    (Api.COMPLETIONS, True): CompletionChunk,
    (Api.RESPONSES, False): Response,
}
#: The SDK type of each streamed Responses event, by its ``type`` field.
EVENT_TYPES: Mapping[str, type[SdkModel]] = {
    typing.get_args(event.model_fields["type"].annotation)[0]: event
    for event in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
}
#: Violations kept per reply; a broken stream repeats the same one on every chunk.
MAX_VIOLATIONS = 20


def check(api: Api, items: Iterable[dict[str, Any]], *, chunks: bool) -> ShapeCheck:
    """Check a reply body (``chunks=False``, one item) or a stream's chunks against the SDK;
    a Responses stream's events each against the SDK type their ``type`` names."""
    events = api is Api.RESPONSES and chunks
    extensions: set[str] = set()
    violations: list[str] = []
    for position, item in enumerate(items):
        where = f"chunk {position}: " if chunks else ""
        model = EVENT_TYPES.get(str(item.get("type"))) if events else REPLY_TYPES[(api, chunks)]
        if model is None:
            if len(violations) < MAX_VIOLATIONS:
                violations.append(f"{where}type: no SDK event type {item.get('type')!r}")
            continue
        extensions.update(undeclared(model, item))
        for violation in refused(model, item):
            if len(violations) < MAX_VIOLATIONS and where + violation not in violations:
                violations.append(where + violation)
    name = "ResponseStreamEvent" if events else REPLY_TYPES[(api, chunks)].__name__
    return ShapeCheck(type=name, extensions=sorted(extensions), violations=violations)


def refused(model: type[SdkModel], item: dict[str, Any]) -> list[str]:
    """What the SDK's validation of ``item`` as ``model`` refuses, one line per error."""
    try:
        model.model_validate(item)
    except ValidationError as exc:
        return [f"{_location(error['loc'])}: {error['msg']}" for error in exc.errors()]
    return []


def undeclared(model: type[SdkModel], item: Any, path: str = "") -> set[str]:
    """Paths of the keys in ``item`` that ``model`` (recursively) does not declare.

    Lists are written ``[]`` (``choices[].stop_reason``), so the same extension on every
    choice or chunk is one path.
    """
    if not isinstance(item, dict):
        return set()
    fields = _fields(model)
    found: set[str] = set()
    for key, value in item.items():
        where = f"{path}.{key}" if path else key
        declared = fields.get(key)
        if declared is None:
            found.add(where)
        elif isinstance(value, list):
            for element in value:
                found |= _descend(declared.item_models, element, f"{where}[]")
        else:
            found |= _descend(declared.models, value, where)
    return found


class _Declared(NamedTuple):
    """What a declared field can hold that has fields of its own."""

    models: tuple[type[SdkModel], ...]  # SDK models the value itself may be
    item_models: tuple[type[SdkModel], ...]  # SDK models a list value's elements may be


def _descend(options: tuple[type[SdkModel], ...], value: Any, where: str) -> set[str]:
    """``undeclared`` for ``value`` as the one of ``options`` that declares most of its keys."""
    if not options or not isinstance(value, dict):
        return set()
    if len(options) == 1:  # most fields: no choice to weigh
        return undeclared(options[0], value, where)
    best = max(options, key=lambda model: len(value.keys() & _fields(model).keys()))
    return undeclared(best, value, where)


def _models(annotations: list[Any]) -> tuple[type[SdkModel], ...]:
    return tuple(
        option
        for option in annotations
        if isinstance(option, type) and issubclass(option, SdkModel)
    )


def _flatten(annotation: Any) -> list[Any]:
    """The members of a (possibly nested, Optional or Annotated) union."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [member for arg in typing.get_args(annotation) for member in _flatten(arg)]
    return [annotation]


@functools.cache
def _fields(model: type[SdkModel]) -> dict[str, _Declared]:
    """The JSON keys ``model`` declares, with the models each one's value may hold; worked
    out once per model, as every chunk of every stream is walked with them."""
    fields = {}
    for name, info in model.model_fields.items():
        members = _flatten(info.annotation)
        items = [
            member
            for option in members
            if typing.get_origin(option) is list
            for member in _flatten(typing.get_args(option)[0])
        ]
        fields[info.alias or name] = _Declared(_models(members), _models(items))
    return fields


def _location(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the whole reply)"
