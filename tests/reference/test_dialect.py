"""Switches from the specs: dialects of the real profiles, overrides, and mapping checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conformance.reference.dialect import check_switch_mappings, switches_for
from conformance.reference.switches import SWITCH_NAMES, Switches, apply_settings, switch_values
from conformance.spec import Catalog, SpecError, load_specs
from tests.conftest import SPECS


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_specs(SPECS)


def test_openai_dialect_is_the_defaults(catalog: Catalog) -> None:
    assert switches_for(catalog, "openai") == Switches()


def test_fireworks_dialect(catalog: Catalog) -> None:
    switches = switches_for(catalog, "fireworks")
    assert switches.changed() == {
        "stop": "keep",
        "overflow": "clamp",
        "overflow_param": "honour",
        "stream_usage": "finish_chunk",
        # [rejected, ignored]: the first listed outcome is the one the server shows.
        "presence_penalty": "reject",
        "frequency_penalty": "reject",
        "logit_bias": "reject",
        "best_of": "reject",
        "functions": "reject",
    }
    # stream.usage.include_usage is unknown for fireworks: OpenAI's default stays.
    assert switches.stream_usage_requested == "extra_chunk"


def test_an_extending_profile_overrides_its_parent(catalog: Catalog) -> None:
    switches = switches_for(catalog, "fireworks-2026-11")
    assert switches.stop == "strip"
    assert switches.presence_penalty == "honour"
    assert switches.functions == "honour"
    assert switches.best_of == "reject"  # still inherited
    assert switches.overflow == "clamp"


def test_overrides_set_single_behaviors(catalog: Catalog) -> None:
    switches = switches_for(
        catalog, "fireworks", {"stop.inclusion": "omitted", "option.best_of": "ignored"}
    )
    assert switches.stop == "strip"
    assert switches.best_of == "ignore"
    assert switches.logit_bias == "reject"


def test_reference_targets_build(catalog: Catalog) -> None:
    for target in catalog.targets.values():
        if target.reference is not None:
            switches_for(catalog, target.reference.dialect, target.reference.set)


@pytest.mark.parametrize(
    ("profile", "overrides", "message"),
    [
        ("openai", {"stop.inclusoin": "omitted"}, "did you mean 'stop.inclusion'?"),
        ("openai", {"stop.inclusion": "omited"}, "did you mean 'omitted'?"),
        ("openia", {}, "did you mean 'openai'?"),
    ],
)
def test_bad_overrides_suggest(
    catalog: Catalog, profile: str, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        switches_for(catalog, profile, overrides)


def test_the_real_mappings_check_out(catalog: Catalog) -> None:
    check_switch_mappings(catalog)


def test_every_outcome_has_a_reference_mapping(catalog: Catalog) -> None:
    # Not required by the loader, but the mutation tests need every outcome reachable.
    for behavior in catalog.behaviors.values():
        for name, outcome in behavior.outcomes.items():
            assert outcome.reference, f"{behavior.id}: {name}"


def _edited_specs(tmp_path: Path, old: str, new: str) -> tuple[Catalog, int]:
    """A copy of the specs with one edit in stop.yaml, and the line the edit is on."""
    root = tmp_path / "specs"
    shutil.copytree(SPECS, root)
    file = root / "behaviors" / "stop.yaml"
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new, 1))
    line = text[: text.index(old)].count("\n") + 1
    return load_specs(root), line


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{stop: keep}", "{stpo: keep}", "unknown reference switch 'stpo'; did you mean 'stop'?"),
        (
            "{stop: keep}",
            "{stop: kept}",
            "switch 'stop' does not take 'kept'; did you mean 'keep'?",
        ),
        (
            "{stop: keep}",
            "{stop: keep, overflow: clamp}",
            "switch 'overflow' is already set by behavior 'max_tokens.overflow'",
        ),
    ],
)
def test_bad_mappings_point_at_the_yaml_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    catalog, line = _edited_specs(tmp_path, old, new)
    with pytest.raises(SpecError) as raised:
        check_switch_mappings(catalog)
    assert raised.value.file.name == "stop.yaml"
    assert raised.value.line == line
    assert message in raised.value.message
    assert "outcomes.included.reference" in raised.value.where


def test_switch_helpers() -> None:
    assert SWITCH_NAMES[0] == "stop"
    assert switch_values("stop") == ("strip", "keep", "ignore", "reject")
    assert apply_settings({"stop": "keep"}).stop == "keep"
    with pytest.raises(ValueError, match="unknown switch 'stpo'; did you mean 'stop'"):
        apply_settings({"stpo": "keep"})
    with pytest.raises(ValueError, match="switch 'overflow' does not take 'clip'"):
        Switches().with_settings({"overflow": "clip"})
    assert Switches().changed() == {}
