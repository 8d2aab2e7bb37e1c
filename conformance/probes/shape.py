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
from typing import Any, Literal

from openai import BaseModel as SdkModel
from openai.types import Completion, CompletionChoice
from openai.types.chat import ChatCompletion, ChatCompletionChunk
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
}
#: Violations kept per reply; a broken stream repeats the same one on every chunk.
MAX_VIOLATIONS = 20


def check(api: Api, items: Iterable[dict[str, Any]], *, chunks: bool) -> ShapeCheck:
    """Check a reply body (``chunks=False``, one item) or a stream's chunks against the SDK."""
    model = REPLY_TYPES[(api, chunks)]
    extensions: set[str] = set()
    violations: list[str] = []
    for position, item in enumerate(items):
        extensions.update(undeclared(model, item))
        where = f"chunk {position}: " if chunks else ""
        for violation in refused(model, item):
            if len(violations) < MAX_VIOLATIONS and where + violation not in violations:
                violations.append(where + violation)
    return ShapeCheck(type=model.__name__, extensions=sorted(extensions), violations=violations)


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
        if key not in fields:
            found.add(where)
            continue
        for inner, nested, nested_where in _models_in(fields[key], value, where):
            found |= undeclared(inner, nested, nested_where)
    return found


def _models_in(annotation: Any, value: Any, where: str) -> list[tuple[type[SdkModel], Any, str]]:
    """The (SDK model, value, path) triples to descend into for a field's ``value``."""
    if isinstance(value, list):
        inner = _list_item(annotation)
        if inner is None:
            return []
        return [triple for element in value for triple in _models_in(inner, element, f"{where}[]")]
    model = _best_model(_model_options(annotation), value)
    return [(model, value, where)] if model is not None else []


def _list_item(annotation: Any) -> Any:
    for option in _flatten(annotation):
        if typing.get_origin(option) is list:
            return typing.get_args(option)[0]
    return None


def _model_options(annotation: Any) -> list[type[SdkModel]]:
    return [
        option
        for option in _flatten(annotation)
        if isinstance(option, type) and issubclass(option, SdkModel)
    ]


def _best_model(options: list[type[SdkModel]], value: Any) -> type[SdkModel] | None:
    """Of a union's models, the one that declares most of ``value``'s keys."""
    if not options or not isinstance(value, dict):
        return None
    return max(options, key=lambda model: len(set(value) & set(_fields(model))))


def _flatten(annotation: Any) -> list[Any]:
    """The members of a (possibly nested, Optional or Annotated) union."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [member for arg in typing.get_args(annotation) for member in _flatten(arg)]
    return [annotation]


@functools.cache
def _fields(model: type[SdkModel]) -> dict[str, Any]:
    """The JSON keys ``model`` declares, with each one's annotation."""
    return {(info.alias or name): info.annotation for name, info in model.model_fields.items()}


def _location(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the whole reply)"
