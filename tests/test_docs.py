"""The README says what the code does: its catalog table, profiles and target example."""

from __future__ import annotations

import re

import yaml

from conformance.catalog import load
from conformance.spec import Target
from tests.conftest import REPO, SPECS

README = (REPO / "README.md").read_text(encoding="utf-8")
CATALOG = load(SPECS)


def test_the_catalog_table_lists_every_behavior_in_its_family() -> None:
    section = README[README.index("## The catalog") :]
    section = section[: section.index("\n## ")]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (.+) \|$", section, re.MULTILINE))
    listed = {family: set(re.findall(r"`([a-z0-9_.]+)`", cells)) for family, cells in rows.items()}
    families: dict[str, set[str]] = {}
    for behavior in CATALOG.behaviors.values():
        families.setdefault(behavior.family, set()).add(behavior.id)
    assert listed == families
    assert f"{len(CATALOG.behaviors)} behaviors in {len(families)} families" in README


def test_every_profile_is_named() -> None:
    for profile in CATALOG.profiles:
        assert f"`{profile}`" in README, profile


def test_the_target_example_is_a_valid_target() -> None:
    example = README[README.index("## Adding a target") :]
    start = example.index("```yaml") + len("```yaml")
    block = example[start : example.index("```", start)]
    Target.model_validate(yaml.safe_load(block))
