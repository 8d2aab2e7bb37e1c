"""Replay a case's cassette through the transport of its own HTTP client.

A replay loads the case's vcrpy cassette and hands it to the SDK's client as its transport
(``Tape``): requests match as vcrpy matches them (method, path and JSON body, each recorded
interaction played once), and each response reaches the SDK as vcrpy serves it, the whole
body in one chunk. Nothing is patched, so no other client in the process is affected, and a
replayed case has no way to the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2
from vcr import matchers
from vcr.cassette import Cassette
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.persisters.filesystem import CassetteNotFoundError, FilesystemPersister
from vcr.record_mode import RecordMode
from vcr.request import Request
from vcr.serializers import yamlserializer

#: The key of the suite's own metadata in a cassette (server version, time of recording).
METADATA_KEY = "conformance"


class ReplayMismatch(Exception):
    """A request was not found in the case's cassette."""


class BrokenCassette(Exception):
    """A cassette that cannot be read whole: cut short by a killed run, or edited by hand."""


def _json_body(raw: bytes | str | None) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def match_json_body(recorded: Any, incoming: Any) -> None:
    """vcrpy matcher: the JSON bodies are equal as data, whatever their key order."""
    if _json_body(recorded.body) != _json_body(incoming.body):
        raise AssertionError("the JSON bodies differ")


#: What requests match on, in a replay and in a recording: a cassette recorded against a
#: server on one port replays against a target configured for another.
MATCH_ON = (matchers.method, matchers.path, match_json_body)


class Tape(httpx2.BaseTransport):
    """A cassette as an httpx transport: each request gets its recorded response.

    A request the cassette does not hold, or whose recorded answers were all played, raises
    ReplayMismatch with vcrpy's own account of it; a cassette that cannot be read whole
    raises BrokenCassette as the tape is made.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cassette = Cassette.load(
            path=str(path),
            serializer=_CHECKED_YAML,
            persister=_WholeCassettes,
            record_mode=RecordMode.NONE,
            match_on=MATCH_ON,
        )

    @property
    def metadata(self) -> dict[str, Any]:
        """What the recording stored beside the interactions (server version, time)."""
        try:
            found: dict[str, Any] = self._cassette.get_metadata(METADATA_KEY, {}) or {}
        except CannotOverwriteExistingCassetteException as exc:
            raise _mismatch(exc) from None
        return found

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """The recorded response to ``request``; ReplayMismatch if there is none."""
        incoming = Request(request.method, str(request.url), request.read(), request.headers)
        if not self._cassette.can_play_response_for(incoming):
            raise _mismatch(
                CannotOverwriteExistingCassetteException(
                    cassette=self._cassette, failed_request=incoming
                )
            )
        recorded = self._cassette.play_response(incoming)
        message = recorded["status"]["message"]
        return httpx2.Response(
            recorded["status"]["code"],
            headers=[
                (name, value) for name, values in recorded["headers"].items() for value in values
            ],
            # As vcrpy serves it: the whole body as one chunk of a stream not yet read.
            stream=httpx2.ByteStream(recorded["body"]["string"]),
            # Without a recorded reason phrase, httpx derives one from the status.
            extensions={"reason_phrase": message.encode("ascii")} if message else None,
        )


def _mismatch(error: CannotOverwriteExistingCassetteException) -> ReplayMismatch:
    """vcrpy's first line on a request it cannot play: what differs, or what is missing."""
    return ReplayMismatch(str(error).splitlines()[0])


class _WholeCassettes(FilesystemPersister):  # type: ignore[misc]
    """vcrpy's file persister, refusing a cassette it cannot read whole.

    vcrpy itself would treat an undecodable file as empty, and let a YAML error through as
    whatever the parser raised; here either is a BrokenCassette that names the file.
    """

    @classmethod
    def load_cassette(cls, cassette_path: str, serializer: Any) -> Any:
        try:
            return super().load_cassette(cassette_path, serializer)
        except CassetteNotFoundError:
            if Path(cassette_path).is_file():
                raise BrokenCassette("the file is empty") from None
            raise
        except Exception as exc:
            cause = exc.__cause__ or exc
            raise BrokenCassette(f"{type(cause).__name__}: {_in_short(cause)}") from None


def _whole(text: str) -> Any:
    """Parse a cassette; one cut short loses its last key, ``version`` (keys are sorted)."""
    data = yamlserializer.deserialize(text)
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ValueError("it does not end with 'version: 1', as a whole cassette does")
    if not isinstance(data.get("interactions"), list):
        raise ValueError("it has no list of 'interactions'")
    return data


_CHECKED_YAML = SimpleNamespace(deserialize=_whole, serialize=yamlserializer.serialize)


def _in_short(error: BaseException, width: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= width else text[:width] + "…"
