"""Replay a case's cassette through the transport of its own HTTP client.

A replay reads the case's vcrpy cassette and hands it to the SDK's client as its transport
(``Tape``): requests match with vcrpy's matchers (method, path and JSON body), each recorded
interaction is played once, first come first served, as vcrpy plays them, and each response
reaches the SDK as vcrpy serves it, the whole body in one chunk. Nothing is patched, so no
other client in the process is affected, and a replayed case has no way to the network.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2
import yaml
from vcr import matchers
from vcr.cassette import Cassette
from vcr.errors import CannotOverwriteExistingCassetteException, MissingMetadataError
from vcr.persisters.filesystem import CassetteNotFoundError, FilesystemPersister
from vcr.record_mode import RecordMode
from vcr.request import Request
from vcr.serializers import compat, yamlserializer

from conformance.observation import BrokenCassette, ReplayMismatch

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


#: What requests match on, in a replay and in a recording: a cassette recorded against a
#: server on one port replays against a target configured for another.
MATCH_ON = (matchers.method, matchers.path, match_json_body)


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
            cassette = self._as_vcrpy()
            raise _mismatch(MissingMetadataError(cassette=cassette, key=METADATA_KEY))
        #: What the recording stored beside the interactions (server version, time).
        self.metadata: dict[str, Any] = stored[METADATA_KEY] or {}

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """The recorded response to ``request``; ReplayMismatch if there is none."""
        incoming = Request(request.method, str(request.url), request.read(), request.headers)
        for index, recorded in enumerate(self._requests):
            if not self._played[index] and _matches(incoming, recorded):
                self._played[index] += 1
                return _response(self._responses[index])
        raise _mismatch(
            CannotOverwriteExistingCassetteException(
                cassette=self._as_vcrpy(), failed_request=incoming
            )
        )

    def _as_vcrpy(self) -> Cassette:
        """This tape as vcrpy's cassette, played as far as this one, for vcrpy's messages."""
        cassette = Cassette.load(
            path=str(self.path),
            serializer=_CHECKED_YAML,
            persister=_WholeCassettes,
            record_mode=RecordMode.NONE,
            match_on=MATCH_ON,
        )
        cassette.play_counts = Counter(self._played)
        return cassette


def _matches(incoming: Request, recorded: Request) -> bool:
    """vcrpy's decision on a pair: a matcher finds a difference by raising AssertionError,
    or by returning a false value other than None."""
    for matcher in MATCH_ON:
        try:
            found = matcher(incoming, recorded)
        except AssertionError:
            return False
        if found is not None and not found:
            return False
    return True


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


def _mismatch(error: CannotOverwriteExistingCassetteException) -> ReplayMismatch:
    """vcrpy's first line on a request it cannot play: what differs, or what is missing."""
    return ReplayMismatch(str(error).splitlines()[0])


def _read(path: Path) -> tuple[list[Request], list[dict[str, Any]], dict[str, Any]]:
    """The recorded requests, their responses, and the metadata of the cassette at ``path``.

    The YAML is parsed the quick way (``_plain``); whatever that does not read whole,
    vcrpy's own reading decides: it reads the rare cassette with tags, and gives its
    account of a broken one.
    """
    with contextlib.suppress(Exception):  # vcrpy's reading below says why, or reads it
        data = _checked(_plain(path.read_text(encoding="utf-8")))
        requests = [Request(**entry["request"]) for entry in data["interactions"]]
        responses = [compat.convert_to_bytes(entry["response"]) for entry in data["interactions"]]
        return requests, responses, data.get("metadata") or {}
    try:
        requests, responses, *stored = _WholeCassettes.load_cassette(str(path), _CHECKED_YAML)
    except CassetteNotFoundError:  # not a file: vcrpy's cassette is empty
        return [], [], {}
    return requests, responses, stored[0] if stored else {}


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


def _checked(data: Any) -> Any:
    """A parsed cassette, if whole; one cut short loses its last key, ``version`` (keys are
    sorted)."""
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ValueError("it does not end with 'version: 1', as a whole cassette does")
    if not isinstance(data.get("interactions"), list):
        raise ValueError("it has no list of 'interactions'")
    return data


_CHECKED_YAML = SimpleNamespace(
    deserialize=lambda text: _checked(yamlserializer.deserialize(text)),
    serialize=yamlserializer.serialize,
)


def _in_short(error: BaseException, width: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= width else text[:width] + "…"
