"""A probe context whose endpoint answers from a function, for probe logic the reference
server never shows (a target that is not deterministic, a refusal of the control, ...)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx2

from conformance.probes.client import Endpoint
from conformance.probes.registry import ProbeContext
from conformance.spec import Api, load_specs
from tests.conftest import SPECS

CATALOG = load_specs(SPECS)
TARGET = CATALOG.targets["reference-openai"]

#: Answers one request body with a status and a JSON body.
Answer = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def completion(
    content: str | None = "",
    *,
    finish_reason: str = "length",
    tool_calls: list[dict[str, Any]] | None = None,
) -> tuple[int, dict[str, Any]]:
    """A 200 chat completion with one choice."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    choice = {"index": 0, "message": message, "finish_reason": finish_reason}
    return 200, {"id": "c", "object": "chat.completion", "choices": [choice]}


def refusal(status: int = 400, code: str = "invalid_value") -> tuple[int, dict[str, Any]]:
    """An error reply in OpenAI's envelope."""
    return status, {"error": {"message": "no", "type": "x", "param": None, "code": code}}


def tool_call(name: str, arguments: Any = "{}") -> dict[str, Any]:
    """One entry of message.tool_calls."""
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


def context(
    behavior_id: str, answer: Answer, *, params: Mapping[str, Any] | None = None
) -> tuple[ProbeContext, list[dict[str, Any]]]:
    """A non-streaming chat context for ``behavior_id`` (its params, or ``params``) whose
    requests ``answer`` replies to; the request bodies sent are collected in the list."""
    sent: list[dict[str, Any]] = []

    def reply(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        sent.append(body)
        status, payload = answer(body)
        return httpx2.Response(status, json=payload)

    endpoint = Endpoint(
        TARGET,
        "http://127.0.0.1:9/v1",
        "k",
        transport=httpx2.MockTransport(reply),
        sleep=lambda _: None,
    )
    behavior = CATALOG.behaviors[behavior_id]
    chosen = dict(behavior.params if params is None else params)
    return ProbeContext(endpoint, Api.CHAT, False, chosen), sent
