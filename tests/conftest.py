"""Shared fixtures for the project's own tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

# No test may depend on an idle machine: no per-example deadline. In CI the examples are
# derived from each test's name, so a run cannot fail on an example the last one never drew;
# elsewhere they are random, to keep finding new ones.
settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "conformance" / "builtin_specs"


@pytest.fixture
def specs_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped specs folder."""
    target = tmp_path / "specs-copy"
    shutil.copytree(SPECS, target, ignore=shutil.ignore_patterns("schema"))
    return target
