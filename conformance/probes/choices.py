"""Every choice of a reply by its index: text, finish_reason and logprobs, streamed or not.

``Reply.text`` reads only choice 0; probes of ``n``, prompt lists and logprobs need each
choice, and in a stream each choice is spread over many chunks that name its index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.probes.client import Reply


@dataclass
class ChoiceView:
    """One choice of a reply, put together from a body or from a stream's chunks."""

    index: int
    text: str = ""
    finish_reason: str | None = None
    #: How many times the choice finished: more than once where several choices share its
    #: index (a gateway that merges them).
    finishes: int = 0
    #: Every non-null ``logprobs`` object of the choice: one in a body, one per chunk in a stream.
    logprobs: list[Any] = field(default_factory=list)


@dataclass
class ChoiceSet:
    """The choices of a reply, by index."""

    by_index: dict[int, ChoiceView]
    #: Choices of a body that share an index with an earlier one (a stream may repeat an
    #: index on every chunk; a body may not).
    duplicated: list[int] = field(default_factory=list)

    @property
    def indexes(self) -> list[int]:
        """The indexes present, in order."""
        return sorted(self.by_index)

    @property
    def merged(self) -> bool:
        """True when several choices share one index: repeated in a body, or one index that
        finishes more than once in a stream."""
        return bool(self.duplicated) or any(v.finishes > 1 for v in self.by_index.values())

    def texts(self) -> list[str]:
        """Each choice's text, in index order."""
        return [self.by_index[index].text for index in self.indexes]


def _text(choice: Mapping[str, Any], holder_key: str) -> str:
    if "text" in choice:
        return str(choice.get("text") or "")
    holder = choice.get(holder_key)
    return str(holder.get("content") or "") if isinstance(holder, dict) else ""


def choices(reply: Reply) -> ChoiceSet:
    """The choices of ``reply`` by index (a missing index counts as 0, as the SDK reads it)."""
    found: dict[int, ChoiceView] = {}
    duplicated: list[int] = []
    streamed = reply.stream is not None
    raw = (
        [choice for chunk in reply.chunks for choice in chunk.get("choices") or []]
        if streamed
        else list((reply.body or {}).get("choices") or [])
    )
    for choice in raw:
        index = choice.get("index", 0)
        if not streamed and index in found:
            duplicated.append(index)
            continue
        view = found.setdefault(index, ChoiceView(index))
        view.text += _text(choice, "delta" if streamed else "message")
        if choice.get("finish_reason"):
            view.finish_reason = str(choice["finish_reason"])
            view.finishes += 1
        if choice.get("logprobs") is not None:
            view.logprobs.append(choice["logprobs"])
    return ChoiceSet(found, duplicated)
