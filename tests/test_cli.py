"""CLI commands that need no server: list, diff, schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import main, schemas
from conformance.spec import load_specs
from tests.conftest import SPECS


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
    # The catalog grows; the ten documented differences stay.
    assert f"10 of {len(load_specs(SPECS).behaviors)} behaviors differ" in out


def test_diff_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "openai", "firewroks", "--specs", str(SPECS)]) == 4
    assert "did you mean 'fireworks'?" in capsys.readouterr().err


def test_spec_error_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--specs", str(tmp_path / "none")]) == 4
    assert "no such specs folder" in capsys.readouterr().err
