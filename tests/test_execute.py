"""Cases that end without an observation are errors with a reason, never pass or deviation."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.plan import Case
from conformance.probes.registry import REGISTRY, Probe
from conformance.recording import Mode
from conformance.results import CaseResult
from conformance.spec import Api
from conformance.verdict import Verdict
from tests.conftest import SPECS

CATALOG = load(SPECS)
STOP = CATALOG.behaviors["stop.inclusion"]
TARGET = CATALOG.targets["reference-openai"]


def _run(base_url: str, stream: bool = False) -> CaseResult:
    runner = Runner(CATALOG, Settings(mode=Mode.LIVE, base_url=base_url))
    return runner.execute(Case(STOP, TARGET, Api.CHAT, stream))


class _Faulty(BaseHTTPRequestHandler):
    """Answers every POST with the fault named in the server's ``fault`` attribute."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        fault = self.server.fault  # type: ignore[attr-defined]
        if fault == "500":
            body = b'{"error": {"message": "boom", "type": "server_error"}}'
            self.send_response(500)
        elif fault == "not-json":
            body = b"<html>gateway</html>"
            self.send_response(200)
        elif fault == "malformed-stream":
            body = b'data: {"choices": [{"delta": {"content": "a"}\n\ndata: [DONE]\n\n'
            self.send_response(200)
        else:  # "no-done": a stream cut off before [DONE]
            body = b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n'
            self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.send_header(
            "content-type",
            "text/event-stream" if "stream" in fault or "done" in fault else "application/json",
        )
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def faulty() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Faulty)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/v1"


@pytest.mark.parametrize(
    ("fault", "stream", "reason"),
    [
        ("500", False, "server error 500"),
        ("not-json", False, "not a JSON object"),
        ("malformed-stream", True, "malformed stream"),
        ("no-done", True, "without data: [DONE]"),
    ],
)
def test_faults_are_errors_with_a_reason(
    faulty: ThreadingHTTPServer, fault: str, stream: bool, reason: str
) -> None:
    faulty.fault = fault  # type: ignore[attr-defined]
    result = _run(_url(faulty), stream)
    assert result.verdict is Verdict.ERROR
    assert reason in result.summary
    assert result.evidence, "the failing exchange is kept as evidence"


def test_connection_refused_is_an_error_after_one_retry() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = _run(f"http://127.0.0.1:{port}/v1")
    assert result.verdict is Verdict.ERROR
    assert "connection failed twice" in result.summary
    assert result.evidence[-1].retries == 1


def test_a_crashing_probe_errors_its_case_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(_: object) -> None:
        raise ZeroDivisionError("probe bug")

    monkeypatch.setitem(
        REGISTRY, "stop_sequence", Probe("stop_sequence", frozenset(STOP.outcomes), crash)
    )  # type: ignore[arg-type]
    result = _run("http://127.0.0.1:9/v1")
    assert result.verdict is Verdict.ERROR
    assert "the probe crashed: ZeroDivisionError: probe bug" in result.summary
