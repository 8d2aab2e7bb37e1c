"""No secret recorded: a canary key, wherever the target sends it, appears in nothing written.

One recording run covers four targets, each against a reference server that wants the key
in one place (a LiteLLM style master key as the bearer token, an ``api-key`` or ``x-api-key``
header, the query string) and behaves like a careless gateway: it echoes the key in a
response header, in an SSE comment and in the message of a 500 it gives the first request.
The run logs at DEBUG (httpcore then logs every response header) and prints every case's
captured output.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.catalog import load
from conformance.execute import Credentials
from conformance.probes import Endpoint
from conformance.redaction import REDACTED
from conformance.reference.app import create_app
from conformance.reference.faults import FaultSpec
from conformance.reference.server import RunningServer, ServerConfig, start, stop_all
from tests._cli import conformance, replace_in
from tests.conftest import SPECS
from tests.hard_edges._serve import serving

CANARY = "sk-canary-7c1e9b4f2a6d8035e1"  # LiteLLM master keys start with sk-
VARIABLE = "CANARY_KEY"

#: placement -> (where the server wants the key, how the target's YAML sends it)
PLACEMENTS: dict[str, tuple[dict[str, Any], str]] = {
    "litellm-master-key": ({}, "api_key_env: LITELLM_MASTER_KEY"),
    "api-key-header": ({"api_key_header": "api-key"}, f"headers: {{api-key: '${{{VARIABLE}}}'}}"),
    "x-api-key-header": (
        {"api_key_header": "x-api-key"},
        f"headers: {{x-api-key: '${{{VARIABLE}}}'}}",
    ),
    "query-string": ({"api_key_query": "api-key"}, f"query: {{api-key: '${{{VARIABLE}}}'}}"),
}


@pytest.fixture
def leaky_servers() -> Iterator[dict[str, RunningServer]]:
    """One careless gateway per placement, each wanting the canary key there."""
    running: dict[str, RunningServer] = {}
    try:
        for placement, (where, _) in PLACEMENTS.items():
            config = ServerConfig(
                api_key=CANARY,
                echo_key=True,
                faults=FaultSpec(kind="server_error_500", times=1),
                **where,
            )
            running[placement] = start(config)
        yield running
    finally:
        stop_all(running.values())


def test_the_canary_is_in_nothing_the_suite_writes_or_prints(
    leaky_servers: dict[str, RunningServer], specs_copy: Path, tmp_path: Path
) -> None:
    # One target per placement, each a copy of reference-openai aimed at its own server.
    shipped = (specs_copy / "targets" / "reference-openai.yaml").read_text()
    for placement, server in leaky_servers.items():
        _, yaml_line = PLACEMENTS[placement]
        text = (
            shipped.replace("name: reference-openai", f"name: {placement}")
            .replace("base_url: http://127.0.0.1:8000/v1", f"base_url: {server.base_url}")
            .replace("api_key_env: REFERENCE_API_KEY", yaml_line)
            .replace("reference:\n  dialect: openai\n", "")  # served here, not by the suite
        )
        (specs_copy / "targets" / f"{placement}.yaml").write_text(text)
    workdir = tmp_path / "run"
    workdir.mkdir()
    completed = conformance(
        "run",
        "--mode",
        "record",
        "--specs",
        str(specs_copy),
        *(word for placement in PLACEMENTS for word in ("--target", placement)),
        "--behavior",
        "stop.inclusion",
        "--",
        "-rA",
        "--tb=short",  # conformance run prints no pytest sections unless asked
        "--log-level=DEBUG",
        cwd=workdir,
        env={"LITELLM_MASTER_KEY": CANARY, VARIABLE: CANARY},
    )
    output = completed.stdout + completed.stderr
    results = json.loads((workdir / "reports" / "results.json").read_text())
    for placement, server in leaky_servers.items():
        cases = [case for case in results["cases"] if case["target"] == placement]
        verdicts = sorted(case["verdict"] for case in cases)
        # The key was accepted where this placement puts it (a wrong place is a 401 error) ...
        assert verdicts == ["error", "pass", "pass", "pass"], (placement, output)
        # ... and the server did send it back, so the scrubbing had something to do.
        assert server.faults.faulted == 1
        (error,) = [case for case in cases if case["verdict"] == "error"]
        assert f"request made with key {REDACTED}" in error["summary"], placement

    written = sorted(p for p in workdir.rglob("*") if p.is_file())
    cassettes = [p.relative_to(workdir) for p in written if p.suffix == ".yaml"]
    assert {p.parts[1] for p in cassettes} == set(PLACEMENTS)
    assert {"results.json", "junit.xml", "index.html"} <= {p.name for p in written}
    assert any(p.suffix == ".md" for p in written), "no Markdown report to check"
    for path in written:
        assert CANARY not in path.read_text(errors="replace"), path
    assert CANARY not in output
    assert "x-served-for" in output  # the DEBUG log of response headers was printed


# --------------------------------------------------------------------------- hostile spellings
# A hostile gateway sends the key back in every spelling the suite decodes, and the run is
# asked for every local variable of every frame of a failing case (pytest -l -vv --full-trace).

HOSTILE_KEY = "sk-Hostile-9F3a7C2e8B1d6045"  # mixed case: a lower-cased copy must go too


#: Dots before the key in the gateway's error, so that the 200 characters of the body an
#: error's summary quotes end inside the key, 12 characters (42 escaped) into it.
PADDING = 200 - 42 - len('{"error": {"message": "upstream refused key ')


def _json_escaped(key: str) -> str:
    """Every other character \\u-escaped, in upper-case hex, as some encoders write."""
    return "".join(f"\\u{ord(c):04X}" if i % 2 else c for i, c in enumerate(key))


class _HostileGateway:
    """Passes requests on to the reference app, and echoes the presented key: as a header
    name, URL-encoded, base64 with and without ``Bearer``, and JSON-escaped in the error it
    gives the first completion request."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key
        self.faulted = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = self.key.encode()
        echoes = [
            (raw, b"1"),
            (b"x-echo-url", "".join(f"%{b:02x}" for b in raw).encode()),
            (b"x-echo-bearer", base64.b64encode(b"Bearer " + raw)),
            (b"x-echo-b64", base64.urlsafe_b64encode(raw).rstrip(b"=")),
        ]

        async def echoing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *echoes]}
            await send(message)

        if scope["method"] == "POST" and not self.faulted:
            self.faulted += 1
            opening = '{"error": {"message": "' + "." * PADDING + "upstream refused key "
            body = (
                opening + _json_escaped(self.key) + '", "type": "server_error", "code": null}}'
            ).encode()
            await echoing(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await echoing({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, echoing)


@pytest.fixture
def hostile_gateway() -> Iterator[tuple[str, _HostileGateway]]:
    """A reference server that wants HOSTILE_KEY, behind a gateway that echoes it."""
    gateway = _HostileGateway(create_app(ServerConfig(api_key=HOSTILE_KEY)), HOSTILE_KEY)
    with serving(gateway) as base_url:
        yield base_url, gateway


def _reveals(text: str, key: str) -> str | None:
    """The spelling in which ``text`` still holds ``key`` (any case), or None."""
    lowered = key.lower()
    if lowered in text.lower():
        return "as written"
    unescaped = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text)
    if lowered in unescaped.lower():
        return "\\u-escaped"
    if lowered in unquote_plus(text).lower():
        return "URL-encoded"
    for run in re.findall(r"[A-Za-z0-9+/_-]{8,}", text):
        standard = run.replace("-", "+").replace("_", "/")
        for skipped in range(4):
            part = standard[skipped:]
            if key.encode() in base64.b64decode(part[: len(part) - len(part) % 4]):
                return "base64"
    return None


def test_a_key_echoed_in_any_spelling_is_in_nothing_written_or_printed_even_with_locals(
    hostile_gateway: tuple[str, _HostileGateway], specs_copy: Path, tmp_path: Path
) -> None:
    base_url, gateway = hostile_gateway
    replace_in(
        specs_copy / "targets" / "reference-openai.yaml", "reference:\n  dialect: openai\n", ""
    )
    workdir = tmp_path / "run"
    workdir.mkdir()
    completed = conformance(
        "run",
        "--mode",
        "record",
        "--specs",
        str(specs_copy),
        "--target",
        "reference-openai",
        "--behavior",
        "stop.inclusion",
        "--base-url",
        base_url,
        "--",
        "-l",
        "-vv",
        "--full-trace",
        "-rA",
        "--log-level=DEBUG",
        cwd=workdir,
        env={"REFERENCE_API_KEY": HOSTILE_KEY},
    )
    output = completed.stdout + completed.stderr
    results = json.loads((workdir / "reports" / "results.json").read_text())
    verdicts = sorted(case["verdict"] for case in results["cases"])
    assert verdicts == ["error", "pass", "pass", "pass"], output
    assert gateway.faulted == 1
    # A case error prints one line, no frames (so no locals either, whatever -l asks); the
    # reprs themselves are tested below, for failures that do print frames.
    assert "Traceback" not in output, output
    assert "session    = " not in output, output
    (error,) = [case for case in results["cases"] if case["verdict"] == "error"]
    # The summary quotes the body up to a cut inside the key: what it holds of it goes too.
    assert f"upstream refused key {REDACTED}... (" in error["summary"], error["summary"]

    written = sorted(p for p in workdir.rglob("*") if p.is_file())
    assert {"results.json", "junit.xml", "index.html", "summary.md"} <= {p.name for p in written}
    cassette = next(p for p in written if p.suffix == ".yaml").read_text()
    # The gateway's echoes were recorded, scrubbed: the header named after the key as well.
    assert f"{REDACTED}:" in cassette
    assert "x-echo-url:" in cassette
    for path in written:
        assert _reveals(path.read_text(errors="replace"), HOSTILE_KEY) is None, path
    assert _reveals(output, HOSTILE_KEY) is None


def test_no_object_that_holds_a_key_shows_it_in_its_repr() -> None:
    target = load(SPECS).targets["reference-openai"]
    credentials = Credentials(HOSTILE_KEY, {"api-key": HOSTILE_KEY}, {"key": HOSTILE_KEY})
    endpoint = Endpoint(
        target,
        "http://127.0.0.1:9/v1",
        HOSTILE_KEY,
        headers=credentials.headers,
        query=credentials.query,
    )
    try:
        for holder in (credentials, endpoint, ServerConfig(api_key=HOSTILE_KEY)):
            assert HOSTILE_KEY not in repr(holder), type(holder).__name__
            assert HOSTILE_KEY not in str(holder), type(holder).__name__
    finally:
        endpoint.close()
