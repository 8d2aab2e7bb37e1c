"""``conformance init``: a starter target, an empty baseline and a workflow, never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conformance import gate
from conformance.cli import main
from conformance.spec import load_specs

WRITTEN = (
    ".conformance/targets/acme-eu.yaml",
    ".conformance/baseline.yaml",
    ".github/workflows/conformance.yml",
)


def test_init_writes_files_that_the_suite_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--dir", str(tmp_path), "--target", "acme-eu"]) == 0
    printed = capsys.readouterr().out
    for name in WRITTEN:
        assert str(tmp_path / name) in printed
    catalog = load_specs(tmp_path / ".conformance")
    target = catalog.targets["acme-eu"]
    assert target.api_key_env == "ACME_EU_API_KEY"
    assert catalog.origin("target", "acme-eu") == str(tmp_path / WRITTEN[0])
    assert gate.load(tmp_path / WRITTEN[1]).targets == {}
    workflow = yaml.safe_load((tmp_path / WRITTEN[2]).read_text())
    (step,) = [s for s in workflow["jobs"]["conformance"]["steps"] if "with" in s]
    assert step["with"] == {"target": WRITTEN[0], "baseline": WRITTEN[1]}
    assert step["env"] == {"ACME_EU_API_KEY": "${{ secrets.ACME_EU_API_KEY }}"}


def test_init_refuses_to_overwrite_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / ".conformance" / "baseline.yaml"
    baseline.parent.mkdir()
    baseline.write_text("targets: {acme: []}\n")
    assert main(["init", "--dir", str(tmp_path), "--target", "acme"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"conformance: {baseline}: already there; --force overwrites it"]
    assert baseline.read_text() == "targets: {acme: []}\n"
    assert not (tmp_path / ".github").exists()  # nothing half-written
    assert main(["init", "--dir", str(tmp_path), "--target", "acme", "--force"]) == 0
    assert gate.load(baseline).targets == {}


def test_init_refuses_a_name_no_target_file_can_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--dir", str(tmp_path), "--target", "My Cloud"]) == 4
    assert "lower-case letters" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
