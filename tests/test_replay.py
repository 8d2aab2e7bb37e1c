"""Replaying through the client's transport: the same results as vcrpy's patching gave, and
the same errors for a request that is not in the cassette."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest
import vcr
from hypothesis import given
from hypothesis import strategies as st
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.request import Request
from vcr.stubs import httpx_stubs

from conformance import execute
from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.observation import ReplayMismatch
from conformance.plan import plan
from conformance.recording import Mode, Reel
from conformance.replay import METADATA_KEY, Tape, _Key, match_json_body, match_on
from tests.conftest import REPO

CASSETTES = REPO / "cassettes"
SHIPPED = CASSETTES / "reference-openai" / "stop.inclusion" / "chat-nostream.yaml"


class _PatchedMismatch(CannotOverwriteExistingCassetteException, ReplayMismatch):  # type: ignore[misc]
    """vcrpy's error for a request its patched client cannot play, as the endpoint's fatal
    error: before the replay had a transport of its own, the endpoint re-raised vcrpy's."""


@contextlib.contextmanager
def _patching_replay(
    path: Path, mode: Mode, *, secrets: Sequence[str], server_version: str | None = None
) -> Iterator[Reel]:
    """The replay as it was before conformance.replay: vcrpy patches the HTTP clients of the
    whole process while the case runs, and the case's client sends through the patch."""
    assert mode is Mode.REPLAY
    recorder = vcr.VCR(
        record_mode="none",
        match_on=["method", "path", "json_body"],
        decode_compressed_response=True,
    )
    recorder.register_matcher("json_body", match_json_body)
    with recorder.use_cassette(str(path)) as tape:
        try:
            yield Reel(tape.get_metadata(METADATA_KEY, {}) or {})
        except CannotOverwriteExistingCassetteException as exc:
            raise ReplayMismatch(str(exc).splitlines()[0]) from None


def _replay_everything(monkeypatch: pytest.MonkeyPatch, *, patching: bool) -> dict[str, Any]:
    """Every shipped case's result as results.json holds it, without its timings."""
    catalog = load()
    runner = Runner(catalog, Settings(mode=Mode.REPLAY, cassettes=CASSETTES))
    with monkeypatch.context() as patch:
        if patching:
            patch.setattr(execute, "cassette", _patching_replay)
            patch.setattr(httpx_stubs, "CannotOverwriteExistingCassetteException", _PatchedMismatch)
        results = {case.name: runner.execute(case) for case in plan(catalog)}
    runner.close()
    return {name: _untimed(result.model_dump(mode="json")) for name, result in results.items()}


def _untimed(result: dict[str, Any]) -> dict[str, Any]:
    result.pop("duration_s")
    for exchange in result["evidence"]:
        exchange.pop("duration_s")
    return result


