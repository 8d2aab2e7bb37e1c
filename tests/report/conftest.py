"""Fixtures for the report tests: a real replay's results, and a headless Chromium."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
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
    """The reports folder of a default replay of every shipped cassette."""
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


def browse(
    chromium: str, url: str, *arguments: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once on ``url`` with a fresh profile."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", *arguments, url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def dump_dom(chromium: str, page: Path, extra: Sequence[str] = ()) -> str:
    """The DOM of ``page`` after its scripts ran."""
    completed = browse(
        chromium,
        page.resolve().as_uri(),
        "--virtual-time-budget=5000",
        "--dump-dom",
        *extra,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout
