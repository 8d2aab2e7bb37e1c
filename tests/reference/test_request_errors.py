"""The reference server's request, errors and usage switches, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.reference import model
from conformance.reference.planning import DOCUMENTED_FIELDS
from conformance.reference.rendering import REASONING_TEXT
from conformance.reference.server import RunningServer
from tests.reference._pool import Pool, server_pool

KEY = "request-errors-test-key"
WINDOW = 64
APIS = ["chat", "completions"]


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """Servers by switch settings, started once per module."""
    with server_pool(api_key=KEY, context_window=WINDOW) as get:
        yield get


def _request(api: str, prompt: str = "Say alpha", **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "toy", "max_tokens": 2, "temperature": 0, **params}
    if api == "chat":
        body.setdefault("messages", [{"role": "user", "content": prompt}])
    else:
        body.setdefault("prompt", prompt)
    return body


def _post(
    server: RunningServer, api: str, body: dict[str, Any], *, key: str | None = KEY
) -> httpx2.Response:
    path = "/chat/completions" if api == "chat" else "/completions"
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    return httpx2.post(
        server.base_url + path, content=json.dumps(body), headers=headers, timeout=10
    )


def _ok(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _error(response: httpx2.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _chunks(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    lines = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def _prompt_tokens(api: str, prompt: str) -> int:
    if api == "chat":
        return model.count_tokens(model.render_chat([{"role": "user", "content": prompt}]))
    return model.count_tokens(prompt)


# --------------------------------------------------------------------------- unknown fields


@pytest.mark.parametrize("api", APIS)
def test_an_unknown_field_is_refused_as_openai_refuses_it(pool: Pool, api: str) -> None:
    error = _error(_post(pool(), api, _request(api, zz_conformance_probe=1)))
    assert error["message"] == "Unrecognized request argument supplied: zz_conformance_probe"
    assert (error["param"], error["code"]) == (None, None)


@pytest.mark.parametrize("api", APIS)
def test_dropping_unknown_fields_answers_as_without_them(pool: Pool, api: str) -> None:
    server = pool(unknown_field="ignore")
    plain = _ok(_post(server, api, _request(api)))
    extra = _ok(_post(server, api, _request(api, zz_conformance_probe=1)))
    assert extra["choices"][0] == plain["choices"][0]


@pytest.mark.parametrize(
    ("api", "fields"),
    [
        (
            "chat",
            {"user": "u", "store": False, "metadata": {"a": "b"}, "parallel_tool_calls": True},
        ),
        ("completions", {"user": "u", "suffix": None, "echo": False}),
    ],
)
def test_documented_fields_the_server_does_not_use_are_accepted(
    pool: Pool, api: str, fields: dict[str, Any]
) -> None:
    assert set(fields) <= DOCUMENTED_FIELDS[api]
    _ok(_post(pool(), api, _request(api, **fields)))


@pytest.mark.parametrize(
    ("api", "fields", "switches"),
    [
        ("chat", {"context_length_exceeded_behavior": "truncate"}, {"overflow_param": "ignore"}),
        ("chat", {"best_of": 2}, {"best_of": "ignore"}),
        ("completions", {"functions": [{"name": "f"}]}, {"functions": "ignore"}),
        ("completions", {"reasoning_effort": "low"}, {"reasoning_effort": "ignore"}),
    ],
)
def test_extensions_the_server_implements_are_not_unknown(
    pool: Pool, api: str, fields: dict[str, Any], switches: dict[str, str]
) -> None:
    assert not set(fields) <= DOCUMENTED_FIELDS[api]
    _ok(_post(pool(**switches), api, _request(api, **fields)))


_NAMES = st.from_regex(r"\Azz_[a-z_]{1,12}\Z")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=st.sets(_NAMES, min_size=1, max_size=3), api=st.sampled_from(APIS))
def test_every_unknown_field_is_named_in_the_refusal(pool: Pool, names: set[str], api: str) -> None:
    error = _error(_post(pool(), api, _request(api, **dict.fromkeys(names, 1))))
    assert error["message"].endswith(", ".join(sorted(names)))


# --------------------------------------------------------------------------- reasoning_effort


@pytest.mark.parametrize("api", APIS)
def test_reasoning_effort_is_refused_by_default(pool: Pool, api: str) -> None:
    error = _error(_post(pool(), api, _request(api, reasoning_effort="low")))
    assert "reasoning_effort" in error["message"]


@pytest.mark.parametrize("api", APIS)
def test_ignored_reasoning_effort_adds_nothing(pool: Pool, api: str) -> None:
    server = pool(reasoning_effort="ignore")
    body = _ok(_post(server, api, _request(api, reasoning_effort="low")))
    assert "reasoning_content" not in json.dumps(body)
    assert body["choices"] == _ok(_post(server, api, _request(api)))["choices"]


def test_reasoning_shows_in_message_choice_and_first_delta(pool: Pool) -> None:
    server = pool(reasoning_effort="reason")
    chat = _ok(_post(server, "chat", _request("chat", reasoning_effort="low")))
    assert chat["choices"][0]["message"]["reasoning_content"] == REASONING_TEXT
    text = _ok(_post(server, "completions", _request("completions", reasoning_effort="low")))
    assert text["choices"][0]["reasoning_content"] == REASONING_TEXT
    for api, holder in (("chat", "delta"), ("completions", None)):
        chunks = _chunks(_post(server, api, _request(api, reasoning_effort="low", stream=True)))
        carrying = [
            i
            for i, chunk in enumerate(chunks)
            if "reasoning_content"
            in (chunk["choices"][0][holder] if holder else chunk["choices"][0])
        ]
        assert carrying == [0]
    # Without the parameter there is no reasoning, whatever the switch.
    assert "reasoning_content" not in json.dumps(_ok(_post(server, "chat", _request("chat"))))


def test_reasoning_effort_must_be_a_string(pool: Pool) -> None:
    error = _error(
        _post(pool(reasoning_effort="reason"), "chat", _request("chat", reasoning_effort=[1]))
    )
    assert error["code"] == "invalid_type"


# --------------------------------------------------------------------------- error envelope


def _refused_body(server: RunningServer) -> httpx2.Response:
    response = _post(server, "chat", _request("chat", n=0))
    assert response.status_code == 400
    return response


def test_the_default_envelope_is_openais(pool: Pool) -> None:
    error = _error(_refused_body(pool()))
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"]) == ("n", "integer_below_min_value")


def test_other_envelopes(pool: Pool) -> None:
    integer = _refused_body(pool(error_envelope="integer_code")).json()
    assert integer["error"]["code"] == 400
    assert integer["error"]["param"] == "n"
    flat = _refused_body(pool(error_envelope="flat")).json()
    assert (flat["object"], flat["code"], flat["param"]) == ("error", 400, "n")
    assert isinstance(flat["message"], str)
    assert "error" not in flat
    detail = _refused_body(pool(error_envelope="detail")).json()
    assert set(detail) == {"detail"}
    plain = _refused_body(pool(error_envelope="nonstandard"))
    assert plain.headers["content-type"].startswith("text/plain")
    assert plain.text.startswith("Bad Request: ")


def test_the_key_check_answers_in_the_same_envelope(pool: Pool) -> None:
    response = _post(pool(error_envelope="detail"), "chat", _request("chat"), key="wrong")
    assert response.status_code == 401
    assert set(response.json()) == {"detail"}


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("fields", "effective"),
    [({"temperature": -1}, {"temperature": 0}), ({"presence_penalty": 5}, {"presence_penalty": 2})],
)
def test_accepting_out_of_range_values_clamps_them(
    pool: Pool, api: str, fields: dict[str, Any], effective: dict[str, Any]
) -> None:
    _error(_post(pool(), api, _request(api, **fields)))
    server = pool(error_envelope="accept_out_of_range")
    clamped = _ok(_post(server, api, _request(api, **fields)))
    assert clamped["choices"] == _ok(_post(server, api, _request(api, **effective)))["choices"]
    # Only those two ranges are relaxed.
    assert _error(_post(server, api, _request(api, n=0)))["param"] == "n"


# --------------------------------------------------------------------------- keys and models


@pytest.mark.parametrize(
    ("mode", "status"), [("unauthorized", 401), ("forbidden", 403), ("bad_request", 400)]
)
def test_a_wrong_key_gets_the_switched_status(pool: Pool, mode: str, status: int) -> None:
    server = pool(bad_key=mode)
    assert _error(_post(server, "chat", _request("chat"), key="wrong"), status)["code"] == (
        "invalid_api_key"
    )
    _error(_post(server, "chat", _request("chat"), key=None), 401)
    _ok(_post(server, "chat", _request("chat")))


def test_accepting_any_key_checks_none(pool: Pool) -> None:
    server = pool(bad_key="accept")
    _ok(_post(server, "completions", _request("completions"), key="wrong"))
    _ok(_post(server, "completions", _request("completions"), key=None))


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("mode", "status"), [("not_found", 404), ("bad_request", 400), ("forbidden", 403)]
)
def test_an_unknown_model_gets_the_switched_status(
    pool: Pool, api: str, mode: str, status: int
) -> None:
    server = pool(unknown_model=mode)
    response = _post(server, api, _request(api, model="no-such-model"))
    error = _error(response, status)
    if mode == "not_found":
        assert error["code"] == "model_not_found"
    assert _ok(_post(server, api, _request(api)))["model"] == "toy"


def test_an_accepted_unknown_model_is_answered_by_the_toy_model(pool: Pool) -> None:
    server = pool(unknown_model="accept")
    named = _ok(_post(server, "chat", _request("chat", model="no-such-model")))
    assert named["model"] == "no-such-model"
    assert named["choices"] == _ok(_post(server, "chat", _request("chat")))["choices"]


def test_retrieving_a_model_follows_the_same_switch(pool: Pool) -> None:
    headers = {"authorization": f"Bearer {KEY}"}
    assert httpx2.get(pool().base_url + "/models/toy", headers=headers).status_code == 200
    assert httpx2.get(pool().base_url + "/models/other", headers=headers).status_code == 404
    accepting = pool(unknown_model="accept")
    assert httpx2.get(accepting.base_url + "/models/other", headers=headers).status_code == 200


# --------------------------------------------------------------------------- invalid values


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("mode", "status"), [("bad_request", 400), ("unprocessable", 422), ("server_error", 500)]
)
def test_an_invalid_max_tokens_gets_the_switched_status(
    pool: Pool, api: str, mode: str, status: int
) -> None:
    server = pool(invalid_value=mode)
    error = _error(_post(server, api, _request(api, max_tokens=-1)), status)
    assert error["type"] == ("server_error" if status == 500 else "invalid_request_error")
    # Other refusals keep their 400.
    assert _error(_post(server, api, _request(api, temperature=5)))["param"] == "temperature"


def test_max_completion_tokens_counts_as_max_tokens(pool: Pool) -> None:
    response = _post(
        pool(invalid_value="unprocessable"), "chat", _request("chat", max_completion_tokens=0)
    )
    assert _error(response, 422)["param"] == "max_completion_tokens"


@pytest.mark.parametrize("api", APIS)
def test_an_accepted_invalid_max_tokens_is_as_if_not_sent(pool: Pool, api: str) -> None:
    server = pool(invalid_value="accept")
    accepted = _ok(_post(server, api, _request(api, max_tokens=-1)))
    unlimited = _request(api)
    del unlimited["max_tokens"]
    assert accepted["choices"] == _ok(_post(server, api, unlimited))["choices"]


# --------------------------------------------------------------------------- prompt overflow


def _long_prompt(api: str, past: int = 5) -> str:
    words = 1
    while _prompt_tokens(api, " alpha" * words) <= WINDOW + past - 1:
        words += 1
    return " alpha" * words


@pytest.mark.parametrize("api", APIS)
def test_an_overlong_prompt_is_refused_with_context_length_exceeded(pool: Pool, api: str) -> None:
    error = _error(_post(pool(), api, _request(api, _long_prompt(api), max_tokens=1)))
    assert error["code"] == "context_length_exceeded"


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(("mode", "status"), [("reject_other", 400), ("server_error", 500)])
def test_other_refusals_of_an_overlong_prompt(pool: Pool, api: str, mode: str, status: int) -> None:
    error = _error(_post(pool(prompt_overflow=mode), api, _request(api, _long_prompt(api))), status)
    assert error["code"] is None


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("max_tokens", [1, 3])
def test_truncation_keeps_the_last_tokens_and_room_for_the_completion(
    pool: Pool, api: str, max_tokens: int
) -> None:
    body = _request(api, _long_prompt(api), max_tokens=max_tokens)
    reply = _ok(_post(pool(prompt_overflow="truncate"), api, body))
    assert reply["usage"]["prompt_tokens"] == WINDOW - max_tokens
    assert reply["usage"]["completion_tokens"] == max_tokens


@pytest.mark.parametrize("api", APIS)
def test_exceeding_processes_the_whole_prompt(pool: Pool, api: str) -> None:
    prompt = _long_prompt(api, past=20)
    reply = _ok(_post(pool(prompt_overflow="exceed"), api, _request(api, prompt, max_tokens=2)))
    assert reply["usage"]["prompt_tokens"] == _prompt_tokens(api, prompt) > WINDOW
    assert reply["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize("mode", ["reject", "reject_other", "truncate", "exceed", "server_error"])
def test_a_prompt_that_fits_is_never_touched(pool: Pool, mode: str) -> None:
    server = pool(prompt_overflow=mode)
    reply = _ok(_post(server, "completions", _request("completions", max_tokens=3)))
    assert reply["usage"]["prompt_tokens"] == _prompt_tokens("completions", "Say alpha")
    # prompt + max_tokens past the window is max_tokens.overflow's, refused by default.
    overflowing = _request("completions", max_tokens=WINDOW)
    assert _error(_post(server, "completions", overflowing))["code"] == "context_length_exceeded"


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize("api", APIS)
def test_usage_carries_details_by_default(pool: Pool, api: str) -> None:
    usage = _ok(_post(pool(), api, _request(api)))["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


@pytest.mark.parametrize("api", APIS)
def test_basic_and_inconsistent_usage(pool: Pool, api: str) -> None:
    basic = _ok(_post(pool(usage_details="basic"), api, _request(api)))["usage"]
    assert set(basic) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    wrong = _ok(_post(pool(usage_details="inconsistent"), api, _request(api)))["usage"]
    assert wrong["total_tokens"] == wrong["prompt_tokens"] + wrong["completion_tokens"] + 1


def test_streamed_usage_has_the_same_shape(pool: Pool) -> None:
    server = pool(usage_details="basic")
    streamed = _request("chat", stream=True, stream_options={"include_usage": True})
    usage = _chunks(_post(server, "chat", streamed))[-1]["usage"]
    assert usage == _ok(_post(server, "chat", _request("chat")))["usage"]
