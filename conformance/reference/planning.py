"""Planning: a request body, validated, becomes a ``Plan`` of what to generate and how to send it.

The switches decide the semantics a behavior is about: stop handling, context overflow,
where a stream carries usage, the completion limit and the output cap. ``plan`` checks the
fields (with ``validation`` and ``sampling_options``) and sizes the generation;
``plan_request`` adds what concerns the whole request: the model name, reasoning, the
lenient switches that plan again instead of refusing, and the unknown fields. A request
field that is neither in OpenAI's request types nor read by the server is refused as OpenAI
refuses it, unless a switch says to drop it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openai.types import completion_create_params as completion_params
from openai.types.chat import completion_create_params as chat_params

from conformance.reference import logprobs, model, sampling_options, validation
from conformance.reference.switches import Switches
from conformance.reference.validation import Api, ApiError, Call, Format

if TYPE_CHECKING:
    from conformance.reference.server import ServerConfig

#: Overflow "exceed" still stops at this multiple of the window, so nothing runs away.
EXCEED_CAP_FACTOR = 4
#: Tokens one request may make the server generate (prompts x candidates x max_tokens).
GENERATION_BUDGET = 65536
MAX_BEST_OF = 20
OVERFLOW_PARAM = "context_length_exceeded_behavior"


@dataclass(frozen=True)
class Plan:
    """A validated request: what to generate and how to send it."""

    api: Api
    model_name: str
    prompts: list[list[int]]
    n: int
    candidates: int  # per prompt: best_of when honoured, else n
    sampling: model.Sampling
    stream: bool
    usage_placement: str
    call: Call | None = None
    #: Logprobs asked for (and honoured), in the shape the reply gives them.
    logprobs_request: logprobs.Request | None = None
    #: Completions' echo: each prompt's text, returned before its completion.
    echoes: tuple[str, ...] | None = None
    #: A suffix the server glues to the end of every returned text (suffix "append").
    appended_suffix: str = ""
    tool_calls: tuple[Call, ...] = ()
    arguments_format: str = "json_string"
    response_format: Format | None = None
    #: How finish_reason is reported (switch ``finish_reason``).
    finish_labels: str = "standard"
    #: Where choices carry vLLM's ``stop_reason`` (switch ``stop_metadata``).
    stop_metadata: str = "absent"
    reasoning: bool = False  # answer with reasoning_content (the reasoning_effort switch)
    usage_details: str = "detailed"


def _usage_placement(body: Mapping[str, Any], switches: Switches, stream: bool) -> str:
    options = body.get("stream_options")
    if options is None:
        return switches.stream_usage
    if switches.stream_usage_requested == "reject":
        raise ApiError(
            "Unrecognized request argument supplied: stream_options", param="stream_options"
        )
    if not stream:
        if switches.stream_options_unstreamed == "ignore":
            return switches.stream_usage  # dropped: a reply that is not streamed has no chunks
        raise ApiError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    if not isinstance(options, dict):
        raise ApiError(
            "Invalid type for 'stream_options': expected an object.",
            param="stream_options",
            code="invalid_type",
        )
    if options.get("include_usage") is True:
        return switches.stream_usage_requested
    return switches.stream_usage


def _overflow_mode(body: Mapping[str, Any], switches: Switches) -> str:
    mode: str = switches.overflow
    if OVERFLOW_PARAM not in body or switches.overflow_param == "ignore":
        return mode
    if switches.overflow_param == "reject":
        raise ApiError(f"Unrecognized request argument supplied: {OVERFLOW_PARAM}")
    value = body[OVERFLOW_PARAM]
    if value is None:
        return mode
    if value == "error":
        return "reject"
    if value == "truncate":
        return "clamp"
    raise ApiError(
        f"Invalid value for '{OVERFLOW_PARAM}': expected 'error' or 'truncate', but got {value!r}.",
        param=OVERFLOW_PARAM,
        code="invalid_value",
    )


def _requested_limit(
    body: Mapping[str, Any], api: Api, switches: Switches
) -> tuple[str, int | None]:
    """The completion limit a request asks for and the parameter that carries it, after the
    max_tokens / max_completion_tokens switches; (name, None) when it asks for none."""
    limit = validation.integer(body, "max_tokens", 1, None)
    if limit is not None and switches.max_tokens != "honour":
        if switches.max_tokens == "reject":
            instead = " Use 'max_completion_tokens' instead." if api == "chat" else ""
            raise ApiError(
                f"Unsupported parameter: 'max_tokens' is not supported with this model.{instead}",
                param="max_tokens",
                code="unsupported_parameter",
            )
        limit = None
    completion: int | None = None
    if api == "chat" and validation.given(body, "max_completion_tokens"):
        completion = validation.integer(body, "max_completion_tokens", 1, None)
        if not validation.gate(body, "max_completion_tokens", switches.max_completion_tokens):
            completion = None
    if limit is not None and completion is not None:
        if switches.max_tokens_both == "reject":
            raise ApiError(
                "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not "
                "supported.",
                param="max_tokens",
                code="invalid_parameter_combination",
            )
        if switches.max_tokens_both == "max_tokens":
            return "max_tokens", limit
    if completion is not None:
        return "max_completion_tokens", completion
    return "max_tokens", limit


def _max_tokens(
    body: Mapping[str, Any],
    api: Api,
    prompt_tokens: int,
    switches: Switches,
    window: int,
    *,
    cap: int | None = None,
) -> int:
    """The tokens to generate per choice, after the context-window and output-cap rules.

    The window comes first: a request that does not fit it follows the overflow switch, and
    the output cap ``cap`` applies only to a request that fits.
    """
    param = "messages" if api == "chat" else "prompt"
    name, requested = _requested_limit(body, api, switches)
    mode = _overflow_mode(body, switches)
    if prompt_tokens > window:
        what = "messages" if api == "chat" else "prompt"
        raise ApiError(
            f"This model's maximum context length is {window} tokens. However, your {what} "
            f"resulted in {prompt_tokens} tokens. Please reduce the length of the {what}.",
            param=param,
            code="context_length_exceeded",
        )
    room = window - prompt_tokens
    fits = room if cap is None else min(room, cap)
    if requested is None:
        default = switches.default_max_tokens_chat if api == "chat" else switches.default_max_tokens
        return min(model.DEFAULT_MAX_TOKENS, fits) if default == "small" else fits
    if requested <= room:
        if cap is not None and requested > cap:
            if switches.output_cap == "reject":
                raise ApiError(
                    f"{name} is too large: {requested}. This model supports at most {cap} "
                    f"completion tokens, whereas you provided {requested}.",
                    param=name,
                )
            if switches.output_cap == "clamp":
                return cap
        return requested
    if mode == "clamp":
        return room
    if mode == "exceed":
        return min(requested, EXCEED_CAP_FACTOR * window)
    where = "in the messages" if api == "chat" else "in the prompt"
    raise ApiError(
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt_tokens + requested} tokens ({prompt_tokens} {where}, {requested} in the "
        f"completion). Please reduce the length of the {param} or completion.",
        param=param,
        code="context_length_exceeded",
    )


def plan(body: Mapping[str, Any], api: Api, config: ServerConfig) -> Plan:
    """Validate a request body and decide what to generate; ApiError for a refused request."""
    switches = config.switches
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise ApiError(
            "Invalid type for 'stream': expected a boolean.", param="stream", code="invalid_type"
        )

    call: Call | None = None
    tool_calls: tuple[Call, ...] = ()
    response_format: Format | None = None
    if api == "chat":
        messages = validation.messages(body, switches)
        functions, call = validation.functions(body, switches)
        tool_functions, tool_calls = validation.tools(body, switches)
        response_format = validation.response_format(body, messages, switches)
        prompts = [model.tokenize(model.render_chat(messages, functions, tool_functions))]
        if validation.given(body, "best_of"):
            # Not a chat option: refuse or ignore.
            validation.gate(body, "best_of", switches.best_of)
    else:
        prompts = sampling_options.prompt_list(validation.completion_prompts(body), switches)
        _functions_on_completions(body, switches)
    echoes = sampling_options.echoes(body, api, prompts, switches)
    prompts, appended_suffix = sampling_options.with_suffix(body, api, prompts, switches)
    requested_logprobs = (
        sampling_options.chat_logprobs(body, switches)
        if api == "chat"
        else sampling_options.completion_logprobs(body, switches)
    )

    usage_placement = _usage_placement(body, switches, stream)
    n = sampling_options.n(body, switches)
    candidates = n
    if api == "completions" and validation.gate(body, "best_of", switches.best_of):
        best_of = validation.integer(body, "best_of", 1, MAX_BEST_OF) or 1
        if best_of < n:
            raise ApiError(
                "best_of must be greater than or equal to n.", param="best_of", code="invalid_value"
            )
        if stream and best_of > 1:
            raise ApiError("best_of cannot be streamed.", param="best_of", code="invalid_value")
        candidates = best_of

    temperature = validation.number(
        body, "temperature", 0, sampling_options.temperature_limit(switches), 1.0
    )
    top_p = validation.number(body, "top_p", 0, 1, 1.0)
    seed = sampling_options.seed(body, switches)
    penalties = {
        option: validation.number(body, option, -2, 2, 0.0)
        if validation.gate(body, option, getattr(switches, option))
        else 0.0
        for option in ("presence_penalty", "frequency_penalty")
    }
    bias = validation.logit_bias(body, switches)
    stops = validation.stop(body, switches)

    # A server with several slots (llama.cpp's --parallel) gives each a share of the window.
    window = config.context_window // config.slots
    prompts = _fit_window(prompts, body, api, switches, window)
    longest = max(len(prompt) for prompt in prompts)
    max_tokens = _max_tokens(body, api, longest, switches, window, cap=config.max_output_tokens)
    if len(prompts) * candidates * max_tokens > GENERATION_BUDGET:
        raise ApiError(
            f"This request asks for more than {GENERATION_BUDGET} generated tokens "
            "(prompts x n or best_of x max_tokens), more than the reference server makes.",
            param="n",
            code="invalid_value",
        )
    sampling = model.Sampling(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        presence_penalty=penalties["presence_penalty"],
        frequency_penalty=penalties["frequency_penalty"],
        logit_bias=bias,
        stop=stops,
        keep_stop=switches.stop == "keep",
    )
    return Plan(
        api,
        name,
        prompts,
        n,
        candidates,
        sampling,
        stream,
        usage_placement,
        call,
        requested_logprobs,
        echoes,
        appended_suffix,
        tool_calls,
        switches.tool_arguments,
        response_format,
        finish_labels=switches.finish_reason,
        stop_metadata=switches.stop_metadata,
    )


def _functions_on_completions(body: Mapping[str, Any], switches: Switches) -> None:
    # Not a completions option: refused when the switch refuses it, otherwise an unknown field.
    for option in ("functions", "function_call"):
        if validation.given(body, option) and switches.functions == "reject":
            validation.gate(body, option, "reject")


# --------------------------------------------------------------------------- the whole request

#: The request fields OpenAI documents, per API: the keys of the official SDK's request types.
DOCUMENTED_FIELDS: dict[Api, frozenset[str]] = {
    "chat": frozenset(
        chat_params.CompletionCreateParamsBase.__required_keys__
        | chat_params.CompletionCreateParamsBase.__optional_keys__
        | {"stream"}
    ),
    "completions": frozenset(
        completion_params.CompletionCreateParamsBase.__required_keys__
        | completion_params.CompletionCreateParamsBase.__optional_keys__
        | {"stream"}
    ),
}
_RANGE_CODES = frozenset(
    {"integer_below_min_value", "decimal_below_min_value", "decimal_above_max_value"}
)
#: What the accept_out_of_range envelope clamps, into the ranges OpenAI documents.
_CLAMPED = {"temperature": (0.0, 2.0), "presence_penalty": (-2.0, 2.0)}


class _ReadFields(Mapping[str, Any]):
    """A request body that records which fields the server looked up.

    A field the server never looks up is one it knows nothing of: with the fields OpenAI
    documents, that tells an unknown field apart from an extension the server implements,
    without a list that every new switch would have to extend.
    """

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = dict(fields)
        self.looked_up: set[str] = set()

    def __getitem__(self, name: str) -> Any:
        self.looked_up.add(name)
        return self._fields[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.looked_up.add(name)
        return name in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def plan_request(body: Mapping[str, Any], api: Api, config: ServerConfig) -> Plan:
    """``plan``, then what the switches of this family decide about the whole request.

    A refusal that a lenient switch turns into acceptance (an out-of-range temperature,
    presence_penalty or max_tokens) is planned again with the value corrected; fields nobody looked up are
    refused as unknown.
    """
    switches = config.switches
    name = body.get("model")
    if isinstance(name, str) and name:
        validation.check_model(name, config)
    planned, fields = _plan_leniently(body, api, config)
    reasoning = _reasoning(fields, switches)
    unknown = sorted(set(fields) - fields.looked_up - DOCUMENTED_FIELDS[api])
    if unknown and switches.unknown_field == "reject":
        # OpenAI's words, with param and code null.
        raise ApiError(f"Unrecognized request argument supplied: {', '.join(unknown)}")
    return dataclasses.replace(planned, reasoning=reasoning, usage_details=switches.usage_details)


def _plan_leniently(
    body: Mapping[str, Any], api: Api, config: ServerConfig
) -> tuple[Plan, _ReadFields]:
    """``plan`` and the fields it looked up, planning again where a switch overrules a refusal."""
    fields = _ReadFields(body)
    try:
        return plan(fields, api, config), fields
    except _PastTheWindow as past:
        return _plan_leniently(
            body, api, dataclasses.replace(config, context_window=past.window, slots=1)
        )
    except ApiError as refusal:
        corrected = _after_refusal(body, refusal, config.switches)
        if corrected is None:
            raise
        # The corrected value cannot be refused again, so this ends.
        return _plan_leniently(corrected, api, config)


class _PastTheWindow(Exception):
    """An overlong prompt to process whole: planning starts again with a window that fits it."""

    def __init__(self, window: int) -> None:
        super().__init__(window)
        self.window = window


def _after_refusal(
    body: Mapping[str, Any], refusal: ApiError, switches: Switches
) -> dict[str, Any] | None:
    """The body to plan again instead of ``refusal``, None to keep it; or another refusal."""
    if (
        refusal.param in _CLAMPED
        and refusal.code in _RANGE_CODES
        and switches.error_envelope == "accept_out_of_range"
    ):
        low, high = _CLAMPED[refusal.param]
        return {**body, refusal.param: min(max(float(body[refusal.param]), low), high)}
    if refusal.param in ("max_tokens", "max_completion_tokens") and refusal.code in _RANGE_CODES:
        if switches.invalid_value == "accept":
            return {name: value for name, value in body.items() if name != refusal.param}
        if switches.invalid_value == "unprocessable":
            raise ApiError(refusal.message, status=422, param=refusal.param, code=refusal.code)
        if switches.invalid_value == "server_error":
            raise ApiError(
                "The server had an error while processing your request.",
                status=500,
                kind="server_error",
            )
    return None


def _reasoning(body: Mapping[str, Any], switches: Switches) -> bool:
    """True when the reply is to carry reasoning_content; 400 when reasoning_effort is refused."""
    value = body.get("reasoning_effort")
    if value is None:
        return False
    if switches.reasoning_effort == "reject":
        raise ApiError("Unrecognized request argument supplied: reasoning_effort")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApiError(
            "Invalid type for 'reasoning_effort': expected a string, "
            f"but got {validation.type_name(value)} instead.",
            param="reasoning_effort",
            code="invalid_type",
        )
    return switches.reasoning_effort == "reason"


def _fit_window(
    prompts: list[list[int]], body: Mapping[str, Any], api: Api, switches: Switches, window: int
) -> list[list[int]]:
    """The prompts, unless one is longer than the window: then the prompt_overflow switch
    refuses the request, cuts every prompt to its last tokens so the request fits, or has
    the request planned again with a window large enough (``_PastTheWindow``)."""
    longest = max(len(prompt) for prompt in prompts)
    mode = switches.prompt_overflow
    if longest <= window or mode == "reject":
        return prompts  # the context-length check of _max_tokens refuses it as OpenAI does
    what = "messages" if api == "chat" else "prompt"
    if mode == "reject_other":
        raise ApiError(f"The {what} is too long: {longest} tokens, and this model takes {window}.")
    if mode == "server_error":
        raise ApiError(
            "The server had an error while processing your request.",
            status=500,
            kind="server_error",
        )
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    reserve = requested if isinstance(requested, int) and 0 < requested < window else 1
    if mode == "exceed":
        raise _PastTheWindow(longest + reserve)
    keep = window - reserve
    return [prompt[-keep:] for prompt in prompts]
