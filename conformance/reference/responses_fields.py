"""The Responses API's request fields, one check each: ``input`` and its items, the tools
and ``tool_choice``, ``text.format``, ``reasoning``, ``metadata``, ``include``, ``store``,
``max_output_tokens``, ``truncation``, and the fields the API does not have.

Each check refuses what OpenAI refuses (an ``ApiError``) and follows its ``responses_*``
switch; ``responses.plan_turn`` puts their answers together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from openai.types.responses import response_create_params

from conformance.reference import logprobs, model, validation
from conformance.reference.switches import Switches
from conformance.reference.validation import ApiError, Call, Format, given

#: OpenAI's smallest ``max_output_tokens``.
MIN_OUTPUT_TOKENS = 16
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
REASONING_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})
MESSAGE_ROLES = frozenset({"user", "assistant", "system", "developer"})
#: Content parts of an input message; only text parts carry anything the toy model reads.
CONTENT_PARTS = frozenset({"input_text", "output_text", "input_image", "input_file", "refusal"})
#: The request fields OpenAI documents: the keys of the official SDK's request type.
DOCUMENTED_FIELDS = frozenset(
    response_create_params.ResponseCreateParamsBase.__required_keys__
    | response_create_params.ResponseCreateParamsBase.__optional_keys__
    | {"stream"}
)
INCLUDABLE = frozenset(
    {
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
    }
)
#: The ``include`` value that adds log probabilities to the output text.
LOGPROBS = "message.output_text.logprobs"
MAX_TOP_LOGPROBS = 20

#: A Responses input item (a message, a function call or its output), as the server keeps it.
Item = dict[str, Any]


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ApiError(
            f"Invalid type for '{where}': expected a string, "
            f"but got {validation.type_name(value)} instead.",
            param=where,
            code="invalid_type",
        )
    return value


def _message(item: Mapping[str, Any], where: str) -> Item:
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        raise ApiError(
            f"Invalid value for '{where}.role': expected one of "
            f"{', '.join(sorted(MESSAGE_ROLES))}, but got {role!r}.",
            param=f"{where}.role",
            code="invalid_value",
        )
    content = item.get("content")
    if isinstance(content, list):
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in CONTENT_PARTS:
                raise ApiError(
                    f"Invalid value for '{where}.content[{index}].type': expected one of "
                    f"{', '.join(sorted(CONTENT_PARTS))}.",
                    param=f"{where}.content[{index}].type",
                    code="invalid_value",
                )
    elif not isinstance(content, str):
        raise ApiError(
            f"Invalid type for '{where}.content': expected a string or an array of content parts.",
            param=f"{where}.content",
            code="invalid_type",
        )
    return {"type": "message", "role": role, "content": content}


def input_items(body: Mapping[str, Any], switches: Switches) -> list[Item]:
    """The request's ``input`` as Responses input items (a string is one user message)."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise ApiError(
            "Invalid 'input': expected a string or a non-empty array of input items.",
            param="input",
            code="invalid_value" if value is not None else "missing_required_parameter",
        )
    if switches.responses_input_items == "string_only":
        raise ApiError(
            "Invalid type for 'input': expected a string, but got an array instead.",
            param="input",
            code="invalid_type",
        )
    items: list[Item] = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise ApiError(f"Invalid type for '{where}': expected an object.", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            items.append(_message(item, where))
        elif kind == "function_call":
            items.append(
                {
                    "type": "function_call",
                    "call_id": _text(item.get("call_id"), f"{where}.call_id"),
                    "name": _text(item.get("name"), f"{where}.name"),
                    "arguments": _text(item.get("arguments"), f"{where}.arguments"),
                }
            )
        elif kind == "function_call_output":
            output = item.get("output")
            if not isinstance(output, str | list):
                _text(output, f"{where}.output")
            call_id = _text(item.get("call_id"), f"{where}.call_id")
            items.append({"type": "function_call_output", "call_id": call_id, "output": output})
        elif kind == "reasoning":
            continue  # a reasoning item passed back: nothing the toy model reads
        else:
            raise ApiError(
                f"Invalid value for '{where}.type': this server takes 'message', "
                f"'function_call', 'function_call_output' and 'reasoning' items, not {kind!r}.",
                param=f"{where}.type",
                code="invalid_value",
            )
    return items


def check_calls_answered(context: Sequence[Item], items: Sequence[Item]) -> None:
    """OpenAI refuses a function_call_output whose call_id no function_call before it made,
    in the stored ``context`` or the new input ``items``."""
    made = {item["call_id"] for item in context if item["type"] == "function_call"}
    for index, item in enumerate(items):
        if item["type"] == "function_call":
            made.add(item["call_id"])
        elif item["type"] == "function_call_output" and item["call_id"] not in made:
            raise ApiError(
                f"No tool call found for function call output with call_id {item['call_id']}.",
                param=f"input[{index}]",
                code="invalid_value",
            )


def chat_messages(instructions: str | None, items: Sequence[Item]) -> list[dict[str, Any]]:
    """The conversation as chat messages, which the toy model's template renders."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        if item["type"] == "message":
            messages.append({"role": item["role"], "content": item["content"]})
        elif item["type"] == "function_call":
            call = {"id": item["call_id"], "type": "function", "function": {}}
            call["function"] = {"name": item["name"], "arguments": item["arguments"]}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif item["type"] == "function_call_output":
            messages.append({"role": "tool", "content": item["output"]})
    return messages


def instructions(body: Mapping[str, Any], switches: Switches) -> str | None:
    """The ``instructions`` the model reads as a system message, None when there are none."""
    if not validation.gate(body, "instructions", switches.responses_instructions):
        return None
    return _text(body["instructions"], "instructions")


def metadata(body: Mapping[str, Any], switches: Switches) -> dict[str, str] | None:
    """The ``metadata`` the response echoes (``{}`` when dropped), None when not given."""
    value = body.get("metadata")
    if value is None:
        return None
    if switches.responses_metadata == "reject":
        validation.gate(body, "metadata", "reject")
    if not isinstance(value, dict) or len(value) > MAX_METADATA_PAIRS:
        raise ApiError(
            f"Invalid 'metadata': expected an object of at most {MAX_METADATA_PAIRS} pairs.",
            param="metadata",
            code="invalid_value",
        )
    for key, text in value.items():
        if len(key) > MAX_METADATA_KEY or not isinstance(text, str):
            raise ApiError(
                f"Invalid 'metadata': keys are strings of at most {MAX_METADATA_KEY} characters, "
                f"values strings of at most {MAX_METADATA_VALUE}.",
                param=f"metadata.{key}",
                code="invalid_value",
            )
        if len(text) > MAX_METADATA_VALUE:
            raise ApiError(
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum "
                f"length {MAX_METADATA_VALUE}, but got a string with length {len(text)} instead.",
                param=f"metadata.{key}",
                code="string_above_max_length",
            )
    return dict(value) if switches.responses_metadata == "echo" else {}


def function_tools(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The function tools, as the response echoes them; 400 for any other tool."""
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ApiError("Invalid type for 'tools': expected an array.", param="tools")
    echoed: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise ApiError(
                f"Unsupported value: '{where}.type': this server serves function tools only.",
                param=f"{where}.type",
                code="unsupported_value",
            )
        if not isinstance(tool.get("name"), str):
            # Chat's nested {"function": {"name": ...}} shape lands here, as at OpenAI.
            raise ApiError(
                f"Missing required parameter: '{where}.name'.",
                param=f"{where}.name",
                code="missing_required_parameter",
            )
        parameters = tool.get("parameters")
        echoed.append(
            {
                "type": "function",
                "name": tool["name"],
                "description": tool.get("description"),
                "parameters": parameters if isinstance(parameters, dict) else None,
                "strict": tool.get("strict", True),
            }
        )
    return echoed


def _parallel(body: Mapping[str, Any], switches: Switches) -> bool:
    """Whether "required" may call several tools at once."""
    value = body.get("parallel_tool_calls")
    if value is None:
        return True
    if switches.responses_parallel_tool_calls == "reject":
        validation.gate(body, "parallel_tool_calls", "reject")
    if not isinstance(value, bool):
        raise ApiError(
            "Invalid type for 'parallel_tool_calls': expected a boolean.",
            param="parallel_tool_calls",
            code="invalid_type",
        )
    return value or switches.responses_parallel_tool_calls == "ignore"


def tool_calls(
    body: Mapping[str, Any], tools: Sequence[Mapping[str, Any]], switches: Switches
) -> tuple[Any, tuple[Call, ...]]:
    """The ``tool_choice`` the response echoes, and the calls it forces.

    The toy model never decides to call a tool itself: with "auto" (the default) the reply
    is text, as with "none", so "required" and a named tool are what make calls.
    """
    parallel = _parallel(body, switches)
    choice = body.get("tool_choice")
    if choice is None:
        return "auto", ()
    if not tools and choice not in ("none", "auto"):
        raise ApiError(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            param="tool_choice",
            code="invalid_value",
        )
    named = choice.get("name") if isinstance(choice, dict) else None
    chosen = [tool for tool in tools if tool["name"] == named]
    if choice not in ("none", "auto", "required") and not (
        isinstance(choice, dict) and choice.get("type") == "function" and chosen
    ):
        raise ApiError(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
            "{'type': 'function', 'name': <one of the tools>}.",
            param="tool_choice",
            code="invalid_value",
        )
    mode = switches.responses_tool_choice
    if choice == "auto":
        return choice, ()
    if mode == "reject":
        raise ApiError(
            f"Unsupported value: 'tool_choice' does not support {choice!r} with this server.",
            param="tool_choice",
            code="unsupported_value",
        )
    if choice == "none" or mode == "auto_only":
        return choice, ()
    if choice == "required":
        forced = list(tools) if parallel else list(tools[:1])
    else:
        others = [tool for tool in tools if tool["name"] != named]
        forced = others[:1] if mode == "wrong_tool" and others else chosen
    return choice, tuple(Call(tool["name"], tool["parameters"]) for tool in forced)


def text_format(
    body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], switches: Switches
) -> tuple[dict[str, Any], Format | None]:
    """The ``text`` config the response echoes, and the format the output follows."""
    config = body.get("text")
    if config is None:
        return {"format": {"type": "text"}, "verbosity": "medium"}, None
    form = config.get("format") if isinstance(config, dict) else None
    if not isinstance(config, dict) or (form is not None and not isinstance(form, dict)):
        raise ApiError("Invalid type for 'text': expected an object.", param="text")
    echoed = {"format": form or {"type": "text"}, "verbosity": config.get("verbosity", "medium")}
    kind = (form or {}).get("type", "text")
    if kind == "text":
        return echoed, None
    if kind == "json_object":
        text = " ".join(model.message_text(m.get("content")) for m in messages)
        if "json" not in text.lower():
            raise ApiError(
                "Response input messages must contain the word 'json' in some form to use "
                "'text.format' of type 'json_object'.",
                param="input",
                code="invalid_value",
            )
        return echoed, Format()
    if kind != "json_schema":
        raise ApiError(
            "Invalid value for 'text.format.type': expected 'text', 'json_object' or "
            "'json_schema'.",
            param="text.format.type",
            code="invalid_value",
        )
    assert form is not None
    for required in ("name", "schema"):
        if required not in form:
            # Chat's nested {"json_schema": {...}} shape lands here, as at OpenAI.
            raise ApiError(
                f"Missing required parameter: 'text.format.{required}'.",
                param=f"text.format.{required}",
                code="missing_required_parameter",
            )
    mode = switches.responses_json_schema
    if mode == "reject":
        raise ApiError(
            "Unsupported value: 'text.format.type' does not support 'json_schema' with this "
            "server.",
            param="text.format.type",
            code="unsupported_value",
        )
    if mode == "ignore":
        return echoed, None
    if mode == "json_only":
        return echoed, Format()
    schema = form["schema"]
    return echoed, Format(schema if isinstance(schema, dict) else {})


