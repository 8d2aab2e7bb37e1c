"""The Responses API's requests: a ``POST /v1/responses`` body, validated, becomes a ``Turn``.

The conversation (``instructions``, the stored context of ``previous_response_id``, the
``input`` string or items) is rendered as a chat prompt for the toy model, and the rest of
the request (tools, ``tool_choice``, ``text.format``, the sampling options, the output limit
and the window) becomes the ``planning.Plan`` that ``generation.run`` takes, as a chat
request's does. What the Responses object echoes (instructions, metadata, tools...) is kept
beside it for ``responses_render``. The ``responses_*`` switches decide what a behavior is
about; OpenAI's documented answers are their defaults.

The toy model has no end-of-text token; a Responses answer ends after ``ANSWER_LENGTH``
tokens as if it had one, so that a reply is ``completed`` unless a limit cut it short
(then it is ``incomplete``, as OpenAI reports a reply cut by ``max_output_tokens``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conformance.reference import model, validation
from conformance.reference import responses_fields as fields
from conformance.reference.planning import Plan
from conformance.reference.responses_fields import Item
from conformance.reference.switches import Switches
from conformance.reference.validation import ApiError

if TYPE_CHECKING:
    from conformance.reference.server import ServerConfig

#: Tokens after which the toy's answer ends on its own (above OpenAI's minimum limit of 16).
ANSWER_LENGTH = 24


@dataclass(frozen=True)
class Turn:
    """A validated Responses request: what to generate, and what the response echoes."""

    generation: Plan
    #: The conversation so far, as Responses input items (the stored context continues it).
    items: tuple[Item, ...]
    #: The request fields the response object echoes, as the response carries them.
    echo: dict[str, Any]
    stream: bool
    store: bool
    #: True when a limit (max_output_tokens, the window) ends the text before its natural end.
    limited: bool
    #: max_output_tokens cut the reply, but the switch has it reported ``completed``.
    hide_incomplete: bool = False
    reasoning: bool = False


@dataclass(frozen=True)
class Stored:
    """A stored response: its body, and the conversation a continuation starts from."""

    body: dict[str, Any]
    items: tuple[Item, ...]


def _context_error(tokens: int, window: int) -> ApiError:
    return ApiError(
        f"Your input exceeds the context window of this model ({tokens} tokens, the window "
        f"is {window}). Please adjust your input and try again.",
        param="input",
        code="context_length_exceeded",
    )


def _conversation(
    body: Mapping[str, Any], switches: Switches, stored: Mapping[str, Stored]
) -> tuple[Item, ...]:
    """The stored context ``previous_response_id`` continues, then the new input items."""
    previous_id = body.get("previous_response_id")
    context: tuple[Item, ...] = ()
    if previous_id is not None:
        if switches.responses_previous_response == "reject":
            validation.gate(body, "previous_response_id", "reject")
        previous = stored.get(previous_id) if isinstance(previous_id, str) else None
        if previous is None:
            raise ApiError(
                f"Previous response with id '{previous_id}' not found.",
                status=404,
                param="previous_response_id",
                code="previous_response_not_found",
            )
        if switches.responses_previous_response == "honour":
            context = previous.items
    # With a stored context, input may be left out (the continuation adds nothing).
    new_items = fields.input_items(body, switches) if "input" in body or not context else []
    fields.check_calls_answered(context, new_items)
    return (*context, *new_items)


def _prompt(
    render: Callable[[Sequence[Item]], list[int]],
    items: Sequence[Item],
    reserve: int,
    window: int,
    truncation: str,
) -> list[int]:
    """The prompt of the items that fit the window: with truncation "auto", the oldest items
    are dropped until the prompt and ``reserve`` output tokens fit; the input must fit."""
    prompt = render(items)
    while truncation == "auto" and len(prompt) + reserve > window and len(items) > 1:
        items = items[1:]
        prompt = render(items)
    if len(prompt) > window:
        raise _context_error(len(prompt), window)
    return prompt


def _output_tokens(prompt_tokens: int, limit: int | None, config: ServerConfig) -> int:
    """The tokens to generate: the toy's answer, cut by ``limit``; past the window (or the
    output cap) as the responses_output_overflow switch says."""
    wanted = ANSWER_LENGTH if limit is None else min(limit, ANSWER_LENGTH)
    room = config.context_window - prompt_tokens
    if config.max_output_tokens is not None:
        room = min(room, config.max_output_tokens)
    if (limit or 0) <= room and wanted <= room:
        return wanted
    mode = config.switches.responses_output_overflow
    if mode == "reject":
        raise _context_error(prompt_tokens + (limit or wanted), config.context_window)
    return min(wanted, room) if mode == "clamp" else wanted


def plan_turn(body: Mapping[str, Any], config: ServerConfig, stored: Mapping[str, Stored]) -> Turn:
    """Validate a Responses request against ``config`` and the ``stored`` responses it may
    continue; ApiError for a refused request."""
    switches = config.switches
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError(
            "Missing required parameter: 'model'.",
            param="model",
            code="missing_required_parameter",
        )
    validation.check_model(name, config)
    fields.check_fields(body, switches)
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise ApiError(
            "Invalid type for 'stream': expected a boolean.", param="stream", code="invalid_type"
        )
    items = _conversation(body, switches, stored)
    instructions = fields.instructions(body, switches)
    tools = fields.function_tools(body)
    tool_choice, calls = fields.tool_calls(body, tools, switches)
    text, text_format = fields.text_format(
        body, fields.chat_messages(instructions, items), switches
    )
    reasoning, reasons = fields.reasoning(body, switches)
    limit = fields.output_limit(body, switches)
    high = 2.0 if switches.responses_temperature_range == "reject" else float("inf")
    temperature = validation.number(body, "temperature", 0, high, 1.0)
    top_p = validation.number(body, "top_p", 0, 1, 1.0)
    metadata = fields.metadata(body, switches)
    scored = fields.logprobs_request(body, fields.include(body))
    truncation = fields.truncation(body, switches)
    store = fields.store(body, switches)
    stops = fields.stop(body, switches)

    def render(conversation: Sequence[Item]) -> list[int]:
        chat = fields.chat_messages(instructions, conversation)
        return model.tokenize(model.render_chat(chat, tools=tools))

    honoured = truncation if switches.responses_truncation == "honour" else "disabled"
    prompt = _prompt(render, items, limit or ANSWER_LENGTH, config.context_window, honoured)
    max_tokens = _output_tokens(len(prompt), limit, config)
    generation = Plan(
        "chat",  # the prompt is a chat conversation; generation reads nothing else of it
        name,
        [prompt],
        1,
        1,
        model.Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stops),
        stream,
        "absent",
        tool_calls=calls,
        response_format=text_format,
        logprobs_request=scored,
    )
    parallel = body.get("parallel_tool_calls")
    echo: dict[str, Any] = {
        "instructions": instructions,
        "max_output_tokens": limit,
        "metadata": metadata if metadata is not None else {},
        "model": name,
        "parallel_tool_calls": parallel if isinstance(parallel, bool) else True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": reasoning,
        "temperature": temperature,
        "text": text,
        "tool_choice": tool_choice,
        "tools": tools,
        "top_p": top_p,
        "top_logprobs": body.get("top_logprobs"),
        "truncation": truncation,
    }
    return Turn(
        generation,
        items,
        echo,
        stream,
        store,
        limited=max_tokens < ANSWER_LENGTH,
        hide_incomplete=switches.responses_max_output_tokens == "complete",
        reasoning=reasons,
    )
