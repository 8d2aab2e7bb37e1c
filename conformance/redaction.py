"""Keep secrets out of everything the suite writes: cassettes, results, reports, logs.

Two nets, because either alone leaks: headers and query parameters whose *name* says they
carry a credential are dropped or blanked, and every known secret *value* is replaced
wherever it shows up (a gateway that echoes the key in an error, a header with an
innocent name, a log line), including its URL-encoded and JSON-escaped spellings.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

REDACTED = "<redacted>"
#: Shorter values are not replaced wherever they occur: a key of "1" or "local" would
#: garble every text it meets, and is no secret. Their headers still go by name.
MIN_SECRET_LENGTH = 8

# Header and query-parameter names that carry credentials in some server or gateway:
# Authorization (OpenAI), api-key (Azure), x-api-key (Anthropic-style gateways), cookies,
# and anything that calls itself a key, token, secret or signature.
_SECRET_NAME = re.compile(
    r"(^authorization$|^proxy-authorization$|cookie|api[-_]?key|[-_]key$|^key$|token|secret|"
    r"signature|password|credential)",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """True for a header or query-parameter name that may carry a credential."""
    return bool(_SECRET_NAME.search(name.strip()))


def headers(
    items: Mapping[str, str] | Iterable[tuple[str, str]], secrets: Iterable[str] = ()
) -> dict[str, str]:
    """Headers with every secret-bearing one removed, names lower-cased, known secrets replaced."""
    pairs = items.items() if isinstance(items, Mapping) else items
    known = spellings(secrets)
    return {
        name.lower(): _replace(value, known) for name, value in pairs if not is_secret_name(name)
    }


def url(address: str, secrets: Iterable[str] = ()) -> str:
    """A URL with secret-bearing query parameters blanked and known secrets replaced."""
    parts = urlsplit(address)
    if parts.query:
        query = [
            (name, REDACTED if is_secret_name(name) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        address = urlunsplit(parts._replace(query=urlencode(query, safe="<>")))
    return text(address, secrets)


def text(value: str, secrets: Iterable[str]) -> str:
    """``value`` with every occurrence of each known secret (in any spelling) replaced."""
    return _replace(value, spellings(secrets))


def data(value: Any, secrets: Iterable[str]) -> Any:
    """JSON-like ``value`` with known secrets replaced in every string, keys included."""
    known = spellings(secrets)
    if not known:
        return value

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return _replace(item, known)
        if isinstance(item, Mapping):
            return {walk(key): walk(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [walk(inner) for inner in item]
        return item

    return walk(value)


def spellings(secrets: Iterable[str]) -> list[str]:
    """Each secret as written, URL-encoded and JSON-escaped; longest first, so that a secret
    that contains another is replaced whole."""
    found: set[str] = set()
    for secret in secrets:
        if len(secret) < MIN_SECRET_LENGTH:
            continue
        found.update(
            {
                secret,
                quote(secret, safe=""),
                quote(secret),
                quote_plus(secret),
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
            }
        )
    found.discard("")
    return sorted(found, key=lambda s: (-len(s), s))


def _replace(value: str, known: Sequence[str]) -> str:
    for secret in known:
        if secret in value:
            value = value.replace(secret, REDACTED)
    return value


class _LogScrubber:
    """A log-record factory that replaces known secrets in every record's message.

    A factory, not a filter: filters see only records of the logger they sit on, while
    httpx, httpcore and the openai SDK log under their own names (and httpcore logs whole
    response headers at DEBUG).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._known: list[str] = []
        self._previous: Any = None

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s)
            self._known = spellings(self._secrets)
            if self._previous is None and self._known:
                self._previous = logging.getLogRecordFactory()
                logging.setLogRecordFactory(self._make)

    def clear(self) -> None:
        with self._lock:
            if self._previous is not None and logging.getLogRecordFactory() == self._make:
                logging.setLogRecordFactory(self._previous)
            self._previous = None
            self._secrets.clear()
            self._known = []

    def _make(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        make = self._previous or logging.LogRecord  # cleared meanwhile by another thread
        record: logging.LogRecord = make(*args, **kwargs)
        known = self._known
        if not known:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the logger's problem, not ours
            return record
        scrubbed = _replace(message, known)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text, so the traceback is rendered (and scrubbed) once here.
            record.exc_text = _replace(logging.Formatter().formatException(record.exc_info), known)
        return record


_SCRUBBER = _LogScrubber()


def scrub_logs(secrets: Iterable[str]) -> None:
    """Replace ``secrets`` in every log record created from now on, whatever its logger."""
    _SCRUBBER.add(secrets)


def stop_scrubbing_logs() -> None:
    """Undo ``scrub_logs`` (the suite calls it when a run ends)."""
    _SCRUBBER.clear()
