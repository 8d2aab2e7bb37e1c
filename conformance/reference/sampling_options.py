"""The sampling options: n, seed, the temperature's range, logprobs, and completions'
prompt lists, echo and suffix.

Each function reads one option, after its switch, and returns what the plan takes from it;
``planning.plan`` calls them. They stand apart from planning because each stands alone, on
the field checks of ``validation``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from conformance.reference import logprobs, model
from conformance.reference.switches import Switches
from conformance.reference.validation import Api, ApiError, gate, given, integer, type_name

MAX_N = 128
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


def n(body: Mapping[str, Any], switches: Switches) -> int:
    n = integer(body, "n", 1, MAX_N) or 1
    if n != 1 and switches.n == "reject":
        raise ApiError(
            f"Unsupported value: 'n' must be 1 on this server, but got {n}.",
            param="n",
            code="unsupported_value",
        )
    return 1 if switches.n == "ignore" else n


def seed(body: Mapping[str, Any], switches: Switches) -> int | None:
    seed = integer(body, "seed", -(2**63), 2**63 - 1)
    if seed is None or switches.seed == "honour":
        return seed
    if switches.seed == "reject":
        gate(body, "seed", "reject")
    return INSENSITIVE_SEED if switches.seed == "insensitive" else None


def temperature_limit(switches: Switches) -> float:
    return MAX_TEMPERATURE if switches.temperature_range == "reject" else math.inf


def _boolean(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise ApiError(
            f"Invalid type for '{name}': expected a boolean, but got {type_name(value)} instead.",
            param=name,
            code="invalid_type",
        )
    return value


def chat_logprobs(body: Mapping[str, Any], switches: Switches) -> logprobs.Request | None:
    mode = switches.chat_logprobs
    top: int | None = None
    if given(body, "top_logprobs"):
        if switches.top_logprobs_limit == "reject":
            gate(body, "top_logprobs", "reject")
        top = integer(body, "top_logprobs", 0, TOP_LOGPROBS_MAXIMUM[switches.top_logprobs_limit])
    if mode == "reject":
        gate(body, "logprobs", "reject")
    wanted = given(body, "logprobs") and _boolean(body, "logprobs")
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


def completion_logprobs(body: Mapping[str, Any], switches: Switches) -> logprobs.Request | None:
    mode = switches.completion_logprobs
    if not given(body, "logprobs"):
        return None
    if mode == "reject":
        gate(body, "logprobs", "reject")
    top = integer(body, "logprobs", 0, MAX_COMPLETION_LOGPROBS)
    if top is None or mode == "ignore":
        return None
    return logprobs.Request("legacy" if mode == "honour" else "chat", top)


def prompt_list(prompts: list[list[int]], switches: Switches) -> list[list[int]]:
    if len(prompts) < 2 or switches.prompt_list in ("honour", "merged"):
        return prompts
    if switches.prompt_list == "reject":
        raise ApiError(
            "Invalid 'prompt': this server takes one prompt per request, not a list of prompts.",
            param="prompt",
            code="invalid_value",
        )
    return prompts[:1]


def echoes(
    body: Mapping[str, Any], api: Api, prompts: list[list[int]], switches: Switches
) -> tuple[str, ...] | None:
    if api == "chat" or not given(body, "echo"):
        return None
    if switches.echo == "reject":
        gate(body, "echo", "reject")
    if not _boolean(body, "echo") or switches.echo == "ignore":
        return None
    return tuple(model.detokenize(prompt) for prompt in prompts)


def with_suffix(
    body: Mapping[str, Any], api: Api, prompts: list[list[int]], switches: Switches
) -> tuple[list[list[int]], str]:
    """The prompts the model reads, and the suffix to glue to each text ("append").

    Honoured, the suffix follows each prompt after a document separator, as an insertion
    model sees the text on both sides of the gap.
    """
    if api == "chat" or not given(body, "suffix"):
        return prompts, ""
    if switches.suffix == "reject":
        gate(body, "suffix", "reject")
    suffix = body["suffix"]
    if not isinstance(suffix, str):
        raise ApiError(
            f"Invalid type for 'suffix': expected a string, but got {type_name(suffix)} instead.",
            param="suffix",
            code="invalid_type",
        )
    if not suffix or switches.suffix == "ignore":
        return prompts, ""
    if switches.suffix == "append":
        return prompts, suffix
    return [[*prompt, model.ENDOFTEXT, *model.tokenize(suffix)] for prompt in prompts], ""
