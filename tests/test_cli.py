"""The conformance command as a user meets it: help, usage errors, list, diff, schema, serve,
and what a run prints."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conformance.catalog import load
from conformance.cli import _parser, main, schemas
from conformance.plan import plan
from tests._cli import conformance
from tests.conftest import REPO, SPECS

CATALOG = load(SPECS)
PLAN = plan(CATALOG)
README = (REPO / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder with the shipped specs and no cassettes."""
    (tmp_path / "specs").symlink_to(SPECS)
    return tmp_path


def test_published_schemas_are_current() -> None:
    for name, text in schemas().items():
        published = SPECS / "schema" / name
        assert published.read_text() == text, f"{published} is stale: run `conformance schema`"


def test_list_shows_behaviors_profiles_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--specs", str(SPECS)]) == 0
    out = capsys.readouterr().out
    for word in (
        "stop.inclusion",
        "fireworks-2026-11",
        "reference-fireworks",
        "live only, needs $OPENAI_API_KEY",
    ):
        assert word in out


def test_diff_marks_differences_with_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "openai", "fireworks", "--specs", str(SPECS)]) == 0
    out = capsys.readouterr().out
    assert "≠ stop.inclusion" in out
    assert "readme.fireworks.ai/docs/openai-compatibility" in out
    # Behaviors the two profiles document alike count in the total, not in the 29: ten of chat
    # and completions, and the nineteen responses behaviors OpenAI documents and the
    # compatibility page (which predates the Responses API) does not.
    assert re.search(r"\b29 of \d+ behaviors differ", out)


def test_diff_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "openai", "firewroks", "--specs", str(SPECS)]) == 4
    assert "did you mean 'fireworks'?" in capsys.readouterr().err


def test_spec_error_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--specs", str(tmp_path / "none")]) == 4
    assert "no such specs folder" in capsys.readouterr().err


# The command line as a newcomer meets it: help, usage errors, one line per failing case.


def _options(parser: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{prefix} {name}")
        else:
            yield prefix, action


def test_every_option_of_every_command_has_help() -> None:
    seen = list(_options(_parser(), "conformance"))
    assert {command for command, _ in seen} >= {
        "conformance run",
        "conformance serve",
        "conformance baseline update",
    }
    for command, action in seen:
        name = "/".join(action.option_strings) or action.dest
        assert action.help not in (None, "", argparse.SUPPRESS), f"{command} {name}"


def test_run_help_gives_exit_codes_and_pytest_args(tmp_path: Path) -> None:
    completed = conformance("run", "--help", cwd=tmp_path)
    assert completed.returncode == 0
    out = completed.stdout
    assert "[-- PYTEST ARGS]" in out
    assert "Anything after a lone -- goes to pytest" in out
    for code in ("0", "1", "2", "4", "5"):
        assert re.search(rf"^  {code}  \w", out, re.MULTILINE), code


@pytest.mark.parametrize(
    "arguments",
    [
        ("run", "--mode", "livee"),
        ("compare",),
        ("run", "--concurrency", "many"),
        ("baseline",),
        ("serve", "--dialect", "openai", "--target", "reference-openai"),
    ],
)
def test_a_usage_error_exits_4_as_documented(arguments: tuple[str, ...], tmp_path: Path) -> None:
    completed = conformance(*arguments, cwd=tmp_path)
    assert completed.returncode == 4, completed.stderr
    assert "error:" in completed.stderr
    assert "| `4`  | a usage or spec error" in README


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


def test_a_failing_case_is_one_line_without_frames(workdir: Path) -> None:
    completed = conformance(
        "run",
        "--mode",
        "live",
        "--target",
        "reference-openai",
        "--behavior",
        "stop",
        "--base-url",
        f"http://127.0.0.1:{_closed_port()}/v1",
        cwd=workdir,
    )
    assert completed.returncode == 2, completed.stdout
    output = completed.stdout + completed.stderr
    for noise in ("Traceback", "pytest_asyncio", "_pytest", "ERROR at setup", "plugin.py"):
        assert noise not in output
    cases = [case for case in PLAN if case.target.name == "reference-openai"]
    cases = [case for case in cases if case.behavior.family == "stop"]
    for case in cases:
        lines = [line for line in output.splitlines() if case.name in line]
        assert len(lines) == 1, lines
        assert "connection failed" in lines[0] or "Connection refused" in lines[0]
    assert len(output.splitlines()) < len(cases) + 20


def test_a_live_run_with_every_key_missing_exits_5_and_says_why(workdir: Path) -> None:
    completed = conformance(
        "run", "--mode", "live", "--target", "open*", cwd=workdir, env={"OPENAI_API_KEY": ""}
    )
    assert completed.returncode == 5, completed.stdout
    assert "no case ran: every case was skipped because a key is not set" in completed.stdout
    assert "openai needs $OPENAI_API_KEY" in completed.stdout


def test_a_live_run_in_which_some_cases_ran_keeps_the_gates_code(workdir: Path) -> None:
    # reference-openai runs (the suite serves it); openai is skipped for its key.
    completed = conformance(
        "run",
        "--mode",
        "live",
        "--target",
        "*openai",
        "--behavior",
        "stop.inclusion",
        cwd=workdir,
        env={"OPENAI_API_KEY": ""},
    )
    assert completed.returncode == 0, completed.stdout
    assert "no case ran" not in completed.stdout
    assert "not run: openai (live only, needs $OPENAI_API_KEY)" in completed.stdout


def test_the_terminal_lists_the_targets_not_run_with_their_record_command(workdir: Path) -> None:
    completed = conformance("run", "--behavior", "stop.inclusion", cwd=workdir)
    assert completed.returncode == 0, completed.stdout
    for name, variable in (("openai", "OPENAI_API_KEY"), ("fireworks", "FIREWORKS_API_KEY")):
        assert (
            f"not run: {name} (live only, no cassettes); record it with: "
            f"{variable}=... conformance run --mode record --target {name}"
        ) in completed.stdout


def test_list_names_no_variable_for_a_target_without_a_key(
    specs_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    openai = (specs_copy / "targets" / "openai.yaml").read_text()
    keyless = openai.replace("name: openai", "name: keyless").replace(
        "api_key_env: OPENAI_API_KEY\n", ""
    )
    (specs_copy / "targets" / "keyless.yaml").write_text(keyless)
    assert main(["list", "--specs", str(specs_copy)]) == 0
    out = capsys.readouterr().out
    assert "$None" not in out
    assert re.search(r"^  keyless .*\(live only\)  \[\S+keyless.yaml\]$", out, re.MULTILINE)


def test_no_pytest_asyncio_warning_opens_a_run(workdir: Path) -> None:
    pytest.importorskip("pytest_asyncio")  # the warning came from it, when installed
    completed = conformance("run", "--behavior", "stop.inclusion", "--", "-W", "error", cwd=workdir)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Warning" not in completed.stdout + completed.stderr
    assert not re.search(r"^plugins:.*asyncio", completed.stdout, re.MULTILINE)


def test_diff_never_breaks_a_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "openai", "fireworks", "--specs", str(SPECS)]) == 0
    printed = set(re.findall(r"https?://\S+", capsys.readouterr().out))
    sources = {
        url
        for behavior in CATALOG.behaviors
        for profile in ("openai", "fireworks")
        for url in re.findall(
            r"https?://\S+", CATALOG.expectation(profile, behavior).expectation.source
        )
    }
    assert printed
    assert printed <= sources, printed - sources


