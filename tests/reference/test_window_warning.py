"""A target whose real context window is not the declared one: a warning on the target,
in results.json, the terminal and the report, not misjudged overflow cases."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.reference import dialect
from conformance.reference.server import ServerConfig, start
from conformance.spec import load_specs
from tests._cli import conformance
from tests.conftest import SPECS

KEY = "window-test-key-0123456789"


def test_a_server_with_slots_warns_on_its_target(tmp_path: Path) -> None:
    catalog = load_specs(SPECS)
    config = ServerConfig(switches=dialect.switches_for(catalog, "openai"), api_key=KEY, slots=2)
    with start(config) as running:
        completed = conformance(
            "run",
            "--mode",
            "live",
            "--specs",
            str(SPECS),
            "--target",
            "reference-openai",
            "--behavior",
            "max_tokens.overflow",
            "--base-url",
            running.base_url,
            "--report-dir",
            str(tmp_path),
            cwd=tmp_path,
            env={"REFERENCE_API_KEY": KEY},
        )
    written = json.loads((tmp_path / "results.json").read_text())
    warnings = written["targets"]["reference-openai"]["warnings"]
    assert warnings
    assert all("context_window 256" in warning for warning in warnings)
    overflow = [case for case in written["cases"] if case["behavior"] == "max_tokens.overflow"]
    assert {case["verdict"] for case in overflow} == {"skipped"}
    assert "warning: target reference-openai:" in completed.stdout
    assert "context_window 256" in (tmp_path / "index.html").read_text()