def _counting(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> list[object]:
    """The calls of ``owner.name`` from now on, one entry each."""
    calls: list[object] = []
    method = getattr(owner, name)

    def counted(self: object, *args: object) -> object:
        calls.append(args)
        return method(self, *args)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_every_shipped_cassette_replays_to_the_results_vcrpys_patching_gave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    played = _counting(monkeypatch, vcr.cassette.Cassette, "play_response")
    served = _counting(monkeypatch, Tape, "handle_request")
    before = _replay_everything(monkeypatch, patching=True)
    patched = len(played)
    assert patched > 2000, "the patching replay played every interaction through vcrpy"
    assert not served
    now = _replay_everything(monkeypatch, patching=False)
    assert (len(played), len(served)) == (patched, patched), "the replay went through tapes"
    replayed = [name for name, result in now.items() if result["verdict"] != "skipped"]
    assert len(replayed) > 1000
    assert now.keys() == before.keys()
    differ = [name for name in now if now[name] != before[name]]
    assert not differ, f"{len(differ)} cases differ, e.g. {differ[:3]}"


def test_a_request_not_in_the_cassette_gets_vcrpys_account_of_it(tmp_path: Path) -> None:
    tape = Tape(SHIPPED)
    request = httpx2.Request(
        "POST", "http://127.0.0.1:9/v1/chat/completions", json={"model": "other", "messages": []}
    )
    with pytest.raises(ReplayMismatch) as raised:
        tape.handle_request(request)
    assert str(raised.value) == (
        "Can't play back this request: no recorded interaction matches it "
        "(the closest differ in match_json_body)."
    )


def _request_of(tape_path: Path, number: int) -> httpx2.Request:
    """The ``number``-th request recorded in the cassette at ``tape_path``, as sent."""
    recorded = vcr.serializers.yamlserializer.deserialize(tape_path.read_text())
    request = recorded["interactions"][number]["request"]
    return httpx2.Request(request["method"], request["uri"], content=request["body"].encode())


def test_each_recorded_answer_plays_once_then_vcrpy_says_so() -> None:
    tape = Tape(SHIPPED)
    first = _request_of(SHIPPED, 0)
    assert tape.handle_request(first).status_code == 200
    with pytest.raises(ReplayMismatch) as raised:
        tape.handle_request(_request_of(SHIPPED, 0))
    assert str(raised.value) == (
        "Can't play back this request: it matches 1 recorded interaction, "
        "but that has already been played back."
    )


def test_a_cassette_without_the_suites_metadata_is_a_mismatch_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "case.yaml"
    text = SHIPPED.read_text()
    path.write_text(text[: text.index("metadata:")] + "version: 1\n")
    with pytest.raises(ReplayMismatch) as raised:
        Tape(path)
    assert str(raised.value).startswith(f"Can't add metadata 'conformance' to cassette {path}")


def test_a_cassette_with_tags_is_read_by_vcrpys_loader_alike(tmp_path: Path) -> None:
    """What the quick reading does not know (a tag), vcrpy's loader reads, to the same."""
    path = tmp_path / "case.yaml"
    path.write_text(SHIPPED.read_text().replace("string: '", "string: !!python/str '"))
    assert "!!python/str" in path.read_text()
    for tape_path in (SHIPPED, path):
        tape = Tape(tape_path)
        response = tape.handle_request(_request_of(SHIPPED, 1))
        assert response.read() == Tape(SHIPPED).handle_request(_request_of(SHIPPED, 1)).read()
        assert tape.metadata == {"recorded_at": "2026-12-01T09:08:53+00:00", "server_version": None}


_BODIES = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=8),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=4),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=6,
    ).map(json.dumps),
)
_REQUESTS = st.tuples(
    st.sampled_from(["GET", "POST", "post"]),
    st.sampled_from(
        ["http://127.0.0.1:9", "http://127.0.0.1:9/", "http://h/v1/chat", "https://h:1/v1/chat?a=1"]
    ),
    _BODIES,
    st.booleans(),  # the body as bytes, as a client sends it, or as text, as YAML holds it
)


@given(_REQUESTS, _REQUESTS)
def test_requests_match_exactly_when_vcrpys_matchers_say_so(
    one: tuple[str, str, str | None, bool], other: tuple[str, str, str | None, bool]
) -> None:
    def as_sent(method: str, uri: str, body: str | None, raw: bool) -> tuple[str, str, Any]:
        return method, uri, body.encode() if raw and body is not None else body

    first, second = as_sent(*one), as_sent(*other)
    vcrpy_says = True
    for matcher in match_on():
        try:
            found = matcher(Request(*second, {}), Request(*first, {}))
        except AssertionError:
            vcrpy_says = False
            break
        if found is not None and not found:
            vcrpy_says = False
            break
    assert (_Key.of(*second) == _Key.of(*first)) is vcrpy_says


def test_a_replay_that_plays_as_recorded_never_imports_vcrpy() -> None:
    # vcrpy takes about 0.1 s to import; a replay needs its words only for what goes wrong.
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from conformance.replay import Tape\n"
        "import httpx2, yaml\n"
        "path = Path(sys.argv[1])\n"
        "tape = Tape(path)\n"
        "for entry in yaml.safe_load(path.read_text())['interactions']:\n"
        "    sent = entry['request']\n"
        "    request = httpx2.Request(sent['method'], sent['uri'], content=sent['body'].encode())\n"
        "    assert tape.handle_request(request).status_code\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'vcr'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(SHIPPED)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
