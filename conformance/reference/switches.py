"""The reference server's switches: mechanisms that change what the server does.

Each switch is a small closed set of values, and the defaults are what OpenAI documents.
The server knows nothing of behaviors or outcomes; ``specs/behaviors/*.yaml`` maps each
outcome to the switch settings that make the server show it (see ``dialect.py``).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from conformance.spec.loader import suggest

#: How an option the request carries is treated: used, accepted and dropped, or refused.
OptionMode = Literal["honour", "ignore", "reject"]
#: Where a stream carries usage.
UsagePlacement = Literal[
    "absent", "finish_chunk", "extra_chunk", "extra_chunk_with_choices", "every_chunk"
]


class Switches(BaseModel):
    """Every semantic switch of the reference server; the defaults are OpenAI's documented ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stop: Literal["strip", "keep", "ignore", "reject"] = "strip"
    """strip: text ends before the first stop match; keep: text ends with it; ignore: stop has
    no effect; reject: 400 for any request carrying ``stop``."""

    overflow: Literal["reject", "clamp", "exceed"] = "reject"
    """When prompt + max_tokens exceeds the context window (the prompt alone fitting): a 400
    ``context_length_exceeded``, max_tokens lowered to what fits, or max_tokens generated anyway."""

    overflow_param: OptionMode = "reject"
    """Fireworks' ``context_length_exceeded_behavior``: honour ("error" / "truncate"), accept
    and ignore, or refuse as an unrecognized argument."""

    stream_usage: UsagePlacement = "absent"
    """Where a stream carries usage when the request does not ask for it."""

    stream_usage_requested: Literal[
        "absent", "finish_chunk", "extra_chunk", "extra_chunk_with_choices", "every_chunk", "reject"
    ] = "extra_chunk"
    """Where a stream carries usage when ``stream_options.include_usage`` is true; reject:
    400 for any request carrying ``stream_options``."""

    presence_penalty: OptionMode = "honour"
    frequency_penalty: OptionMode = "honour"
    logit_bias: OptionMode = "honour"
    best_of: OptionMode = "honour"
    functions: OptionMode = "honour"

    # -- stop, finish_reason and max_tokens

    stop_list_limit: Literal["reject", "truncate", "apply"] = "reject"
    """A ``stop`` list longer than OpenAI's 4: a 400, the list cut to its first 4, or every
    sequence applied."""

    finish_reason: Literal["standard", "nonstandard", "mislabelled"] = "standard"
    """standard: "stop" and "length" as OpenAI documents; nonstandard: a stop-sequence end is
    reported as "eos" (Together's word); mislabelled: every end is reported as "stop"."""

    stop_metadata: Literal["absent", "present"] = "absent"
    """present: each choice carries vLLM's ``stop_reason``, the matched stop string (null when
    no stop string ended it)."""

    max_tokens: OptionMode = "honour"
    """ignore: ``max_tokens`` is dropped and the default length applies; reject: a 400 for any
    request carrying it (as reasoning models answer on chat)."""

    max_completion_tokens: OptionMode = "honour"
    """Chat's ``max_completion_tokens`` when it comes without ``max_tokens``."""

    max_tokens_both: Literal["reject", "max_completion_tokens", "max_tokens"] = "reject"
    """Chat with both ``max_tokens`` and ``max_completion_tokens``: a 400 (what OpenAI answers,
    as observed), or the one named wins."""

    default_max_tokens: Literal["small", "window"] = "small"
    """Completions without ``max_tokens``: OpenAI's documented default of 16, or what fits the
    window (and the output cap)."""

    default_max_tokens_chat: Literal["small", "window"] = "window"
    """Chat without a limit: a small default of 16, or what fits the window and the output cap
    (OpenAI's chat has no small default)."""

    output_cap: Literal["reject", "clamp", "exceed"] = "reject"
    """A request whose max_tokens is above the model's output cap but fits the window: a 400
    (as OpenAI answers, observed), max_tokens lowered to the cap, or generated anyway."""

    # -- end of stop, finish_reason and max_tokens

    # -- stream

    stream_options_unstreamed: Literal["reject", "ignore"] = "reject"
    """A request that carries ``stream_options`` without ``stream: true``: a 400 naming
    stream_options (what OpenAI answers), or the option dropped and a normal completion."""

    stream_framing: Literal["strict", "comments", "event_fields", "null_events", "done_missing"] = (
        "strict"
    )
    """strict: only ``data:`` lines and blank lines; comments: an SSE comment line before
    every event, as keep-alives are sent; event_fields: ``event:`` and ``id:`` fields on
    every event; null_events: a ``data: null`` event after each choice's finish chunk, as
    some servers send between the streams of two prompts; done_missing: the stream ends
    after its last chunk, without ``[DONE]``."""

    stream_delta_role: Literal["first_chunk", "every_chunk", "missing"] = "first_chunk"
    """Chat streams: role "assistant" on the first delta only, on every delta that carries
    content too, or on no delta at all."""

    stream_chunk_nulls: Literal["null", "absent", "mixed"] = "null"
    """Choice keys of a stream chunk that have no value (finish_reason before the end,
    logprobs): sent as null, left out, or left out on every other chunk only."""

    stream_utf8: Literal["intact", "split"] = "intact"
    """intact: a delta holds whole characters, its incomplete UTF-8 tail waits for the next
    token; split: every token is decoded on its own, so a character whose bytes span tokens
    arrives as U+FFFD replacement characters."""

    # -- end of stream

    # -- sampling, logprobs and completions

    n: OptionMode = "honour"
    """``n`` above 1: n choices per prompt, one choice whatever n says, or a 400 for n != 1."""

    seed: Literal["honour", "ignore", "insensitive", "reject"] = "honour"
    """honour: sampling is reproducible per seed; ignore: the seed is dropped (sampling is
    random); insensitive: every seed samples the same way; reject: 400 for any ``seed``."""

    temperature_range: Literal["reject", "accept"] = "reject"
    """A temperature above 2: refused as outside OpenAI's 0-2 range, or used as given."""

    chat_logprobs: Literal["honour", "ignore", "reject", "malformed"] = "honour"
    """Chat ``logprobs: true``: choices[].logprobs.content, no logprobs, a 400, or the legacy
    completions shape (tokens / token_logprobs / ...) in place of ``content``."""

    top_logprobs_limit: Literal["max_5", "max_10", "max_20", "no_max", "reject"] = "max_20"
    """The largest ``top_logprobs`` accepted (above it: a 400); reject: 400 for any value."""

    completion_logprobs: Literal["honour", "ignore", "reject", "malformed"] = "honour"
    """Completions' integer ``logprobs``: the legacy shape, no logprobs, a 400, or the chat
    shape (``content`` entries) in its place."""

    echo: OptionMode = "honour"
    """Completions' ``echo``: the prompt before the completion, dropped, or a 400."""

    suffix: Literal["honour", "append", "ignore", "reject"] = "honour"
    """Completions' ``suffix``: read after the prompt (so it shapes the text), appended to the
    returned text as it is, dropped, or a 400."""

    prompt_list: Literal["honour", "first_only", "reject"] = "honour"
    """A completions prompt that lists several prompts: one choice per prompt, only the
    first prompt answered, or a 400."""

    # -- end of sampling, logprobs and completions

    # -- response_format, tools and messages

    response_format_json_object: OptionMode = "honour"
    """``response_format {"type": "json_object"}``: the content is a JSON object (honour),
    the plain text it would be without the option (ignore), or a 400 (reject)."""

    response_format_json_schema: Literal[
        "honour", "json_only", "cut_off", "ignore", "reject", "fail"
    ] = "honour"
    """``response_format {"type": "json_schema"}``: the content follows the schema (honour), is
    a JSON object that does not (json_only, JSON mode in its place), opens the schema's
    object and then pads with spaces until max_tokens (cut_off, as a grammar that allows any
    whitespace lets a small model do), is plain text (ignore), or the request gets a 400
    (reject) or a 500 (fail)."""

    tool_choice_required: OptionMode = "honour"
    """``tool_choice "required"``: tools are called (honour), the reply is text as with
    "auto" (ignore), or a 400 (reject)."""

    tool_choice_named: Literal["honour", "wrong_tool", "ignore", "reject"] = "honour"
    """``tool_choice {"type": "function", ...}``: the named tool is called (honour), another
    tool is (wrong_tool), the reply is text as with "auto" (ignore), or a 400 (reject)."""

    tool_choice_none: Literal["honour", "force", "reject"] = "honour"
    """``tool_choice "none"``: no tool is called (honour), tools are called as if it were
    "required" (force), or a 400 (reject)."""

    parallel_tool_calls: OptionMode = "honour"
    """``parallel_tool_calls false``: at most one call (honour), one call per tool as when
    parallel calls are allowed (ignore), or a 400 for any request carrying it (reject)."""

    tool_arguments: Literal["json_string", "object", "invalid_json"] = "json_string"
    """How ``function.arguments`` of a tool call is sent: JSON text in a string (OpenAI), the
    JSON object itself, or a string that is not JSON (a Python repr of the object)."""

    message_name: Literal["accept", "reject", "fail"] = "accept"
    """A message carrying ``name``: accepted, a 400 (reject), or a 500 (fail)."""

    developer_role: Literal["accept", "reject", "fail"] = "accept"
    """A message with role ``developer``: accepted, a 400 (reject), or a 500 (fail)."""

    # -- end of response_format, tools and messages

    # -- request, errors and usage

    unknown_field: Literal["reject", "ignore"] = "reject"
    """A top-level request field that is neither in OpenAI's request types nor read by this
    server: a 400 "Unrecognized request argument supplied" (what OpenAI answers), or dropped."""

    reasoning_effort: Literal["reject", "ignore", "reason"] = "reject"
    """``reasoning_effort`` sent to the toy (non-reasoning) model: refused as an unrecognized
    argument, accepted and dropped, or answered with ``reasoning_content`` next to the text."""

    error_envelope: Literal[
        "openai", "integer_code", "flat", "detail", "nonstandard", "accept_out_of_range"
    ] = "openai"
    """The body of a refused completion request: OpenAI's ``{"error": {message, type, param,
    code}}``, the same with the HTTP status as an integer ``code`` (vLLM), those fields flat at
    the top level beside ``"object": "error"``, FastAPI's ``{"detail": ...}``, or plain text.
    accept_out_of_range: errors stay OpenAI's, but a temperature or presence_penalty outside
    the range OpenAI documents is clamped into it instead of refused."""

    bad_key: Literal["unauthorized", "forbidden", "accept", "bad_request"] = "unauthorized"
    """A request presenting a wrong API key (when the server has one): 401 as OpenAI, 403, no
    key check at all (a missing key passes too), or 400."""

    unknown_model: Literal["not_found", "bad_request", "forbidden", "accept"] = "not_found"
    """A request naming a model other than the one served: 404 ``model_not_found``, 400, 403,
    or answered by the served model anyway."""

    invalid_value: Literal["bad_request", "unprocessable", "server_error", "accept"] = "bad_request"
    """``max_tokens`` (or ``max_completion_tokens``) below 1: 400, 422, 500 (as a server whose
    validation error escapes as a crash), or accepted as if it had not been sent."""

    prompt_overflow: Literal["reject", "reject_other", "truncate", "exceed", "server_error"] = (
        "reject"
    )
    """A prompt longer than the context window on its own: 400 ``context_length_exceeded``, a
    400 with no code, the prompt silently cut to its last tokens so the request fits, the
    whole prompt processed as if the window were larger, or 500."""

    usage_details: Literal["detailed", "basic", "inconsistent"] = "detailed"
    """The usage object: the three counts plus ``prompt_tokens_details`` and
    ``completion_tokens_details`` (as OpenAI's responses carry them), the three counts only,
    or a ``total_tokens`` that is not prompt + completion."""

    # -- end of request, errors and usage

    # -- response

    response_extensions: Literal["none", "present"] = "none"
    """present: every reply object also carries ``x_reference``, a field OpenAI's types lack."""

    response_schema: Literal["valid", "invalid"] = "valid"
    """invalid: ``created`` is an ISO date string rather than OpenAI's Unix-time integer."""

    # -- end of response

    # -- responses (the Responses API, ``POST /v1/responses``)

    responses_input_items: Literal["honour", "string_only"] = "honour"
    """``input`` as an array of items: read as the conversation (honour), or a 400 for
    anything but a string (string_only)."""

    responses_instructions: OptionMode = "honour"
    """``instructions``: a system message before the input, dropped, or a 400."""

    responses_max_output_tokens: Literal["honour", "complete", "ignore", "reject"] = "honour"
    """``max_output_tokens``: the output stops there with ``status: incomplete`` (honour), stops
    there but is reported ``completed`` (complete), is dropped, or any request carrying it
    gets a 400."""

    responses_output_overflow: Literal["clamp", "reject", "exceed"] = "clamp"
    """Input that fits the window, but not with ``max_output_tokens`` (or the output cap) on
    top: the output stops at the window, ``incomplete`` (clamp); a 400
    ``context_length_exceeded``; or generated past the window anyway (exceed)."""

    responses_truncation: Literal["honour", "ignore", "reject"] = "honour"
    """``truncation "auto"``: the oldest input items are dropped until the input fits, dropped
    as an option (over-window input gets the 400), or a 400 for any request carrying it."""

    responses_temperature_range: Literal["reject", "accept"] = "reject"
    """A temperature above 2: refused as outside OpenAI's 0-2 range, or used as given."""

    responses_store: Literal["default_on", "default_off", "never", "always"] = "default_on"
    """Which responses are stored (and so can be fetched and continued): all unless ``store``
    is false (OpenAI), only those asking ``store: true``, none, or all whatever ``store`` says."""

    responses_previous_response: OptionMode = "honour"
    """``previous_response_id``: the stored response's input and output come before the new
    input (honour), it is accepted and dropped, or a 400 for any request carrying it."""

    responses_delete: Literal["honour", "not_found"] = "honour"
    """``DELETE /v1/responses/{id}``: deleted, or a 404 as for an endpoint not served."""

    responses_json_schema: Literal["honour", "json_only", "ignore", "reject"] = "honour"
    """``text.format {"type": "json_schema"}``: output following the schema, any JSON object
    (JSON mode in its place), plain text, or a 400."""

    responses_tool_choice: Literal["honour", "auto_only", "wrong_tool", "reject"] = "honour"
    """``tool_choice`` required / named / none: as asked (honour), every choice answered as
    "auto" (text), a named tool answered with another tool, or a 400 for any but "auto"."""

    responses_parallel_tool_calls: OptionMode = "honour"
    """``parallel_tool_calls false``: at most one call (honour), one call per tool anyway
    (ignore), or a 400 for any request carrying it (reject)."""

    responses_function_call: Literal["standard", "object_arguments", "missing_call_id"] = "standard"
    """A ``function_call`` output item: OpenAI's (``arguments`` a JSON string, a ``call_id``),
    with ``arguments`` as a JSON object, or without ``call_id``."""

    responses_unknown_field: Literal["reject", "ignore"] = "reject"
    """A top-level field the Responses API does not have: a 400 ``unknown_parameter`` (what
    OpenAI answers), or dropped."""

    responses_stop: Literal["reject", "ignore", "honour"] = "reject"
    """``stop``, which the Responses API does not have: a 400 like any unknown field, dropped,
    or applied as chat applies it."""

    responses_metadata: Literal["echo", "drop", "reject"] = "echo"
    """``metadata``: echoed on the response, accepted and left out of it (``{}``), or a 400."""

    responses_reasoning: Literal["reject", "ignore", "reason"] = "reject"
    """``reasoning.effort`` sent to the toy (non-reasoning) model: a 400 as OpenAI answers for a
    model without reasoning, accepted and dropped, or answered with a reasoning item first."""

    responses_usage: Literal["present", "absent", "zero"] = "present"
    """The response's ``usage`` (plain and on ``response.completed``): the counts, null, or
    every count zero."""

    responses_usage_details: Literal["detailed", "basic"] = "detailed"
    """Usage with ``input_tokens_details`` and ``output_tokens_details`` (OpenAI), or the three
    counts only."""

    responses_content_part: Literal["output_text", "no_annotations", "text"] = "output_text"
    """A message's content part: OpenAI's ``output_text`` with ``annotations``, the same without
    ``annotations``, or typed ``text``."""

    responses_stream_events: Literal["full", "text_only"] = "full"
    """The streamed events: OpenAI's whole sequence (created, in_progress, item and part
    added, deltas, the ``.done`` events, completed), or only created, deltas and completed."""

    responses_sequence_number: Literal["counting", "absent"] = "counting"
    """Each event's ``sequence_number``: 0, 1, 2... in order, or left out."""

    responses_stream_framing: Literal["event_lines", "data_only", "done_sentinel"] = "event_lines"
    """Each event as ``event: <type>`` and ``data:`` lines (OpenAI), ``data:`` lines only, or
    OpenAI's framing ended by chat's ``data: [DONE]``."""

    responses_error_envelope: Literal["openai", "integer_code", "flat", "detail", "nonstandard"] = (
        "openai"
    )
    """The body of a refused Responses request, as the chat switch ``error_envelope`` shapes it."""

    # -- end of responses

    def with_settings(self, settings: Mapping[str, str]) -> Switches:
        """A copy with ``settings`` ({switch: value}) applied; ValueError names what is wrong."""
        for name, value in settings.items():
            check_setting(name, value)
        return self.model_copy(update=dict(settings))

    def changed(self) -> dict[str, str]:
        """The switches that differ from OpenAI's defaults, for logs and fingerprints."""
        default = Switches()
        return {
            name: str(getattr(self, name))
            for name in SWITCH_NAMES
            if getattr(self, name) != getattr(default, name)
        }


#: Switch names in declaration order.
SWITCH_NAMES: tuple[str, ...] = tuple(Switches.model_fields)


def switch_values(name: str) -> tuple[str, ...]:
    """The values switch ``name`` takes; KeyError for an unknown switch."""
    annotation = Switches.model_fields[name].annotation
    return tuple(str(arg) for arg in typing.get_args(annotation))


def check_setting(name: str, value: str) -> None:
    """Raise ValueError unless ``name`` is a switch and ``value`` one of its values."""
    if name not in Switches.model_fields:
        raise ValueError(f"unknown switch '{name}'; {suggest(name, SWITCH_NAMES)}")
    allowed = switch_values(name)
    if value not in allowed:
        raise ValueError(f"switch '{name}' does not take '{value}'; {suggest(str(value), allowed)}")


def apply_settings(settings: Mapping[str, str], base: Switches | None = None) -> Switches:
    """``base`` (default: OpenAI's defaults) with ``settings`` applied; see ``with_settings``."""
    return (base or Switches()).with_settings(settings)
