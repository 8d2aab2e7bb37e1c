"""Typed objects for the three kinds of spec file: behaviors, profiles and targets.

Every model is frozen and forbids unknown keys, so a typo in a YAML file is an error
rather than a silently ignored setting. ``specs/schema/*.schema.json`` is generated from
these models (``conformance schema``) so editors can complete spec files.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

#: The expectation that says a profile's documentation is silent.
UNKNOWN = "unknown"

BehaviorId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Tokens = Annotated[int, Field(gt=0)]


class Api(StrEnum):
    """The OpenAI APIs the suite probes: chat completions, legacy completions, Responses."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    RESPONSES = "responses"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Outcome(_Spec):
    """One member of a behavior's closed set of outcomes."""

    meaning: str = Field(description="One line: what a server that shows this outcome does.")
    reference: dict[str, str] = Field(
        default_factory=dict,
        description="Switch settings that make the reference server show this outcome.",
    )


class Variants(_Spec):
    """The request variants a behavior runs in."""

    stream: list[bool] = Field(default=[False, True], min_length=1)

    @field_validator("stream")
    @classmethod
    def _distinct(cls, stream: list[bool]) -> list[bool]:
        if len(set(stream)) != len(stream):
            raise ValueError("a variant is listed twice")
        return stream


class Caveat(_Spec):
    """What one behavior's outcome on a target says about other behaviors' outcomes there."""

    when: Name = Field(description="The outcome of this behavior that raises the caveat.")
    outcome: Name = Field(
        description="The outcome, in every other behavior, that the caveat qualifies."
    )
    text: str = Field(description="What a reader should know about that outcome on that target.")


class Behavior(_Spec):
    """Something a server may do differently, with the probe that observes it."""

    id: BehaviorId
    title: str
    description: str
    apis: list[Api] = Field(min_length=1)
    variants: Variants = Variants()
    probe: str = Field(description="Name of a probe registered in conformance.probes.")
    params: dict[str, Any] = Field(default_factory=dict, description="Passed to the probe.")
    outcomes: dict[Name, Outcome] = Field(min_length=2)
    first: bool = Field(
        default=False,
        description="Run before every other behavior, because its outcome qualifies theirs.",
    )
    caveats: list[Caveat] = Field(
        default_factory=list,
        description="Where this behavior's outcome on a target qualifies other behaviors' "
        "outcomes there (shown beside them in the report).",
    )

    @property
    def family(self) -> str:
        """The first part of the id, which groups behaviors in listings and reports."""
        return self.id.split(".", 1)[0]

    @model_validator(mode="after")
    def _caveats_name_own_outcomes(self) -> Behavior:
        for index, caveat in enumerate(self.caveats):
            if caveat.when not in self.outcomes:
                raise ValueError(
                    f"caveats[{index}].when: '{caveat.when}' is not an outcome of {self.id}; "
                    f"its outcomes: {', '.join(self.outcomes)}"
                )
        return self

    @field_validator("outcomes")
    @classmethod
    def _unknown_is_reserved(cls, outcomes: dict[str, Outcome]) -> dict[str, Outcome]:
        if UNKNOWN in outcomes:
            raise ValueError(f"'{UNKNOWN}' is reserved for expectations and cannot be an outcome")
        return outcomes


class BehaviorFile(_Spec):
    """A file under specs/behaviors/: a family of behaviors."""

    behaviors: list[Behavior] = Field(min_length=1)


class Expectation(_Spec):
    """What a profile's documentation says a behavior's outcome is, and where it says so."""

    expect: str | list[str] = Field(
        description="An outcome, a list of acceptable outcomes, or 'unknown' where the docs are silent."
    )
    source: str = Field(min_length=1, description="URL or document name.")
    read: dt.date = Field(description="The date the source was read.")
    quote: str | None = Field(default=None, description="The words of the source, where short.")
    note: str | None = None

    @property
    def outcomes(self) -> frozenset[str] | None:
        """The acceptable outcomes, or None when the expectation is unknown."""
        if self.expect == UNKNOWN:
            return None
        return frozenset([self.expect] if isinstance(self.expect, str) else self.expect)


class Profile(_Spec):
    """One provider's documented semantics, optionally as differences from another profile."""

    id: Name
    title: str
    description: str
    extends: Name | None = None
    expectations: dict[BehaviorId, Expectation] = Field(default_factory=dict)


