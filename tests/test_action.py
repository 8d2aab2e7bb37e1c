"""The GitHub Action (action.yml): its scripts run as a runner would run them, and the example
workflow fans its runs in with ``conformance report``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import gate
from conformance.gate import ExitCode
from conformance.reference.server import RunningServer, ServerConfig, start
from tests.conftest import REPO

ACTION = yaml.safe_load((REPO / "action.yml").read_text())
STEPS = {step.get("name"): step for step in ACTION["runs"]["steps"]}
EXAMPLE = REPO / "examples" / "github-actions" / "conformance.yml"
MINE = """\
name: mine
title: My server
profile: openai
base_url: http://127.0.0.1:9/v1
api_key_env: MINE_API_KEY
models: {chat: toy, completions: toy}
context_window: 256
max_output_tokens: 192
apis: [chat, completions]
max_concurrency: 16
"""
EXPRESSION = re.compile(r"\$\{\{\s*(inputs|steps)\.([\w-]+)(?:\.outputs\.([\w-]+))?\s*\}\}")


@pytest.fixture(scope="module")
def keyless_server() -> Iterator[RunningServer]:
    """A reference server that takes any key: errors.bad_key deviates from openai there."""
    with start(ServerConfig()) as server:
        yield server


def _run_steps(
    names: list[str], inputs: dict[str, str], workspace: Path
) -> tuple[dict[str, dict[str, str]], list[int]]:
    """Run the action's bash steps named, in order, as a runner does: inputs and earlier
    steps' outputs in their env, $GITHUB_OUTPUT per step. The outputs and exit codes."""
    defaults = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    given = {**defaults, **inputs}
    outputs: dict[str, dict[str, str]] = {}
    codes = []
    for name in names:
        step = STEPS[name]

        def value(match: re.Match[str]) -> str:
            kind, key, output = match.groups()
            return given[key] if kind == "inputs" else outputs[key][output]

        env = {key: EXPRESSION.sub(value, str(text)) for key, text in step.get("env", {}).items()}
        output_file = workspace / f".output-{len(codes)}"
        output_file.write_text("")
        completed = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            cwd=workspace,
            env={
                **os.environ,
                **env,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "RUNNER_TEMP": str(workspace / ".runner-temp"),
                "GITHUB_OUTPUT": str(output_file),
                "GITHUB_STEP_SUMMARY": str(workspace / ".step-summary.md"),
                "MINE_API_KEY": "fake-key-for-the-action-test",
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        codes.append(completed.returncode)
        if "id" in step:
            outputs[step["id"]] = dict(
                line.split("=", 1) for line in output_file.read_text().splitlines()
            )
    return outputs, codes


RUN = ["Name the target", "Run the conformance suite", "Step summary"]


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / ".runner-temp").mkdir()
    (tmp_path / ".conformance" / "targets").mkdir(parents=True)
    (tmp_path / ".conformance" / "targets" / "mine.yaml").write_text(MINE)
    return tmp_path


def test_the_action_fails_on_a_deviation_and_still_writes_the_summary(
    tmp_path: Path, keyless_server: RunningServer
) -> None:
    workspace = _workspace(tmp_path)
    inputs = {"target": ".conformance/targets/mine.yaml", "base-url": keyless_server.base_url}
    outputs, codes = _run_steps(RUN, inputs, workspace)
    assert outputs["target"] == {"name": "mine"}
    assert codes == [0, ExitCode.UNEXPECTED_DEVIATION, 0]
    assert outputs["run"]["exit-code"] == str(int(ExitCode.UNEXPECTED_DEVIATION))
    summary = (workspace / ".step-summary.md").read_text()
    assert "errors.bad_key[mine-chat-nostream]" in summary
    assert (workspace / "conformance-report" / "index.html").is_file()


def test_the_action_passes_with_a_baseline_that_expects_the_deviation(
    tmp_path: Path, keyless_server: RunningServer
) -> None:
    workspace = _workspace(tmp_path)
    (workspace / ".conformance" / "baseline.yaml").write_text(
        gate.empty()
        + "targets:\n  mine:\n    - case: errors.bad_key[mine-*]\n      verdict: deviation\n"
    )
    inputs = {
        "target": ".conformance/targets/mine.yaml",
        "base-url": keyless_server.base_url,
        "baseline": ".conformance/baseline.yaml",
        "report-dir": "reports/mine",
    }
    outputs, codes = _run_steps(RUN, inputs, workspace)
    assert codes == [0, ExitCode.AS_EXPECTED, 0]
    assert outputs["run"]["exit-code"] == "0"
    assert (workspace / "reports" / "mine" / "results.json").is_file()
    assert "Known (in the baseline)" in (workspace / ".step-summary.md").read_text()


def test_the_action_documents_the_exit_codes_of_conformance_run() -> None:
    text = (REPO / "action.yml").read_text()
    for code in ExitCode:
        assert f"{code.value}  " in text


def _uses_of_action(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        step
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if step.get("uses", "").startswith("your-org/conformance@")
    ]


def test_the_example_fans_every_matrix_job_in_with_one_report() -> None:
    workflow = yaml.safe_load(EXAMPLE.read_text())
    (use,) = _uses_of_action(workflow)
    assert set(use["with"]) <= set(ACTION["inputs"])
    assert use["with"]["baseline"] == ".conformance/baseline.yaml"
    assert "matrix" in workflow["jobs"]["conformance"]["strategy"]
    merge = workflow["jobs"]["report"]
    assert merge["needs"] == "conformance"
    download = next(s for s in merge["steps"] if "download-artifact" in s.get("uses", ""))
    # The action names each job's artifact conformance-report-TARGET; the merge takes them all.
    artifact = STEPS["Upload the report"]["with"]["name"]
    assert "conformance-report-{0}" in artifact
    assert download["with"]["pattern"] == "conformance-report-*"
    script = next(s["run"] for s in merge["steps"] if "conformance report" in s.get("run", ""))
    assert f"conformance report {download['with']['path']}/*/results.json" in script
    assert "--out merged" in script
