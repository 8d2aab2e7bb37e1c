"""Calls to a target through the official openai SDK, kept as evidence.

Requests go through the SDK's ``with_streaming_response`` access, so the status, headers,
raw body and every SSE line are kept next to what was parsed from them. A 4xx is a reply
(servers refuse things; that is an outcome). A 5xx, a timeout, a broken connection or a
malformed body is a ProbeError: there is nothing to classify.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from openai.resources.chat.completions import Completions as ChatCompletions
from openai.resources.completions import Completions

from conformance import redaction
from conformance.observation import Exchange, ProbeError, RequestRecord, ResponseRecord, Tokens
from conformance.probes import sse
from conformance.spec import Api, Target

#: Long bodies and streams are excerpted in the evidence; classification sees them whole.
BODY_EXCERPT = 4000
SSE_EXCERPT = 200

_SDK_PARAMS = {
    Api.CHAT: frozenset(inspect.signature(ChatCompletions.create).parameters) - {"self"},
    Api.COMPLETIONS: frozenset(inspect.signature(Completions.create).parameters) - {"self"},
}
_SDK_CONTROLS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


@dataclass
class Reply:
    """A parsed reply: a JSON body, or the chunks of a stream."""

    status: int
    exchange: Exchange
    body: dict[str, Any] | None = None
    stream: sse.SseStream | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx."""
        return self.status < 300

    @property
    def chunks(self) -> list[dict[str, Any]]:
        """The stream's JSON chunks (empty for a non-streamed reply)."""
        return self.stream.chunks if self.stream is not None else []

    @property
    def text(self) -> str:
        """The first choice's text: message content, completion text, or the joined deltas."""
        if self.stream is not None:
            return "".join(_choice_text(choice, delta=True) for choice in self._stream_choices(0))
        choices = (self.body or {}).get("choices") or []
        return _choice_text(choices[0], delta=False) if choices else ""

    @property
    def finish_reason(self) -> str | None:
        """The first choice's finish_reason (in a stream: the last one sent)."""
        if self.stream is not None:
            reasons = [c.get("finish_reason") for c in self._stream_choices(0)]
            sent = [reason for reason in reasons if reason]
            return sent[-1] if sent else None
        choices = (self.body or {}).get("choices") or []
        return choices[0].get("finish_reason") if choices else None

    @property
    def usage(self) -> dict[str, Any] | None:
        """The usage object: the body's, or in a stream the last non-null one."""
        if self.stream is not None:
            found = [chunk["usage"] for chunk in self.chunks if chunk.get("usage")]
            return found[-1] if found else None
        usage = (self.body or {}).get("usage")
        return usage if isinstance(usage, dict) else None

    @property
    def error(self) -> dict[str, Any]:
        """The error object of a refused request (OpenAI's envelope, or the whole body)."""
        body = self.body or {}
        error = body.get("error")
        return error if isinstance(error, dict) else body

    @property
    def message(self) -> dict[str, Any]:
        """The first choice's chat message (non-streamed replies)."""
        choices = (self.body or {}).get("choices") or []
        message = choices[0].get("message") if choices else None
        return message if isinstance(message, dict) else {}

    def tokens(self) -> Tokens:
        """Tokens this reply's usage reports (zero where it reports none)."""
        usage = self.usage or {}
        return Tokens(
            prompt=int(usage.get("prompt_tokens") or 0),
            completion=int(usage.get("completion_tokens") or 0),
        )

    def _stream_choices(self, index: int) -> Iterator[dict[str, Any]]:
        for chunk in self.chunks:
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) == index:
                    yield choice


def _choice_text(choice: dict[str, Any], *, delta: bool) -> str:
    if "text" in choice:
        return str(choice.get("text") or "")
    holder = choice.get("delta" if delta else "message") or {}
    return str(holder.get("content") or "")


