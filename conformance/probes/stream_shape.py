"""Probes of a stream's shape: its SSE framing, where deltas carry the role, and whether
keys without a value are sent as null."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.observation import Check, Observation
from conformance.probes.client import Reply
from conformance.probes.registry import ProbeContext, probe

# --------------------------------------------------------------------------- framing


@dataclass(frozen=True)
class Framing:
    """What framed a stream's events besides its data lines, and how it ended."""

    comments: int
    #: Field lines other than data, by field name (event, id, retry, or any other name).
    fields: Counter[str]
    done: bool
    #: ``data: null`` events.
    nulls: int = 0

    @property
    def outcome(self) -> str:
        """strict, comments, event_fields, null_events or done_missing, the larger departure
        first: a client that waits for [DONE] never ends, one that reads every data line as a
        chunk meets a null, one that reads fields may misread events."""
        if not self.done:
            return "done_missing"
        if self.nulls:
            return "null_events"
        if self.fields:
            return "event_fields"
        return "comments" if self.comments else "strict"


def framing(lines: Iterable[str], comments: int, *, done: bool = True, nulls: int = 0) -> Framing:
    """The framing of a stream from its SSE lines; ``comments`` is the reader's own count
    (the evidence may stand an excerpt marker, itself a comment line, for omitted lines),
    ``done`` whether it read data: [DONE] and ``nulls`` how many data: null events it
    skipped."""
    fields: Counter[str] = Counter()
    for line in lines:
        if line == "" or line.startswith(":"):
            continue
        name = line.partition(":")[0]
        if name != "data":
            fields[name] += 1
    return Framing(comments=comments, fields=fields, done=done, nulls=nulls)


@probe(
    "stream_framing",
    outcomes={"strict", "comments", "event_fields", "null_events", "done_missing"},
)
def stream_framing(ctx: ProbeContext) -> Observation:
    """Stream one request and classify the lines around its data lines, and its end.

    The client has already refused a stream cut off before every choice finished, data
    after [DONE] and data that is not JSON; what reaches here is a complete stream.
    """
    reply = ctx.require_ok(ctx.send("stream", ctx.body(stream=True)), "a plain stream")
    assert reply.stream is not None  # a streamed 2xx always has one
    response = reply.exchange.response
    lines = (response.sse or []) if response is not None else []
    found = framing(lines, reply.stream.comments, done=reply.stream.done, nulls=reply.stream.nulls)
    names = ", ".join(f"{name}: x{count}" for name, count in sorted(found.fields.items()))
    summary = (
        f"{len(reply.chunks)} data events, {found.comments} comment line(s)"
        + (f", other fields {names}" if names else "")
        + (f", {found.nulls} data: null event(s) skipped" if found.nulls else "")
        + ("; [DONE] last" if found.done else "; no [DONE] after the last finish_reason")
    )
    return ctx.observe(found.outcome, summary)


# --------------------------------------------------------------------------- role


def role_placement(deltas: Sequence[dict[str, Any]]) -> str | None:
    """first_chunk, every_chunk or missing for a choice's deltas in order; None when none
    of them fits (the role first on a later delta, or on some content deltas only)."""
    with_role = {i for i, delta in enumerate(deltas) if isinstance(delta.get("role"), str)}
    content = {i for i, delta in enumerate(deltas) if delta.get("content")}
    if not with_role:
        return "missing"
    if with_role == {0}:
        return "first_chunk"
    if content <= with_role:
        return "every_chunk"
    return None


@probe("delta_role", outcomes={"first_chunk", "every_chunk", "missing"})
def delta_role(ctx: ProbeContext) -> Observation:
    """Stream one chat request and find the deltas of the first choice that carry a role."""
    reply = ctx.require_ok(ctx.send("stream", ctx.body(stream=True)), "a plain stream")
    deltas = [choice.get("delta") or {} for choice in _choices(reply, index=0)]
    content = [i for i, delta in enumerate(deltas) if delta.get("content")]
    if len(content) < 2:
        raise ctx.not_applicable(
            f"the stream has {len(content)} content delta(s); two are needed to tell a role "
            "on the first delta from a role on every delta"
        )
    carrying = [i for i, delta in enumerate(deltas) if isinstance(delta.get("role"), str)]
    where = f"role on delta(s) {carrying} of {len(deltas)}; content on {content}"
    placement = role_placement(deltas)
    if placement is None:
        raise ctx.fail(f"no declared outcome fits: {where}")
    roles = {deltas[i]["role"] for i in carrying}
    check = Check(
        name="role-is-assistant",
        passed=roles <= {"assistant"},
        detail=f"roles sent: {sorted(roles) or 'none'}",
    )
    return ctx.observe(placement, where, checks=[check])


# --------------------------------------------------------------------------- nulls

_PATH_PART = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?P<each>\[\])?$")


def valueless(item: Any, path: str) -> Iterator[bool]:
    """For every place ``path`` (``choices[].finish_reason``) names in ``item`` whose key has
    no value: True when the key is there as null, False when it is left out. A place whose
    key has a value, or whose holder is missing, gives nothing."""
    *holders, last = path.split(".")
    found: list[Any] = [item]
    for part in holders:
        match = _PATH_PART.match(part)
        if match is None:
            raise ValueError(f"not a field path: {path!r}")
        inner = [node.get(match["key"]) for node in found if isinstance(node, dict)]
        found = (
            [element for node in inner if isinstance(node, list) for element in node]
            if match["each"]
            else inner
        )
    for node in found:
        if not isinstance(node, dict):
            continue
        if last not in node:
            yield False
        elif node[last] is None:
            yield True


def nulls_outcome(sent_as_null: Iterable[bool]) -> str | None:
    """null, absent or mixed for the valueless keys seen; None when there were none."""
    seen = set(sent_as_null)
    if not seen:
        return None
    if seen == {True}:
        return "null"
    return "absent" if seen == {False} else "mixed"


@probe("chunk_nulls", outcomes={"null", "absent", "mixed"})
def chunk_nulls(ctx: ProbeContext) -> Observation:
    """Stream one request and look at the params' keys wherever they have no value."""
    paths = [str(path) for path in ctx.params["fields"][str(ctx.api)]]
    reply = ctx.require_ok(ctx.send("stream", ctx.body(stream=True)), "a plain stream")
    per_path = {
        path: [kept for chunk in reply.chunks for kept in valueless(chunk, path)] for path in paths
    }
    outcome = nulls_outcome(kept for seen in per_path.values() for kept in seen)
    if outcome is None:
        raise ctx.not_applicable(f"no chunk left any of {paths} without a value")
    summary = "; ".join(
        f"{path}: null x{seen.count(True)}, absent x{seen.count(False)}"
        for path, seen in per_path.items()
    )
    return ctx.observe(outcome, summary)


def _choices(reply: Reply, index: int) -> Iterator[dict[str, Any]]:
    for chunk in reply.chunks:
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == index:
                yield choice
