"""The plugin and the CLI end to end, in real pytest and `conformance` subprocesses."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.catalog import load
from tests._cli import conformance
from tests.conftest import REPO, SPECS

CANARY = "canary-key-3f9d2a7c1b8e4d6f"
CATALOG = load(SPECS)


def _results(report_dir: Path) -> dict[str, dict[str, object]]:
    data = json.loads((report_dir / "results.json").read_text())
    return {case["id"]: case for case in data["cases"]}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "specs").symlink_to(SPECS)
    return tmp_path


def test_record_then_replay_reproduces_and_keeps_no_key(workdir: Path) -> None:
    recorded = conformance(
        "run",
        "--mode",
        "record",
        "--target",
        "reference-fireworks",
        "--behavior",
        "stop",
        "--behavior",
        "stream.usage",  # the two usage behaviors, whatever else the stream family holds
        cwd=workdir,
        env={"REFERENCE_API_KEY": CANARY},
    )
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    cassettes = sorted((workdir / "cassettes" / "reference-fireworks").rglob("*.yaml"))
    selected = [
        b
        for b in CATALOG.behaviors.values()
        if b.family == "stop" or b.id == "stream.usage" or b.id.startswith("stream.usage.")
    ]
    assert len(cassettes) == sum(len(b.apis) * len(b.variants.stream) for b in selected)
    replayed = conformance(
        "run", "--target", "reference-fireworks", "--report-dir", "replayed", cwd=workdir
    )
    assert replayed.returncode == 0, replayed.stdout
    before, after = _results(workdir / "reports"), _results(workdir / "replayed")
    assert {k: (v["observed"], v["verdict"]) for k, v in before.items()} == {
        k: (v["observed"], v["verdict"]) for k, v in after.items() if k in before
    }
    assert before["stop.inclusion[reference-fireworks-chat-stream]"]["observed"] == "included"
    assert after["stop.inclusion[reference-fireworks-chat-stream]"]["verdict"] == "pass"
    # Cases with no cassette are skipped with the command that records them.
    skipped = after["option.best_of[reference-fireworks-completions-nostream]"]
    assert skipped["verdict"] == "skipped"
    assert (
        "conformance run --mode record --target reference-fireworks --behavior option.best_of"
        in str(skipped["summary"])
    )
    for written in [
        *cassettes,
        *(workdir / "reports").iterdir(),
        *(workdir / "replayed").iterdir(),
    ]:
        assert CANARY not in written.read_text(), written
    assert CANARY not in recorded.stdout + recorded.stderr


def test_replay_mismatch_names_the_cassette_and_the_command(workdir: Path) -> None:
    assert (
        conformance(
            "run",
            "--mode",
            "record",
            "--target",
            "reference-openai",
            "--behavior",
            "stop.inclusion",
            cwd=workdir,
        ).returncode
        == 0
    )
    cassette = workdir / "cassettes" / "reference-openai" / "stop.inclusion" / "chat-nostream.yaml"
    cassette.write_text(cassette.read_text().replace("lighthouse keeper", "lighthouse sweeper"))
    replayed = conformance(
        "run", "--target", "reference-openai", "--behavior", "stop.inclusion", cwd=workdir
    )
    assert replayed.returncode == 2  # an error and no deviation: infrastructure, not semantics
    case = _results(workdir / "reports")["stop.inclusion[reference-openai-chat-nostream]"]
    assert case["verdict"] == "error"
    assert str(cassette.relative_to(workdir)) in str(case["summary"])
    assert (
        "re-record with: conformance run --mode record --target reference-openai --behavior stop.inclusion"
        in str(case["summary"])
    )
    assert "1 error" in replayed.stdout


def test_bad_spec_is_one_message_and_exit_4(workdir: Path, specs_copy: Path) -> None:
    profile = specs_copy / "profiles" / "fireworks.yaml"
    profile.write_text(profile.read_text().replace("expect: included", "expect: includd"))
    for command in (["run", "--specs", str(specs_copy)], ["list", "--specs", str(specs_copy)]):
        completed = conformance(*command, cwd=workdir)
        assert completed.returncode == 4, completed.stdout + completed.stderr
        output = completed.stdout + completed.stderr
        assert "fireworks.yaml:13:13:" in output
        assert "did you mean 'included'?" in output
        assert "Traceback" not in output


def test_unknown_target_is_a_usage_error(workdir: Path) -> None:
    completed = conformance("run", "--target", "refrence-openai", cwd=workdir)
    assert completed.returncode == 4
    assert "did you mean 'reference-openai'" in completed.stdout + completed.stderr


def test_missing_key_for_a_named_live_target_is_a_usage_error(workdir: Path) -> None:
    env = {"OPENAI_API_KEY": ""}
    completed = conformance("run", "--mode", "live", "--target", "openai", cwd=workdir, env=env)
    assert completed.returncode == 4
    assert "$OPENAI_API_KEY" in completed.stdout + completed.stderr


def test_xdist_workers_results_are_merged(workdir: Path) -> None:
    completed = conformance(
        "run",
        "--mode",
        "record",
        "--target",
        "reference-openai",
        "--behavior",
        "option",
        "--",
        "-n",
        "2",
        cwd=workdir,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    cases = _results(workdir / "reports")
    assert len(cases) == sum(
        len(b.apis) * len(b.variants.stream)
        for i, b in CATALOG.behaviors.items()
        if i.startswith("option.")
    )
    assert len(list((workdir / "cassettes").rglob("*.yaml"))) == len(cases)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`conformance serve` with the dialect the test names, on a free port, with a key (as
    the dialects' servers check keys: errors.bad_key) that the runs then present."""
    port = _free_port()
    monkeypatch.setenv("REFERENCE_API_KEY", "served-reference-key")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conformance",
            "serve",
            "--dialect",
            request.param,
            "--port",
            str(port),
            "--api-key-env",
            "REFERENCE_API_KEY",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "conformance serve did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("served", ["fireworks"], indirect=True)