def reasoning(body: Mapping[str, Any], switches: Switches) -> tuple[dict[str, Any] | None, bool]:
    """The ``reasoning`` the response echoes, and whether the reply shows reasoning."""
    value = body.get("reasoning")
    if value is None:
        return None, False
    effort = value.get("effort") if isinstance(value, dict) else None
    if switches.responses_reasoning == "reject" and effort is not None:
        raise ApiError(
            "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
            param="reasoning.effort",
            code="unsupported_parameter",
        )
    if not isinstance(value, dict) or (effort is not None and effort not in REASONING_EFFORTS):
        raise ApiError(
            "Invalid value for 'reasoning.effort': expected one of "
            f"{', '.join(sorted(REASONING_EFFORTS))}.",
            param="reasoning.effort",
            code="invalid_value",
        )
    if switches.responses_reasoning == "ignore":
        return {"effort": None, "summary": None}, False
    return {"effort": effort, "summary": value.get("summary")}, effort not in (None, "none")


def logprobs_request(body: Mapping[str, Any], included: frozenset[str]) -> logprobs.Request | None:
    """The log probabilities the output text carries: asked for with ``include``
    "message.output_text.logprobs", with ``top_logprobs`` alternatives per token."""
    top = validation.integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if LOGPROBS not in included:
        return None
    return logprobs.Request("chat", top or 0)


