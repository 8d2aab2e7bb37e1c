"""Replay a case's cassette through the transport of its own HTTP client.

A replay reads the case's vcrpy cassette and hands it to the SDK's client as its transport
(``Tape``): requests match as vcrpy's matchers decide (method, path and JSON body), each
recorded interaction is played once, first come first served, as vcrpy plays them, and each
response reaches the SDK as vcrpy serves it, the whole body in one chunk. Nothing is
patched, so no other client in the process is affected, and a replayed case has no way to
the network.

vcrpy itself is imported only where its own words are needed: a request that does not
match, a cassette without the suite's metadata or with YAML tags, a broken one. A replay
that plays every request as recorded never imports it, and starts the sooner.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlparse

import httpx2
import yaml

from conformance.observation import BrokenCassette, ReplayMismatch

if TYPE_CHECKING:
    from vcr.cassette import Cassette

#: The key of the suite's own metadata in a cassette (server version, time of recording).
METADATA_KEY = "conformance"


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


def match_on() -> tuple[Callable[[Any, Any], Any], ...]:
    """vcrpy's matchers of a replay and a recording (method, path, JSON body): a cassette
    recorded against a server on one port replays against a target configured for another."""
    from vcr import matchers  # noqa: PLC0415

    return (matchers.method, matchers.path, match_json_body)


class _Key(NamedTuple):
    """What a request matches on, as vcrpy's matchers compare it: the method, the path
    (empty as ``/``), and the body as JSON data."""

    method: str
    path: str
    body: Any

    @classmethod
    def of(cls, method: str, uri: str, body: bytes | str | None) -> _Key:
        """The key of a request, as vcrpy's ``Request`` keeps it (a text body as UTF-8)."""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        return cls(method, urlparse(uri).path or "/", _json_body(raw))

    @classmethod
    def recorded(cls, method: str, uri: str, body: bytes | str | None, headers: Any) -> _Key:
        """The key of a recorded request, from its four fields as a cassette holds them."""
        del headers  # not matched on; named so that a request of other fields is refused
        return cls.of(method, uri, body)


class Tape(httpx2.BaseTransport):
    """A cassette as an httpx transport: each request gets its recorded response.

    A cassette that cannot be read whole raises BrokenCassette as the tape is made. A
    request the cassette does not hold, or whose recorded answers were all played, raises
    ReplayMismatch with vcrpy's own account of it, as does a cassette without the suite's
    metadata.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._requests, self._responses, stored = _read(path)
        self._played: Counter[int] = Counter()
        if METADATA_KEY not in stored:
            from vcr.errors import MissingMetadataError  # noqa: PLC0415

            cassette = self._as_vcrpy()
            raise _mismatch(MissingMetadataError(cassette=cassette, key=METADATA_KEY))
        #: What the recording stored beside the interactions (server version, time).
        self.metadata: dict[str, Any] = stored[METADATA_KEY] or {}

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """The recorded response to ``request``; ReplayMismatch if there is none."""
        incoming = _Key.of(request.method, str(request.url), request.read())
        for index, recorded in enumerate(self._requests):
            if not self._played[index] and incoming == recorded:
                self._played[index] += 1
                return _response(self._responses[index])
        from vcr.errors import CannotOverwriteExistingCassetteException  # noqa: PLC0415
        from vcr.request import Request  # noqa: PLC0415

        failed = Request(request.method, str(request.url), request.read(), request.headers)
        raise _mismatch(
            CannotOverwriteExistingCassetteException(
                cassette=self._as_vcrpy(), failed_request=failed
            )
        )

    def _as_vcrpy(self) -> Cassette:
        """This tape as vcrpy's cassette, played as far as this one, for vcrpy's messages."""
        from vcr.cassette import Cassette  # noqa: PLC0415
        from vcr.record_mode import RecordMode  # noqa: PLC0415

        cassette = Cassette.load(
            path=str(self.path),
            serializer=_checked_yaml(),
            persister=_whole_cassettes(),
            record_mode=RecordMode.NONE,
            match_on=match_on(),
        )
        cassette.play_counts = Counter(self._played)
        return cassette


def _response(recorded: dict[str, Any]) -> httpx2.Response:
    """A recorded response as vcrpy serves it: the whole body as one chunk of a stream not
    yet read; without a recorded reason phrase, httpx derives one from the status."""
    message = recorded["status"]["message"]
    return httpx2.Response(
        recorded["status"]["code"],
        headers=[(name, value) for name, values in recorded["headers"].items() for value in values],
        stream=httpx2.ByteStream(recorded["body"]["string"]),
        extensions={"reason_phrase": message.encode("ascii")} if message else None,
    )


def _mismatch(error: Exception) -> ReplayMismatch:
    """vcrpy's first line on a request it cannot play: what differs, or what is missing."""
    return ReplayMismatch(str(error).splitlines()[0])


