"""Cases that end without an observation are errors with a reason, never pass or deviation."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.plan import Case
from conformance.probes.registry import REGISTRY, Probe
from conformance.recording import Mode
from conformance.reference.server import ServerConfig, start
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


#: Replies a gateway might give with a 200 that are no completion. Faults a real provider
#: gives (429, 5xx, resets, cut and malformed streams, timeouts) are injected by the
#: reference server in tests/hard_edges/test_faults.py.
REPLIES = {
    "not-json": (b"<html>gateway</html>", "application/json"),
    "no-choices": (b'{"object": "chat.completion"}', "application/json"),
    "choices-not-objects": (b'{"choices": ["a"]}', "application/json"),
    "content-not-text": (
        b'{"choices": [{"index": 0, "message": {"content": 5}, "finish_reason": "stop"}]}',
        "application/json",
    ),
    "stream-without-choices": (b"data: {}\n\ndata: [DONE]\n\n", "text/event-stream"),
}


class _Faulty(BaseHTTPRequestHandler):
    """Answers every POST with the reply named in the server's ``fault`` attribute."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body, content_type = REPLIES[self.server.fault]  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.send_header("content-type", content_type)
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
        ("not-json", False, "not a JSON object"),
        ("no-choices", False, "malformed reply: the body has no choices list"),
        ("choices-not-objects", False, "malformed reply: a choice is not an object"),
        ("content-not-text", False, "malformed reply: a message's content is not a string"),
        ("stream-without-choices", True, "malformed reply: the stream carried no choices"),
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


def test_connection_refused_is_an_error_after_the_retries() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = _run(f"http://127.0.0.1:{port}/v1")
    assert result.verdict is Verdict.ERROR
    assert f"connection failed {TARGET.retries + 1} times" in result.summary
    assert result.evidence[-1].retries == TARGET.retries


def test_a_crashing_probe_errors_its_case_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(_: object) -> None:
        raise ZeroDivisionError("probe bug")

    monkeypatch.setitem(
        REGISTRY, "stop_sequence", Probe("stop_sequence", frozenset(STOP.outcomes), crash)
    )  # type: ignore[arg-type]
    usage = CATALOG.behaviors["stream.usage"]
    with start(ServerConfig()) as server:
        runner = Runner(CATALOG, Settings(mode=Mode.LIVE, base_url=server.base_url))
        crashed = runner.execute(Case(STOP, TARGET, Api.CHAT, False))
        after = runner.execute(Case(usage, TARGET, Api.CHAT, True))
        runner.close()
    assert crashed.verdict is Verdict.ERROR
    assert "the probe crashed: ZeroDivisionError: probe bug (test_execute.py:" in crashed.summary
    assert after.verdict is Verdict.PASS, after.summary


def test_a_request_not_in_its_cassette_names_the_cassette_and_the_command(
    tmp_path: Path,
) -> None:
    case = Case(STOP, TARGET, Api.CHAT, False)
    with start(ServerConfig()) as server:
        recorder = Runner(
            CATALOG, Settings(mode=Mode.RECORD, base_url=server.base_url, cassettes=tmp_path)
        )
        assert recorder.execute(case).verdict is Verdict.PASS
        recorder.close()
    path = case.cassette(tmp_path)
    path.write_text(path.read_text().replace("lighthouse keeper", "lighthouse sweeper"))
    replayer = Runner(CATALOG, Settings(mode=Mode.REPLAY, cassettes=tmp_path, specs_arg="specs"))
    result = replayer.execute(case)
    assert result.verdict is Verdict.ERROR
    assert f"a request is not in the cassette {path}" in result.summary
    assert (
        "re-record with: conformance run --mode record --target reference-openai "
        "--behavior stop.inclusion --specs specs"
    ) in result.summary


def test_a_live_run_never_imports_vcrpy(tmp_path: Path) -> None:
    # vcrpy takes about 0.1 s to import; only recordings and replays need it.
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "import conformance.execute, conformance.plugin\n"
        "from conformance.recording import Mode, cassette\n"
        "with cassette(Path(sys.argv[1]), Mode.LIVE, secrets=[]) as reel:\n"
        "    assert reel.transport is None\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'vcr'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "case.yaml")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
