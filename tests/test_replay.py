"""Replaying through the client's transport: the same results as vcrpy's patching gave, and
the same errors for a request that is not in the cassette."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest
import vcr
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.stubs import httpx_stubs

from conformance import execute
from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.plan import plan
from conformance.recording import Mode, Reel
from conformance.replay import METADATA_KEY, ReplayMismatch, Tape, match_json_body
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


def test_every_shipped_cassette_replays_to_the_results_vcrpys_patching_gave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served = vcr.cassette.Cassette.play_response
    plays: list[object] = []

    def counted(cassette: Any, request: Any) -> Any:
        plays.append(request)
        return served(cassette, request)

    monkeypatch.setattr(vcr.cassette.Cassette, "play_response", counted)
    before = _replay_everything(monkeypatch, patching=True)
    patched_plays = len(plays)
    now = _replay_everything(monkeypatch, patching=False)
    # Both ways replayed every interaction, through vcrpy's cassettes.
    assert patched_plays > 2000
    assert len(plays) == 2 * patched_plays
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