class ReferenceServer(_Spec):
    """Settings for a reference server that the suite starts itself for a target."""

    dialect: Name = Field(description="The profile whose expectations set the server's switches.")
    set: dict[BehaviorId, str] = Field(
        default_factory=dict, description="Single switches to override: behavior id -> outcome."
    )


#: ``${NAME}`` in a target's header or query value: the environment variable NAME's value.
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY_REFERENCE = re.compile(r"\$\{[^}]*\}?")


def env_references(value: str) -> list[str]:
    """The environment variables ``value`` refers to as ``${NAME}``, in order."""
    return ENV_REFERENCE.findall(value)


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """``value`` with each ``${NAME}`` replaced by ``environ[NAME]`` (KeyError if unset or empty)."""

    def lookup(match: re.Match[str]) -> str:
        found = environ.get(match.group(1))
        if not found:
            raise KeyError(match.group(1))
        return found

    return ENV_REFERENCE.sub(lookup, value)


def _well_formed_references(value: str) -> str:
    for match in _ANY_REFERENCE.finditer(value):
        if not ENV_REFERENCE.fullmatch(match.group(0)):
            raise ValueError(
                f"'{match.group(0)}' is not a variable reference; write ${{NAME}} "
                "(letters, digits and underscores)"
            )
    return value


#: A header or query value: literal text, where ``${NAME}`` takes an environment variable.
EnvText = Annotated[str, AfterValidator(_well_formed_references)]


class Target(_Spec):
    """An endpoint to probe, and the profile it claims."""

    name: Name
    title: str
    profile: Name = Field(description="The profile this target claims to follow.")
    base_url: str = Field(pattern=r"^https?://")
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable that holds the key."
    )
    models: dict[Api, str] = Field(min_length=1)
    context_window: Tokens | dict[Api, Tokens] = Field(
        description="The model's context window in tokens: one number, or one per API."
    )
    max_output_tokens: Tokens | dict[Api, Tokens] | None = Field(
        default=None,
        description="The model's documented output cap (the most completion tokens one "
        "request may ask for): one number, or one per API; leave it out where none is documented.",
    )
    apis: list[Api] = Field(min_length=1)
    headers: dict[str, EnvText] = Field(
        default_factory=dict,
        description="Extra request headers; ${NAME} in a value is the environment variable "
        "NAME, so that keys (api-key, x-api-key) never have to be written here.",
    )
    query: dict[str, EnvText] = Field(
        default_factory=dict,
        description="Query parameters added to every request; ${NAME} as in headers.",
    )
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds one exchange may take: each step (connecting, each read), and "
        "the whole reply body from the start of the request.",
    )
    max_reply_bytes: int = Field(
        default=8_000_000,
        ge=1024,
        description="The largest reply body read, in bytes (decoded); a larger one is an error.",
    )
    max_sse_events: int = Field(
        default=20_000,
        ge=1,
        description="The most data events one stream may carry; a longer one is an error.",
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries after a 429, a 503 or a connection reset, each after a backoff.",
    )
    max_retry_wait_s: float = Field(
        default=30.0,
        ge=0,
        description="The longest wait before a retry, whatever Retry-After asks for.",
    )
    max_concurrency: int = Field(
        default=4,
        ge=1,
        le=256,
        description="The most requests in flight to this target at once (per process), "
        "so that a concurrent live run keeps within its rate limits.",
    )
    live_only: bool = Field(
        default=False, description="True where no cassettes are shipped: runs only with a key."
    )
    reference: ReferenceServer | None = Field(
        default=None, description="Start the reference server for this target when recording."
    )

    def env_references(self) -> list[str]:
        """Every environment variable the headers and query refer to, in order, once each."""
        names = [
            name
            for value in (*self.headers.values(), *self.query.values())
            for name in env_references(value)
        ]
        return list(dict.fromkeys(names))

    def window(self, api: Api) -> int:
        """The context window of the model this target serves for ``api``."""
        if isinstance(self.context_window, int):
            return self.context_window
        return self.context_window[api]

    def output_cap(self, api: Api) -> int | None:
        """The documented output cap of the model this target serves for ``api``, if any."""
        if self.max_output_tokens is None or isinstance(self.max_output_tokens, int):
            return self.max_output_tokens
        return self.max_output_tokens.get(api)
