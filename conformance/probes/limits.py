"""Probes for stop lists, finish_reason and the completion-length limits.

Every probe here decides from the target's own replies: stop words are taken from a
baseline, token counts from ``usage`` (a stream is counted through the same request sent
unstreamed), and "no effect" is judged against a second request on the same target.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from conformance.observation import Observation
from conformance.probes.client import Reply
from conformance.probes.registry import ProbeContext, Request, probe
from conformance.probes.stop import StopBaseline


@dataclass(frozen=True)
class Counted:
    """A completion with its token counts and where they were read.

    ``completion_tokens`` is exact, or with ``exact`` false only a lower bound: enough to
    say "more than N", not "at most N".
    """

    reply: Reply
    completion_tokens: int
    prompt_tokens: int | None
    counted_by: str
    exact: bool = True

    @property
    def finish_reason(self) -> str | None:
        """The reply's finish_reason."""
        return self.reply.finish_reason

    def over(self, limit: int) -> bool:
        """True when the completion certainly has more than ``limit`` tokens."""
        return self.completion_tokens > limit

    def require_exact(self, ctx: ProbeContext) -> Counted:
        """This count, or a ProbeError when it is only a lower bound."""
        if not self.exact:
            raise ctx.fail(f"{self.reply.exchange.label}: {self.describe()}, not an exact count")
        return self

    def describe(self) -> str:
        """The count and the finish_reason, for summaries."""
        many = "" if self.exact else "at least "
        return (
            f"{many}{self.completion_tokens} completion tokens ({self.counted_by}), "
            f"finish_reason {self.finish_reason!r}"
        )


def counted(ctx: ProbeContext, reply: Reply, body: Mapping[str, Any]) -> Counted:
    """``reply`` (a 2xx to ``body``) with its token counts.

    A stream is counted through the same request sent unstreamed, whatever usage the stream
    carries: where a stream carries usage is stream.usage's subject, and some servers' is an
    estimate (LiteLLM's counts 0 tokens in completions streams). Same text, same count; a
    stream whose text runs on past the unstreamed reply's has more tokens than it (a lower
    bound); any other difference is an error.
    """
    label = reply.exchange.label
    if reply.stream is None:
        usage = reply.usage or {}
        completion = _int_or_none(usage.get("completion_tokens"))
        if completion is None:
            raise ctx.fail(f"{label}: the reply has no usage.completion_tokens to count")
        return Counted(reply, completion, _int_or_none(usage.get("prompt_tokens")), "usage")
    unstreamed = {name: value for name, value in body.items() if name != "stream"}
    why = "the same request unstreamed"
    twin = ctx.require_ok(ctx.send(f"{label}-unstreamed", unstreamed), why)
    if not _counts_alike(reply, twin):
        # One of the two may be a divergent reply: ask again for the one that is.
        reply, twin = ctx.reconciled(
            [
                Request(label, dict(body), "the streamed request"),
                Request(f"{label}-unstreamed", unstreamed, why),
            ],
            [reply, twin],
            lambda replies: _counts_alike(*replies),
        )
    twin_usage = twin.usage or {}
    completion = _int_or_none(twin_usage.get("completion_tokens"))
    prompt = _int_or_none(twin_usage.get("prompt_tokens"))
    if completion is None:
        raise ctx.fail(f"{label}-unstreamed: the reply has no usage.completion_tokens to count")
    if twin.text == reply.text:
        return Counted(reply, completion, prompt, "usage of the same request unstreamed")
    if reply.text.startswith(twin.text):
        return Counted(
            reply,
            completion + 1,
            prompt,
            f"the text runs on past the {completion} tokens of the same request unstreamed",
            exact=False,
        )
    raise ctx.fail(
        f"{label}: the stream's text {reply.text!r} differs from the same request "
        f"unstreamed {twin.text!r}; cannot count the stream's tokens"
    )


