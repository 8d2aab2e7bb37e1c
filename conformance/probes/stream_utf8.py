"""utf8_split: does a stream keep characters whose UTF-8 bytes span several tokens whole?"""

from __future__ import annotations

from collections.abc import Sequence

from conformance.observation import Observation
from conformance.probes.client import Reply
from conformance.probes.registry import ProbeContext, Request, probe

REPLACEMENT = "\ufffd"


def ascii_skeleton(text: str) -> str:
    """``text`` without its non-ASCII characters: what no UTF-8 split can change."""
    return "".join(character for character in text if character.isascii())


def utf8_outcome(streamed: str, control: str) -> str | None:
    """intact when the joined deltas are the control's text; split when they differ from it
    only in non-ASCII characters; None when they differ in ASCII too (another text)."""
    if streamed == control:
        return "intact"
    if ascii_skeleton(streamed) == ascii_skeleton(control):
        return "split"
    return None


def deltas(reply: Reply) -> list[str]:
    """The first choice's text deltas, in order (empty ones left out)."""
    found: list[str] = []
    for chunk in reply.chunks:
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if "text" in choice:
                piece = choice.get("text")
            else:
                piece = (choice.get("delta") or {}).get("content")
            if isinstance(piece, str) and piece:
                found.append(piece)
    return found


def describe(pieces: Sequence[str], control: str) -> str:
    """A short account: the multi-byte characters of the control, and the deltas that hold
    replacement characters."""
    wide = sorted({character for character in control if len(character.encode()) > 1})
    broken = [i for i, piece in enumerate(pieces) if REPLACEMENT in piece]
    return (
        f"control has {len(wide)} multi-byte character(s) {''.join(wide)!r}; "
        f"{len(pieces)} deltas, U+FFFD in delta(s) {broken}"
    )


def _joined(reply: Reply) -> str:
    return "".join(deltas(reply))


@probe("utf8_split", outcomes={"intact", "split"})
def utf8_split(ctx: ProbeContext) -> Observation:
    """Compare the joined deltas of a stream with the same request's non-streamed text."""
    first = ctx.require_ok(ctx.send("control", ctx.body(stream=False)), "the control")
    if first.text.isascii():
        raise ctx.not_applicable(
            f"the model's text has no non-ASCII character to split: {first.text[:80]!r}"
        )
    control = first.text
    reply = ctx.require_ok(ctx.send("stream", ctx.body(stream=True)), "the stream")
    pieces = deltas(reply)
    streamed = "".join(pieces)
    outcome = utf8_outcome(streamed, control)
    if outcome is None:
        # Another text altogether: one of the two may have diverged; ask again.
        reply, again = ctx.reconciled(
            [
                Request("stream", ctx.body(stream=True), "the stream", key=_joined),
                Request("control", ctx.body(stream=False), "the control"),
            ],
            [reply, first],
            lambda replies: utf8_outcome(_joined(replies[0]), replies[1].text) is not None,
        )
        control = again.text
        pieces = deltas(reply)
        streamed = "".join(pieces)
        outcome = utf8_outcome(streamed, control)
    summary = describe(pieces, control)
    if outcome is None:
        raise ctx.fail(
            "the streamed text differs from the control's in ASCII characters too, so it is "
            f"another text, not a split one: {streamed[:60]!r} vs {control[:60]!r}"
        )
    return ctx.observe(outcome, summary)
