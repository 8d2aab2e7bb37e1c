"""Record and replay: one vcrpy cassette per case, with every secret filtered out.

Replay matches requests on method, path and JSON body (key order ignored), so a cassette
recorded against a server on one port replays against a target configured for another.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import vcr
from vcr.errors import CannotOverwriteExistingCassetteException

from conformance import redaction

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


@contextlib.contextmanager
def cassette(
    path: Path, mode: Mode, *, secrets: Sequence[str], server_version: str | None = None
) -> Iterator[dict[str, Any]]:
    """Run the body against ``path``'s cassette in ``mode``; yields the cassette's metadata.

    In record mode the old cassette is replaced, and the server version and the time are
    stored in it; a run interrupted inside the body (Ctrl-C) leaves no half-recorded cassette.
    In replay mode a request that is not in the cassette raises ReplayMismatch.
    """
    if mode is Mode.LIVE:
        yield {}
        return
    if mode is Mode.RECORD:
        path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    # Only what is written needs scrubbing; a replay writes nothing, and matches on method,
    # path and body alone, so it spares every request and response the filters.
    before_request, before_response = scrubbers(secrets) if mode is Mode.RECORD else (None, None)
    recorder = vcr.VCR(
        record_mode="all" if mode is Mode.RECORD else "none",
        match_on=["method", "path", "json_body"],
        before_record_request=before_request,
        before_record_response=before_response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("json_body", match_json_body)
    interrupted = False
    try:
        with recorder.use_cassette(str(path)) as tape:
            if mode is Mode.RECORD:
                tape.get_metadata(
                    METADATA_KEY,
                    {
                        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        "server_version": server_version,
                    },
                )
            metadata = tape.get_metadata(METADATA_KEY, {}) or {}
            try:
                yield metadata
            except CannotOverwriteExistingCassetteException as exc:
                raise ReplayMismatch(str(exc).splitlines()[0]) from None
            except Exception:
                raise  # a failed case keeps what it recorded: replaying it fails the same way
            except BaseException:
                interrupted = True
                raise
    finally:
        # vcrpy saves on any exit; a case cut short by Ctrl-C would replay as a mismatch.
        if interrupted and mode is Mode.RECORD:
            path.unlink(missing_ok=True)
