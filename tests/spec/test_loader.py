"""The spec loader: the shipped specs load, and each kind of bad spec gives one located message."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from conformance.catalog import load
from conformance.spec import Api, SpecError, load_specs, yamlpos
from conformance.spec.models import (
    Behavior,
    BehaviorFile,
    Expectation,
    Profile,
    ReferenceServer,
    Target,
)
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
        33,
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
        "  responses: toy\n",
        "",
        "no model for api 'responses'",
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
    (
        "behaviors/stop.yaml",
        "    probe: stop_sequence",
        "    caveats: [{when: omited, outcome: ignored, text: t}]\n    probe: stop_sequence",
        "caveats[0].when: 'omited' is not an outcome of stop.inclusion",
        None,
    ),
    (
        "behaviors/stop.yaml",
        "    probe: stop_sequence",
        "    caveats: [{when: omitted, outcome: ignord, text: t}]\n    probe: stop_sequence",
        "no other behavior has an outcome 'ignord'; did you mean 'ignored'?",
        13,
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


names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,12}", fullmatch=True)
#: Header and query values: text, with ${NAME} references among it.
env_text = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters="$"), max_size=8)
    | st.from_regex(r"\$\{[A-Za-z_][A-Za-z0-9_]{0,10}\}", fullmatch=True),
    max_size=3,
).map("".join)
targets = st.builds(
    Target,
    name=names,
    title=st.text(max_size=30),
    profile=names,
    base_url=st.from_regex(r"https?://[a-z0-9.]{1,20}(:[0-9]{2,5})?/v1", fullmatch=True),
    api_key_env=st.none() | st.from_regex(r"[A-Z_][A-Z0-9_]{0,15}", fullmatch=True),
    models=st.dictionaries(
        st.sampled_from(list(Api)), st.text(min_size=1, max_size=20), min_size=1
    ),
    context_window=st.integers(1, 10**7)
    | st.dictionaries(st.sampled_from(list(Api)), st.integers(1, 10**7), min_size=1),
    apis=st.lists(st.sampled_from(list(Api)), min_size=1, max_size=2),
    headers=st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True), env_text),
    query=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True), env_text),
    timeout_s=st.floats(min_value=0.001, max_value=1e4),
    retries=st.integers(0, 10),
    max_retry_wait_s=st.floats(min_value=0, max_value=1e4),
    live_only=st.booleans(),
    reference=st.none()
    | st.builds(
        ReferenceServer,
        dialect=names,
        set=st.dictionaries(st.sampled_from(["stop.inclusion", "stream.usage"]), names),
    ),
)


def _dump(model: BaseModel) -> str:
    # Escaped output: raw U+0085 and friends are line breaks to a YAML reader.
    return yaml.safe_dump(model.model_dump(mode="json", exclude_none=True))


@settings(max_examples=100, deadline=None)
@given(target=targets)
def test_target_round_trips_through_yaml(target: Target) -> None:
    assert Target.model_validate(yaml.safe_load(_dump(target))) == target


def test_the_shipped_specs_round_trip_through_the_loader(tmp_path: Path) -> None:
    """Every shipped spec, loaded, dumped to new files and loaded again, is the same."""
    catalog = load_specs(SPECS)
    for sub in ("behaviors", "profiles", "targets"):
        (tmp_path / sub).mkdir()
    families: dict[str, list[Behavior]] = {}
    for behavior in catalog.behaviors.values():
        families.setdefault(behavior.family, []).append(behavior)
    for family, members in families.items():
        dumped = _dump(BehaviorFile(behaviors=members))
        (tmp_path / "behaviors" / f"{family}.yaml").write_text(dumped)
    for profile in catalog.profiles.values():
        (tmp_path / "profiles" / f"{profile.id}.yaml").write_text(_dump(profile))
    for target in catalog.targets.values():
        (tmp_path / "targets" / f"{target.name}.yaml").write_text(_dump(target))
    again = load_specs(tmp_path)
    assert again.behaviors == catalog.behaviors
    assert again.profiles == catalog.profiles
    assert again.targets == catalog.targets


# --------------------------------------------------------------------------- hostile YAML
# A file from elsewhere may be built to hang or crash whatever walks it. It must be refused
# at once, with one message at its place, whatever key it hides under.


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A YAML mapping whose each level holds ``width`` aliases of the level below."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines)


def nested(depth: int) -> str:
    """A flow sequence nested ``depth`` levels deep."""
    return "[" * depth + "]" * depth


def read_on_a_thread(file: Path, seconds: float) -> BaseException | None:
    """What ``yamlpos.read(file)`` raised, failing the test if it took ``seconds`` or more
    (on a thread, so that a read that never ends does not hang the test run too)."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            yamlpos.read(file)
            raised.append(None)
        except BaseException as exc:  # the caller looks at what it was
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    started = time.perf_counter()
    thread.start()
    thread.join(seconds)
    assert raised, f"reading {file.name} took more than {seconds} s"
    assert time.perf_counter() - started < seconds
    return raised[0]


@pytest.mark.parametrize(
    ("name", "payload", "words", "line"),
    [
        # The sixth level (line 8) is the first to pass the bound: 9 x 66,430 values.
        ("alias-bomb", alias_bomb(), "holds more than 100,000 values once its aliases", 8),
        ("nested-990", nested(990), "nests deeper than 64 levels", 3),
        # Nesting counts through aliases: 2 + 25 + 40 levels, none of them deep alone.
        (
            "nested-alias",
            f"a: &a {nested(40)}\nb: {nested(25)[:25]}*a{nested(25)[25:]}",
            "nests deeper than 64",
            4,
        ),
    ],
)
def test_hostile_yaml_is_refused_within_a_second(
    name: str, payload: str, words: str, line: int, tmp_path: Path
) -> None:
    file = tmp_path / f"{name}.yaml"
    # Under an innocent key of an otherwise plain file.
    file.write_text(
        "name: hostile\nnote:\n" + "".join(f"  {row}\n" for row in payload.splitlines())
    )
    raised = read_on_a_thread(file, seconds=1.0)
    assert isinstance(raised, SpecError), raised
    assert words in str(raised)
    assert raised.line == line


def test_aliases_within_the_bounds_still_load(tmp_path: Path) -> None:
    file = tmp_path / "anchors.yaml"
    file.write_text(alias_bomb(levels=4, width=9) + "\n" + "deep: " + nested(60) + "\n")
    document = yamlpos.read(file)
    assert len(document.data["l3"]) == 9
    assert document.data["l3"][0][0][0] == ["lol"] * 9
