"""The exchanges behind the report's cells, made light enough to hold every one in a page.

Three kinds of repetition make up most of a replay's evidence, and each is shown once:

- the request headers the SDK sends are the same on every request of a target and API,
  and a server sends the same ones with every response of one status: they are listed once
  per group, and each exchange lists only its own;
- a stream's ``data:`` lines repeat the same envelope (id, model, created...) around a few
  changed characters: each line after the first shows what changed, with ``⋯`` standing
  for the text it shares with the ``data:`` line before it;
- a body is shown once, as it was received (no pretty copy beside the raw one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher
from typing import Any, NamedTuple

from markupsafe import Markup

from conformance.observation import ResponseRecord
from conformance.results import CaseResult

#: Stands for text that a stream line shares with the ``data:`` line before it.
FOLD = "⋯"
#: Shared runs shorter than this are shown: hiding them would save less than it obscures.
MIN_FOLD = 16
#: Splits JSON text into tokens that begin a key or value, or close an object or array.
_TOKEN = re.compile(r"(?<=[,{\[])|(?=[}\]])")

Headers = dict[str, str]
#: Requests or responses whose common headers are shown once (see ``request_group``).
HeaderGroup = tuple[str, ...]
_STREAMED = {True: "stream", False: "body"}


class Stream(NamedTuple):
    """A stream's lines as shown: one text, and how many of its lines are folded."""

    text: str
    folded: int


def text(value: str) -> Markup:
    """``value`` escaped for an element's content, where only ``&``, ``<`` and ``>`` mean
    anything: quotes stay as they are (``&#34;`` would cost JSON four bytes a quote). Never
    for an attribute's value (there the template's autoescaping applies)."""
    return Markup(value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def request_body(body: Any) -> str:
    """A request's JSON body as the SDK sends it: compact, on one line."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)


def header_lines(headers: Headers) -> str:
    """Headers one per line, ``name: value``."""
    return "\n".join(f"{name}: {value}" for name, value in headers.items())


def request_group(case: CaseResult) -> HeaderGroup:
    """Where a request's common headers are shown: its target and API."""
    return (case.target, case.api)


def response_group(case: CaseResult, response: ResponseRecord) -> HeaderGroup:
    """Where a response's common headers are shown: its target, API, status, and whether it
    streamed (servers send other headers with a stream, and with an error)."""
    return (case.target, case.api, str(response.status), _STREAMED[response.sse is not None])


def group_label(group: HeaderGroup) -> str:
    """``vllm · chat`` for requests, ``vllm · chat · 200 stream`` for responses."""
    return " · ".join(group[:2]) + (f" · {' '.join(group[2:])}" if len(group) > 2 else "")


def common_headers(cases: Iterable[CaseResult]) -> dict[HeaderGroup, Headers]:
    """By group (``request_group``, ``response_group``): the headers, with their values,
    that every request or response of the group carried."""
    common: dict[HeaderGroup, Headers] = {}

    def meet(group: HeaderGroup, headers: Headers) -> None:
        found = common.get(group)
        if found is None:
            common[group] = dict(headers)
        else:
            common[group] = {
                name: value for name, value in found.items() if headers.get(name) == value
            }

    for case in cases:
        for exchange in case.evidence:
            meet(request_group(case), exchange.request.headers)
            if exchange.response is not None:
                meet(response_group(case, exchange.response), exchange.response.headers)
    return common


def own_headers(headers: Headers, common: Headers) -> Headers:
    """The headers of ``headers`` that are not among the ``common`` ones."""
    return {name: value for name, value in headers.items() if common.get(name) != value}


def fold_stream(lines: Sequence[str]) -> Stream:
    """A stream's lines, the runs each ``data:`` line shares with the ``data:`` line before
    it folded into ``⋯``. A stream that holds ``⋯`` itself is shown as it came."""
    if any(FOLD in line for line in lines):
        return Stream("\n".join(lines), 0)
    shown: list[str] = []
    before: str | None = None
    shared = _Shared()
    for line in lines:
        if not line.startswith("data:"):
            shown.append(line)
            continue
        shown.append(line if before is None else _fold(before, line, shared))
        before = line
    return Stream("\n".join(shown), sum(a != b for a, b in zip(shown, lines, strict=True)))


class _Shared:
    """How long a head and a tail the last two lines shared: a stream's chunks differ at the
    same places line after line, so these are the first guesses for the next two."""

    def __init__(self) -> None:
        self.head = 0
        self.tail = 0

    def head_of(self, a: str, b: str) -> int:
        """The length of the longest head ``a`` and ``b`` share."""
        self.head = _shared_head(a, b, self.head)
        return self.head

    def tail_of(self, a: str, b: str) -> int:
        """The length of the longest tail ``a`` and ``b`` share."""
        self.tail = _shared_head(a[::-1], b[::-1], self.tail)
        return self.tail


def _fold(before: str, line: str, shared: _Shared) -> str:
    """``line`` with the runs it shares with ``before`` folded, where long enough: its head
    and tail first (fast), then any run in a middle that is still long. A shown part begins
    just after a ``,`` ``{`` or ``[`` and a folded tail at a ``,`` ``}`` or ``]``, so that
    what is cut out is whole JSON keys and values."""
    if line == before:
        return FOLD
    head = shared.head_of(before, line)
    start = max(line.rfind(",", 0, head), line.rfind("{", 0, head), line.rfind("[", 0, head))
    start += 1
    if start < MIN_FOLD:
        start = 0
    rest, rest_before = line[start:], before[start:]
    tail = len(rest) - shared.tail_of(rest_before, rest)
    ends = [
        at for at in (rest.find(",", tail), rest.find("}", tail), rest.find("]", tail)) if at >= 0
    ]
    end = min(ends, default=len(rest))
    if len(rest) - end < MIN_FOLD:
        end = len(rest)
    middle = rest[:end]
    if len(middle) > 4 * MIN_FOLD:
        middle = _fold_runs(rest_before[: len(rest_before) - (len(rest) - end)], middle)
    return f"{FOLD if start else ''}{middle}{FOLD if end < len(rest) else ''}"


def _fold_runs(before: str, line: str) -> str:
    """``line`` with every run of whole JSON tokens that it shares with ``before`` folded."""
    theirs, mine = _TOKEN.split(before), _TOKEN.split(line)
    shown: list[str] = []
    done = 0
    for block in SequenceMatcher(None, theirs, mine, autojunk=False).get_matching_blocks():
        shown += mine[done : block.b]
        run = "".join(mine[block.b : block.b + block.size])
        shown.append(FOLD if len(run) >= MIN_FOLD else run)
        done = block.b + block.size
    return "".join(shown)


def _shared_head(a: str, b: str, guess: int = 0) -> int:
    """The length of the longest head ``a`` and ``b`` share: ``guess`` if it is, else found
    by halving (slices compare at C speed, characters one by one would not)."""
    low, high = 0, min(len(a), len(b))
    if 0 < guess <= high:
        if a[:guess] != b[:guess]:
            high = guess - 1
        elif guess == high or a[guess] != b[guess]:
            return guess
        else:
            low = guess
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
