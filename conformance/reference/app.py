"""The reference server's ASGI app: OpenAI's chat and legacy completions over the toy model.

Requests are validated as OpenAI does (errors in its envelope ``{"error": {"message", "type",
"param", "code"}}``), then the switches decide the semantics a behavior is about: stop
handling, context overflow, where a stream carries usage, and whether each option is
honoured, ignored or refused. A request field that is neither in OpenAI's request types nor
read by the server is refused as OpenAI refuses it, unless a switch says to drop it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

from openai.types import completion_create_params as completion_params
from openai.types.chat import completion_create_params as chat_params
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance import __version__
from conformance.reference import logprobs, model, streaming
from conformance.reference.switches import OptionMode, Switches

if TYPE_CHECKING:
    from conformance.reference.server import ServerConfig

Api = Literal["chat", "completions"]

_log = logging.getLogger(__name__)

#: The ``server`` header of every response.
SERVER_HEADER = f"conformance-reference/{__version__}"
#: Overflow "exceed" still stops at this multiple of the window, so nothing runs away.
EXCEED_CAP_FACTOR = 4
#: Tokens one request may make the server generate (prompts x candidates x max_tokens).
GENERATION_BUDGET = 65536
MAX_N = 128
MAX_BEST_OF = 20
MAX_STOP = 4
OVERFLOW_PARAM = "context_length_exceeded_behavior"
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class ApiError(Exception):
    """A request the server refuses, rendered in OpenAI's error envelope."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.kind = kind

    def response(self, envelope: str = "openai") -> Response:
        """The error response, in ``envelope``'s shape (see ``error_response``)."""
        return error_response(
            self.status,
            self.message,
            param=self.param,
            code=self.code,
            kind=self.kind,
            envelope=envelope,
        )


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    kind: str = "invalid_request_error",
    envelope: str = "openai",
) -> Response:
    """An error response with ``status``, in OpenAI's envelope unless ``envelope`` names
    another shape of the ``error_envelope`` switch (integer_code, flat, detail, nonstandard)."""
    if envelope == "nonstandard":
        return PlainTextResponse(f"{HTTPStatus(status).phrase}: {message}", status_code=status)
    body: dict[str, Any]
    if envelope == "integer_code":
        body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    elif envelope == "flat":
        body = {"object": "error", "message": message, "type": kind, "param": param, "code": status}
    elif envelope == "detail":
        body = {"detail": message}
    else:
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


# --------------------------------------------------------------------------- validation


