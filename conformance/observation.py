"""What a probe saw: an outcome, with the HTTP exchanges behind it as evidence."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The longest summary or error reason kept: they quote replies, which a server makes as
#: long as it likes.
SUMMARY_LIMIT = 1000


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a note of how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestRecord(_Record):
    """A request as sent, with secret-bearing headers removed."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any = Field(description="The JSON body.")


class ResponseRecord(_Record):
    """A response as received. For streams, ``sse`` keeps every line of the event stream."""

    status: int
    headers: dict[str, str]
    body: str | None = Field(default=None, description="The raw body, excerpted if long.")
    sse: list[str] | None = Field(default=None, description="Every SSE line, excerpted if long.")


class Tokens(_Record):
    """Tokens the probe spent, as the server's usage reported them."""

    prompt: int = 0
    completion: int = 0

    @property
    def total(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt + self.completion


class ShapeCheck(_Record):
    """A successful reply checked against the openai SDK's response types."""

    type: str = Field(description="The SDK type, e.g. ChatCompletionChunk.")
    extensions: list[str] = Field(
        default_factory=list,
        description="Fields the type does not declare, as paths such as choices[].stop_reason.",
    )
    violations: list[str] = Field(
        default_factory=list, description="Values the type refuses, e.g. a missing field."
    )


class Exchange(_Record):
    """One request and what came back: a response, or a transport error."""

    label: str = Field(description="What the probe used this request for, e.g. 'control'.")
    request: RequestRecord
    response: ResponseRecord | None = None
    error: str | None = None
    retries: int = Field(default=0, description="Retries on a fresh connection after a reset.")
    duration_s: float = 0.0
    tokens: Tokens = Field(default_factory=Tokens, description="What the reply's usage reported.")
    shape: ShapeCheck | None = Field(
        default=None, description="A 2xx reply checked against the openai SDK's types."
    )


class Check(_Record):
    """A secondary finding, such as streamed usage agreeing with non-streamed usage."""

    name: str
    passed: bool
    detail: str

    @field_validator("detail")
    @classmethod
    def _bounded(cls, detail: str) -> str:
        return clip(detail, SUMMARY_LIMIT)


class Observation(_Record):
    """A probe's classification of what it saw."""

    outcome: str
    summary: str = Field(description="One line: why this outcome.")
    exchanges: list[Exchange] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    tokens: Tokens = Field(default_factory=Tokens)

    @field_validator("summary")
    @classmethod
    def _bounded(cls, summary: str) -> str:
        return clip(summary, SUMMARY_LIMIT)


class ProbeError(Exception):
    """No observation could be made: a transport failure, a 5xx, a timeout, a malformed reply.

    Carries the exchanges made so far, so the evidence of the failure is kept.
    """

    def __init__(self, reason: str, exchanges: list[Exchange] | None = None) -> None:
        reason = clip(reason, SUMMARY_LIMIT)
        super().__init__(reason)
        self.reason = reason
        self.exchanges = list(exchanges or [])


class NotApplicable(Exception):
    """The case cannot be decided on this target, for a reason its own replies show.

    For example, a probe of how a stream splits multi-byte characters on a model whose
    output has none. The case is *skipped* with the reason and the evidence gathered so far.
    """

    def __init__(
        self, reason: str, exchanges: list[Exchange] | None = None, *, warning: str | None = None
    ) -> None:
        reason = clip(reason, SUMMARY_LIMIT)
        super().__init__(reason)
        self.reason = reason
        self.exchanges = list(exchanges or [])
        #: Something about the target as a whole that the case showed (a declared context
        #: window it does not have): reported on the target, not only on the case.
        self.warning = warning


class ReplayMismatch(Exception):
    """A request was not found in the case's cassette."""


class BrokenCassette(Exception):
    """A cassette that cannot be read whole: cut short by a killed run, or edited by hand."""
