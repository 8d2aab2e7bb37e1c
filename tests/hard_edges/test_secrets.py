"""No secret recorded: a canary key, wherever the target sends it, appears in nothing written.

One recording run covers four targets, each against a reference server that wants the key
in one place (a LiteLLM style master key as the bearer token, an ``api-key`` or ``x-api-key``
header, the query string) and behaves like a careless gateway: it echoes the key in a
response header, in an SSE comment and in the message of a 500 it gives the first request.
The run logs at DEBUG (httpcore then logs every response header) and prints every case's
captured output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.redaction import REDACTED
from conformance.reference.faults import FaultSpec
from conformance.reference.server import RunningServer, ServerConfig, start, stop_all
from tests._cli import conformance

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
