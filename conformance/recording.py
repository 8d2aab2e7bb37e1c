"""Record and replay: one vcrpy cassette per case, with every secret filtered out.

Replay matches requests on method, path and JSON body (key order ignored), so a cassette
recorded against a server on one port replays against a target configured for another.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import threading
from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import vcr
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.persisters.filesystem import CassetteNotFoundError, FilesystemPersister
from vcr.serializers import yamlserializer

from conformance import files, redaction

METADATA_KEY = "conformance"


class Mode(StrEnum):
    """How cases reach their target."""

    REPLAY = "replay"  # cassettes only; any request not in the cassette fails
    RECORD = "record"  # live, writing one cassette per case
    LIVE = "live"  # live, no cassettes


class ReplayMismatch(Exception):
    """A request was not found in the case's cassette."""


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


def scrubbers(secrets: Sequence[str]) -> tuple[Any, Any]:
    """vcrpy's before-record hooks: drop secret-named headers (request and response), blank
    secret-named query parameters, and replace every known secret in what remains."""

    def before_record_request(request: Any) -> Any:
        for name in list(request.headers):
            if redaction.is_secret_name(name):
                del request.headers[name]
            else:
                request.headers[name] = redaction.text(str(request.headers[name]), secrets)
        request.uri = redaction.url(request.uri, secrets)
        if request.body:
            body = (
                request.body.decode("utf-8", errors="replace")
                if isinstance(request.body, bytes)
                else request.body
            )
            request.body = redaction.text(body, secrets).encode("utf-8")
        return request

    def before_record_response(response: dict[str, Any]) -> dict[str, Any]:
        response["headers"] = {
            redaction.text(name, secrets): [redaction.text(str(value), secrets) for value in values]
            if isinstance(values, list)
            else redaction.text(str(values), secrets)
            for name, values in response["headers"].items()
            if not redaction.is_secret_name(name)
        }
        body = response.get("body", {}).get("string")
        if isinstance(body, bytes):
            response["body"]["string"] = redaction.text(
                body.decode("utf-8", errors="replace"), secrets
            ).encode()
        elif isinstance(body, str):
            response["body"]["string"] = redaction.text(body, secrets)
        return response

    return before_record_request, before_record_response


class BrokenCassette(Exception):
    """A cassette that cannot be read whole: cut short by a killed run, or edited by hand."""


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


@contextlib.contextmanager
def cassette(
    path: Path, mode: Mode, *, secrets: Sequence[str], server_version: str | None = None
) -> Iterator[dict[str, Any]]:
    """Run the body against ``path``'s cassette in ``mode``; yields the cassette's metadata.

    In record mode the cassette is written to a temporary file beside ``path``, with the
    server version and the time, and replaces the old one only when the body ends normally:
    a body that raises (an error, a skip, Ctrl-C) leaves the old cassette byte for byte.
    In replay mode a request that is not in the cassette raises ReplayMismatch, and a
    cassette that cannot be read whole raises BrokenCassette.
    """
    if mode is Mode.LIVE:
        yield {}
        return
    # Only what is written needs scrubbing; a replay writes nothing, and matches on method,
    # path and body alone, so it spares every request and response the filters.
    before_request, before_response = scrubbers(secrets) if mode is Mode.RECORD else (None, None)
    recorder = vcr.VCR(
        record_mode="all" if mode is Mode.RECORD else "none",
        match_on=["method", "path", "json_body"],
        before_record_request=before_request,
        before_record_response=before_response,
        decode_compressed_response=True,
        serializer="checked-yaml",
    )
    recorder.register_matcher("json_body", match_json_body)
    recorder.register_serializer("checked-yaml", _CHECKED_YAML)
    recorder.register_persister(_WholeCassettes)
    if mode is Mode.REPLAY:
        with recorder.use_cassette(str(path)) as tape:
            try:
                yield tape.get_metadata(METADATA_KEY, {}) or {}
            except CannotOverwriteExistingCassetteException as exc:
                raise ReplayMismatch(str(exc).splitlines()[0]) from None
        return
    for leftover in files.leftovers(path):  # from a run that was killed mid-write
        leftover.unlink(missing_ok=True)
    with (
        files.replacing(path) as temporary,
        recorder.use_cassette(str(temporary), record_on_exception=False) as tape,
    ):
        yield tape.get_metadata(
            METADATA_KEY,
            {
                "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "server_version": server_version,
            },
        )


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (a cancelled CI job) stops the run as Ctrl-C does: the
    case in flight keeps its old cassette, and the finished cases are written."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