def _counts_alike(stream: Reply, twin: Reply) -> bool:
    """True when the unstreamed ``twin`` can count ``stream``: same text, or a prefix of it."""
    return stream.text.startswith(twin.text)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------- stop lists


def decoys(text: str, count: int) -> list[str]:
    """``count`` stop sequences that do not occur in ``text`` (nor in each other)."""
    found: list[str] = []
    number = 0
    while len(found) < count:
        candidate = f"#~{number}~#"
        if candidate not in text:
            found.append(candidate)
        number += 1
    return found


@probe("stop_list_limit", outcomes={"rejected", "truncated", "applied"})
def stop_list_limit(ctx: ProbeContext) -> Observation:
    """Send ``count`` stop sequences of which only the last occurs in the baseline.

    When the last one is not applied, a control puts the same word first in a list of the
    documented length: if it stops there, the longer list was cut; if not, the target applies
    no stop sequence at all and this case cannot be decided.
    """
    count, limit = int(ctx.params["count"]), int(ctx.params["documented_limit"])
    baseline = StopBaseline.take(ctx)
    others = decoys(baseline.reply.text, count - 1)
    reply = ctx.send("long-list", ctx.body(stop=[*others, baseline.cut.word]))
    if not reply.ok:
        return ctx.observe("rejected", f"{count} stop sequences were refused with {reply.refusal}")
    reply = baseline.explained(
        "long-list",
        lambda cut: {"stop": [*others, cut.word]},
        f"a list of {count} stop sequences",
        lambda reply, cut: cut.applied(reply.text) or reply.text.startswith(cut.through),
        first=reply,
    )
    cut = baseline.cut
    if cut.applied(reply.text):
        return ctx.observe("applied", f"sequence {count} of {count}, {cut.word!r}, ended the text")
    if not reply.text.startswith(cut.through):
        raise ctx.fail(
            f"long-list: the text {reply.text!r} is neither the baseline nor the baseline cut at "
            f"{cut.word!r}"
        )
    control = baseline.explained(
        "control-word-first",
        lambda cut: {"stop": [cut.word, *others[: limit - 1]]},
        f"a list of {limit} stop sequences",
        lambda reply, cut: cut.applied(reply.text),
    )
    cut = baseline.cut
    if not cut.applied(control.text):
        raise ctx.not_applicable(
            f"{cut.word!r} ends the text neither last in a list of {count} nor first in a list of "
            f"{limit}: the target applies no stop sequence, so a cut list cannot be told apart"
        )
    return ctx.observe(
        "truncated",
        f"{cut.word!r} was not applied as sequence {count} of {count}, but was as the first of "
        f"{limit}: the list was cut",
    )


# --------------------------------------------------------------------------- finish_reason


@probe("finish_reason_vocabulary", outcomes={"standard", "nonstandard", "mislabelled"})
def finish_reason_vocabulary(ctx: ProbeContext) -> Observation:
    """The finish_reason of a request cut by max_tokens, and of one ended by a stop word.

    The baseline (longer max_tokens) proves the short request was cut: its text must be a
    proper prefix of the baseline. The stop word comes from the baseline as in stop.inclusion.
    """
    enum = set(ctx.params["enum"][ctx.api.value])
    baseline = StopBaseline.take(ctx)
    short = baseline.explained(
        "cut-by-max-tokens",
        lambda cut: {"max_tokens": int(ctx.params["cut_at"])},
        "the request with a small max_tokens",
        lambda reply, cut: _proper_prefix(reply.text, cut.baseline),
    )
    if not _proper_prefix(short.text, baseline.reply.text):
        raise ctx.not_applicable(
            f"cut-by-max-tokens: the text {short.text!r} is not a proper prefix of the baseline, "
            "so it is not known to have been cut by max_tokens"
        )
    stopped = _ended_by_stop(baseline)
    cut = baseline.cut
    length, stop = short.finish_reason, stopped.finish_reason
    summary = f"cut by max_tokens: {length!r}; ended by stop {cut.word!r}: {stop!r}"
    if length not in enum or stop not in enum:
        return ctx.observe("nonstandard", f"{summary} (OpenAI's values: {sorted(enum)})")
    if (length, stop) == ("length", "stop"):
        return ctx.observe("standard", summary)
    return ctx.observe("mislabelled", summary)


