"""The request, errors and usage probes: their pure classifiers, and the parts that depend
on the target (its window, where its key travels) run against the reference server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.observation import Exchange, RequestRecord
from conformance.plan import Case
from conformance.probes import sse
from conformance.probes.client import Reply
from conformance.probes.errors import envelope_shape
from conformance.probes.request import reasoning_found
from conformance.probes.usage import usage_shape
from conformance.recording import Mode
from conformance.reference import dialect, server
from conformance.results import CaseResult
from conformance.spec import Api
from conformance.verdict import Verdict
from tests.conftest import SPECS

CATALOG = load(SPECS)
REFERENCE = CATALOG.targets["reference-openai"]
KEY = "request-errors-probe-key"
FIELDS = ["reasoning_content", "reasoning"]

# --------------------------------------------------------------------------- error envelopes


@pytest.mark.parametrize(
    ("body", "shape"),
    [
        ({"error": {"message": "m", "type": "t", "param": None, "code": None}}, "openai"),
        ({"error": {"message": "m", "type": "t", "param": "n", "code": "c"}}, "openai"),
        ({"error": {"message": "m", "type": "t"}}, "openai"),  # the SDK reads these as null
        ({"error": {"message": "m", "type": "None", "param": "None", "code": "400"}}, "openai"),
        (
            {"error": {"message": "m", "type": "BadRequestError", "param": None, "code": 400}},
            "integer_code",
        ),
        ({"object": "error", "message": "m", "type": "t", "param": None, "code": 400}, "flat"),
        ({"detail": "Server is pinned to 'tiny'"}, "detail"),
        ({"detail": [{"loc": ["body", "n"], "msg": "bad"}]}, "detail"),
        (None, "nonstandard"),
        ({"error": "just a string"}, "nonstandard"),
        ({"error": {"code": 400, "message": "m"}}, "nonstandard"),  # no type
        ({"error": {"message": "m", "type": "t", "code": True}}, "nonstandard"),
        ({"error": {"message": "m", "type": "t", "param": 3}}, "nonstandard"),
        ({"message": "m"}, "nonstandard"),
        ({}, "nonstandard"),
    ],
)
def test_envelope_shapes(body: dict[str, Any] | None, shape: str) -> None:
    assert envelope_shape(body)[0] == shape


text_or_null = st.none() | st.text(max_size=10)


@given(
    message=st.text(max_size=20),
    kind=st.text(max_size=10),
    param=text_or_null,
    code=text_or_null | st.integers(),
    extra=st.dictionaries(st.sampled_from(["n_ctx", "metadata", "request_id"]), st.integers()),
)
def test_an_error_object_is_openai_or_integer_code_by_its_code(
    message: str, kind: str, param: str | None, code: str | int | None, extra: dict[str, int]
) -> None:
    body = {"error": {**extra, "message": message, "type": kind, "param": param, "code": code}}
    expected = "integer_code" if isinstance(code, int) else "openai"
    assert envelope_shape(body)[0] == expected


# --------------------------------------------------------------------------- usage


counts = st.integers(min_value=0, max_value=10**6)


@given(prompt=counts, completion=counts, total=counts, details=st.booleans())
def test_usage_adds_up_or_is_inconsistent(
    prompt: int, completion: int, total: int, details: bool
) -> None:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
    }
    if details:
        usage["prompt_tokens_details"] = {"cached_tokens": 0}
    outcome = usage_shape(usage)[0]
    if total != prompt + completion:
        assert outcome == "inconsistent"
    else:
        assert outcome == ("detailed" if details else "basic")


@pytest.mark.parametrize(
    ("usage", "outcome"),
    [
        (None, "inconsistent"),
        ({"prompt_tokens": 3, "total_tokens": 3}, "inconsistent"),
        ({"prompt_tokens": 3, "completion_tokens": None, "total_tokens": 3}, "inconsistent"),
        ({"prompt_tokens": 3, "completion_tokens": True, "total_tokens": 4}, "inconsistent"),
        ({"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}, "basic"),
        (
            {
                "prompt_tokens": 3,
                "completion_tokens": 1,
                "total_tokens": 4,
                "prompt_tokens_details": None,
            },
            "basic",
        ),
        (
            {
                "prompt_tokens": 3,
                "completion_tokens": 1,
                "total_tokens": 4,
                "completion_tokens_details": {},
            },
            "detailed",
        ),
    ],
)
def test_usage_shapes(usage: dict[str, Any] | None, outcome: str) -> None:
    assert usage_shape(usage)[0] == outcome


# --------------------------------------------------------------------------- reasoning


def _exchange() -> Exchange:
    return Exchange(
        label="test", request=RequestRecord(method="POST", url="http://x", headers={}, body=None)
    )


def _reply(body: dict[str, Any]) -> Reply:
    return Reply(200, _exchange(), body=body)


def _stream(*chunks: dict[str, Any]) -> Reply:
    lines: list[str] = []
    for chunk in [*(json.dumps(chunk) for chunk in chunks), "[DONE]"]:
        lines += [f"data: {chunk}", ""]
    return Reply(200, _exchange(), stream=sse.parse(lines))


def test_no_reasoning_in_a_plain_reply() -> None:
    message = {"role": "assistant", "content": "hi", "reasoning": None, "reasoning_content": ""}
    usage = {"completion_tokens_details": {"reasoning_tokens": 0}}
    assert (
        reasoning_found(_reply({"choices": [{"message": message}], "usage": usage}), FIELDS) == []
    )


def test_reasoning_in_a_message_a_choice_or_the_usage() -> None:
    message = {"content": "hi", "reasoning": "because"}
    assert reasoning_found(_reply({"choices": [{"message": message}]}), FIELDS) == [
        "message.reasoning"
    ]
    choice = {"text": "hi", "reasoning_content": "so"}
    assert reasoning_found(_reply({"choices": [choice]}), FIELDS) == ["choice.reasoning_content"]
    usage = {"completion_tokens_details": {"reasoning_tokens": 12}}
    found = reasoning_found(_reply({"choices": [], "usage": usage}), FIELDS)
    assert found == ["usage.completion_tokens_details.reasoning_tokens = 12"]


def test_reasoning_in_stream_deltas() -> None:
    first = {"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "hm"}}]}
    later = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
    assert reasoning_found(_stream(first, later), FIELDS) == ["chunk 0 delta.reasoning_content"]
    assert reasoning_found(_stream(later), FIELDS) == []


# --------------------------------------------------------------------------- against the server


def _run(
    behavior_id: str,
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
    *,
    target_update: dict[str, Any] | None = None,
    settings: dict[str, str] | None = None,
    **config: Any,
) -> CaseResult:
    monkeypatch.setenv("REFERENCE_API_KEY", KEY)
    switches = dialect.switches_for(CATALOG, "openai", settings or {})
    target = REFERENCE.model_copy(update=target_update or {})
    serving = server.ServerConfig(
        switches=switches, api_key=KEY, context_window=target.window(api), **config
    )
    with server.start(serving) as running:
        runner = Runner(CATALOG, Settings(mode=Mode.LIVE, base_url=running.base_url))
        return runner.execute(Case(CATALOG.behaviors[behavior_id], target, api, False))


def test_the_fake_key_replaces_a_key_in_another_header(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server takes its key from api-key, so the real key there must be replaced too.
    headers = {"api-key": "${REFERENCE_API_KEY}"}
    result = _run(
        "errors.bad_key",
        Api.CHAT,
        monkeypatch,
        target_update={"headers": headers},
        api_key_header="api-key",
    )
    assert result.observed == "unauthorized", result.summary


def test_a_key_in_the_query_cannot_be_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    query = {"api-key": "${REFERENCE_API_KEY}"}
    result = _run(
        "errors.bad_key",
        Api.COMPLETIONS,
        monkeypatch,
        target_update={"query": query},
        api_key_query="api-key",
    )
    assert result.verdict is Verdict.SKIPPED
    assert "query" in result.summary


@pytest.mark.parametrize("window", [40, 97, 300, 1000])
@pytest.mark.parametrize("api", [Api.CHAT, Api.COMPLETIONS])
def test_the_overflowing_prompt_is_just_past_any_window(
    window: int, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(
        "errors.context_overflow",
        api,
        monkeypatch,
        target_update={"context_window": window},
        settings={"errors.context_overflow": "exceeded"},
    )
    assert result.observed == "exceeded", result.summary
    sent = result.evidence[-1]
    assert sent.response is not None
    counted = json.loads(sent.response.body or "{}")["usage"]["prompt_tokens"]
    overflow = CATALOG.behaviors["errors.context_overflow"].params["overflow"]
    # One repetition of " alpha" is one token of the toy model.
    assert window + overflow <= counted <= window + overflow + 1
