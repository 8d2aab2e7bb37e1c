"""Keep secrets out of everything the suite writes: cassettes, results, reports, logs.

Two nets, because either alone leaks: headers and query parameters whose *name* says they
carry a credential are dropped or blanked, and every known secret *value* is replaced
wherever it shows up (a gateway that echoes the key in an error, a header with an
innocent name or one named after the key, a log line), in every spelling the suite itself
decodes: as written in any case, JSON-escaped (``\\u0073``, any mix of escaped and plain
characters), URL-encoded (``%73``, ``+`` for a space), and base64 (standard or URL-safe, the
key alone, after ``Bearer `` or anywhere inside a longer encoded value); and what is left of
a key where an excerpt cut it short.
"""

from __future__ import annotations

import base64
import functools
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

#: JSON's two-character escapes, by the character they stand for.
_JSON_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}

#: The start of a ``\\u0030`` or ``%30`` that a match may begin inside of, when a key
#: starts with a hex digit: the redaction then takes the whole escape, not to break the
#: JSON or URL around it.
_ESCAPE_START = re.compile(r"(?:\\u[0-9a-fA-F]{0,3}|%[0-9a-fA-F]?)\Z")


@functools.lru_cache(maxsize=1024)  # the same few dozen header names, for every exchange
def is_secret_name(name: str) -> bool:
    """True for a header or query-parameter name that may carry a credential."""
    return bool(_SECRET_NAME.search(name.strip()))


def headers(
    items: Mapping[str, str] | Iterable[tuple[str, str]], secrets: Iterable[str] = ()
) -> dict[str, str]:
    """Headers with every secret-bearing one removed, names lower-cased, known secrets
    replaced in names and values alike."""
    pairs = items.items() if isinstance(items, Mapping) else items
    known = _matcher(secrets)
    return {
        _replace(name.lower(), known): _replace(value, known)
        for name, value in pairs
        if not is_secret_name(name)
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
    return _replace(value, _matcher(secrets))


def data(value: Any, secrets: Iterable[str]) -> Any:
    """JSON-like ``value`` with known secrets replaced in every string, keys included."""
    known = _matcher(secrets)
    if known is None:
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


def _matcher(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for every spelling of every secret long enough to be one; None if none is."""
    return _compile(frozenset(s for s in secrets if len(s) >= MIN_SECRET_LENGTH))


@functools.lru_cache(maxsize=64)
def _compile(secrets: frozenset[str]) -> re.Pattern[str] | None:
    if not secrets:
        return None
    forms = [_spelled(secret) for secret in secrets]
    forms += [re.escape(core) for secret in secrets for core in _base64_cores(secret)]
    # Longest first, so that a secret that contains another is replaced whole; a secret
    # cut short by an excerpt last, as it matches only where the text is cut.
    forms.sort(key=lambda form: (-len(form), form))
    forms += [_cut_short(secret) for secret in secrets]
    return re.compile("|".join(forms))


def _spelled(secret: str) -> str:
    """A pattern for ``secret`` in which each character may be written as is (in either
    case: header names reach cassettes and logs lower-cased), JSON-escaped or URL-encoded
    (hex digits in either case), independently of the others."""
    return "".join(_character(char) for char in secret)


def _cut_short(secret: str) -> str:
    """A pattern for the first MIN_SECRET_LENGTH or more characters of ``secret`` where a
    text ends or is marked as cut (``...``, ``…``): an excerpt that ends inside a key."""
    groups = [_character(char) for char in secret]
    head = "".join(groups[:MIN_SECRET_LENGTH])
    tail = "".join(f"(?:{group}" for group in groups[MIN_SECRET_LENGTH:-1])
    tail += ")?" * (len(secret) - MIN_SECRET_LENGTH - 1)
    return head + tail + r"(?=\.\.\.|…|\Z)"


def _character(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:  # JSON writes it as a surrogate pair
        high, low = divmod(code - 0x10000, 0x400)
        escaped = f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"
    else:
        escaped = f"\\u{code:04x}"
    options = [
        _either_case(char),
        _either_case(escaped),
        _either_case("".join(f"%{b:02x}" for b in char.encode(errors="surrogatepass"))),
    ]
    if char in _JSON_SHORT_ESCAPES:
        options.append(re.escape(_JSON_SHORT_ESCAPES[char]))
    if char == " ":
        options.append(r"\+")
    return "(?:" + "|".join(options) + ")"


def _either_case(literal: str) -> str:
    # Character classes rather than re.IGNORECASE, which makes every search three times slower.
    return "".join(
        f"[{re.escape(char)}{re.escape(char.swapcase())}]"
        if len(char.swapcase()) == 1 and char.swapcase() != char
        else re.escape(char)
        for char in literal
    )


def _base64_cores(secret: str) -> set[str]:
    """The base64 characters that ``secret`` alone decides, at each of the three byte
    alignments it can have inside a longer encoded value (``Bearer KEY`` is one of them),
    in the standard and the URL-safe alphabet. Padding and the characters shared with the
    neighbouring bytes are left out, so a match needs neither."""
    raw = secret.encode(errors="surrogatepass")
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        first = -(-8 * offset // 6)  # the first character made of the secret's bits alone
        last = 8 * (offset + len(raw)) // 6  # one past the last such character
        core = encoded[first:last]
        cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


def _replace(value: str, known: re.Pattern[str] | None) -> str:
    if known is None:
        return value
    pieces = []
    done = 0
    for match in known.finditer(value):
        start = match.start()
        inside = _ESCAPE_START.search(value, max(done, start - 5), start)
        pieces += [value[done : inside.start() if inside else start], REDACTED]
        done = match.end()
    return "".join(pieces) + value[done:] if pieces else value


class _LogScrubber:
    """A log-record factory that replaces known secrets in every record's message.

    A factory, not a filter: filters see only records of the logger they sit on, while
    httpx, httpcore and the openai SDK log under their own names (and httpcore logs whole
    response headers at DEBUG).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._known: re.Pattern[str] | None = None
        self._previous: Any = None

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s)
            self._known = _matcher(self._secrets)
            if self._previous is None and self._known:
                self._previous = logging.getLogRecordFactory()
                logging.setLogRecordFactory(self._make)

    def clear(self) -> None:
        with self._lock:
            if self._previous is not None and logging.getLogRecordFactory() == self._make:
                logging.setLogRecordFactory(self._previous)
            self._previous = None
            self._secrets.clear()
            self._known = None

    def _make(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        make = self._previous or logging.LogRecord  # cleared meanwhile by another thread
        record: logging.LogRecord = make(*args, **kwargs)
        known = self._known
        if known is None:
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