@probe("stop_metadata", outcomes={"absent", "present"})
def stop_metadata(ctx: ProbeContext) -> Observation:
    """End a request with a stop word and look for a per-choice field that names the match.

    Fields OpenAI documents for a choice (the behavior's params) are left out; any other
    field whose value is the stop word says what matched (vLLM's ``stop_reason``).
    """
    documented = set(ctx.params["documented_fields"][ctx.api.value])
    baseline = StopBaseline.take(ctx)
    stopped = _ended_by_stop(baseline)
    word = baseline.cut.word
    extras = dict(_extra_fields(_first_choices(stopped), documented))
    listed = ", ".join(f"{name}={value!r}" for name, value in sorted(extras.items())) or "none"
    naming = sorted(set(naming_paths(extras, word)))
    if naming:
        return ctx.observe(
            "present", f"{', '.join(naming)} name the stop {word!r}; extra fields: {listed}"
        )
    return ctx.observe(
        "absent", f"no per-choice field names the stop {word!r}; extra fields: {listed}"
    )


def _proper_prefix(text: str, baseline: str) -> bool:
    return baseline.startswith(text) and len(text) < len(baseline)


def _ended_by_stop(baseline: StopBaseline) -> Reply:
    """The reply to the case's request stopped on the baseline's word; not applicable when
    the word, reproducibly, does not end it."""
    stopped = baseline.explained(
        "ended-by-stop",
        lambda cut: {"stop": [cut.word]},
        "the request with a stop word",
        lambda reply, cut: cut.applied(reply.text),
    )
    if not baseline.cut.applied(stopped.text):
        raise baseline.ctx.not_applicable(
            f"ended-by-stop: the stop word {baseline.cut.word!r} did not end the text "
            f"{stopped.text!r}"
        )
    return stopped


def naming_paths(value: Any, word: str, path: str = "") -> Iterator[str]:
    """Where in ``value`` (extension fields, nested objects and lists included) the stop
    ``word`` is named, as dotted paths such as ``provider_specific_fields.stop_reason``."""
    if isinstance(value, str):
        if value == word and path:
            yield path
    elif isinstance(value, Mapping):
        for name, inner in value.items():
            yield from naming_paths(inner, word, f"{path}.{name}" if path else str(name))
    elif isinstance(value, list):
        for position, inner in enumerate(value):
            yield from naming_paths(inner, word, f"{path}[{position}]")


def _first_choices(reply: Reply) -> Iterator[Mapping[str, Any]]:
    """Every occurrence of the first choice: the body's, or each chunk's in a stream."""
    if reply.stream is not None:
        for chunk in reply.chunks:
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) == 0:
                    yield choice
        return
    choices = (reply.body or {}).get("choices") or []
    if choices:
        yield choices[0]


def _extra_fields(
    choices: Iterator[Mapping[str, Any]], documented: set[str]
) -> Iterator[tuple[str, Any]]:
    """Undocumented fields of the choices, the last non-null value of each."""
    seen: dict[str, Any] = {}
    for choice in choices:
        for name, value in choice.items():
            if name not in documented and (value is not None or name not in seen):
                seen[name] = value
    yield from seen.items()


# --------------------------------------------------------------------------- limits


