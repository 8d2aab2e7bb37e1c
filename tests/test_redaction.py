"""Secret filtering: names that carry credentials, query strings, and known values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance import redaction


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