def test_fireworks_target_passes_against_a_fireworks_dialect_server(
    served: str, workdir: Path
) -> None:
    completed = conformance(
        "run",
        "--mode",
        "live",
        "--target",
        "reference-fireworks",
        "--base-url",
        served,
        cwd=workdir,
    )
    assert completed.returncode == 0, completed.stdout
    verdicts = {case["verdict"] for case in _results(workdir / "reports").values()}
    assert verdicts <= {"pass", "observed"}


@pytest.mark.parametrize("served", ["openai"], indirect=True)
def test_fireworks_target_deviates_exactly_where_the_profiles_differ(
    served: str, workdir: Path
) -> None:
    completed = conformance(
        "run",
        "--mode",
        "live",
        "--target",
        "reference-fireworks",
        "--base-url",
        served,
        cwd=workdir,
    )
    assert completed.returncode == 1
    cases = _results(workdir / "reports").values()
    deviating = {case["behavior"] for case in cases if case["verdict"] == "deviation"}
    differing = {
        behavior
        for behavior in CATALOG.behaviors
        if CATALOG.expectation("openai", behavior).outcomes
        != CATALOG.expectation("fireworks", behavior).outcomes
        and CATALOG.expectation("fireworks", behavior).outcomes is not None
    }
    assert deviating == differing
    # Where fireworks' docs are silent, what the server does is recorded, not judged.
    silent = {b for b in CATALOG.behaviors if CATALOG.expectation("fireworks", b).outcomes is None}
    assert {case["verdict"] for case in cases if case["behavior"] in silent} == {"observed"}
    assert all(case["verdict"] in {"pass", "deviation", "observed"} for case in cases)
    assert "documents included, observed omitted" in completed.stdout


def test_under_plain_pytest_an_error_is_its_reason_without_frames(workdir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--pyargs",
            "conformance.suite",
            "--mode",
            "live",
            "--target",
            "reference-openai",
            "--behavior",
            "stop.inclusion",
            "--base-url",
            closed,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 2, completed.stdout
    errors = completed.stdout[completed.stdout.index("= ERRORS =") :]
    errors = errors[: errors.index("- conformance -")]
    assert "Traceback" not in errors
    assert ".py:" not in errors  # no frame of pytest, pytest-asyncio or the plugin
    reasons = [line for line in errors.splitlines() if line.startswith("error: ")]
    assert len(reasons) == 4  # one line for each of the four cases
    assert all("connection failed" in reason for reason in reasons)


@pytest.mark.parametrize(("mode", "compiles"), [("replay", False), ("live", True)])
def test_runs_that_wait_on_the_network_compile_the_report_meanwhile(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, mode: str, compiles: bool
) -> None:
    from conformance.cli import main  # noqa: PLC0415  (the run in this process)

    compiling: list[str] = []
    monkeypatch.setattr("conformance.report.html.compile_ahead", lambda: compiling.append(mode))
    monkeypatch.chdir(workdir)
    selection = ["--target", "reference-openai", "--behavior", "stop.inclusion"]
    arguments = ["run", "--mode", mode, *selection, "--cassettes", str(REPO / "cassettes")]
    assert main([*arguments, "--", "-q"]) == 0
    assert compiling == ([mode] if compiles else [])
