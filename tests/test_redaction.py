"""Secret filtering: names that carry credentials, query strings, known values, logs."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from vcr.request import Request

from conformance import redaction
from conformance.recording import scrubbers


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "authorization",
        "api-key",
        "X-Api-Key",
        "x-api-key",
        "OpenAI-Api-Key",
        "Cookie",
        "set-cookie",
        "x-litellm-key",
        "X-Auth-Token",
        "proxy-authorization",
        "x-goog-api-key",
        "key",
    ],
)
def test_secret_names(name: str) -> None:
    assert redaction.is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["content-type", "server", "x-request-id", "openai-version", "keep-alive", "monkey-business"],
)
def test_ordinary_names(name: str) -> None:
    assert not redaction.is_secret_name(name)


def test_query_string_keys_are_replaced() -> None:
    url = redaction.url("https://h/v1/chat?api-key=sekret&api-version=2024-01-01&key=k2")
    assert "sekret" not in url
    assert "k2" not in url
    assert "api-version=2024-01-01" in url


alphabet = st.characters(min_codepoint=33, max_codepoint=126)


@given(
    secret=st.text(alphabet, min_size=8, max_size=40),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_known_secret_never_survives_text(secret: str, before: str, after: str) -> None:
    scrubbed = redaction.text(before + secret + after + secret, [secret])
    assert secret not in scrubbed


@given(
    names=st.lists(
        st.sampled_from(["Authorization", "api-key", "x-api-key", "X-API-KEY", "Cookie"]),
        min_size=1,
    ),
    secret=st.text(alphabet, min_size=8, max_size=30),
)
def test_header_filter_drops_every_secret_header(names: list[str], secret: str) -> None:
    kept = redaction.headers(
        [(name, secret) for name in names] + [("content-type", "application/json")]
    )
    assert secret not in kept.values()
    assert kept == {"content-type": "application/json"}


# --------------------------------------------------------------------------- around the filter
# Header names and values generated near the filter's edges: credential-bearing names in
# any case and with any affix, and innocent names whose values carry the key anyway.

token_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
innocent_names = st.text(st.sampled_from(token_chars), min_size=1, max_size=20)
#: A secret as providers make them: printable, often with - _ . / + = in it.
secrets_ = st.text(st.sampled_from(token_chars + "./+=~:@!"), min_size=12, max_size=40).filter(
    lambda s: s.strip() == s
)


@st.composite
def secret_names(draw: st.DrawFn) -> str:
    """A header name that carries a credential somewhere: Authorization, or X-<...>-Key."""
    core = draw(
        st.sampled_from(
            ["authorization", "api-key", "api_key", "apikey", "key", "token", "secret", "cookie"]
        )
    )
    if core in ("authorization", "key"):
        name = core  # only these exact names: "monkey" or "keyboard" are not secrets
    else:
        prefix = draw(st.sampled_from(["", "x-", "X-", "openai-", "x-goog-", "ocp-apim-"]))
        suffix = draw(st.sampled_from(["", "-v2", "_id"])) if core != "apikey" else ""
        name = prefix + core + suffix
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if flip else c for c, flip in zip(name, flips, strict=True))


def _all_spellings_gone(text: str, secret: str) -> bool:
    """No form of ``secret`` is in ``text``: as is, URL-encoded or JSON-escaped."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
    }
    return not any(form in text for form in forms)


@given(name=secret_names(), value=st.text(max_size=30))
def test_credential_names_are_recognised_in_any_case_and_affix(name: str, value: str) -> None:
    assert redaction.is_secret_name(name)
    assert redaction.headers([(name, value)]) == {}


