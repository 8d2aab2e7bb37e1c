"""Fixtures for the report tests: a real replay's results, and a headless Chromium."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SPECS

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Headless, and quiet on a closed network: without the background-networking flags the
# browser's own connections are refused and slow it down.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="session")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reports folder of the README's first command: a replay of every shipped cassette,
    gated by the shipped baseline."""
    where = tmp_path_factory.mktemp("replay")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "run",
            "--specs",
            str(SPECS),
            "--cassettes",
            str(REPO / "cassettes"),
            "--baseline",
            str(REPO / "cassettes" / "baseline.yaml"),
            "--report-dir",
            str(where / "reports"),
        ],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    results = where / "reports" / "results.json"
    assert results.is_file(), completed.stdout + completed.stderr
    return where / "reports"


def _find() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing and running as root (as CI)."""
    found = _find()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed, and apt-get cannot install it without root")
    # xdist workers may get here together; one installs, the others wait and then find it.
    with open(Path(tempfile.gettempdir()) / "conformance-chromium.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _find()
        if not found:
            environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
                subprocess.run(
                    command, env=environment, capture_output=True, timeout=1200, check=False
                )
            found = _find()
    if not found:
        pytest.skip("chromium could not be installed with apt-get (no package source?)")
    return found


STARTED = time.time()


def artifacts_folder() -> Path:
    """Where the browser tests keep their screenshots for CI: ``$CONFORMANCE_ARTIFACTS``, else
    a folder in the system's temporary folder; never the checkout's reports/."""
    base = os.environ.get("CONFORMANCE_ARTIFACTS") or Path(tempfile.gettempdir()) / "conformance"
    return (Path(base) / "report-screenshots").resolve()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The screenshot folder (see ``artifacts_folder``), made."""
    folder = artifacts_folder()
    assert not folder.is_relative_to((REPO / "reports").resolve()), folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where the screenshots are, so that CI can keep them and a person can look."""
    folder = artifacts_folder()
    if any(shot.stat().st_mtime >= STARTED for shot in folder.glob("*.png")):
        terminalreporter.write_line(f"report screenshots: {folder}")
