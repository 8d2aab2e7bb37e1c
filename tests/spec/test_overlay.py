"""A user's specs folder laid over the built-in catalog: same name replaces, new name adds."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import main
from conformance.spec import SpecError, load_specs
from conformance.spec.loader import builtin_specs
from tests.conftest import SPECS

MINE = """\
name: mine
title: My server
profile: openai
base_url: http://127.0.0.1:9/v1
models: {chat: toy}
context_window: 256
apis: [chat]
"""


def _overlay(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "specs"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_built_in_catalog_is_the_package_folder() -> None:
    assert builtin_specs() == SPECS
    builtin = load_specs()
    assert builtin.overlay is None
    assert builtin.origin("profile", "openai") == "built-in"


def test_a_new_file_adds_to_the_built_in_catalog(tmp_path: Path) -> None:
    builtin = load_specs()
    overlay = _overlay(tmp_path, {"targets/mine.yaml": MINE})
    catalog = load_specs(overlay)
    assert set(catalog.targets) == {*builtin.targets, "mine"}
    assert catalog.behaviors == builtin.behaviors
    assert catalog.origin("target", "mine") == str(overlay / "targets" / "mine.yaml")
    assert catalog.origin("target", "openai") == "built-in"
    assert catalog.digest != builtin.digest


def test_a_file_of_the_same_name_replaces_the_built_in_one(tmp_path: Path) -> None:
    shipped = (SPECS / "profiles" / "openai.yaml").read_text()
    overlay = _overlay(
        tmp_path, {"profiles/openai.yaml": shipped.replace("title: OpenAI", "title: Mine now", 1)}
    )
    catalog = load_specs(overlay)
    assert catalog.profiles["openai"].title == "Mine now"
    assert catalog.origin("profile", "openai") == str(overlay / "profiles" / "openai.yaml")
    assert catalog.origin("profile", "fireworks") == "built-in"
    # The replaced file is checked like any other, against the built-in files around it.
    broken = shipped.replace("expect: omitted", "expect: omited", 1)
    (overlay / "profiles" / "openai.yaml").write_text(broken)
    with pytest.raises(SpecError, match=r"did you mean 'omitted'\?") as raised:
        load_specs(overlay)
    assert raised.value.file == overlay / "profiles" / "openai.yaml"


def test_a_folder_with_none_of_the_spec_folders_is_refused(tmp_path: Path) -> None:
    overlay = _overlay(tmp_path, {"mine.yaml": MINE})
    with pytest.raises(SpecError, match="has no 'behaviors', 'profiles' or 'targets' folder"):
        load_specs(overlay)


def test_list_says_where_each_entry_comes_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overlay = _overlay(tmp_path, {"targets/mine.yaml": MINE})
    assert main(["list", "--specs", str(overlay)]) == 0
    lines = capsys.readouterr().out.splitlines()
    mine = next(line for line in lines if line.strip().startswith("mine "))
    assert mine.endswith(f"[{overlay / 'targets' / 'mine.yaml'}]")
    openai = next(line for line in lines if line.strip().startswith("openai ") and "claims" in line)
    assert openai.endswith("[built-in]")
    stop = next(line for line in lines if line.strip().startswith("stop.inclusion "))
    assert stop.endswith("[built-in]")
