"""Request checks: ``ApiError``, OpenAI's error envelope, and the checks of single fields.

``ApiError`` is a refused request and ``error_response`` renders one, in OpenAI's envelope
``{"error": {"message", "type", "param", "code"}}`` or another shape of the error_envelope
switch. Each check reads one request field (or one group, as tools with tool_choice),
refuses what OpenAI refuses and follows the field's switch: honoured, ignored or refused.
The planner, the sampling options and the app all refuse through this module, which
imports none of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal

from starlette.responses import JSONResponse, PlainTextResponse, Response

from conformance.reference import model
from conformance.reference.switches import OptionMode, Switches

if TYPE_CHECKING:
    from conformance.reference.server import ServerConfig

#: The API a request is for: chat completions or the legacy completions.
Api = Literal["chat", "completions"]

MAX_STOP = 4
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


def given(body: Mapping[str, Any], name: str) -> bool:
    # OpenAI treats an explicit null as "not given".
    return body.get(name) is not None


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def number(body: Mapping[str, Any], name: str, low: float, high: float, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(
            f"Invalid type for '{name}': expected a number, but got {type_name(value)} instead.",
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


def integer(body: Mapping[str, Any], name: str, low: int, high: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(
            f"Invalid type for '{name}': expected an integer, but got {type_name(value)} instead.",
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


def gate(body: Mapping[str, Any], name: str, mode: OptionMode) -> bool:
    """True when option ``name`` is given and honoured; 400 when given and refused."""
    if not given(body, name):
        return False
    if mode == "reject":
        raise ApiError(
            f"Unsupported parameter: '{name}' is not supported by this server.",
            param=name,
            code="unsupported_parameter",
        )
    return mode == "honour"


def stop(body: Mapping[str, Any], switches: Switches) -> tuple[str, ...]:
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


def logit_bias(body: Mapping[str, Any], switches: Switches) -> dict[int, float]:
    honoured = gate(body, "logit_bias", switches.logit_bias)
    value = body.get("logit_bias")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(
            "Invalid type for 'logit_bias': expected an object, "
            f"but got {type_name(value)} instead.",
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
        bias[token] = number({"logit_bias": amount}, "logit_bias", -100, 100, 0.0)
    return bias if honoured else {}


def messages(body: Mapping[str, Any], switches: Switches) -> list[dict[str, Any]]:
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
        if given(message, "name"):
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


def completion_prompts(body: Mapping[str, Any]) -> list[list[int]]:
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
class Call:
    """A function call forced by ``function_call: {"name": ...}``."""

    name: str
    parameters: Mapping[str, Any] | None


def functions(
    body: Mapping[str, Any], switches: Switches
) -> tuple[list[dict[str, Any]], Call | None]:
    functions_given = given(body, "functions")
    if switches.functions == "reject" and given(body, "function_call") and not functions_given:
        gate(body, "function_call", "reject")
    if not gate(body, "functions", switches.functions):
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
    return functions, Call(str(name), parameters if isinstance(parameters, dict) else None)


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
        gate(body, "parallel_tool_calls", "reject")
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


def tools(
    body: Mapping[str, Any], switches: Switches
) -> tuple[list[dict[str, Any]], tuple[Call, ...]]:
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
        calls.append(Call(function["name"], parameters if isinstance(parameters, dict) else None))
    return functions, tuple(calls)


@dataclass(frozen=True)
class Format:
    """What ``response_format`` makes the content: any JSON object, or one following a schema."""

    schema: Mapping[str, Any] | None = None  # None: JSON mode
    cut_off: bool = False  # open the object, then pad with spaces until max_tokens


def _mentions_json(messages: Sequence[Mapping[str, Any]]) -> bool:
    return any("json" in model.message_text(m.get("content")).lower() for m in messages)


def response_format(
    body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], switches: Switches
) -> Format | None:
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
        return Format()
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
        return Format()  # JSON mode in place of the schema
    schema = spec.get("schema")
    return Format(schema if isinstance(schema, dict) else {}, cut_off=mode == "cut_off")


def check_model(name: str, config: ServerConfig) -> None:
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