def include(body: Mapping[str, Any]) -> frozenset[str]:
    """The ``include`` values asked for; 400 for one OpenAI does not document."""
    value = body.get("include")
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(entry in INCLUDABLE for entry in value):
        raise ApiError(
            f"Invalid value for 'include': expected an array of {', '.join(sorted(INCLUDABLE))}.",
            param="include",
            code="invalid_value",
        )
    return frozenset(value)


def store(body: Mapping[str, Any], switches: Switches) -> bool:
    """Whether the server keeps the response (the Response object does not echo ``store``)."""
    value = body.get("store")
    if value is not None and not isinstance(value, bool):
        raise ApiError(
            "Invalid type for 'store': expected a boolean.", param="store", code="invalid_type"
        )
    mode = switches.responses_store
    if mode in ("never", "always"):
        return mode == "always"
    return value if value is not None else mode == "default_on"


def output_limit(body: Mapping[str, Any], switches: Switches) -> int | None:
    """The ``max_output_tokens`` the request asks for, after its switch."""
    if not given(body, "max_output_tokens"):
        return None
    if switches.responses_max_output_tokens == "reject":
        validation.gate(body, "max_output_tokens", "reject")
    limit = validation.integer(body, "max_output_tokens", MIN_OUTPUT_TOKENS, None)
    return None if switches.responses_max_output_tokens == "ignore" else limit


