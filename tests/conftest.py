"""Shared fixtures for the project's own tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "conformance" / "builtin_specs"


@pytest.fixture
def specs_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped specs folder."""
    target = tmp_path / "specs-copy"
    shutil.copytree(SPECS, target, ignore=shutil.ignore_patterns("schema"))
    return target