@contextmanager
def _serving(arguments: list[str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance", *arguments],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(10)


def _wait_for(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "conformance serve did not start"
            time.sleep(0.1)


def test_the_readme_serve_example_exits_0(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = README[README.index("### Modes") : README.index("## Reports")]
    block = section[section.index("```sh") + 5 : section.index("```", section.index("```sh") + 5)]
    lines = [line.split("  #")[0].strip() for line in block.strip().splitlines()]
    exports = [line for line in lines if line.startswith("export ")]
    serve = next(line for line in lines if line.startswith("conformance serve"))
    run = next(line for line in lines if line.startswith("conformance run"))
    for export in exports:
        name, _, value = export.removeprefix("export ").partition("=")
        monkeypatch.setenv(name, value)
    port = _closed_port()
    serve_words = shlex.split(serve.replace("8000", str(port)).removesuffix("&"))
    with _serving(serve_words[1:], workdir) as process:
        _wait_for(port, process)
        completed = conformance(*shlex.split(run.replace("8000", str(port)))[1:], cwd=workdir)
    assert completed.returncode == 0, completed.stdout
    verdicts = {case["verdict"] for case in _results(workdir).values()}
    assert verdicts <= {"pass", "observed"}
    assert any(case["behavior"] == "errors.bad_key" for case in _results(workdir).values())


def test_serve_a_target_needs_its_key_variable(workdir: Path) -> None:
    completed = conformance(
        "serve", "--target", "reference-fireworks", cwd=workdir, env={"REFERENCE_API_KEY": ""}
    )
    assert completed.returncode == 4
    assert "$REFERENCE_API_KEY is not set" in completed.stderr
    completed = conformance("serve", "--target", "openai", cwd=workdir)
    assert completed.returncode == 4
    assert "no reference: block" in completed.stderr


def _results(workdir: Path) -> dict[str, dict[str, object]]:
    data = json.loads((workdir / "reports" / "results.json").read_text())
    return {case["id"]: case for case in data["cases"]}
