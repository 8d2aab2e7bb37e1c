"""stream_usage: which chunks of a stream carry usage?"""

from __future__ import annotations

from typing import Any

from conformance.observation import Check, Observation
from conformance.probes.registry import ProbeContext, probe


def usage_placement(chunks: list[dict[str, Any]]) -> str | None:
    """Name where usage sits among ``chunks``, or None when no known placement fits.

    Returns "absent", "finish_chunk", "extra_chunk", "extra_chunk_with_choices" or
    "every_chunk".
    """
    carrying = [index for index, chunk in enumerate(chunks) if chunk.get("usage")]
    if not carrying:
        return "absent"
    if len(carrying) == len(chunks) and len(chunks) > 1:
        return "every_chunk"
    finishing = [
        index
        for index, chunk in enumerate(chunks)
        if any(choice.get("finish_reason") for choice in chunk.get("choices") or [])
    ]
    if len(carrying) != 1 or not finishing:
        return None
    (where,) = carrying
    if where == finishing[-1]:
        return "finish_chunk"
    if where > finishing[-1]:
        # LiteLLM's extra chunk keeps a choice with an empty delta, where OpenAI's has none.
        return "extra_chunk_with_choices" if chunks[where].get("choices") else "extra_chunk"
    return None


def compare_usage(streamed: dict[str, Any] | None, plain: dict[str, Any] | None) -> Check:
    """Does the streamed usage count what the same request's non-streamed usage counts?"""
    if streamed is None:
        return Check(
            name="usage-matches-non-stream", passed=True, detail="no streamed usage to compare"
        )
    if plain is None:
        return Check(
            name="usage-matches-non-stream",
            passed=False,
            detail="the non-streamed reply has no usage",
        )
    differing = [
        f"{key}: streamed {streamed.get(key)} vs non-streamed {plain.get(key)}"
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
        if streamed.get(key) != plain.get(key)
    ]
    return Check(
        name="usage-matches-non-stream",
        passed=not differing,
        detail="; ".join(differing) or f"both count {plain.get('total_tokens')} tokens",
    )


@probe(
    "stream_usage",
    outcomes={
        "absent",
        "finish_chunk",
        "extra_chunk",
        "extra_chunk_with_choices",
        "every_chunk",
        "rejected",
    },
)
def stream_usage(ctx: ProbeContext) -> Observation:
    """Stream one request and find the usage; compare it with the same request unstreamed."""
    fields: dict[str, Any] = {}
    if ctx.params.get("include_usage"):
        fields["stream_options"] = {"include_usage": True}
    streamed = ctx.send("stream", ctx.body(stream=True, **fields))
    if not streamed.ok:
        if not fields:
            raise ctx.fail(f"stream: a plain streamed request was refused with {streamed.status}")
        return ctx.observe("rejected", f"stream_options was refused with {streamed.status}")
    placement = usage_placement(streamed.chunks)
    carrying = [i for i, chunk in enumerate(streamed.chunks) if chunk.get("usage")]
    where = f"usage on chunk(s) {carrying} of {len(streamed.chunks)}"
    if placement is None:
        raise ctx.fail(f"no declared outcome fits: {where}")
    plain = ctx.require_ok(
        ctx.send("non-stream", ctx.body(stream=False)), "the non-streamed request"
    )
    check = compare_usage(streamed.usage, plain.usage)
    return ctx.observe(placement, where, checks=[check])
