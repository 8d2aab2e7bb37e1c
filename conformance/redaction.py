"""Keep secrets out of everything the suite writes: cassettes, results, reports, logs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "<redacted>"

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


def headers(items: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers with every secret-bearing one removed, names lower-cased."""
    pairs = items.items() if isinstance(items, Mapping) else items
    return {name.lower(): value for name, value in pairs if not is_secret_name(name)}


def url(address: str) -> str:
    """A URL with secret-bearing query parameters replaced by a placeholder."""
    parts = urlsplit(address)
    if not parts.query:
        return address
    query = [
        (name, REDACTED if is_secret_name(name) else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="<>")))


def text(value: str, secrets: Iterable[str]) -> str:
    """``value`` with every occurrence of each known secret replaced."""
    for secret in secrets:
        if secret:
            value = value.replace(secret, REDACTED)
    return value
