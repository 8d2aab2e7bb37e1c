"""Nothing lost: an interrupted run keeps its finished cases, and no write is ever half done."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conformance import results
from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.plan import Case, plan
from conformance.recording import Mode
from conformance.reference.faults import FaultSpec
from conformance.reference.server import ServerConfig, start
from conformance.spec import Api
from tests._cli import conformance
from tests.conftest import REPO, SPECS

CATALOG = load(SPECS)
TARGET = "reference-openai"
#: A verbose pytest line for a finished case; pytest shows the dots of a case id as "::".
FINISHED = re.compile(
    r"^::(\S+)(\[\S+\]) (?:PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", re.MULTILINE
)


#: Starts ``python -m conformance`` with Ctrl-C's default handler: a background job of a
#: non-interactive shell (as CI may start the tests) starts its children with SIGINT ignored.
INTERRUPTIBLE = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('conformance', run_name='__main__', alter_sys=True)"
)
REPORTS = ["index.html", "junit.xml", "results.json", "summary.md"]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_the_finished_cases_and_marks_the_run_incomplete(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """Ctrl-C, or a SIGTERM from a cancelled CI job: the finished cases are written, and
    the cassettes of the case in flight and of those not run stay as they were."""
    (tmp_path / "specs").symlink_to(SPECS)
    shutil.copytree(REPO / "cassettes" / TARGET, tmp_path / "cassettes" / TARGET)
    before = _snapshot(tmp_path / "cassettes")
    # The first requests are quick; from then on each waits DELAY before its reply, so the
    # interrupt lands while a case waits for the server, as a Ctrl-C mostly does.
    # DELAY is far longer than stopping takes on a loaded machine, results and report included.
    quick, delay = 6, 15.0
    slow = ServerConfig(faults=FaultSpec(kind="slow_first_byte", after=quick, delay_s=delay))
    with start(slow) as server:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                INTERRUPTIBLE,
                "run",
                "--mode",
                "record",
                "--target",
                TARGET,
                "--base-url",
                server.base_url,
                "--",
                "-v",
            ],
            cwd=tmp_path,
            env={**os.environ, "REFERENCE_API_KEY": ""},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while server.faults.requests <= quick:
                assert process.poll() is None, "the run ended before it was interrupted"
                assert time.monotonic() < deadline, "the run never reached a slow request"
                time.sleep(0.02)
            time.sleep(0.3)  # the request is now waiting for its reply
            process.send_signal(stop)
            interrupted_at = time.monotonic()
            output, _ = process.communicate(timeout=30)
            waited = time.monotonic() - interrupted_at
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert waited < delay - 1, f"the run took {waited:.1f} s to stop:\n{output}"
    assert process.returncode == 2, output  # interrupted
    assert "Traceback" not in output
    finished = [
        found.group(1).replace("::", ".") + found.group(2) for found in FINISHED.finditer(output)
    ]
    assert finished, output
    written = json.loads((tmp_path / "reports" / "results.json").read_text())
    assert written["provenance"]["complete"] is False
    kept = {case["id"] for case in written["cases"]}
    assert kept == set(finished), "the results hold exactly the cases that finished"
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == REPORTS
    after = _snapshot(tmp_path / "cassettes")
    assert set(after) == set(before), "a temporary file was left beside the cassettes"
    unfinished = [case for case in plan(CATALOG, [TARGET], []) if case.name not in kept]
    assert unfinished
    for case in unfinished:  # the case in flight, then those never started
        name = str(case.cassette(Path()))
        assert after[name] == before[name], f"{name} changed"


def test_results_are_replaced_atomically(tmp_path: Path) -> None:
    """A reader polling results.json while it is rewritten sees one whole file or the other."""
    runner = Runner(CATALOG, Settings(mode=Mode.REPLAY))
    case = Case(CATALOG.behaviors["stop.inclusion"], CATALOG.targets["openai"], Api.CHAT, False)
    skipped = runner.execute(case)
    behaviors, profiles = results.documented(CATALOG)

    def version(copies: int, tag: str) -> results.Results:
        cases = [skipped.model_copy(update={"summary": f"{tag} {'x' * 4000}"})] * copies
        return results.Results(
            provenance=results.Provenance(
                suite_version=tag,
                git_revision=None,
                specs_digest=CATALOG.digest,
                openai_version="x",
                python_version="x",
                mode="replay",
                started_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
                finished_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
                complete=True,
            ),
            targets={},
            behaviors=behaviors,
            profiles=profiles,
            cases=cases,
        )

    path = tmp_path / "results.json"
    versions = [version(400, "a"), version(200, "b")]  # about 2 MB and 1 MB
    results.write(versions[0], path)
    stop = threading.Event()
    seen: list[str] = []
    torn: list[str] = []

    def read() -> None:
        while not stop.is_set():
            text = path.read_text()
            try:
                seen.append(json.loads(text)["provenance"]["suite_version"])
            except ValueError:
                torn.append(text[-80:])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for round_ in range(30):
            results.write(versions[round_ % 2], path)
    finally:
        stop.set()
        reader.join()
    assert not torn, f"{len(torn)} reads saw a half-written file"
    assert set(seen) == {"a", "b"}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"], "a temporary file remained"


def test_every_report_is_replaced_whole_never_rewritten_in_place(tmp_path: Path) -> None:
    """A reader that opened a report before the run (a CI step, a browser) keeps a whole
    file; a report rewritten in place would show it half of one. Hard links tell the two
    apart: a file renamed over a path leaves the old file's other links as they were."""
    reports, links = tmp_path / "reports", tmp_path / "links"
    reports.mkdir()
    links.mkdir()
    for name in REPORTS:
        (reports / name).write_text("from an earlier run")
        os.link(reports / name, links / name)
    completed = conformance(
        "run",
        "--specs",
        str(SPECS),
        "--cassettes",
        str(REPO / "cassettes"),
        "--target",
        TARGET,
        "--behavior",
        "stop.inclusion",
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    for name in REPORTS:
        assert (links / name).read_text() == "from an earlier run", f"{name} rewritten in place"
        assert (reports / name).read_text() != "from an earlier run", f"{name} not written"
    assert sorted(p.name for p in reports.iterdir()) == REPORTS, "a temporary file remained"
