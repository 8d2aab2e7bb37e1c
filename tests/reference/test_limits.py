"""The reference server's stop-list limit, finish_reason labels, stop metadata, completion
limits, defaults and output cap, over real HTTP and through ``plan`` directly."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.catalog import load
from conformance.reference import model
from conformance.reference.planning import plan
from conformance.reference.server import RunningServer, ServerConfig, start, stop_all
from conformance.reference.switches import Switches
from conformance.reference.validation import Api, ApiError
from tests.conftest import SPECS

KEY = "limits-test-key"
PROMPT = "The lighthouse keeper wrote in the log that night"
APIS: list[Api] = ["chat", "completions"]

Pool = Callable[..., RunningServer]


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """Servers by switch settings (and output cap), started once per module."""
    running: dict[tuple[frozenset[tuple[str, str]], int | None], RunningServer] = {}

    def get(cap: int | None = 192, **switches: str) -> RunningServer:
        key = (frozenset(switches.items()), cap)
        if key not in running:
            config = ServerConfig(
                switches=Switches().with_settings(switches), api_key=KEY, max_output_tokens=cap
            )
            running[key] = start(config)
        return running[key]

    yield get
    stop_all(running.values())


def _body(api: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "toy", "temperature": 0, **params}
    if api == "chat":
        body.setdefault("messages", [{"role": "user", "content": PROMPT}])
    else:
        body.setdefault("prompt", PROMPT)
    return body


def _post(server: RunningServer, api: str, **params: Any) -> httpx2.Response:
    path = "/chat/completions" if api == "chat" else "/completions"
    return httpx2.post(
        server.base_url + path,
        content=json.dumps(_body(api, **params)).encode(),
        headers={"authorization": f"Bearer {KEY}"},
        timeout=10,
    )


def _choice(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    choice: dict[str, Any] = response.json()["choices"][0]
    return choice


def _text(choice: dict[str, Any]) -> str:
    return str(choice["message"]["content"] if "message" in choice else choice["text"])


def _chunks(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def _completion_tokens(response: httpx2.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["usage"]["completion_tokens"])


def _baseline_words(server: RunningServer, api: str) -> list[str]:
    return _text(_choice(_post(server, api, max_tokens=32))).split()


# --------------------------------------------------------------------------- stop lists


@pytest.mark.parametrize("api", APIS)
def test_more_than_four_stop_sequences_are_refused_by_default(pool: Pool, api: str) -> None:
    response = _post(pool(), api, max_tokens=8, stop=["#1", "#2", "#3", "#4", "#5"])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "array_above_max_length"


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(("setting", "stops_at_fifth"), [("truncate", False), ("apply", True)])
def test_a_long_stop_list_is_cut_or_applied(
    pool: Pool, api: str, setting: str, stops_at_fifth: bool
) -> None:
    server = pool(stop_list_limit=setting)
    words = _baseline_words(server, api)
    fifth = words[len(words) // 2]
    choice = _choice(_post(server, api, max_tokens=32, stop=["#1", "#2", "#3", "#4", fifth]))
    assert (choice["finish_reason"] == "stop") is stops_at_fifth
    assert (fifth not in _text(choice)) is stops_at_fifth


# --------------------------------------------------------------------------- finish_reason


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("setting", "cut", "stopped"),
    [
        ("standard", "length", "stop"),
        ("nonstandard", "length", "eos"),
        ("mislabelled", "stop", "stop"),
    ],
)
def test_finish_reason_labels(pool: Pool, api: str, setting: str, cut: str, stopped: str) -> None:
    server = pool(finish_reason=setting)
    words = _baseline_words(server, api)
    assert _choice(_post(server, api, max_tokens=4))["finish_reason"] == cut
    by_stop = _post(server, api, max_tokens=32, stop=[words[len(words) // 2]])
    assert _choice(by_stop)["finish_reason"] == stopped
    streamed = _chunks(
        _post(server, api, max_tokens=32, stop=[words[len(words) // 2]], stream=True)
    )
    assert [c["choices"][0]["finish_reason"] for c in streamed if c["choices"]][-1] == stopped


@pytest.mark.parametrize("api", APIS)
def test_stop_metadata_names_the_matched_stop(pool: Pool, api: str) -> None:
    server = pool(stop_metadata="present")
    words = _baseline_words(server, api)
    word = words[len(words) // 2]
    stops = ["#never#", word]
    assert _choice(_post(server, api, max_tokens=32, stop=stops))["stop_reason"] == word
    assert _choice(_post(server, api, max_tokens=4))["stop_reason"] is None
    finish = [c for c in _chunks(_post(server, api, max_tokens=32, stop=stops, stream=True))]
    assert finish[-1]["choices"][0]["stop_reason"] == word
    # OpenAI's default: no such field at all.
    assert "stop_reason" not in _choice(_post(pool(), api, max_tokens=32, stop=stops))


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize("api", APIS)
def test_max_tokens_ignored_falls_back_to_the_default(pool: Pool, api: str) -> None:
    tokens = _completion_tokens(_post(pool(max_tokens="ignore"), api, max_tokens=5))
    assert tokens > 5
    assert _completion_tokens(_post(pool(), api, max_tokens=5)) == 5


def test_max_tokens_refused_names_the_replacement_on_chat_only(pool: Pool) -> None:
    server = pool(max_tokens="reject")
    chat = _post(server, "chat", max_tokens=5).json()["error"]
    completions = _post(server, "completions", max_tokens=5).json()["error"]
    assert chat["code"] == completions["code"] == "unsupported_parameter"
    assert "max_completion_tokens" in chat["message"]
    assert "max_completion_tokens" not in completions["message"]
    assert _completion_tokens(_post(server, "chat", max_completion_tokens=5)) == 5


@pytest.mark.parametrize(
    ("setting", "tokens", "status"), [("honour", 5, 200), ("ignore", 192, 200), ("reject", 0, 400)]
)
def test_max_completion_tokens_alone(pool: Pool, setting: str, tokens: int, status: int) -> None:
    response = _post(pool(max_completion_tokens=setting), "chat", max_completion_tokens=5)
    assert response.status_code == status
    if status == 200:
        assert _completion_tokens(response) == tokens


@pytest.mark.parametrize(("setting", "tokens"), [("max_tokens", 5), ("max_completion_tokens", 9)])
def test_both_limits_one_wins(pool: Pool, setting: str, tokens: int) -> None:
    response = _post(pool(max_tokens_both=setting), "chat", max_tokens=5, max_completion_tokens=9)
    assert _completion_tokens(response) == tokens


def test_both_limits_are_refused_by_default(pool: Pool) -> None:
    error = _post(pool(), "chat", max_tokens=5, max_completion_tokens=9).json()["error"]
    assert error["code"] == "invalid_parameter_combination"
    assert error["param"] == "max_tokens"


def test_max_completion_tokens_is_no_completions_option(pool: Pool) -> None:
    # Not an OpenAI completions parameter: an unknown field, refused as OpenAI refuses those
    # (request.unknown_field); where unknown fields are dropped, the default of 16 applies.
    assert _post(pool(), "completions", max_completion_tokens=5).status_code == 400
    dropping = pool(unknown_field="ignore")
    assert _completion_tokens(_post(dropping, "completions", max_completion_tokens=5)) == 16


# --------------------------------------------------------------------------- defaults


@pytest.mark.parametrize(
    ("api", "switch", "small", "window"),
    [
        ("completions", "default_max_tokens", 16, 192),
        ("chat", "default_max_tokens_chat", 16, 192),
    ],
)
def test_defaults(pool: Pool, api: str, switch: str, small: int, window: int) -> None:
    assert _completion_tokens(_post(pool(**{switch: "small"}), api)) == small
    # Without a cap the default runs until the window is full.
    full = _post(pool(cap=None, **{switch: "window"}), api).json()["usage"]
    assert full["total_tokens"] == 256
    # With one, the output cap bounds it.
    assert _completion_tokens(_post(pool(**{switch: "window"}), api)) == window


def test_openai_defaults_are_16_on_completions_and_none_on_chat(pool: Pool) -> None:
    assert _completion_tokens(_post(pool(), "completions")) == 16
    assert _completion_tokens(_post(pool(), "chat")) == 192


# --------------------------------------------------------------------------- output cap


@pytest.mark.parametrize("api", APIS)
def test_above_the_cap_is_refused_by_default(pool: Pool, api: str) -> None:
    error = _post(pool(), api, max_tokens=200).json()["error"]
    assert error["param"] == "max_tokens"
    assert error["message"].startswith("max_tokens is too large: 200.")
    assert "at most 192 completion tokens" in error["message"]


@pytest.mark.parametrize("api", APIS)
def test_above_the_cap_clamped_or_exceeded(pool: Pool, api: str) -> None:
    assert _completion_tokens(_post(pool(output_cap="clamp"), api, max_tokens=200)) == 192
    assert _completion_tokens(_post(pool(output_cap="exceed"), api, max_tokens=200)) == 200
    assert _completion_tokens(_post(pool(cap=None), api, max_tokens=200)) == 200


def test_the_cap_names_the_parameter_that_asked(pool: Pool) -> None:
    error = _post(pool(), "chat", max_completion_tokens=200).json()["error"]
    assert error["param"] == "max_completion_tokens"


@pytest.mark.parametrize("api", APIS)
def test_the_window_comes_before_the_cap(pool: Pool, api: str) -> None:
    # Past the window: the overflow rules answer, whatever the cap says.
    error = _post(pool(), api, max_tokens=400).json()["error"]
    assert error["code"] == "context_length_exceeded"
    clamped = _post(pool(overflow="clamp"), api, max_tokens=400).json()["usage"]
    assert clamped["total_tokens"] == 256, "clamped to the window, not to the cap"


def test_the_reference_targets_document_the_servers_cap() -> None:
    catalog = load(SPECS)
    for name in ("reference-openai", "reference-fireworks"):
        target = catalog.targets[name]
        for api in target.apis:
            assert target.output_cap(api) == ServerConfig().max_output_tokens
            assert target.output_cap(api) < target.window(api)


PROMPT_TOKENS = {
    "chat": model.count_tokens(model.render_chat([{"role": "user", "content": PROMPT}])),
    "completions": model.count_tokens(PROMPT),
}


@given(
    api=st.sampled_from(APIS),
    requested=st.integers(min_value=1, max_value=300),
    cap=st.none() | st.integers(min_value=1, max_value=255),
    mode=st.sampled_from(["reject", "clamp", "exceed"]),
)
def test_a_fitting_request_gets_what_it_asks_or_the_cap(
    api: Api, requested: int, cap: int | None, mode: str
) -> None:
    """Property: within the window a request gets what it asks, except above the cap, where
    the switch refuses, clamps to the cap, or lets it through."""
    switches = Switches().with_settings({"output_cap": mode, "overflow": "clamp"})
    config = ServerConfig(switches=switches, max_output_tokens=cap)
    room = 256 - PROMPT_TOKENS[api]
    body = _body(api, max_tokens=requested)
    if mode == "reject" and cap is not None and cap < requested <= room:
        with pytest.raises(ApiError, match="max_tokens is too large"):
            plan(body, api, config)
        return
    planned = plan(body, api, config).sampling.max_tokens
    if requested > room:
        assert planned == room  # the overflow switch, not the cap
    elif cap is not None and requested > cap:
        assert planned == (cap if mode == "clamp" else requested)
    else:
        assert planned == requested
