"""Progress lines, log excerpts and logged commands shared by the peer builds and launchers.

Expected failures raise `PeerError`, whose message is meant for a person (it carries the tail of
the relevant log) and needs no traceback.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

LOG_TAIL_LINES = 25


class PeerError(Exception):
    """An expected failure (install, start-up, readiness); the message is for a person."""


class Progress:
    """Short progress lines on stderr; a ticker repeats the current step while it runs long."""

    def __init__(self, stream: IO[str] | None = None, interval: float = 10.0) -> None:
        """Write to ``stream`` (stderr by default), repeating long steps every ``interval`` s."""
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval

    def say(self, message: str) -> None:
        """Print one progress line."""
        print(f"[peers] {message}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def step(self, label: str, log: Path | None = None) -> Iterator[None]:
        """Announce ``label``, tick while it runs (with the log's last line), report its time."""
        self.say(f"{label} ...")
        start = time.monotonic()
        done = threading.Event()

        def tick() -> None:
            while not done.wait(self.interval):
                last = last_line(log) if log is not None else ""
                elapsed = time.monotonic() - start
                self.say(f"  {label}: {elapsed:.0f} s" + (f" | {last[:90]}" if last else ""))

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
        self.say(f"{label}: done in {time.monotonic() - start:.1f} s")


def last_line(path: Path) -> str:
    """The last line of a log that says something about progress ("" if none)."""
    # pip repeats warnings about unusable index locations; they say nothing about progress.
    lines = [ln for ln in tail(path, 10) if not ln.startswith("WARNING: Location")]
    return lines[-1].strip() if lines else ""


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """Return the last ``lines`` non-empty lines of a log file (empty if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    # Progress bars redraw with carriage returns; keep only what the last redraw shows.
    kept = [ln.rsplit("\r", 1)[-1] for ln in text.splitlines()]
    return [ln for ln in kept if ln.strip()][-lines:]


def log_excerpt(path: Path) -> str:
    lines = tail(path)
    body = "\n".join(f"    {ln}" for ln in lines) if lines else "    (log is empty)"
    return f"last lines of {path}:\n{body}"


def run_logged(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> None:
    """Run ``argv`` with its output appended to ``log``; raise PeerError quoting it on failure."""
    # Output goes to the log (appended) so a failure can quote it; progress comes from the ticker.
    with log.open("ab") as fh:
        fh.write(f"\n$ {' '.join(argv)}\n".encode())
        fh.flush()
        result = subprocess.run(
            list(argv),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            check=False,
        )
    if result.returncode != 0:
        raise PeerError(
            f"command failed with exit code {result.returncode}: {' '.join(argv)}\n"
            + log_excerpt(log)
        )