def _given(body: Mapping[str, Any], name: str) -> bool:
    # OpenAI treats an explicit null as "not given".
    return body.get(name) is not None


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _number(body: Mapping[str, Any], name: str, low: float, high: float, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(
            f"Invalid type for '{name}': expected a number, but got {_type_name(value)} instead.",
            param=name,
            code="invalid_type",
        )
    if value < low:
        raise ApiError(
            f"Invalid '{name}': decimal below minimum value. Expected a value >= {low:g}, "
            f"but got {value} instead.",
            param=name,
            code="decimal_below_min_value",
        )
    if value > high:
        raise ApiError(
            f"Invalid '{name}': decimal above maximum value. Expected a value <= {high:g}, "
            f"but got {value} instead.",
            param=name,
            code="decimal_above_max_value",
        )
    return float(value)


def _integer(body: Mapping[str, Any], name: str, low: int, high: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(
            f"Invalid type for '{name}': expected an integer, but got {_type_name(value)} instead.",
            param=name,
            code="invalid_type",
        )
    if value < low:
        raise ApiError(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if high is not None and value > high:
        raise ApiError(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return value


def _gate(body: Mapping[str, Any], name: str, mode: OptionMode) -> bool:
    """True when option ``name`` is given and honoured; 400 when given and refused."""
    if not _given(body, name):
        return False
    if mode == "reject":
        raise ApiError(
            f"Unsupported parameter: '{name}' is not supported by this server.",
            param=name,
            code="unsupported_parameter",
        )
    return mode == "honour"


def _stop(body: Mapping[str, Any], switches: Switches) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if switches.stop == "reject":
        raise ApiError(
            "Unsupported parameter: 'stop' is not supported by this server.",
            param="stop",
            code="unsupported_parameter",
        )
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
        raise ApiError(
            "Invalid type for 'stop': expected a string or an array of strings.",
            param="stop",
            code="invalid_type",
        )
    if len(stops) > MAX_STOP:
        if switches.stop_list_limit == "reject":
            raise ApiError(
                f"Invalid 'stop': array too long. Expected at most {MAX_STOP} items, "
                f"but got {len(stops)} instead.",
                param="stop",
                code="array_above_max_length",
            )
        if switches.stop_list_limit == "truncate":
            stops = stops[:MAX_STOP]
    return () if switches.stop == "ignore" else tuple(stop for stop in stops if stop)


def _logit_bias(body: Mapping[str, Any], switches: Switches) -> dict[int, float]:
    honoured = _gate(body, "logit_bias", switches.logit_bias)
    value = body.get("logit_bias")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(
            "Invalid type for 'logit_bias': expected an object, "
            f"but got {_type_name(value)} instead.",
            param="logit_bias",
            code="invalid_type",
        )
    bias: dict[int, float] = {}
    for key, amount in value.items():
        try:
            token = int(key)
        except ValueError:
            token = -1
        if not 0 <= token < model.VOCAB_SIZE:
            raise ApiError(
                f"Invalid key in 'logit_bias': {key}. Keys must be token ids "
                f"from 0 to {model.VOCAB_SIZE - 1}.",
                param="logit_bias",
                code="invalid_value",
            )
        bias[token] = _number({"logit_bias": amount}, "logit_bias", -100, 100, 0.0)
    return bias if honoured else {}


def _messages(body: Mapping[str, Any], switches: Switches) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(
            "'messages' is a required property and must be a non-empty array.",
            param="messages",
            code="invalid_value" if isinstance(messages, list) else "missing_required_parameter",
        )
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise ApiError(f"Invalid type for '{where}': expected an object.", param=where)
        role = message.get("role")
        if role == "developer" and switches.developer_role == "fail":
            raise _validation_failure(f"{where}.role")
        roles = CHAT_ROLES if switches.developer_role == "accept" else CHAT_ROLES - {"developer"}
        if role not in roles:
            raise ApiError(
                f"Invalid value for '{where}.role': expected one of "
                f"{', '.join(sorted(roles))}, but got {role!r}.",
                param=f"{where}.role",
                code="invalid_value",
            )
        if _given(message, "name"):
            if switches.message_name == "fail":
                raise _validation_failure(f"{where}.name")
            if switches.message_name == "reject":
                raise ApiError(
                    f"Unsupported parameter: '{where}.name' is not supported by this server.",
                    param=f"{where}.name",
                    code="unsupported_parameter",
                )
            if not isinstance(message["name"], str):
                raise ApiError(
                    f"Invalid type for '{where}.name': expected a string.",
                    param=f"{where}.name",
                    code="invalid_type",
                )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise ApiError(
                f"Invalid type for '{where}.content': expected a string or an array of parts.",
                param=f"{where}.content",
                code="invalid_type",
            )
    return messages


def _validation_failure(where: str) -> ApiError:
    """A 500 for a field the server cannot take, as servers whose request validation is not
    mapped to a 4xx answer (llama-cpp-python's pydantic errors)."""
    return ApiError(
        f"1 validation error: {where}: input is not supported", status=500, kind="server_error"
    )


def _completion_prompts(body: Mapping[str, Any]) -> list[list[int]]:
    prompt = body.get("prompt", "<|endoftext|>")  # OpenAI's documented default
    if isinstance(prompt, str):
        return [model.tokenize(prompt)]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(item, str) for item in prompt):
            return [model.tokenize(item) for item in prompt]
        if all(_is_token(item) for item in prompt):
            return [list(prompt)]
        if all(isinstance(item, list) and all(_is_token(t) for t in item) for item in prompt):
            return [list(item) for item in prompt]
    raise ApiError(
        "Invalid 'prompt': expected a string, an array of strings, an array of token ids "
        f"(0 to {model.VOCAB_SIZE - 1}) or an array of such arrays.",
        param="prompt",
        code="invalid_value",
    )


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < model.VOCAB_SIZE


@dataclass(frozen=True)
class _Call:
    """A function call forced by ``function_call: {"name": ...}``."""

    name: str
    parameters: Mapping[str, Any] | None


def _functions(
    body: Mapping[str, Any], switches: Switches
) -> tuple[list[dict[str, Any]], _Call | None]:
    given = _given(body, "functions")
    if switches.functions == "reject" and _given(body, "function_call") and not given:
        _gate(body, "function_call", "reject")
    if not _gate(body, "functions", switches.functions):
        return [], None
    functions = body["functions"]
    if (
        not isinstance(functions, list)
        or not functions
        or not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in functions)
    ):
        raise ApiError(
            "Invalid 'functions': expected a non-empty array of objects with a 'name'.",
            param="functions",
            code="invalid_value",
        )
    choice = body.get("function_call")
    if choice is None or choice in ("none", "auto"):
        # The toy model never decides to call a function on its own.
        return functions, None
    name = choice.get("name") if isinstance(choice, dict) else None
    chosen = next((f for f in functions if f["name"] == name), None)
    if chosen is None:
        raise ApiError(
            "Invalid value for 'function_call': expected 'none', 'auto' or "
            "{'name': <one of the functions>}.",
            param="function_call",
            code="invalid_value",
        )
    parameters = chosen.get("parameters")
    return functions, _Call(str(name), parameters if isinstance(parameters, dict) else None)


def _unsupported_value(name: str, value: Any) -> ApiError:
    return ApiError(
        f"Unsupported value: '{name}' does not support {value!r} with this server.",
        param=name,
        code="unsupported_value",
    )


def _parallel_allowed(body: Mapping[str, Any], switches: Switches) -> bool:
    """Whether tool_choice "required" may call several tools at once."""
    value = body.get("parallel_tool_calls")
    if value is None:
        return True
    if switches.parallel_tool_calls == "reject":
        _gate(body, "parallel_tool_calls", "reject")
    if not isinstance(value, bool):
        raise ApiError(
            "Invalid type for 'parallel_tool_calls': expected a boolean.",
            param="parallel_tool_calls",
            code="invalid_type",
        )
    return value or switches.parallel_tool_calls == "ignore"


def _tool_functions(tools: Any) -> list[dict[str, Any]]:
    """The function definitions of a valid ``tools`` array; 400 for anything else."""
    if (
        not isinstance(tools, list)
        or not tools
        or not all(
            isinstance(tool, dict)
            and tool.get("type") == "function"
            and isinstance(tool.get("function"), dict)
            and isinstance(tool["function"].get("name"), str)
            for tool in tools
        )
    ):
        raise ApiError(
            "Invalid 'tools': expected a non-empty array of "
            "{'type': 'function', 'function': {'name': ...}} objects.",
            param="tools",
            code="invalid_value",
        )
    return [tool["function"] for tool in tools]


def _tools(
    body: Mapping[str, Any], switches: Switches
) -> tuple[list[dict[str, Any]], tuple[_Call, ...]]:
    """The tools' functions (part of the prompt) and the calls ``tool_choice`` forces.

    The toy model never decides to call a tool by itself: with "auto" (the default when
    tools are given) the reply is text, as it is with "none".
    """
    parallel = _parallel_allowed(body, switches)
    tools, choice = body.get("tools"), body.get("tool_choice")
    if tools is None:
        if choice is not None:
            raise ApiError(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                "'tools' are specified.",
                param="tool_choice",
                code="invalid_value",
            )
        return [], ()
    functions = _tool_functions(tools)
    if choice is None or choice == "auto":
        return functions, ()
    if choice in ("none", "required"):
        mode = switches.tool_choice_none if choice == "none" else switches.tool_choice_required
        if mode == "reject":
            raise _unsupported_value("tool_choice", choice)
        calls_anyway = mode == "force" if choice == "none" else mode == "honour"
        if not calls_anyway:
            return functions, ()
        forced = functions if parallel else functions[:1]
    else:
        function = choice.get("function") if isinstance(choice, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        named = [f for f in functions if f["name"] == name]
        if not isinstance(choice, dict) or choice.get("type") != "function" or not named:
            raise ApiError(
                "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
                "{'type': 'function', 'function': {'name': <one of the tools>}}.",
                param="tool_choice",
                code="invalid_value",
            )
        if switches.tool_choice_named == "reject":
            raise _unsupported_value("tool_choice", choice)
        if switches.tool_choice_named == "ignore":
            return functions, ()
        others = [f for f in functions if f["name"] != name]
        forced = others[:1] if switches.tool_choice_named == "wrong_tool" and others else named
    calls = []
    for function in forced:
        parameters = function.get("parameters")
        calls.append(_Call(function["name"], parameters if isinstance(parameters, dict) else None))
    return functions, tuple(calls)


@dataclass(frozen=True)
class _Format:
    """What ``response_format`` makes the content: any JSON object, or one following a schema."""

    schema: Mapping[str, Any] | None = None  # None: JSON mode
    cut_off: bool = False  # open the object, then pad with spaces until max_tokens


def _mentions_json(messages: Sequence[Mapping[str, Any]]) -> bool:
    return any("json" in model.message_text(m.get("content")).lower() for m in messages)


def _response_format(
    body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], switches: Switches
) -> _Format | None:
    value = body.get("response_format")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise ApiError(
            "Invalid value for 'response_format.type': expected 'text', 'json_object' or "
            "'json_schema'.",
            param="response_format.type",
            code="invalid_value",
        )
    if kind == "text":
        return None
    if kind == "json_object":
        if switches.response_format_json_object == "reject":
            raise _unsupported_value("response_format.type", kind)
        if switches.response_format_json_object == "ignore":
            return None
        if not _mentions_json(messages):
            # OpenAI's guide: JSON mode is refused unless the conversation asks for JSON.
            raise ApiError(
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                param="messages",
                code="invalid_request_error",
            )
        return _Format()
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ApiError(
            "Missing required parameter: 'response_format.json_schema.name'.",
            param="response_format.json_schema.name",
            code="missing_required_parameter",
        )
    mode = switches.response_format_json_schema
    if mode == "reject":
        raise _unsupported_value("response_format.type", kind)
    if mode == "fail":
        raise _validation_failure("response_format.type")
    if mode == "ignore":
        return None
    if mode == "json_only":
        return _Format()  # JSON mode in place of the schema
    schema = spec.get("schema")
    return _Format(schema if isinstance(schema, dict) else {}, cut_off=mode == "cut_off")


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Plan:
    """A validated request: what to generate and how to send it."""

    api: Api
    model_name: str
    prompts: list[list[int]]
    n: int
    candidates: int  # per prompt: best_of when honoured, else n
    sampling: model.Sampling
    stream: bool
    usage_placement: str
    call: _Call | None = None
    #: Logprobs asked for (and honoured), in the shape the reply gives them.
    logprobs_request: logprobs.Request | None = None
    #: Completions' echo: each prompt's text, returned before its completion.
    echoes: tuple[str, ...] | None = None
    #: A suffix the server glues to the end of every returned text (suffix "append").
    appended_suffix: str = ""
    tool_calls: tuple[_Call, ...] = ()
    arguments_format: str = "json_string"
    response_format: _Format | None = None
    #: How finish_reason is reported (switch ``finish_reason``).
    finish_labels: str = "standard"
    #: Whether choices carry vLLM's ``stop_reason`` (switch ``stop_metadata``).
    stop_metadata: bool = False
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
    limit = _integer(body, "max_tokens", 1, None)
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
    if api == "chat" and _given(body, "max_completion_tokens"):
        completion = _integer(body, "max_completion_tokens", 1, None)
        if not _gate(body, "max_completion_tokens", switches.max_completion_tokens):
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


def plan(body: Mapping[str, Any], api: Api, config: ServerConfig) -> _Plan:
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

    call: _Call | None = None
    tool_calls: tuple[_Call, ...] = ()
    response_format: _Format | None = None
    if api == "chat":
        messages = _messages(body, switches)
        functions, call = _functions(body, switches)
        tool_functions, tool_calls = _tools(body, switches)
        response_format = _response_format(body, messages, switches)
        prompts = [model.tokenize(model.render_chat(messages, functions, tool_functions))]
        if _given(body, "best_of"):
            _gate(body, "best_of", switches.best_of)  # not a chat option: refuse or ignore
    else:
        prompts = _prompt_list(_completion_prompts(body), switches)
        _functions_on_completions(body, switches)
    echoes = _echoes(body, api, prompts, switches)
    prompts, appended_suffix = _with_suffix(body, api, prompts, switches)
    requested_logprobs = (
        _chat_logprobs(body, switches) if api == "chat" else _completion_logprobs(body, switches)
    )

    usage_placement = _usage_placement(body, switches, stream)
    n = _n(body, switches)
    candidates = n
    if api == "completions" and _gate(body, "best_of", switches.best_of):
        best_of = _integer(body, "best_of", 1, MAX_BEST_OF) or 1
        if best_of < n:
            raise ApiError(
                "best_of must be greater than or equal to n.", param="best_of", code="invalid_value"
            )
        if stream and best_of > 1:
            raise ApiError("best_of cannot be streamed.", param="best_of", code="invalid_value")
        candidates = best_of

    temperature = _number(body, "temperature", 0, _temperature_limit(switches), 1.0)
    top_p = _number(body, "top_p", 0, 1, 1.0)
    seed = _seed(body, switches)
    penalties = {
        option: _number(body, option, -2, 2, 0.0)
        if _gate(body, option, getattr(switches, option))
        else 0.0
        for option in ("presence_penalty", "frequency_penalty")
    }
    bias = _logit_bias(body, switches)
    stops = _stop(body, switches)

    prompts = _fit_window(prompts, body, api, switches, config.context_window)
    longest = max(len(prompt) for prompt in prompts)
    max_tokens = _max_tokens(
        body, api, longest, switches, config.context_window, cap=config.max_output_tokens
    )
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
    return _Plan(
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
        stop_metadata=switches.stop_metadata == "present",
    )


def _functions_on_completions(body: Mapping[str, Any], switches: Switches) -> None:
    # Not a completions option: refused when the switch refuses it, otherwise an unknown field.
    for option in ("functions", "function_call"):
        if _given(body, option) and switches.functions == "reject":
            _gate(body, option, "reject")


# --------------------------------------------------------------------------- sampling options

#: The seed every request samples with when the server is insensitive to the seed.
INSENSITIVE_SEED = 0
#: OpenAI's documented bounds: temperature up to 2, legacy logprobs up to 5.
MAX_TEMPERATURE = 2.0
MAX_COMPLETION_LOGPROBS = 5
TOP_LOGPROBS_MAXIMUM: dict[str, int | None] = {
    "max_5": 5,
    "max_10": 10,
    "max_20": 20,
    "no_max": None,
}


def _n(body: Mapping[str, Any], switches: Switches) -> int:
    n = _integer(body, "n", 1, MAX_N) or 1
    if n != 1 and switches.n == "reject":
        raise ApiError(
            f"Unsupported value: 'n' must be 1 on this server, but got {n}.",
            param="n",
            code="unsupported_value",
        )
    return 1 if switches.n == "ignore" else n


def _seed(body: Mapping[str, Any], switches: Switches) -> int | None:
    seed = _integer(body, "seed", -(2**63), 2**63 - 1)
    if seed is None or switches.seed == "honour":
        return seed
    if switches.seed == "reject":
        _gate(body, "seed", "reject")
    return INSENSITIVE_SEED if switches.seed == "insensitive" else None


def _temperature_limit(switches: Switches) -> float:
    return MAX_TEMPERATURE if switches.temperature_range == "reject" else math.inf


def _boolean(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise ApiError(
            f"Invalid type for '{name}': expected a boolean, but got {_type_name(value)} instead.",
            param=name,
            code="invalid_type",
        )
    return value


def _chat_logprobs(body: Mapping[str, Any], switches: Switches) -> logprobs.Request | None:
    mode = switches.chat_logprobs
    top: int | None = None
    if _given(body, "top_logprobs"):
        if switches.top_logprobs_limit == "reject":
            _gate(body, "top_logprobs", "reject")
        top = _integer(body, "top_logprobs", 0, TOP_LOGPROBS_MAXIMUM[switches.top_logprobs_limit])
    if mode == "reject":
        _gate(body, "logprobs", "reject")
    wanted = _given(body, "logprobs") and _boolean(body, "logprobs")
    if top is not None and not wanted and mode == "honour":
        raise ApiError(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true "
            "if 'top_logprobs' is used.",
            param="top_logprobs",
            code="invalid_value",
        )
    if not wanted or mode == "ignore":
        return None
    return logprobs.Request("chat" if mode == "honour" else "legacy", top or 0)


def _completion_logprobs(body: Mapping[str, Any], switches: Switches) -> logprobs.Request | None:
    mode = switches.completion_logprobs
    if not _given(body, "logprobs"):
        return None
    if mode == "reject":
        _gate(body, "logprobs", "reject")
    top = _integer(body, "logprobs", 0, MAX_COMPLETION_LOGPROBS)
    if top is None or mode == "ignore":
        return None
    return logprobs.Request("legacy" if mode == "honour" else "chat", top)


def _prompt_list(prompts: list[list[int]], switches: Switches) -> list[list[int]]:
    if len(prompts) < 2 or switches.prompt_list == "honour":
        return prompts
    if switches.prompt_list == "reject":
        raise ApiError(
            "Invalid 'prompt': this server takes one prompt per request, not a list of prompts.",
            param="prompt",
            code="invalid_value",
        )
    return prompts[:1]


def _echoes(
    body: Mapping[str, Any], api: Api, prompts: list[list[int]], switches: Switches
) -> tuple[str, ...] | None:
    if api == "chat" or not _given(body, "echo"):
        return None
    if switches.echo == "reject":
        _gate(body, "echo", "reject")
    if not _boolean(body, "echo") or switches.echo == "ignore":
        return None
    return tuple(model.detokenize(prompt) for prompt in prompts)


def _with_suffix(
    body: Mapping[str, Any], api: Api, prompts: list[list[int]], switches: Switches
) -> tuple[list[list[int]], str]:
    """The prompts the model reads, and the suffix to glue to each text ("append").

    Honoured, the suffix follows each prompt after a document separator, as an insertion
    model sees the text on both sides of the gap.
    """
    if api == "chat" or not _given(body, "suffix"):
        return prompts, ""
    if switches.suffix == "reject":
        _gate(body, "suffix", "reject")
    suffix = body["suffix"]
    if not isinstance(suffix, str):
        raise ApiError(
            f"Invalid type for 'suffix': expected a string, but got {_type_name(suffix)} instead.",
            param="suffix",
            code="invalid_type",
        )
    if not suffix or switches.suffix == "ignore":
        return prompts, ""
    if switches.suffix == "append":
        return prompts, suffix
    return [[*prompt, model.ENDOFTEXT, *model.tokenize(suffix)] for prompt in prompts], ""


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class _ToolCall:
    """One tool call of a choice, as rendered."""

    id: str
    name: str
    arguments: str | dict[str, Any]  # a dict only when arguments are sent as an object
    pieces: tuple[str, ...]  # stream deltas of string arguments; none for an object


@dataclass(frozen=True)
class _Choice:
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
    tool_calls: tuple[_ToolCall, ...] = ()
    stop_match: str | None = None  # the stop string that ended the choice, if one did


@dataclass
class _Result:
    choices: list[_Choice] = field(default_factory=list)
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


def _tool_choice(index: int, prompt: Sequence[int], p: _Plan) -> _Choice:
    """A choice that calls ``p.tool_calls``, their arguments sharing max_tokens."""
    budget = p.sampling.max_tokens
    calls: list[_ToolCall] = []
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
            calls.append(_ToolCall(ident, call.name, arguments, ()))
        else:
            pieces = model.stream_pieces(kept)
            calls.append(_ToolCall(ident, call.name, model.detokenize(kept), pieces))
    finish = "length" if truncated else "tool_calls"
    return _Choice(index, "", (), finish, spent, tool_calls=tuple(calls))


def _formatted_choice(index: int, prompt: Sequence[int], p: _Plan, form: _Format) -> _Choice:
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
    return _Choice(index, model.detokenize(kept), model.stream_pieces(kept), finish, len(kept))


def run(p: _Plan) -> _Result:
    """Generate every choice of a planned request."""
    result = _Result(
        prompt_tokens=sum(len(prompt) for prompt in p.prompts), details=p.usage_details
    )
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
                    _Choice(
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
                _Choice(
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


# --------------------------------------------------------------------------- rendering


def _fingerprint(config: ServerConfig) -> str:
    settings = json.dumps(
        [config.switches.model_dump(), config.context_window, config.max_output_tokens],
        sort_keys=True,
    )
    return "fp_" + hashlib.sha256(settings.encode()).hexdigest()[:10]


def _envelope(
    p: _Plan, ident: str, created: int, fingerprint: str, *, chunk: bool
) -> dict[str, Any]:
    if p.api == "chat":
        kind = "chat.completion.chunk" if chunk else "chat.completion"
    else:
        kind = "text_completion"
    return {
        "id": ident,
        "object": kind,
        "created": created,
        "model": p.model_name,
        "system_fingerprint": fingerprint,
    }


def _tool_call_body(call: _ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _message(choice: _Choice, reasoning: bool) -> dict[str, Any]:
    if choice.tool_calls:
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [_tool_call_body(call) for call in choice.tool_calls],
            "refusal": None,
        }
    if choice.call is not None:
        return {
            "role": "assistant",
            "content": None,
            "function_call": {"name": choice.call, "arguments": choice.text},
            "refusal": None,
        }
    message: dict[str, Any] = {"role": "assistant", "content": choice.text, "refusal": None}
    if reasoning:
        message["reasoning_content"] = REASONING_TEXT
    return message


def _logprobs_object(p: _Plan, choice: _Choice) -> dict[str, Any] | None:
    if p.logprobs_request is None or choice.call is not None:
        return None
    return logprobs.render(p.logprobs_request.shape, choice.logprobs, len(choice.echo))


def _piece_logprobs(p: _Plan, choice: _Choice) -> list[dict[str, Any] | None]:
    """The ``logprobs`` of each streamed piece: one token per piece, any rest on the last."""
    if p.logprobs_request is None or not choice.pieces:
        return [None] * len(choice.pieces)
    shape = p.logprobs_request.shape
    entries = choice.logprobs
    last = len(choice.pieces) - 1
    rendered: list[dict[str, Any] | None] = []
    offset = len(choice.echo)
    for position, piece in enumerate(choice.pieces):
        mine = entries[position:] if position == last else entries[position : position + 1]
        rendered.append(logprobs.render(shape, mine, offset))
        offset += len(piece)
    return rendered


def _stop_metadata(p: _Plan, choice: _Choice) -> dict[str, Any]:
    """vLLM's per-choice ``stop_reason`` when the switch asks for it (the matched string)."""
    return {"stop_reason": choice.stop_match} if p.stop_metadata else {}


def render_body(
    p: _Plan, result: _Result, ident: str, created: int, fingerprint: str
) -> dict[str, Any]:
    """The JSON body of a non-streamed reply."""
    body = _envelope(p, ident, created, fingerprint, chunk=False)
    if p.api == "chat":
        body["choices"] = [
            {
                "index": c.index,
                "message": _message(c, p.reasoning),
                "logprobs": _logprobs_object(p, c),
                "finish_reason": c.finish_reason,
                **_stop_metadata(p, c),
            }
            for c in result.choices
        ]
    else:
        body["choices"] = [
            {
                "index": c.index,
                "text": c.text,
                "logprobs": _logprobs_object(p, c),
                "finish_reason": c.finish_reason,
                **_stop_metadata(p, c),
            }
            for c in result.choices
        ]
        if p.reasoning:
            for choice in body["choices"]:
                choice["reasoning_content"] = REASONING_TEXT
    body["usage"] = result.usage()
    return body


@dataclass
class _Event:
    """One stream chunk's choice, before the envelope and usage are added."""

    choice: dict[str, Any]
    index: int
    finish_tokens: int | None = None  # set on a finish chunk: the choice's exact token count


def _choice_events(p: _Plan, c: _Choice) -> list[_Event]:
    def chat(
        delta: dict[str, Any], finish: str | None = None, scored: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"index": c.index, "delta": delta, "logprobs": scored, "finish_reason": finish}

    def text(
        piece: str, finish: str | None = None, scored: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"index": c.index, "text": piece, "logprobs": scored, "finish_reason": finish}

    scored_pieces = list(zip(c.pieces, _piece_logprobs(p, c), strict=True))

    events: list[_Event] = []
    if p.api == "chat":
        if c.call is not None:
            first = {
                "role": "assistant",
                "content": None,
                "function_call": {"name": c.call, "arguments": ""},
            }
            events.append(_Event(chat(first), c.index))
            events += [_Event(chat({"function_call": {"arguments": s}}), c.index) for s in c.pieces]
        elif c.tool_calls:
            events += _tool_call_events(c, chat)
        else:
            opening: dict[str, Any] = {"role": "assistant", "content": ""}
            if p.reasoning:
                opening["reasoning_content"] = REASONING_TEXT
            events.append(_Event(chat(opening), c.index))
            events += [_Event(chat({"content": s}, None, lp), c.index) for s, lp in scored_pieces]
        events.append(
            _Event({**chat({}, c.finish_reason), **_stop_metadata(p, c)}, c.index, c.tokens)
        )
    else:
        if c.echo:
            events.append(_Event(text(c.echo), c.index))
        events += [_Event(text(s, None, lp), c.index) for s, lp in scored_pieces]
        events.append(
            _Event({**text("", c.finish_reason), **_stop_metadata(p, c)}, c.index, c.tokens)
        )
        if p.reasoning:
            events[0].choice["reasoning_content"] = REASONING_TEXT
    return events


def _tool_call_events(c: _Choice, chat: Callable[[dict[str, Any]], dict[str, Any]]) -> list[_Event]:
    """OpenAI's tool-call deltas: each call opens with its id, type and name (and, sent as an
    object, its arguments), then its argument text follows one token per chunk."""
    events: list[_Event] = []
    for position, call in enumerate(c.tool_calls):
        opening = _tool_call_body(call)
        if call.pieces or not isinstance(call.arguments, dict):
            opening["function"]["arguments"] = ""
        delta: dict[str, Any] = {"tool_calls": [{"index": position, **opening}]}
        if position == 0:
            delta = {"role": "assistant", "content": None, **delta}
        events.append(_Event(chat(delta), c.index))
        events += [
            _Event(
                chat({"tool_calls": [{"index": position, "function": {"arguments": piece}}]}),
                c.index,
            )
            for piece in call.pieces
        ]
    return events


def render_chunks(
    p: _Plan, result: _Result, ident: str, created: int, fingerprint: str
) -> list[dict[str, Any]]:
    """The chunks of a streamed reply, one token each, with usage where the switches put it."""
    per_choice = [_choice_events(p, c) for c in result.choices]
    # Choices are interleaved position by position, as a batched server sends them.
    events = [
        lane[position]
        for position in range(max(len(lane) for lane in per_choice))
        for lane in per_choice
        if position < len(lane)
    ]
    placement = p.usage_placement
    last_finish = max(i for i, event in enumerate(events) if event.finish_tokens is not None)
    done = dict.fromkeys((c.index for c in result.choices), 0)
    chunks: list[dict[str, Any]] = []
    for position, event in enumerate(events):
        chunk = _envelope(p, ident, created, fingerprint, chunk=True)
        chunk["choices"] = [event.choice]
        # Running count for every_chunk: a content chunk is one token, a finish chunk exact.
        if event.finish_tokens is not None:
            done[event.index] = event.finish_tokens
        elif "role" not in event.choice.get("delta", {}):
            done[event.index] += 1
        if placement == "every_chunk":
            chunk["usage"] = result.usage(min(sum(done.values()), result.completion_tokens))
            if position == last_finish:
                chunk["usage"] = result.usage()
        elif placement == "finish_chunk" and position == last_finish:
            chunk["usage"] = result.usage()
        elif placement == "extra_chunk":
            chunk["usage"] = None  # OpenAI: every other chunk carries usage: null
        chunks.append(chunk)
    if placement in ("extra_chunk", "extra_chunk_with_choices"):
        extra = _envelope(p, ident, created, fingerprint, chunk=True)
        extra["choices"] = []
        if placement == "extra_chunk_with_choices":
            empty: dict[str, Any] = {"delta": {}} if p.api == "chat" else {"text": ""}
            extra["choices"] = [{"index": 0, **empty, "logprobs": None, "finish_reason": None}]
        extra["usage"] = result.usage()
        chunks.append(extra)
    return chunks


def _shaped(item: dict[str, Any], switches: Switches) -> dict[str, Any]:
    """A reply object as the response switches have it: with an extension field, or with
    ``created`` in a type OpenAI's response types refuse."""
    if switches.response_extensions == "present":
        item["x_reference"] = {"server": SERVER_HEADER}
    if switches.response_schema == "invalid":
        item["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item["created"]))
    return item


# --------------------------------------------------------------------------- request, errors and usage

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
#: What the toy model "thinks" when the reasoning_effort switch makes it show reasoning.
REASONING_TEXT = "The prompt names a place; the walk goes on from its last word."
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


def plan_request(body: Mapping[str, Any], api: Api, config: ServerConfig) -> _Plan:
    """``plan``, then what the switches of this family decide about the whole request.

    A refusal that a lenient switch turns into acceptance (an out-of-range temperature,
    presence_penalty or max_tokens) is planned again with the value corrected; fields nobody looked up are
    refused as unknown.
    """
    switches = config.switches
    name = body.get("model")
    if isinstance(name, str) and name:
        _check_model(name, config)
    planned, fields = _plan_leniently(body, api, config)
    reasoning = _reasoning(fields, switches)
    unknown = sorted(set(fields) - fields.looked_up - DOCUMENTED_FIELDS[api])
    if unknown and switches.unknown_field == "reject":
        # OpenAI's words, with param and code null.
        raise ApiError(f"Unrecognized request argument supplied: {', '.join(unknown)}")
    return dataclasses.replace(planned, reasoning=reasoning, usage_details=switches.usage_details)


def _plan_leniently(
    body: Mapping[str, Any], api: Api, config: ServerConfig
) -> tuple[_Plan, _ReadFields]:
    """``plan`` and the fields it looked up, planning again where a switch overrules a refusal."""
    fields = _ReadFields(body)
    try:
        return plan(fields, api, config), fields
    except _PastTheWindow as past:
        return _plan_leniently(body, api, dataclasses.replace(config, context_window=past.window))
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


def _check_model(name: str, config: ServerConfig) -> None:
    """Refuse a model name other than the served one, as the unknown_model switch says."""
    mode = config.switches.unknown_model
    if name == config.model or mode == "accept":
        return
    if mode == "not_found":
        raise ApiError(
            f"The model `{name}` does not exist or you do not have access to it.",
            status=404,
            code="model_not_found",
        )
    if mode == "bad_request":
        raise ApiError(
            f"Invalid model `{name}`: this server serves `{config.model}`.",
            param="model",
            code="invalid_value",
        )
    raise ApiError(
        f"You do not have access to the model `{name}`.", status=403, kind="permission_error"
    )


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
            f"but got {_type_name(value)} instead.",
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


# --------------------------------------------------------------------------- the app


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(
            "We could not parse the JSON body of your request. The API expects a JSON payload."
        ) from None
    if not isinstance(body, dict):
        raise ApiError("The JSON body of the request must be an object.")
    return body


def _completion_endpoint(api: Api, config: ServerConfig) -> Any:
    fingerprint = _fingerprint(config)
    prefix = "chatcmpl-" if api == "chat" else "cmpl-"

    async def endpoint(request: Request) -> Response:
        try:
            p = plan_request(await _json_body(request), api, config)
        except ApiError as error:
            return error.response(config.switches.error_envelope)
        result = run(p)
        ident = prefix + uuid.uuid4().hex[:24]
        created = int(time.time())
        if p.stream:
            chunks = streaming.shape_chunks(
                render_chunks(p, result, ident, created, fingerprint), config.switches
            )
            return StreamingResponse(
                streaming.sse(
                    [_shaped(chunk, config.switches) for chunk in chunks],
                    config.switches.stream_framing,
                ),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        body = render_body(p, result, ident, created, fingerprint)
        return JSONResponse(_shaped(body, config.switches))

    return endpoint


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "conformance-reference"}


class _Envelope:
    """ASGI middleware: the ``server`` header on every response, and the API key check."""

    def __init__(
        self,
        app: ASGIApp,
        api_key: str | None,
        header: str = "authorization",
        query: str | None = None,
        *,
        bad_key: str = "unauthorized",
        envelope: str = "openai",
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.header = header
        self.query = query
        self.bad_key = bad_key  # the bad_key switch
        self.envelope = envelope  # the error_envelope switch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                headers.append((b"server", SERVER_HEADER.encode()))
                message = {**message, "headers": headers}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_header)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_with_header(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception:
            if started:
                raise
            # Handled here rather than by Starlette's outermost error middleware, so that a
            # 500 is in OpenAI's envelope and carries the server header too.
            _log.exception("unhandled error in %s", scope.get("path"))
            await error_response(500, "The server had an error.", kind="server_error")(
                scope, receive, send_with_header
            )

    def _refusal(self, scope: Scope) -> Response | None:
        if self.api_key is None or self.bad_key == "accept":
            return None
        token = presented_key(scope, self.header, self.query)
        if token is None:
            return error_response(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                envelope=self.envelope,
            )
        if not hmac.compare_digest(token.encode(), self.api_key.encode()):
            # The key is not echoed: replies end up in evidence files.
            status = {"forbidden": 403, "bad_request": 400}.get(self.bad_key, 401)
            return error_response(
                status,
                "Incorrect API key provided.",
                code="invalid_api_key",
                envelope=self.envelope,
            )
        return None


def presented_key(
    scope: Scope, header: str = "authorization", query: str | None = None
) -> str | None:
    """The key a request presents: in the ``query`` parameter if given, else in ``header``
    (a bearer token in ``authorization``, the bare key in any other header); None if absent."""
    if query is not None:
        query_string: bytes = scope.get("query_string", b"")
        values = parse_qs(query_string.decode("latin-1")).get(query)
        return values[0] if values else None
    raw: bytes | None = dict(scope.get("headers", [])).get(header.lower().encode("latin-1"))
    if not raw:
        return None
    given = raw.decode("latin-1").strip()
    if header.lower() != "authorization":
        return given
    scheme, _, token = given.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    elif status == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}"
    else:
        message = exc.detail if isinstance(exc, HTTPException) else "The server had an error."
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return error_response(status, message, kind=kind)


def create_app(config: ServerConfig) -> Starlette:
    """The reference server's Starlette app for ``config`` (switches, window, key, model name)."""

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [_model_object(config.model)]})

    async def get_model(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            _check_model(name, config)
        except ApiError as error:
            return error.response(config.switches.error_envelope)
        return JSONResponse(_model_object(name))

    routes = [
        Route("/v1/chat/completions", _completion_endpoint("chat", config), methods=["POST"]),
        Route("/v1/completions", _completion_endpoint("completions", config), methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{name:path}", get_model, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(
                _Envelope,
                api_key=config.api_key,
                header=config.api_key_header,
                query=config.api_key_query,
                bad_key=config.switches.bad_key,
                envelope=config.switches.error_envelope,
            )
        ],
        exception_handlers={HTTPException: _http_error},
    )
