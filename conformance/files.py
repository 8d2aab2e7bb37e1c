"""Files written whole or not at all: a reader sees the old file or the new one, never half.

Every file the suite writes (cassettes, results, reports, baselines) goes to a temporary
file in the same folder, is flushed to disk, and is renamed over the old one. Whatever
stops the write (an error, Ctrl-C) removes the temporary file and leaves the old one as it was.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

#: Temporary files are hidden and end so, beside the file they will replace.
SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """A fresh, unused name beside ``path`` for the file that will replace it."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{SUFFIX}")


def leftovers(path: Path) -> list[Path]:
    """Temporary files for ``path`` that a killed process left behind."""
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{SUFFIX}"))


def replace(temporary: Path, path: Path) -> None:
    """Flush ``temporary`` to disk and rename it over ``path``, keeping ``path``'s permissions."""
    with temporary.open("rb+") as handle:
        os.fsync(handle.fileno())
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    os.chmod(temporary, mode)
    os.replace(temporary, path)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; it replaces ``path`` when the block ends
    normally, and is removed if the block raises (or nothing was written to it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    try:
        yield temporary
        if temporary.exists():
            replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically."""
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