def truncation(body: Mapping[str, Any], switches: Switches) -> str:
    """The ``truncation`` asked for ("disabled" by default), as the response echoes it."""
    value = body.get("truncation")
    if value is None:
        return "disabled"
    if switches.responses_truncation == "reject":
        validation.gate(body, "truncation", "reject")
    if value not in ("auto", "disabled"):
        raise ApiError(
            "Invalid value for 'truncation': expected 'auto' or 'disabled'.",
            param="truncation",
            code="invalid_value",
        )
    return str(value)


def stop(body: Mapping[str, Any], switches: Switches) -> tuple[str, ...]:
    """The stop strings to apply: ``stop`` is no Responses field, refused unless a switch
    drops it or applies it."""
    if not given(body, "stop") or switches.responses_stop == "ignore":
        return ()
    if switches.responses_stop == "reject":
        raise unknown_parameter("stop")
    return validation.stop(body, Switches())  # as chat applies it by default


def unknown_parameter(name: str) -> ApiError:
    """OpenAI's refusal of a field the Responses API does not have."""
    return ApiError(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")


def check_fields(body: Mapping[str, Any], switches: Switches) -> None:
    """Refuse the first field the Responses API does not have (``stop`` has its own switch)."""
    unknown = sorted(set(body) - DOCUMENTED_FIELDS - {"stop"})
    if unknown and switches.responses_unknown_field == "reject":
        raise unknown_parameter(unknown[0])
