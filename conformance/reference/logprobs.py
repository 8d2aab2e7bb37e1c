"""Log probabilities of the toy model's tokens, rendered in OpenAI's two shapes.

Chat puts one entry per token in ``logprobs.content`` (token, logprob, bytes, top_logprobs);
legacy completions put parallel lists in ``logprobs`` (tokens, token_logprobs, top_logprobs
as {token: logprob} maps, text_offset). Log probabilities are those of the distribution the
token was drawn from, before temperature, as OpenAI reports them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from conformance.reference import model

#: Which of OpenAI's two shapes a reply's logprobs take.
Shape = Literal["chat", "legacy"]


@dataclass(frozen=True)
class Request:
    """What a request asked for: the shape to render and how many alternatives per token."""

    shape: Shape
    top: int


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log probability and the most likely tokens at its position."""

    token: int
    logprob: float
    #: (token, logprob) of the most likely tokens, best first; ties go to the lower id.
    top: tuple[tuple[int, float], ...]


def token_logprobs(
    prompt: Sequence[int], tokens: Sequence[int], sampling: model.Sampling, top: int
) -> tuple[TokenLogprob, ...]:
    """The log probability of each of ``tokens`` after ``prompt``, with ``top`` alternatives.

    Every position is scored again from the model's logits, so the numbers are those the
    token was sampled from (penalties and logit_bias included).
    """
    entries: list[TokenLogprob] = []
    for position, token in enumerate(tokens):
        row = model.logits(prompt, tokens[:position], sampling)
        peak = max(row.values())
        normaliser = peak + math.log(sum(math.exp(value - peak) for value in row.values()))
        ranked = sorted(row, key=lambda candidate: (-row[candidate], candidate))[:top]
        entries.append(
            TokenLogprob(
                token=token,
                logprob=row[token] - normaliser,
                top=tuple((candidate, row[candidate] - normaliser) for candidate in ranked),
            )
        )
    return tuple(entries)


def within(entries: Sequence[TokenLogprob], text: str) -> tuple[TokenLogprob, ...]:
    """The leading entries whose tokens lie inside ``text`` (a stop match may end it early)."""
    kept: list[TokenLogprob] = []
    length = 0
    for entry in entries:
        length += len(token_text(entry.token))
        if length > len(text):
            break
        kept.append(entry)
    return tuple(kept)


def token_text(token: int) -> str:
    """A token as text (a lone byte of a multi-byte character becomes U+FFFD)."""
    return model.detokenize([token])


def chat_content(entries: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
    """``logprobs.content`` of a chat choice: one entry per token."""

    def described(token: int, logprob: float) -> dict[str, Any]:
        return {
            "token": token_text(token),
            "logprob": logprob,
            "bytes": list(model.token_bytes(token)),
        }

    return [
        {
            **described(entry.token, entry.logprob),
            "top_logprobs": [described(token, logprob) for token, logprob in entry.top],
        }
        for entry in entries
    ]


def legacy(entries: Sequence[TokenLogprob], offset: int) -> dict[str, Any]:
    """The legacy completions ``logprobs`` object; ``offset`` is where the first token starts.

    As OpenAI does, each top_logprobs map also holds the sampled token, so it may have one
    entry more than asked for.
    """
    tokens = [token_text(entry.token) for entry in entries]
    offsets: list[int] = []
    for text in tokens:
        offsets.append(offset)
        offset += len(text)
    tops = []
    for entry in entries:
        alternatives = {token_text(token): logprob for token, logprob in entry.top}
        alternatives.setdefault(token_text(entry.token), entry.logprob)
        tops.append(alternatives)
    return {
        "tokens": tokens,
        "token_logprobs": [entry.logprob for entry in entries],
        "top_logprobs": tops,
        "text_offset": offsets,
    }


def render(shape: Shape, entries: Sequence[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    """A choice's (or a chunk's) ``logprobs`` object in ``shape``."""
    if shape == "chat":
        return {"content": chat_content(entries), "refusal": None}
    return legacy(entries, offset)
