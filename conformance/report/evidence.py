"""The exchanges behind the report's cells, made light enough to hold every one in a page.

Three kinds of repetition make up most of a replay's evidence, and each is shown once:

- the request headers the SDK sends are the same on every request of a target and API:
  they are listed once per target and API, and each exchange lists only its own;
- a stream's ``data:`` lines repeat the same envelope (id, model, created...) around a few
  changed characters: each line after the first shows what changed, with ``⋯`` standing
  for the text it shares with the ``data:`` line before it;
- a body is shown once, as it was received (no pretty copy beside the raw one).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from markupsafe import Markup

from conformance.results import CaseResult

#: Stands for text that a stream line shares with the ``data:`` line before it.
FOLD = "⋯"
#: Shared runs shorter than this are shown: hiding them would save less than it obscures.
MIN_FOLD = 16
#: Where a shown part may begin (just after one of these) and a folded tail may begin (at
#: one of these), so that the parts cut are whole JSON keys and values.
_OPENERS = ",{["
_CLOSERS = ",}]"

Headers = dict[str, str]


class Stream(NamedTuple):
    """A stream's lines as shown: one text, and how many of its lines are folded."""

    text: str
    folded: int


def text(value: str) -> Markup:
    """``value`` escaped for an element's content, where only ``&``, ``<`` and ``>`` mean
    anything: quotes stay as they are, which keeps JSON a fifth of the size. Never for an
    attribute's value (there the template's autoescaping applies)."""
    return Markup(value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def request_body(body: Any) -> str:
    """A request's JSON body on one line, as the probe sent it."""
    return json.dumps(body, ensure_ascii=False, default=str)


def header_lines(headers: Headers) -> str:
    """Headers one per line, ``name: value``."""
    return "\n".join(f"{name}: {value}" for name, value in headers.items())


def common_request_headers(cases: Iterable[CaseResult]) -> dict[tuple[str, str], Headers]:
    """By (target, API): the request headers, with their values, that every request there
    carried."""
    common: dict[tuple[str, str], Headers] = {}
    for case in cases:
        for exchange in case.evidence:
            headers = exchange.request.headers
            found = common.get((case.target, case.api))
            if found is None:
                common[case.target, case.api] = dict(headers)
            else:
                common[case.target, case.api] = {
                    name: value for name, value in found.items() if headers.get(name) == value
                }
    return common


def own_headers(headers: Headers, common: Headers) -> Headers:
    """The headers of ``headers`` that are not among the ``common`` ones."""
    return {name: value for name, value in headers.items() if common.get(name) != value}


def fold_stream(lines: Sequence[str]) -> Stream:
    """A stream's lines, the runs each ``data:`` line's value shares with the ``data:`` line
    before it folded into ``⋯``. A stream that holds ``⋯`` itself is shown as it came."""
    if any(FOLD in line for line in lines):
        return Stream("\n".join(lines), 0)
    shown: list[str] = []
    before: str | None = None
    for line in lines:
        field, colon, value = line.partition(":")
        if field != "data" or not colon:
            shown.append(line)
            continue
        shown.append(line if before is None else f"data:{_fold(before, value)}")
        before = value
    return Stream("\n".join(shown), sum(a != b for a, b in zip(shown, lines, strict=True)))


def _fold(before: str, line: str) -> str:
    """``line`` with the head and tail it shares with ``before`` folded, when long enough."""
    if line == before:
        return FOLD
    shared = _shared_head(before, line)
    start = max(line.rfind(opener, 0, shared) for opener in _OPENERS) + 1
    if start < MIN_FOLD:
        start = 0
    rest, rest_before = line[start:], before[start:]
    tail = len(rest) - _shared_tail(rest_before, rest)
    end = min(
        (at for closer in _CLOSERS if (at := rest.find(closer, tail)) >= 0), default=len(rest)
    )
    if len(rest) - end < MIN_FOLD:
        end = len(rest)
    return f"{FOLD if start else ''}{rest[:end]}{FOLD if end < len(rest) else ''}"


def _shared_head(a: str, b: str) -> int:
    """The length of the longest head ``a`` and ``b`` share (by halving: slices compare at
    C speed, characters one by one would not)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _shared_tail(a: str, b: str) -> int:
    """The length of the longest tail ``a`` and ``b`` share."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[len(a) - middle :] == b[len(b) - middle :]:
            low = middle
        else:
            high = middle - 1
    return low