@probe("max_tokens_limit", outcomes={"honoured", "exceeded", "rejected"})
def max_tokens_limit(ctx: ProbeContext) -> Observation:
    """max_tokens N alone on a prompt that does not end by itself: at most N tokens?"""
    limit = int(ctx.params["max_tokens"])
    body = ctx.body()
    reply = ctx.send("limited", body)
    if not reply.ok:
        return ctx.observe("rejected", f"max_tokens={limit} was refused with {reply.refusal}")
    count = counted(ctx, reply, body)
    if count.over(limit):
        return ctx.observe("exceeded", f"max_tokens={limit}: {count.describe()}")
    count.require_exact(ctx)
    return ctx.observe("honoured", f"max_tokens={limit}: {count.describe()}")


@probe("completion_limit", outcomes={"honoured", "ignored", "rejected"})
def completion_limit(ctx: ProbeContext) -> Observation:
    """``option`` alone, at two values: does the completion follow it?

    More tokens than the smaller value means the option is ignored. Otherwise the larger
    value must give a longer completion within it; if both give the same short completion,
    the model ended by itself and the option's effect cannot be seen.
    """
    option = str(ctx.params["option"])
    small, large = (int(value) for value in ctx.params["values"])
    first = _send_limited(ctx, f"{option}-{small}", {option: small})
    if isinstance(first, Reply):
        return ctx.observe("rejected", f"{option}={small} was refused with {first.refusal}")
    if first.over(small):
        return ctx.observe("ignored", f"{option}={small}: {first.describe()}")
    first.require_exact(ctx)
    second = _send_limited(ctx, f"{option}-{large}", {option: large})
    if isinstance(second, Reply):
        raise ctx.fail(f"{option}={large} was refused ({second.refusal}) but {small} was not")
    second.require_exact(ctx)
    summary = f"{option}={small}: {first.describe()}; {option}={large}: {second.describe()}"
    if first.completion_tokens < second.completion_tokens <= large:
        return ctx.observe("honoured", summary)
    if second.completion_tokens == first.completion_tokens:
        raise ctx.not_applicable(f"the model ended by itself either way: {summary}")
    raise ctx.fail(f"no declared outcome fits: {summary}")


def _send_limited(ctx: ProbeContext, label: str, fields: Mapping[str, Any]) -> Reply | Counted:
    """The refused reply, or the counted completion, of the case's request plus ``fields``."""
    body = ctx.body(**fields)
    reply = ctx.send(label, body)
    return counted(ctx, reply, body) if reply.ok else reply


@probe("both_limits", outcomes={"rejected", "max_completion_tokens_wins", "max_tokens_wins"})
def both_limits(ctx: ProbeContext) -> Observation:
    """max_tokens and max_completion_tokens together, at two different values, then swapped.

    Swapping tells "this parameter wins" from "the smaller one wins".
    """
    small, large = (int(value) for value in ctx.params["values"])
    followed: list[str] = []
    details: list[str] = []
    finishes: list[str | None] = []
    for label, max_tokens, completion in (
        ("max-tokens-smaller", small, large),
        ("max-completion-tokens-smaller", large, small),
    ):
        result = _send_limited(
            ctx, label, {"max_tokens": max_tokens, "max_completion_tokens": completion}
        )
        if isinstance(result, Reply):
            if followed:
                raise ctx.fail(f"{label} was refused ({result.refusal}) but the first was not")
            return ctx.observe(
                "rejected",
                f"max_tokens={max_tokens} with max_completion_tokens={completion} was refused "
                f"with {result.refusal}",
            )
        details.append(
            f"max_tokens={max_tokens}, max_completion_tokens={completion}: {result.describe()}"
        )
        if not result.over(large):
            result.require_exact(ctx)
        followed.append(_followed(result.completion_tokens, small, large, max_tokens == small))
        finishes.append(result.finish_reason)
    summary = "; ".join(details)
    if followed == ["max_tokens", "max_tokens"]:
        return ctx.observe("max_tokens_wins", summary)
    if followed == ["max_completion_tokens", "max_completion_tokens"]:
        return ctx.observe("max_completion_tokens_wins", summary)
    if "length" not in finishes:
        raise ctx.not_applicable(f"the model ended by itself both times: {summary}")
    raise ctx.fail(f"neither parameter wins both times: {summary}")


