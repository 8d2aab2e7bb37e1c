"""Lint the GitHub Action (action.yml) and the workflows that use it, with actionlint.

actionlint reads workflows, not action metadata, so this builds a scratch project in which
action.yml is the local action ``./``: the shipped workflows call it there (so their inputs
are checked against action.yml's), and the action's own steps run as a job whose inputs are
the action's (so their expressions, step outputs and shell are checked too).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
ACTION = REPO / "action.yml"
WORKFLOWS = [
    REPO / "examples" / "github-actions" / "conformance.yml",
    REPO / "conformance" / "starter_files" / "workflow.yml",
]
#: How the workflows name the suite's action; in the scratch project it is the local one.
PUBLISHED = "your-org/conformance@v0.1.0"


def steps_as_workflow(action: dict[str, object]) -> str:
    """The composite action's steps as a workflow job, with the action's inputs as its own."""
    inputs = action["inputs"]
    runs = action["runs"]
    assert isinstance(inputs, dict)
    assert isinstance(runs, dict)
    workflow = {
        "on": {
            "workflow_dispatch": {
                "inputs": {
                    name: {"description": spec["description"], "type": "string"}
                    for name, spec in inputs.items()
                }
            }
        },
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": runs["steps"]}},
    }
    return yaml.safe_dump(workflow, sort_keys=False)


def main() -> int:
    """Build the scratch project and run actionlint on it; its exit code is ours."""
    action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="actionlint-") as scratch:
        root = Path(scratch)
        (root / ".git").mkdir()  # actionlint finds the project's root by it
        shutil.copy(ACTION, root / "action.yml")
        workflows = root / ".github" / "workflows"
        workflows.mkdir(parents=True)
        for index, path in enumerate(WORKFLOWS):
            text = path.read_text(encoding="utf-8")
            assert PUBLISHED in text, f"{path} does not use {PUBLISHED}"
            (workflows / f"{index}-{path.name}").write_text(text.replace(PUBLISHED, "./"))
        (workflows / "action-steps.yml").write_text(steps_as_workflow(action))
        completed = subprocess.run(
            ["actionlint", *sorted(str(p.relative_to(root)) for p in workflows.iterdir())],
            cwd=root,
            check=False,
        )
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
