"""Secret filtering: names that carry credentials, query strings, known values, logs."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable
from urllib.parse import quote, quote_plus, unquote_plus

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
    _, before_response = scrubbers([secret])
    text = echoed.format(secret, json.dumps(secret)[1:-1])
    response = {
        "status": {"code": 500, "message": "x"},
        # A careless gateway may also name a header after the key (h11 lower-cases it).
        "headers": {name: [text] for name in names} | {secret.lower(): ["1"]},
        "body": {"string": json.dumps({"error": {"message": text}}).encode()},
    }
    recorded = before_response(response)
    assert _all_spellings_gone(json.dumps(recorded["headers"]).lower(), secret.lower())
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


# --------------------------------------------------------------------------- every spelling
# A server may send the key back in any spelling a decoder accepts; what the suite decodes
# (JSON bodies, URLs, base64 headers and bodies) must not give the key back.

#: Keys as providers make them, plus a space and a few characters outside ASCII.
spelled_secrets = st.text(
    st.sampled_from(token_chars + "./+=~:@! é€😀"), min_size=8, max_size=32
).filter(lambda s: s.strip() == s and "<redacted>" not in s)
surroundings = st.text(max_size=12)


@st.composite
def json_spelled(draw: st.DrawFn, secret: str) -> str:
    """``secret`` as inside a JSON string, each character plain, \\u-escaped (either hex
    case) or short-escaped, whichever a server's encoder happens to choose."""
    out = []
    for char in secret:
        code = ord(char)
        units = (
            [code]
            if code <= 0xFFFF
            else [0xD800 + (code - 0x10000) // 0x400, 0xDC00 + (code - 0x10000) % 0x400]
        )
        options = [
            "".join(f"\\u{unit:04x}" for unit in units),
            "".join(f"\\u{unit:04X}" for unit in units),
        ]
        if char not in '"\\' and code >= 0x20:
            options.append(char)
        if char == "/":
            options.append("\\/")
        out.append(draw(st.sampled_from(options)))
    return "".join(out)


@st.composite
def url_spelled(draw: st.DrawFn, secret: str) -> str:
    """``secret`` as in a query string: each character plain where that is allowed,
    percent-encoded (either hex case), or ``+`` for a space."""
    out = []
    for char in secret:
        encoded = "".join(f"%{byte:02x}" for byte in char.encode())
        options = [encoded, encoded.upper()]
        if char.isascii() and (char.isalnum() or char in "-._~"):
            options.append(char)
        if char == " ":
            options.append("+")
        out.append(draw(st.sampled_from(options)))
    return "".join(out)


@given(data=st.data(), secret=spelled_secrets, before=surroundings, after=surroundings)
def test_a_json_escaped_key_is_replaced_in_any_mix_of_escapes(
    data: st.DataObject, secret: str, before: str, after: str
) -> None:
    spelled = data.draw(json_spelled(secret))
    body = '{"error": "' + json.dumps(before)[1:-1] + spelled + json.dumps(after)[1:-1] + '"}'
    scrubbed = redaction.text(body, [secret])
    assert redaction.REDACTED in scrubbed
    assert secret not in json.loads(scrubbed)["error"]


@given(data=st.data(), secret=spelled_secrets, before=surroundings, after=surroundings)
def test_a_url_encoded_key_is_replaced_in_any_mix_of_encodings(
    data: st.DataObject, secret: str, before: str, after: str
) -> None:
    spelled = data.draw(url_spelled(secret))
    query = f"q={quote_plus(before)}{spelled}{quote_plus(after)}"
    scrubbed = redaction.text(query, [secret])
    assert redaction.REDACTED in scrubbed
    assert secret not in unquote_plus(scrubbed)


def _decodes_to(text: str, secret: bytes) -> bool:
    """Whether any run of base64 characters in ``text``, read from any of its first four
    characters in either alphabet, decodes to bytes that contain ``secret``."""
    for run in re.findall(r"[A-Za-z0-9+/_-]+", text):
        standard = run.replace("-", "+").replace("_", "/")
        for start in range(4):
            part = standard[start:]
            part = part[: len(part) - len(part) % 4]
            if secret in base64.b64decode(part):
                return True
    return False


@given(
    secret=spelled_secrets,
    before=st.binary(max_size=5),
    scheme=st.sampled_from([b"", b"Bearer ", b"Basic user:"]),
    after=st.binary(max_size=5),
    alphabet=st.sampled_from([base64.b64encode, base64.urlsafe_b64encode]),
    padded=st.booleans(),
)
def test_a_base64_key_is_replaced_at_any_alignment(
    secret: str,
    before: bytes,
    scheme: bytes,
    after: bytes,
    alphabet: Callable[[bytes], bytes],
    padded: bool,
) -> None:
    encoded = alphabet(before + scheme + secret.encode() + after).decode()
    if not padded:
        encoded = encoded.rstrip("=")
    scrubbed = redaction.text(f"x-echo: {encoded}", [secret])
    assert redaction.REDACTED in scrubbed
    assert not _decodes_to(scrubbed, secret.encode())


@given(secret=spelled_secrets, flips=st.lists(st.booleans(), min_size=32, max_size=32))
def test_a_header_named_after_the_key_keeps_no_trace_of_it_in_any_case(
    secret: str, flips: list[bool]
) -> None:
    assume(not redaction.is_secret_name(secret))
    name = "".join(c.upper() if flip else c.lower() for c, flip in zip(secret, flips, strict=False))
    kept = redaction.headers({name: "1", "x-other": "2"}, [secret])
    assert kept == {redaction.REDACTED: "1", "x-other": "2"}


def test_a_key_spelled_otherwise_is_scrubbed_from_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-Log-Canary-5d2E8f"
    redaction.scrub_logs([secret])
    try:
        with caplog.at_level(logging.DEBUG):
            # httpcore logs response headers as h11 gives them: names lower-cased.
            logging.getLogger("httpcore.http11").debug("headers %r", [(secret.lower(), b"1")])
            logging.getLogger("x").debug("echo %s", "".join(f"\\u{ord(c):04X}" for c in secret))
            logging.getLogger("x").debug("basic %s", base64.b64encode(f"Bearer {secret}".encode()))
    finally:
        redaction.stop_scrubbing_logs()
    assert len(caplog.records) == 3
    assert secret.lower() not in caplog.text.lower()
    assert "\\u0073" not in caplog.text.lower()
    assert not _decodes_to(caplog.text, secret.encode())


@given(
    secret=spelled_secrets,
    before=surroundings,
    cut=st.integers(min_value=redaction.MIN_SECRET_LENGTH, max_value=40),
    marker=st.sampled_from(["", "...", "… (120 more characters)", "... (3 more characters)"]),
    spelling=st.sampled_from(["plain", "json"]),
)
def test_a_key_cut_short_by_an_excerpt_leaves_no_part_of_it(
    secret: str, before: str, cut: int, marker: str, spelling: str
) -> None:
    # Excerpts (a summary's 200 characters of a body, the evidence's 4000) may end inside
    # a key: the part before the cut is redacted where the text ends or says it was cut.
    assume(cut < len(secret))
    head = secret[:cut] if spelling == "plain" else json.dumps(secret, ensure_ascii=True)[1:-1]
    if spelling == "json":
        head = head[: len(json.dumps(secret[:cut], ensure_ascii=True)) - 2]
    # A marker that completes the key (a key ending in "." before "...") is no cut at all.
    whole = {secret.lower(), json.dumps(secret, ensure_ascii=True)[1:-1].lower()}
    assume(not any(spelled in (head + marker).lower() for spelled in whole))
    scrubbed = redaction.text(before + head + marker, [secret])
    assert redaction.REDACTED in scrubbed
    assert secret[: redaction.MIN_SECRET_LENGTH].lower() not in scrubbed.lower()
    assert scrubbed.endswith(marker)


def test_a_part_of_a_key_inside_a_text_is_left_alone() -> None:
    # Only where a text is cut: "sk-proj-" followed by more text is a prefix, not a key.
    secret = "sk-proj-7c1e9b4f2a6d8035e1"
    assert redaction.text("keys look like sk-proj-xxxx", [secret]) == "keys look like sk-proj-xxxx"
