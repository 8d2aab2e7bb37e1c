"""Generation: a ``Plan`` run on the toy model, as the choices and token counts of a ``Result``.

``run`` makes every choice of a planned request: sampled text (best_of, echo, logprobs, the
matched stop string), a forced function or tool call, or JSON for response_format. What it
returns knows nothing of JSON bodies or stream chunks, which ``rendering`` makes from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.reference import logprobs, model
from conformance.reference.planning import Plan
from conformance.reference.validation import Format


@dataclass(frozen=True)
class ToolCall:
    """One tool call of a choice, as rendered."""

    id: str
    name: str
    arguments: str | dict[str, Any]  # a dict only when arguments are sent as an object
    pieces: tuple[str, ...]  # stream deltas of string arguments; none for an object


@dataclass(frozen=True)
class Choice:
    """One returned choice, ready to be rendered as JSON or as stream chunks."""

    index: int
    text: str
    pieces: tuple[str, ...]
    finish_reason: str
    tokens: int
    call: str | None = None  # the function name when the text is a call's arguments
    #: The echoed prompt that ``text`` starts with (the pieces hold only the completion).
    echo: str = ""
    #: The completion's tokens with their log probabilities, when the request asks for them.
    logprobs: tuple[logprobs.TokenLogprob, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    stop_match: str | None = None  # the stop string that ended the choice, if one did


@dataclass
class Result:
    choices: list[Choice] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    details: str = "detailed"  # the usage_details switch

    def usage(self, completion_tokens: int | None = None) -> dict[str, Any]:
        done = self.completion_tokens if completion_tokens is None else completion_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
        }
        if self.details == "inconsistent":
            usage["total_tokens"] += 1
        elif self.details == "detailed":
            usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
            usage["completion_tokens_details"] = {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        return usage


def _tool_choice(index: int, prompt: Sequence[int], p: Plan) -> Choice:
    """A choice that calls ``p.tool_calls``, their arguments sharing max_tokens."""
    budget = p.sampling.max_tokens
    calls: list[ToolCall] = []
    spent = 0
    truncated = False
    for position, call in enumerate(p.tool_calls):
        if budget <= 0:
            truncated = True
            break
        arguments = json.loads(model.function_arguments(prompt, call.parameters))
        # invalid_json: the arguments as a Python repr, single quotes and all.
        text = repr(arguments) if p.arguments_format == "invalid_json" else json.dumps(arguments)
        tokens = model.tokenize(text)
        kept = tokens[:budget]
        budget -= len(kept)
        spent += len(kept)
        truncated = truncated or len(kept) < len(tokens)
        seed = f"{model.prompt_key(prompt)}:{index}:{position}"
        ident = "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
        if p.arguments_format == "object":
            calls.append(ToolCall(ident, call.name, arguments, ()))
        else:
            pieces = model.stream_pieces(kept)
            calls.append(ToolCall(ident, call.name, model.detokenize(kept), pieces))
    finish = "length" if truncated else "tool_calls"
    return Choice(index, "", (), finish, spent, tool_calls=tuple(calls))


def _formatted_choice(index: int, prompt: Sequence[int], p: Plan, form: Format) -> Choice:
    """A choice whose content is JSON: any object in JSON mode, else one following the schema."""
    if form.schema is None:
        text = model.json_object_text(prompt)
    else:
        text = model.function_arguments(prompt, form.schema)
    tokens = model.tokenize(text)
    if form.cut_off:
        # Up to the end of the first key (or just the brace), then spaces: valid JSON so far.
        opened = text.find('"', 2) + 1 if text.startswith('{"') else 1
        tokens = model.tokenize(text[:opened])
        tokens += model.tokenize(" ") * max(p.sampling.max_tokens - len(tokens), 0)
    kept = tokens[: p.sampling.max_tokens]
    finish = "stop" if len(kept) == len(tokens) and not form.cut_off else "length"
    return Choice(index, model.detokenize(kept), model.stream_pieces(kept), finish, len(kept))


def run(p: Plan) -> Result:
    """Generate every choice of a planned request."""
    result = Result(prompt_tokens=sum(len(prompt) for prompt in p.prompts), details=p.usage_details)
    for prompt_index, prompt in enumerate(p.prompts):
        base = prompt_index * p.n
        if p.call is None and (p.tool_calls or p.response_format is not None):
            for j in range(p.n):
                if p.tool_calls:
                    choice = _tool_choice(base + j, prompt, p)
                else:
                    assert p.response_format is not None
                    choice = _formatted_choice(base + j, prompt, p, p.response_format)
                result.choices.append(choice)
                result.completion_tokens += choice.tokens
            continue
        if p.call is not None:
            arguments = model.tokenize(model.function_arguments(prompt, p.call.parameters))
            kept = arguments[: p.sampling.max_tokens]
            finish = "function_call" if len(kept) == len(arguments) else "length"
            for j in range(p.n):
                result.choices.append(
                    Choice(
                        base + j,
                        model.detokenize(kept),
                        model.stream_pieces(kept),
                        finish,
                        len(kept),
                        p.call.name,
                    )
                )
                result.completion_tokens += len(kept)
            continue
        generations = [model.generate(prompt, p.sampling, candidate=c) for c in range(p.candidates)]
        result.completion_tokens += sum(len(g.tokens) for g in generations)
        if p.candidates > p.n:
            # best_of: the highest log-probability per token wins; ties keep generation order.
            order = sorted(range(len(generations)), key=lambda i: -generations[i].mean_logprob)
            generations = [generations[i] for i in sorted(order[: p.n])]
        echo = p.echoes[prompt_index] if p.echoes is not None else ""
        for j, g in enumerate(generations):
            scored: tuple[logprobs.TokenLogprob, ...] = ()
            if p.logprobs_request is not None:
                every = logprobs.token_logprobs(
                    prompt, g.tokens, p.sampling, p.logprobs_request.top
                )
                scored = logprobs.within(every, g.text)
            pieces = (*g.pieces, p.appended_suffix) if p.appended_suffix else g.pieces
            match = _matched_stop(model.detokenize(g.tokens), p.sampling.stop)
            result.choices.append(
                Choice(
                    base + j,
                    echo + g.text + p.appended_suffix,
                    pieces,
                    _finish_label(g.finish_reason, p.finish_labels),
                    len(g.tokens),
                    echo=echo,
                    logprobs=scored,
                    stop_match=match if g.finish_reason == "stop" else None,
                )
            )
    return result


def _matched_stop(text: str, stops: Sequence[str]) -> str | None:
    """The stop string that ends ``text``'s generation: the first to occur, the longest of
    those starting at the same place (as the model cuts)."""
    found = [(text.find(stop), -len(stop), stop) for stop in stops if stop and stop in text]
    return min(found)[2] if found else None


def _finish_label(reason: str, labels: str) -> str:
    """``reason`` as the switch ``finish_reason`` reports it."""
    if labels == "mislabelled":
        return "stop"
    if labels == "nonstandard" and reason == "stop":
        return "eos"
    return reason