def _read(path: Path) -> tuple[list[_Key], list[dict[str, Any]], dict[str, Any]]:
    """The recorded requests, their responses, and the metadata of the cassette at ``path``.

    The YAML is parsed the quick way (``_plain``); whatever that does not read whole,
    vcrpy's own reading decides: it reads the rare cassette with tags, and gives its
    account of a broken one.
    """
    with contextlib.suppress(Exception):  # vcrpy's reading below says why, or reads it
        data = _checked(_plain(path.read_text(encoding="utf-8")))
        requests = [_Key.recorded(**entry["request"]) for entry in data["interactions"]]
        responses = [_body_as_bytes(entry["response"]) for entry in data["interactions"]]
        return requests, responses, data.get("metadata") or {}
    from vcr.persisters.filesystem import CassetteNotFoundError  # noqa: PLC0415

    try:
        loaded, responses, *stored = _whole_cassettes().load_cassette(str(path), _checked_yaml())
    except CassetteNotFoundError:  # not a file: vcrpy's cassette is empty
        return [], [], {}
    requests = [_Key.of(request.method, request.uri, request.body) for request in loaded]
    return requests, responses, stored[0] if stored else {}


def _body_as_bytes(response: dict[str, Any]) -> dict[str, Any]:
    """A recorded response with its body as bytes, as vcrpy's loading converts it."""
    body = response["body"]["string"]
    if isinstance(body, str):
        response["body"]["string"] = body.encode("utf-8")
    return response


_SCALARS: dict[str, Callable[[yaml.CSafeLoader, yaml.ScalarNode], Any]] = {
    "tag:yaml.org,2002:int": yaml.CSafeLoader.construct_yaml_int,
    "tag:yaml.org,2002:bool": yaml.CSafeLoader.construct_yaml_bool,
    "tag:yaml.org,2002:null": yaml.CSafeLoader.construct_yaml_null,
    "tag:yaml.org,2002:float": yaml.CSafeLoader.construct_yaml_float,
}


class _NotPlain(Exception):
    """A node that only vcrpy's loader knows how to build (a tag, a merge key)."""


def _plain(text: str) -> Any:
    """``text`` as vcrpy's YAML loader reads a cassette without tags: libyaml parses it, and
    the nodes become strings, numbers, lists and dicts without the loader's generic
    machinery, which takes longer than the parsing itself."""
    loader = yaml.CSafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise _NotPlain("no document")

        def build(node: yaml.Node) -> Any:
            if node.tag == "tag:yaml.org,2002:str":
                return node.value
            if node.tag == "tag:yaml.org,2002:map":
                return {build(key): build(value) for key, value in node.value}
            if node.tag == "tag:yaml.org,2002:seq":
                return [build(item) for item in node.value]
            scalar = _SCALARS.get(node.tag)
            if scalar is None or not isinstance(node, yaml.ScalarNode):
                raise _NotPlain(node.tag)
            return scalar(loader, node)

        return build(root)
    finally:
        loader.dispose()


@functools.cache
def _whole_cassettes() -> Any:
    """vcrpy's file persister, refusing a cassette it cannot read whole.

    vcrpy itself would treat an undecodable file as empty, and let a YAML error through as
    whatever the parser raised; here either is a BrokenCassette that names the file.
    """
    from vcr.persisters.filesystem import (  # noqa: PLC0415
        CassetteNotFoundError,
        FilesystemPersister,
    )

    class WholeCassettes(FilesystemPersister):  # type: ignore[misc]
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

    return WholeCassettes


def _checked(data: Any) -> Any:
    """A parsed cassette, if whole; one cut short loses its last key, ``version`` (keys are
    sorted)."""
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ValueError("it does not end with 'version: 1', as a whole cassette does")
    if not isinstance(data.get("interactions"), list):
        raise ValueError("it has no list of 'interactions'")
    return data


def _checked_yaml() -> SimpleNamespace:
    """vcrpy's YAML serializer, refusing a cassette that is not whole (``_checked``)."""
    from vcr.serializers import yamlserializer  # noqa: PLC0415

    return SimpleNamespace(
        deserialize=lambda text: _checked(yamlserializer.deserialize(text)),
        serialize=yamlserializer.serialize,
    )


def _in_short(error: BaseException, width: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= width else text[:width] + "…"
