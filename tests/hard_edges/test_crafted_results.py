"""A results file from elsewhere (another CI run) is data, never markup or style.

Its names must follow the specs' id patterns, so ``conformance report`` refuses a file whose
profile, API, target, behavior or outcome names carry markup, with one message and no report.
The report itself keeps every name out of its style sheet, so even a name that got through
could not close the style element (tests/report/test_html.py shows that part).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance import results as results_io
from conformance.cli import main
from tests.report.factory import case, results

PAYLOAD = (
    '</style><img src=x onerror="document.title=1">'
    '<meta http-equiv="refresh" content="0;url=https://example.invalid/">'
)


def _rename_profile(data: dict[str, Any]) -> None:
    data["profiles"][f"openai{PAYLOAD}"] = data["profiles"].pop("openai")
    for item in data["cases"]:
        item["profile"] = f"openai{PAYLOAD}"


def _rename_api(data: dict[str, Any]) -> None:
    for item in data["cases"]:
        item["api"] = f"chat{PAYLOAD}"


def _rename_target(data: dict[str, Any]) -> None:
    data["targets"][f"acme{PAYLOAD}"] = data["targets"].pop("acme")
    for item in data["cases"]:
        item["target"] = f"acme{PAYLOAD}"


def _rename_behavior(data: dict[str, Any]) -> None:
    data["behaviors"][f"stop.inclusion{PAYLOAD}"] = data["behaviors"].pop("stop.inclusion")


def _rename_outcome(data: dict[str, Any]) -> None:
    for item in data["cases"]:
        item["observed"] = f"omitted{PAYLOAD}"


CRAFTED: dict[str, Callable[[dict[str, Any]], None]] = {
    "profile": _rename_profile,
    "api": _rename_api,
    "target": _rename_target,
    "behavior": _rename_behavior,
    "outcome": _rename_outcome,
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_a_results_file_with_markup_in_a_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    source = tmp_path / "results.json"
    results_io.write(results([case("acme")]), source)
    out = tmp_path / "out"
    assert main(["report", str(source), "--out", str(out)]) == 0  # the file as written is fine
    capsys.readouterr()

    data = json.loads(source.read_text(encoding="utf-8"))
    CRAFTED[name](data)
    crafted = tmp_path / "crafted.json"
    crafted.write_text(json.dumps(data), encoding="utf-8")
    refused = tmp_path / "refused"
    assert main(["report", str(crafted), "--out", str(refused)]) == 4
    error = capsys.readouterr().err
    assert f"{crafted}: not a results file" in error
    assert "should match pattern" in error
    assert len(error.strip().splitlines()) == 1
    assert not refused.exists()  # no report, not even half of one
