"""The wheel is the whole tool: installed in a fresh venv, it runs a user's target from an
empty folder, with the catalog it carries and nothing from this repository."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

KEY = "fake-key-for-the-wheel-test"
MINE = """\
name: mine
title: My server
profile: openai
base_url: http://127.0.0.1:{port}/v1
api_key_env: MINE_API_KEY
models: {{chat: toy, completions: toy}}
context_window: 256
max_output_tokens: 192
apis: [chat, completions]
max_concurrency: 16
"""


def _run(*argv: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env={**os.environ, "MINE_API_KEY": KEY, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed


def _wheel(tmp_path: Path) -> Path:
    """Build the wheel from a copy of the sources, so no stale build/ folder can leak in."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "conformance",
        source / "conformance",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    wheels = tmp_path / "wheels"
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, source, cwd=tmp_path
    )
    (wheel,) = wheels.glob("conformance-*.whl")
    return wheel


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_serving(url: str, server: subprocess.Popen[bytes], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {KEY}"})
    while time.monotonic() < deadline:
        assert server.poll() is None, "conformance serve exited"
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"nothing answered at {url}")


@pytest.mark.slow
def test_the_installed_wheel_runs_a_users_target_live_from_an_empty_folder(
    tmp_path: Path,
) -> None:
    wheel = _wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "conformance/builtin_specs/profiles/openai.yaml" in names
    assert not [name for name in names if name.startswith(("cassettes/", "tests/"))]

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    bin_dir = venv / "bin"
    _run(bin_dir / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    conformance = bin_dir / "conformance"

    project = tmp_path / "project"
    port = _free_port()
    (project / "specs" / "targets").mkdir(parents=True)
    (project / "specs" / "targets" / "mine.yaml").write_text(MINE.format(port=port))
    # The server checks the key: a keyless one takes any key, and errors.bad_key deviates.
    server = subprocess.Popen(
        [conformance, "serve", "--port", str(port), "--api-key-env", "MINE_API_KEY"],
        cwd=project,
        env={**os.environ, "MINE_API_KEY": KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_serving(f"http://127.0.0.1:{port}/v1/models", server, 60)
        listing = _run(conformance, "list", "--specs", "specs", cwd=project).stdout
        assert "[specs/targets/mine.yaml]" in listing
        completed = _run(
            conformance, "run", "--mode", "live", "--specs", "specs", "--target", "mine",
            cwd=project,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "every case as expected" in completed.stdout
    assert '"target": "mine"' in (project / "reports" / "results.json").read_text()
    # The installed package ran, not this repository's sources.
    where = _run(
        bin_dir / "python", "-c", "import conformance; print(conformance.__file__)", cwd=project
    )
    assert Path(where.stdout.strip()).is_relative_to(venv)
