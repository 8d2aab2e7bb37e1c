"""The spec loader: the shipped specs load, and each kind of bad spec gives one located message."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.catalog import load
from conformance.spec import SpecError, load_specs
from conformance.spec.models import Expectation, Profile
from tests.conftest import SPECS


def test_shipped_specs_load() -> None:
    catalog = load(SPECS)
    assert {"stop.inclusion", "max_tokens.overflow", "stream.usage", "option.best_of"} <= set(
        catalog.behaviors
    )
    assert {"openai", "fireworks", "fireworks-2026-11"} <= set(catalog.profiles)


def test_extends_resolves_nearest_first() -> None:
    catalog = load(SPECS)
    assert catalog.lineage("fireworks-2026-11") == ["fireworks-2026-11", "fireworks", "openai"]
    # Declared by the dated profile itself, then inherited from fireworks, then from openai.
    assert catalog.expectation("fireworks-2026-11", "stop.inclusion").outcomes == {"omitted"}
    assert (
        catalog.expectation("fireworks-2026-11", "max_tokens.overflow").declared_in == "fireworks"
    )
    assert catalog.expectation("fireworks", "option.best_of").outcomes == {"rejected", "ignored"}
    assert catalog.expectation("openai", "max_tokens.overflow.behavior_param").outcomes is None


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


# Each bad spec: (file, text to replace, replacement, words the message must contain, line or None)
BAD_SPECS = [
    ("behaviors/stop.yaml", "probe: stop_sequence", "probe: [unclosed", "YAML syntax error", 14),
    (
        "behaviors/stop.yaml",
        "    probe: stop_sequence",
        "    probe: stop_sequence\n    prob: x",
        "unknown key 'prob'; did you mean 'probe'?",
        14,
    ),
    (
        "behaviors/stop.yaml",
        "max_tokens: 32",
        "max_tokens: 32\n      max_tokens: 33",
        "duplicate key 'max_tokens'",
        17,
    ),
    (
        "behaviors/stop.yaml",
        "apis: [chat, completions]",
        "apis: [chat, embeddings]",
        "behaviors[0].apis[1]",
        11,
    ),
    (
        "behaviors/stop.yaml",
        "probe: stop_sequence",
        "probe: stop_sequense",
        "unknown probe 'stop_sequense'; did you mean 'stop_sequence'?",
        13,
    ),
    (
        "behaviors/option.yaml",
        "id: option.frequency_penalty",
        "id: option.presence_penalty",
        "duplicate behavior id 'option.presence_penalty'",
        32,
    ),
    (
        "behaviors/stop.yaml",
        "        reference: {stop: keep}\n",
        "        reference: {stop: keep}\n      maybe:\n        meaning: m\n",
        "probe 'stop_sequence' never observes 'maybe'",
        None,
    ),
    (
        "profiles/fireworks.yaml",
        "expect: included",
        "expect: includd",
        "'includd' is not an outcome of stop.inclusion; did you mean 'included'?",
        13,
    ),
    (
        "profiles/fireworks.yaml",
        "extends: openai",
        "extends: fireworks-2026-11",
        "extends cycle",
        None,
    ),
    (
        "profiles/fireworks.yaml",
        "extends: openai",
        "extends: opneai",
        "unknown profile 'opneai'; did you mean 'openai'?",
        10,
    ),
    (
        "profiles/openai.yaml",
        "  stop.inclusion:\n    expect: omitted",
        "  stop.inclusions:\n    expect: omitted",
        "unknown behavior 'stop.inclusions'",
        None,
    ),
    (
        "profiles/openai.yaml",
        "read: 2026-11-25",
        "read: yesterday",
        "expectations.stop.inclusion.read",
        11,
    ),
    ("profiles/openai.yaml", "id: openai", "id: openai2", "must match the file name 'openai'", 2),
    (
        "targets/openai.yaml",
        "profile: openai",
        "profile: openia",
        "unknown profile 'openia'; did you mean 'openai'?",
        4,
    ),
    (
        "targets/openai.yaml",
        "context_window:\n  chat: 128000",
        "context_window:\n  chat: -5",
        "context_window",
        None,
    ),
    (
        "targets/reference-openai.yaml",
        "  dialect: openai",
        "  dialect: openai\n  set: {stop.inclusion: kept}",
        "'kept' is not an outcome of stop.inclusion",
        None,
    ),
    ("behaviors/stop.yaml", "reference: {stop: keep}", "reference: {stop: keeep}", "keeep", None),
    (
        "behaviors/stream.yaml",
        "reference: {stream_usage: absent}",
        "reference: {stop: strip}",
        "stop",
        None,
    ),
]


@pytest.mark.parametrize(
    ("file", "old", "new", "words", "line"),
    BAD_SPECS,
    ids=[f"{b[0]}:{b[3][:30]}" for b in BAD_SPECS],
)
def test_bad_spec_gives_one_located_message(
    specs_copy: Path,
    file: str,
    old: str,
    new: str,
    words: str,
    line: int | None,
) -> None:
    _replace(specs_copy / file, old, new)
    with pytest.raises(SpecError) as raised:
        load(specs_copy)
    message = str(raised.value)
    assert words in message
    assert Path(message.split(":", 1)[0]).name == Path(file).name or "cycle" in message
    if line is not None:
        assert raised.value.line == line, message
    assert "\n" not in message
    assert "Traceback" not in message


def test_missing_specs_folder(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such specs folder"):
        load_specs(tmp_path / "nowhere")


def test_empty_file(specs_copy: Path) -> None:
    (specs_copy / "targets" / "openai.yaml").write_text("")
    with pytest.raises(SpecError, match="the file is empty"):
        load_specs(specs_copy)


def test_root_profile_must_cover_every_behavior(specs_copy: Path) -> None:
    profile = specs_copy / "profiles" / "openai.yaml"
    data = yaml.safe_load(profile.read_text())
    del data["expectations"]["stream.usage"]
    profile.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"missing: stream\.usage"):
        load_specs(specs_copy)


expectations = st.builds(
    Expectation,
    expect=st.one_of(
        st.sampled_from(["omitted", "included", "unknown"]),
        st.lists(st.sampled_from(["omitted", "included"]), min_size=1, unique=True),
    ),
    source=st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != ""),
    read=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 1, 1)),
    quote=st.none() | st.text(max_size=40),
)


@settings(max_examples=50, deadline=None)
@given(expectation=expectations, title=st.text(max_size=30))
def test_profile_round_trips_through_yaml(expectation: Expectation, title: str) -> None:
    profile = Profile(
        id="p", title=title, description="d", expectations={"stop.inclusion": expectation}
    )
    # Escaped output: raw U+0085 and friends are line breaks to a YAML reader.
    dumped = yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True))
    assert Profile.model_validate(yaml.safe_load(dumped)) == profile
