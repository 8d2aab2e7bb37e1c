"""Record and replay: one vcrpy cassette per case, with every secret filtered out.

A recording runs live under vcrpy, which patches the HTTP clients while a case runs; a
replay serves the cassette through the case's own client (conformance.replay). Both match
requests on method, path and JSON body (key order ignored), so a cassette recorded against
a server on one port replays against a target configured for another.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance import files, redaction

if TYPE_CHECKING:
    import httpx2


class Mode(StrEnum):
    """How cases reach their target."""

    REPLAY = "replay"  # cassettes only; any request not in the cassette fails
    RECORD = "record"  # live, writing one cassette per case
    LIVE = "live"  # live, no cassettes


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


@dataclass(frozen=True)
class Reel:
    """A case's cassette as its requests see it: what the recording stored beside the
    interactions, and the transport that replays them (None: requests go to the network)."""

    metadata: dict[str, Any]
    transport: httpx2.BaseTransport | None = None


@contextlib.contextmanager
def cassette(
    path: Path, mode: Mode, *, secrets: Sequence[str], server_version: str | None = None
) -> Iterator[Reel]:
    """Run the body against ``path``'s cassette in ``mode``.

    In replay mode the cassette is the transport the body's client sends through (see
    conformance.replay): a request that is not in it raises ReplayMismatch, and a cassette
    that cannot be read whole raises BrokenCassette. In record mode vcrpy records what the
    body sends to a temporary file beside ``path``, with the server version and the time,
    which replaces the old cassette only when the body ends normally: a body that raises
    (an error, a skip, Ctrl-C) leaves the old cassette byte for byte.
    """
    if mode is Mode.LIVE:
        yield Reel({})
        return
    # vcrpy and the replay's reading of it are imported only by the modes that use them: a
    # live run never does, and starts the sooner.
    if mode is Mode.REPLAY:
        from conformance.replay import Tape  # noqa: PLC0415

        tape = Tape(path)
        yield Reel(tape.metadata, tape)
        return
    import vcr  # noqa: PLC0415

    from conformance.replay import METADATA_KEY, match_json_body  # noqa: PLC0415

    before_request, before_response = scrubbers(secrets)
    recorder = vcr.VCR(
        record_mode="all",
        match_on=["method", "path", "json_body"],
        before_record_request=before_request,
        before_record_response=before_response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("json_body", match_json_body)
    for leftover in files.leftovers(path):  # from a run that was killed mid-write
        leftover.unlink(missing_ok=True)
    with (
        files.replacing(path) as temporary,
        recorder.use_cassette(str(temporary), record_on_exception=False) as tape,
    ):
        metadata = tape.get_metadata(
            METADATA_KEY,
            {
                "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "server_version": server_version,
            },
        )
        yield Reel(metadata)


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