@given(
    names=st.lists(secret_names(), min_size=1, max_size=4),
    others=st.dictionaries(innocent_names, st.text(token_chars, max_size=10), max_size=4),
    secret=secrets_,
    wrap=st.sampled_from(["{}", "Bearer {}", "key={}; path=/", "{}{}"]),
)
def test_recorded_request_keeps_no_secret_whatever_the_header(
    names: list[str], others: dict[str, str], secret: str, wrap: str
) -> None:
    before_request, _ = scrubbers([secret])
    headers = {name: wrap.format(secret, secret) for name in names}
    # Innocent names too may carry the key: a gateway's own header, a mis-set option.
    headers |= {name: value + wrap.format(secret, secret) for name, value in others.items()}
    request = Request(
        "POST",
        f"https://gw.example/v1/chat/completions?api-key={quote(secret)}&tenant={quote(secret)}",
        json.dumps({"note": secret}).encode(),
        headers,
    )
    recorded = before_request(request)
    assert not any(redaction.is_secret_name(name) for name in recorded.headers)
    for value in recorded.headers.values():
        assert _all_spellings_gone(value, secret)
    assert _all_spellings_gone(recorded.uri, secret)
    assert _all_spellings_gone(recorded.body.decode(), secret)


@given(
    names=st.lists(innocent_names | secret_names(), max_size=5),
    secret=secrets_,
    echoed=st.sampled_from(["{}", "request made with key {}", '{} (json: "{}")']),
)
def test_recorded_response_keeps_no_secret(names: list[str], secret: str, echoed: str) -> None:
    assume(not any(secret in name for name in names))  # a header named after the key: absurd
    _, before_response = scrubbers([secret])
    text = echoed.format(secret, json.dumps(secret)[1:-1])
    response = {
        "status": {"code": 500, "message": "x"},
        "headers": {name: [text] for name in names},
        "body": {"string": json.dumps({"error": {"message": text}}).encode()},
    }
    recorded = before_response(response)
    assert _all_spellings_gone(json.dumps(recorded["headers"]), secret)
    assert _all_spellings_gone(recorded["body"]["string"].decode(), secret)


@given(
    names=st.lists(innocent_names | secret_names(), min_size=1, max_size=5),
    secret=secrets_,
)
def test_evidence_headers_keep_no_secret(names: list[str], secret: str) -> None:
    kept = redaction.headers([(name, f"Bearer {secret}") for name in names], [secret])
    assert not any(secret in value for value in kept.values())
    assert all(not redaction.is_secret_name(name) for name in kept)


@given(name=innocent_names, secret=secrets_)
def test_urls_keep_no_secret_in_any_spelling(name: str, secret: str) -> None:
    address = f"https://h/v1/chat?{name}={quote_plus(secret)}&other={quote(secret, safe='')}"
    assert _all_spellings_gone(redaction.url(address, [secret]), secret)


def _fill(item: object, secret: str) -> object:
    if isinstance(item, str):
        return item.replace("<S>", secret)
    if isinstance(item, list):
        return [_fill(inner, secret) for inner in item]
    if isinstance(item, dict):
        return {_fill(key, secret): _fill(inner, secret) for key, inner in item.items()}
    return item


@given(
    secret=secrets_,
    nested=st.recursive(
        st.sampled_from(["<S>", "a <S> b", "plain"]) | st.integers(),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["k", "<S>", "x<S>"]), inner, max_size=3)
        ),
        max_leaves=8,
    ),
)
def test_data_is_scrubbed_everywhere(secret: str, nested: object) -> None:
    scrubbed = redaction.data(_fill(nested, secret), [secret])
    assert secret not in json.dumps(scrubbed, ensure_ascii=False)


def test_log_records_are_scrubbed_whatever_the_logger(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-log-canary-5d2e8f"
    redaction.scrub_logs([secret])
    try:
        with caplog.at_level(logging.DEBUG):
            logging.getLogger("httpcore.http11").debug("headers %r", [(b"x-echo", secret)])
            try:
                raise ValueError(f"bad key {secret}")
            except ValueError:
                logging.getLogger("some.library").exception("failed")
    finally:
        redaction.stop_scrubbing_logs()
    assert caplog.records
    assert secret not in caplog.text
    logging.getLogger("after").warning("later %s", secret)  # scrubbing stops with the run
    assert secret in caplog.records[-1].getMessage()
