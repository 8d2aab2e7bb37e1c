"""Log probabilities: chat's logprobs / top_logprobs and legacy completions' integer logprobs.

The shape checks are pure functions of the reply's logprobs objects and its text, so they
are tested on their own; a probe only sends, collects and names the outcome.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from conformance.observation import Check, Observation
from conformance.probes.choices import ChoiceView, choices
from conformance.probes.registry import ProbeContext, probe

#: Problems named in a summary; the rest are counted.
SHOWN_PROBLEMS = 3
#: A log probability may come out a hair above 0 from floating-point error.
LOGPROB_SLACK = 1e-4
LEGACY_FIELDS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


def _is_logprob(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value <= LOGPROB_SLACK
    )


def _is_byte_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(byte, int) and not isinstance(byte, bool) and 0 <= byte < 256 for byte in value
    )


def _describe(value: Any) -> str:
    return f"keys {sorted(value)}" if isinstance(value, dict) else type(value).__name__


def chat_entries(objects: Sequence[Any]) -> tuple[list[Any], list[str]]:
    """The ``content`` entries of a choice's logprobs objects, and what is wrong with them."""
    entries: list[Any] = []
    problems: list[str] = []
    for obj in objects:
        content = obj.get("content") if isinstance(obj, dict) else None
        if not isinstance(content, list):
            problems.append(f"logprobs has no content list ({_describe(obj)})")
            continue
        entries.extend(content)
    return entries, problems


def chat_logprobs_problems(objects: Sequence[Any], content: str, top: int) -> list[str]:
    """What keeps a chat choice's logprobs from OpenAI's shape; empty when they have it.

    OpenAI's shape: ``{"content": [{"token", "logprob", "bytes", "top_logprobs"}, ...]}``
    with ``top`` alternatives per token, and the tokens joining to the message content.
    In a stream each chunk carries the entries of its own tokens.
    """
    entries, problems = chat_entries(objects)
    for position, entry in enumerate(entries):
        where = f"content[{position}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} is not an object")
            continue
        if not isinstance(entry.get("token"), str):
            problems.append(f"{where}.token is not a string")
        if not _is_logprob(entry.get("logprob")):
            problems.append(f"{where}.logprob is not a log probability: {entry.get('logprob')!r}")
        if "bytes" not in entry or not (entry["bytes"] is None or _is_byte_list(entry["bytes"])):
            problems.append(f"{where}.bytes is missing or not a list of bytes")
        alternatives = entry.get("top_logprobs")
        if not isinstance(alternatives, list):
            problems.append(f"{where}.top_logprobs is not a list")
        elif len(alternatives) != top:
            problems.append(f"{where}.top_logprobs has {len(alternatives)} entries, not {top}")
        elif not all(
            isinstance(a, dict)
            and isinstance(a.get("token"), str)
            and _is_logprob(a.get("logprob"))
            for a in alternatives
        ):
            problems.append(f"{where}.top_logprobs entries lack a token or a logprob")
    if not problems:
        joined = "".join(entry["token"] for entry in entries)
        if joined != content:
            problems.append(f"the tokens join to {joined!r}, not to the content {content!r}")
    return problems


def legacy_logprobs_problems(objects: Sequence[Any], text: str, top: int) -> list[str]:
    """What keeps a completion choice's logprobs from the legacy shape; empty when they have it.

    The legacy shape: parallel lists ``tokens``, ``token_logprobs``, ``top_logprobs`` (maps of
    ``top`` or ``top + 1`` tokens, as the sampled token is always included) and
    ``text_offset``, where each offset is the previous one plus the previous token's length,
    and the tokens join to the text. In a stream each chunk carries its own tokens.
    """
    lists: dict[str, list[Any]] = {name: [] for name in LEGACY_FIELDS}
    problems: list[str] = []
    for obj in objects:
        if not isinstance(obj, dict) or not all(isinstance(obj.get(n), list) for n in lists):
            problems.append(
                f"logprobs lacks the lists {', '.join(LEGACY_FIELDS)} ({_describe(obj)})"
            )
            continue
        if len({len(obj[name]) for name in lists}) != 1:
            lengths = {name: len(obj[name]) for name in lists}
            problems.append(f"the lists differ in length: {lengths}")
            continue
        for name, collected in lists.items():
            collected.extend(obj[name])
    if problems:
        return problems
    tokens, offsets = lists["tokens"], lists["text_offset"]
    if not all(isinstance(token, str) for token in tokens):
        problems.append("a token is not a string")
    if not all(_is_logprob(value) for value in lists["token_logprobs"]):
        problems.append("a token_logprobs value is not a log probability")
    for position, alternatives in enumerate(lists["top_logprobs"]):
        if not isinstance(alternatives, dict) or not all(
            _is_logprob(value) for value in alternatives.values()
        ):
            problems.append(f"top_logprobs[{position}] is not a map of token to logprob")
        elif len(alternatives) not in (top, top + 1):
            problems.append(
                f"top_logprobs[{position}] has {len(alternatives)} tokens, not {top} or {top + 1}"
            )
    if not all(isinstance(offset, int) and not isinstance(offset, bool) for offset in offsets):
        problems.append("a text_offset is not an integer")
    if problems:
        return problems
    for position in range(1, len(tokens)):
        step = offsets[position] - offsets[position - 1]
        if step != len(tokens[position - 1]):
            problems.append(
                f"text_offset[{position}] is {offsets[position]}, not {offsets[position - 1]} "
                f"+ len({tokens[position - 1]!r})"
            )
            break
    joined = "".join(tokens)
    if joined != text:
        problems.append(f"the tokens join to {joined!r}, not to the text {text!r}")
    return problems