def _followed(tokens: int, small: int, large: int, max_tokens_is_small: bool) -> str:
    """The parameter a completion of ``tokens`` kept to, of two limits ``small`` < ``large``;
    "neither" when it ran past both."""
    if tokens > large:
        return "neither"
    kept_small = tokens <= small
    if max_tokens_is_small:
        return "max_tokens" if kept_small else "max_completion_tokens"
    return "max_completion_tokens" if kept_small else "max_tokens"


@probe("default_max_tokens", outcomes={"capped", "uncapped"})
def default_max_tokens(ctx: ProbeContext) -> Observation:
    """A request with no limit at all: does a small default end it?

    Past ``threshold`` tokens, or up to a full window, there is no small default; an end by
    length below the threshold is one. A natural end below the threshold decides nothing.
    """
    threshold = int(ctx.params["threshold"])
    window = ctx.endpoint.target.window(ctx.api)
    body = ctx.body()
    count = counted(ctx, ctx.require_ok(ctx.send("unlimited", body), "the request"), body)
    tokens, finish = count.completion_tokens, count.finish_reason
    if count.over(threshold):
        return ctx.observe(
            "uncapped", f"no limit given: {count.describe()}, past the threshold of {threshold}"
        )
    count.require_exact(ctx)
    if finish != "length":
        raise ctx.not_applicable(
            f"no limit given: the model ended by itself ({count.describe()}) below the "
            f"threshold of {threshold}, so a default cap cannot be seen"
        )
    if count.prompt_tokens is not None and count.prompt_tokens + tokens >= window:
        return ctx.observe(
            "uncapped",
            f"no limit given: {count.describe()}; with {count.prompt_tokens} prompt tokens the "
            f"window of {window} is full",
        )
    return ctx.observe("capped", f"no limit given: a default of {tokens} tokens applies")


@probe("output_cap", outcomes={"rejected", "clamped", "exceeded"})
def output_cap(ctx: ProbeContext) -> Observation:
    """max_tokens = the target's documented output cap + ``over``, on a prompt that fits.

    Not applicable where the target file gives no max_output_tokens, or where the cap is so
    close to the window that the request would overflow it too.
    """
    target = ctx.endpoint.target
    cap = target.output_cap(ctx.api)
    if cap is None:
        raise ctx.not_applicable(
            f"target {target.name} gives no max_output_tokens for {ctx.api.value}: "
            "its model's output cap is not documented there"
        )
    window = target.window(ctx.api)
    measure = ctx.require_ok(
        ctx.send("measure-prompt", ctx.body(stream=False, max_tokens=1)),
        "the prompt-measuring request",
    )
    prompt_tokens = _int_or_none((measure.usage or {}).get("prompt_tokens"))
    if prompt_tokens is None:
        raise ctx.fail("measure-prompt: the reply has no usage.prompt_tokens")
    requested = cap + int(ctx.params["over"])
    if prompt_tokens + requested > window:
        raise ctx.not_applicable(
            f"max_tokens={requested} (cap {cap} + {ctx.params['over']}) with {prompt_tokens} "
            f"prompt tokens would not fit the window of {window}"
        )
    result = _send_limited(ctx, "above-cap", {"max_tokens": requested})
    if isinstance(result, Reply):
        return ctx.observe(
            "rejected", f"max_tokens={requested} above the cap of {cap}: {result.refusal}"
        )
    summary = f"max_tokens={requested} above the cap of {cap}: {result.describe()}"
    if result.over(cap):
        return ctx.observe("exceeded", summary)
    result.require_exact(ctx)
    if result.completion_tokens == cap and result.finish_reason == "length":
        return ctx.observe("clamped", summary)
    raise ctx.not_applicable(f"the model ended by itself below the cap: {summary}")