@dataclass
class Endpoint:
    """One target's endpoint, reached through the openai SDK."""

    target: Target
    base_url: str
    api_key: str
    #: Exceptions that mean "stop", not "the network failed" (e.g. a replay mismatch); the
    #: SDK wraps whatever its transport raises, so they are unwrapped and re-raised.
    fatal: tuple[type[BaseException], ...] = ()
    exchanges: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._client = self._new_client()

    def _new_client(self) -> openai.OpenAI:
        # The SDK's own retries would hide resets and 5xx from the evidence; the suite decides.
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            default_headers=self.target.headers or None,
            max_retries=0,
            timeout=self.target.timeout_s,
        )

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._client.close()

    def model(self, api: Api) -> str:
        """The model name this target uses for ``api``."""
        return self.target.models[api]

    def send(self, api: Api, params: dict[str, Any], *, label: str) -> Reply:
        """Send one request and return its reply; a 4xx is a reply, infrastructure faults raise.

        ``params`` is the JSON body without ``model``. Parameters the SDK does not know
        (``best_of`` on chat, provider extensions) are sent through ``extra_body``.
        """
        body = {"model": self.model(api), **params}
        known = {k: v for k, v in body.items() if k in _SDK_PARAMS[api] and k not in _SDK_CONTROLS}
        extra = {k: v for k, v in body.items() if k not in known}
        resource = self._client.chat.completions if api is Api.CHAT else self._client.completions
        stream = bool(body.get("stream"))
        started = time.monotonic()
        retries = 0
        while True:
            try:
                reply = self._call(resource, known, extra, stream=stream, label=label)
                break
            except openai.APITimeoutError as exc:
                self._record_failure(label, body, exc, retries, started)
                raise ProbeError(
                    f"{label}: timed out after {self.target.timeout_s:g} s", self.exchanges
                ) from None
            except openai.APIConnectionError as exc:
                if isinstance(exc.__cause__, self.fatal):
                    raise exc.__cause__ from None
                # A server that dropped a keep-alive connection after an earlier error resets the
                # next request on it; one retry on a fresh connection tells that from a dead server.
                if retries == 0:
                    retries += 1
                    self._client.close()
                    self._client = self._new_client()
                    resource = (
                        self._client.chat.completions
                        if api is Api.CHAT
                        else self._client.completions
                    )
                    continue
                self._record_failure(label, body, exc, retries, started)
                raise ProbeError(
                    f"{label}: connection failed twice: {_cause(exc)}", self.exchanges
                ) from None
        reply.exchange.retries = retries
        reply.exchange.tokens = reply.tokens()
        reply.exchange.duration_s = round(time.monotonic() - started, 4)
        self.exchanges.append(reply.exchange)
        if reply.status >= 500:
            raise ProbeError(
                f"{label}: server error {reply.status}: {_excerpt(reply.exchange)}", self.exchanges
            )
        return reply

    def _call(
        self,
        resource: Any,
        known: dict[str, Any],
        extra: dict[str, Any],
        *,
        stream: bool,
        label: str,
    ) -> Reply:
        try:
            with resource.with_streaming_response.create(
                **known, extra_body=extra or None
            ) as response:
                http = response.http_response
                if stream:
                    lines = list(response.iter_lines())
                    exchange = _exchange(label, http, sse_lines=lines)
                    try:
                        parsed = sse.parse(lines)
                    except sse.SseError as exc:
                        self.exchanges.append(exchange)
                        raise ProbeError(
                            f"{label}: malformed stream: {exc}", self.exchanges
                        ) from None
                    if not parsed.done:
                        self.exchanges.append(exchange)
                        raise ProbeError(
                            f"{label}: the stream ended without data: [DONE]", self.exchanges
                        )
                    return Reply(http.status_code, exchange, stream=parsed)
                raw = response.read().decode("utf-8", errors="replace")
                exchange = _exchange(label, http, body=raw)
                return Reply(http.status_code, exchange, body=self._json(raw, exchange, label))
        except httpx2.TimeoutException as exc:
            # The status line came, then the body stalled: handled like any timeout.
            raise openai.APITimeoutError(request=exc.request) from exc
        except httpx2.HTTPError as exc:
            # The status line came, then the connection broke mid-body: handled like a reset.
            raise openai.APIConnectionError(request=exc.request) from exc
        except openai.APIStatusError as exc:
            raw = exc.response.text
            exchange = _exchange(label, exc.response, body=raw)
            return Reply(exc.status_code, exchange, body=_json_or_none(raw))

    def _json(self, raw: str, exchange: Exchange, label: str) -> dict[str, Any]:
        parsed = _json_or_none(raw)
        if parsed is None:
            self.exchanges.append(exchange)
            raise ProbeError(
                f"{label}: the body is not a JSON object: {raw[:120]!r}", self.exchanges
            )
        return parsed

    def _record_failure(
        self, label: str, body: dict[str, Any], exc: Exception, retries: int, started: float
    ) -> None:
        request = getattr(exc, "request", None)
        self.exchanges.append(
            Exchange(
                label=label,
                request=_request_record(request)
                if request is not None
                else RequestRecord(method="POST", url=self.base_url, headers={}, body=body),
                error=_cause(exc),
                retries=retries,
                duration_s=round(time.monotonic() - started, 4),
            )
        )


def _json_or_none(raw: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _request_record(request: httpx2.Request) -> RequestRecord:
    content = request.content.decode("utf-8", errors="replace") if request.content else ""
    try:
        body: Any = json.loads(content) if content else None
    except json.JSONDecodeError:
        body = content
    return RequestRecord(
        method=request.method,
        url=redaction.url(str(request.url)),
        headers=redaction.headers(request.headers.items()),
        body=body,
    )


def _exchange(
    label: str,
    http: httpx2.Response,
    *,
    body: str | None = None,
    sse_lines: list[str] | None = None,
) -> Exchange:
    if sse_lines is not None and len(sse_lines) > SSE_EXCERPT:
        kept = SSE_EXCERPT // 2
        omitted = len(sse_lines) - 2 * kept
        sse_lines = [*sse_lines[:kept], f": ... {omitted} lines omitted ...", *sse_lines[-kept:]]
    if body is not None and len(body) > BODY_EXCERPT:
        body = body[:BODY_EXCERPT] + f"... ({len(body) - BODY_EXCERPT} more characters)"
    return Exchange(
        label=label,
        request=_request_record(http.request),
        response=ResponseRecord(
            status=http.status_code,
            headers=redaction.headers(http.headers.items()),
            body=body,
            sse=sse_lines,
        ),
    )


def _excerpt(exchange: Exchange) -> str:
    body = exchange.response.body if exchange.response else None
    return (body or "")[:200]


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(exc).__name__}: {cause or exc}"