def _summarise(problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    return shown + (f" (and {more} more)" if more > 0 else "")


def _first_choice(ctx: ProbeContext, found: dict[int, ChoiceView]) -> ChoiceView:
    if 0 not in found:
        raise ctx.fail(f"no choice 0 in the reply (choices {sorted(found)})")
    return found[0]


@probe("chat_logprobs", outcomes={"honoured", "ignored", "rejected", "malformed"})
def chat_logprobs(ctx: ProbeContext) -> Observation:
    """Ask for logprobs with ``top_logprobs`` alternatives and check the shape against the text."""
    top = int(ctx.params["top_logprobs"])
    reply = ctx.send("with-logprobs", ctx.body(logprobs=True, top_logprobs=top))
    if not reply.ok:
        return ctx.observe("rejected", f"logprobs was refused with {reply.refusal}")
    choice = _first_choice(ctx, choices(reply).by_index)
    if not choice.logprobs:
        return ctx.observe("ignored", "accepted, but the choice carries no logprobs")
    problems = chat_logprobs_problems(choice.logprobs, choice.text, top)
    if problems:
        return ctx.observe("malformed", _summarise(problems))
    entries, _ = chat_entries(choice.logprobs)
    return ctx.observe(
        "honoured",
        f"{len(entries)} content entries with {top} top_logprobs each, joining to the content",
    )


@probe(
    "top_logprobs_limit",
    outcomes={"rejected", "up_to_5", "between_6_and_19", "up_to_20", "above_20"},
)
def top_logprobs_limit(ctx: ProbeContext) -> Observation:
    """Try the ``ladder`` of top_logprobs values in increasing order; the first one refused
    names the outcome (each step says which), and ``all_accepted`` names it when none is.

    ``logprobs: true`` alone is sent first: where logprobs themselves are refused, or come
    back as none at all, the range of top_logprobs says nothing. Each accepted value is checked for that many alternatives
    per token (a secondary finding: a server may accept a value and return fewer).
    """
    alone = ctx.require_ok(
        ctx.send("logprobs-only", ctx.body(logprobs=True)), "logprobs: true alone"
    )
    if not any(view.logprobs for view in choices(alone).by_index.values()):
        raise ctx.not_applicable(
            "logprobs: true alone returns no logprobs at all, so the range of top_logprobs "
            "it accepts says nothing"
        )
    checks: list[Check] = []
    accepted: list[int] = []
    for step in ctx.params["ladder"]:
        value = int(step["top_logprobs"])
        reply = ctx.send(f"top_logprobs-{value}", ctx.body(logprobs=True, top_logprobs=value))
        if not reply.ok:
            so_far = f"; accepted {accepted}" if accepted else ""
            return ctx.observe(
                str(step["refused"]),
                f"top_logprobs={value} was refused with {reply.refusal}{so_far}",
                checks,
            )
        accepted.append(value)
        first = _first_choice(ctx, choices(reply).by_index)
        checks.append(_alternatives_check(first.logprobs, value))
    return ctx.observe(str(ctx.params["all_accepted"]), f"accepted every value {accepted}", checks)


def _alternatives_check(objects: Sequence[Any], value: int) -> Check:
    entries, problems = chat_entries(objects)
    counts = sorted({len(e.get("top_logprobs") or []) for e in entries if isinstance(e, dict)})
    passed = bool(entries) and not problems and counts == [value]
    detail = (
        f"{value} alternatives per token"
        if passed
        else f"asked for {value}; alternatives per token: {counts or 'no logprobs returned'}"
    )
    return Check(name=f"top_logprobs-{value}-returned", passed=passed, detail=detail)


@probe("completion_logprobs", outcomes={"honoured", "ignored", "rejected", "malformed"})
def completion_logprobs(ctx: ProbeContext) -> Observation:
    """Ask for the legacy integer logprobs and check the parallel lists against the text."""
    top = int(ctx.params["logprobs"])
    reply = ctx.send("with-logprobs", ctx.body(logprobs=top))
    if not reply.ok:
        return ctx.observe("rejected", f"logprobs={top} was refused with {reply.refusal}")
    choice = _first_choice(ctx, choices(reply).by_index)
    if not choice.logprobs:
        return ctx.observe("ignored", "accepted, but the choice carries no logprobs")
    problems = legacy_logprobs_problems(choice.logprobs, choice.text, top)
    if problems:
        return ctx.observe("malformed", _summarise(problems))
    return ctx.observe(
        "honoured",
        f"tokens, token_logprobs, top_logprobs and text_offset fit the text {choice.text!r}",
    )
