"""Calls to a target through the official openai SDK, kept as evidence.

Requests go through the SDK's ``with_streaming_response`` access, so the status, headers,
raw body and every SSE line are kept next to what was parsed from them. A 4xx is a reply
(servers refuse things; that is an outcome), except a 429. A 429 or a 5xx (after the
retries), a timeout, a broken connection or a malformed body is a ProbeError: there is
nothing to classify. A 5xx, or an error event in a 2xx stream, is a reply only to a probe
that asks for server failures, and only when a fresh request fails again. Every body is
read within the target's bounds (``bounds.py``); a 307 or 308 is followed within the origin.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import inspect
import json
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from openai.resources.chat.completions import Completions as ChatCompletions
from openai.resources.completions import Completions
from openai.resources.responses import Responses

from conformance import redaction
from conformance.observation import (
    Exchange,
    NotApplicable,
    ProbeError,
    RequestRecord,
    ResponseRecord,
    Tokens,
    clip,
)
from conformance.probes import bounds, shape, sse
from conformance.spec import Api, Target

#: Long bodies and streams are excerpted in the evidence; classification sees them whole.
BODY_EXCERPT = 4000
SSE_EXCERPT = 200
#: The longest SSE line kept in the evidence (a server may send megabytes without a newline).
LINE_EXCERPT = 2000
#: How much of a reply an error reason quotes.
QUOTE = 200

_SDK_PARAMS = {
    Api.CHAT: frozenset(inspect.signature(ChatCompletions.create).parameters) - {"self"},
    Api.COMPLETIONS: frozenset(inspect.signature(Completions.create).parameters) - {"self"},
    Api.RESPONSES: frozenset(inspect.signature(Responses.create).parameters) - {"self"},
}
_SDK_CONTROLS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})

#: Statuses that say "not now": retried after a backoff, then an error. No other 4xx is
#: retried: a refusal is an answer.
RETRY_STATUSES = frozenset({429, 503})
#: The first backoff when the server gives no Retry-After; it doubles with each retry.
BACKOFF_S = 0.5
#: Redirects that keep a POST's method and body, as the SDK follows them; others are errors.
KEPT_REDIRECTS = frozenset({307, 308})
MAX_REDIRECTS = 5
#: The events that end a Responses stream; a stream without one was cut off.
RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
#: Error codes of a 404 on ``POST /v1/responses`` that are answers, not an endpoint missing.
_SERVED_NOT_FOUND = frozenset({"previous_response_not_found", "model_not_found"})


#: How the summary of a case whose target does not serve its API begins.
API_NOT_SERVED = "API not served"


class ApiNotServed(NotApplicable):
    """The target answers the API's endpoint with a 404 or 405: its cases are skipped."""


@dataclass
class Reply:
    """A parsed reply: a JSON body, or the chunks of a stream."""

    status: int
    exchange: Exchange
    body: dict[str, Any] | None = None
    stream: sse.SseStream | None = None
    api: Api = Api.CHAT

    @property
    def ok(self) -> bool:
        """True for a 2xx, unless its stream ended in an error event."""
        return self.status < 300 and self.stream_error is None

    @property
    def stream_error(self) -> dict[str, Any] | None:
        """The error event a 2xx stream carried, if any."""
        return self.stream.error if self.stream is not None else None

    @property
    def failure(self) -> str | None:
        """How the server failed: a 5xx, or an error event in a 2xx stream; None otherwise."""
        after = _after(self.exchange.retries)
        if self.status >= 500:
            return f"server error {self.status}{after}: {_excerpt(self.exchange)}"
        if self.stream_error is not None:
            event = clip(json.dumps(self.stream_error), QUOTE)
            return f"the {self.status} stream carried an error event{after}: {event}"
        return None

    @property
    def chunks(self) -> list[dict[str, Any]]:
        """The stream's JSON chunks (empty for a non-streamed reply)."""
        return self.stream.chunks if self.stream is not None else []

    @property
    def text(self) -> str:
        """The first choice's text: message content, completion text, or the joined deltas;
        for the Responses API the output_text parts (in a stream, the joined text deltas)."""
        if self.api is Api.RESPONSES:
            return self._responses_text()
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
    def response(self) -> dict[str, Any]:
        """A Responses API reply's response object: the body, or the terminal event's."""
        if self.stream is None:
            return self.body or {}
        for event in reversed(self.chunks):
            if event.get("type") in RESPONSES_TERMINAL and isinstance(event.get("response"), dict):
                return dict(event["response"])
        return {}

    @property
    def output(self) -> list[dict[str, Any]]:
        """A Responses API reply's output items (those that are objects)."""
        output = self.response.get("output")
        return (
            [item for item in output if isinstance(item, dict)] if isinstance(output, list) else []
        )

    @property
    def usage(self) -> dict[str, Any] | None:
        """The usage object: the body's, or in a stream the last non-null one (for the
        Responses API, the terminal event's)."""
        if self.api is Api.RESPONSES:
            usage = self.response.get("usage")
            return usage if isinstance(usage, dict) else None
        if self.stream is not None:
            found = [chunk["usage"] for chunk in self.chunks if chunk.get("usage")]
            return found[-1] if found else None
        usage = (self.body or {}).get("usage")
        return usage if isinstance(usage, dict) else None

    @property
    def error(self) -> dict[str, Any]:
        """The error object of a refused request or of a stream's error event (OpenAI's
        envelope, or the whole body or event)."""
        body = self.stream_error or self.body or {}
        error = body.get("error")
        return error if isinstance(error, dict) else body

    @property
    def refusal(self) -> str:
        """How the server refused, for summaries: the status and the error's code (or type),
        e.g. ``400 context_length_exceeded``; the status alone where the code only repeats it."""
        code = str(self.error.get("code") or self.error.get("type") or "")
        if self.stream_error is not None:
            return f"an error event {code} in a {self.status} stream".replace("  ", " ")
        return f"{self.status} {code}" if code and code != str(self.status) else str(self.status)

    @property
    def message(self) -> dict[str, Any]:
        """The first choice's chat message (non-streamed replies)."""
        choices = (self.body or {}).get("choices") or []
        message = choices[0].get("message") if choices else None
        return message if isinstance(message, dict) else {}

    def tokens(self) -> Tokens:
        """Tokens this reply's usage reports (zero where it reports none)."""
        usage = self.usage or {}
        prompt, completion = (
            ("input_tokens", "output_tokens")
            if self.api is Api.RESPONSES
            else ("prompt_tokens", "completion_tokens")
        )
        return Tokens(prompt=_count_of(usage, prompt), completion=_count_of(usage, completion))

    def _responses_text(self) -> str:
        if self.stream is not None:
            return "".join(
                str(event.get("delta") or "")
                for event in self.chunks
                if event.get("type") == "response.output_text.delta"
            )
        return "".join(
            str(part.get("text") or "")
            for item in self.output
            if item.get("type") == "message"
            for part in item.get("content") or []
            if isinstance(part, dict) and part.get("type") in ("output_text", "text")
        )

    def _stream_choices(self, index: int) -> Iterator[dict[str, Any]]:
        for chunk in self.chunks:
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) == index:
                    yield choice


def _count_of(usage: dict[str, Any], name: str) -> int:
    count = usage.get(name)
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


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
    api_key: str = field(repr=False)  # out of every traceback's locals (pytest -l)
    #: Exceptions that mean "stop", not "the network failed" (e.g. a replay mismatch); the
    #: SDK wraps whatever its transport raises, so they are unwrapped and re-raised.
    fatal: tuple[type[BaseException], ...] = ()
    #: Headers and query parameters as sent, ``${NAME}`` resolved (default: the target's own).
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    query: Mapping[str, str] | None = field(default=None, repr=False)
    #: How to wait before a retry; a replay passes a no-op, as there is no server to wait for.
    sleep: Callable[[float], None] = time.sleep
    #: An httpx transport in place of the network: a replay's cassette, or a test's fake.
    transport: httpx2.BaseTransport | None = None
    #: Held while a request is in flight: the target's share of a concurrent run.
    slots: threading.Semaphore | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    #: The environment's proxy routes as the run read them (``environment_proxies``); None:
    #: httpx reads the environment itself, for each client, which is safe only where no
    #: other thread changes the environment meanwhile.
    proxies: Mapping[str, str | None] | None = None

    def __post_init__(self) -> None:
        self._deadline = math.inf
        self._sent: httpx2.Request | None = None
        self._client = self._new_client()

    def _new_client(self) -> openai.OpenAI:
        # The SDK's own retries would hide resets and 5xx from the evidence; the suite decides.
        headers = self.target.headers if self.headers is None else self.headers
        query = self.target.query if self.query is None else self.query
        # Redirects are followed here, not by httpx, which would send a target's own key
        # headers to another origin (it strips Authorization only).
        self._http = openai.DefaultHttpxClient(
            # One TLS context for the process: loading the CA bundle for every case's client
            # costs more than a replayed case itself.
            verify=_tls_context(),
            transport=self.transport,
            # A proxy named in the environment would be a way around the transport; without
            # one, the proxies are those the run read, or httpx reads them now.
            trust_env=self.transport is None and self.proxies is None,
            mounts=_proxy_mounts(self.proxies) if self.transport is None else None,
            follow_redirects=False,
            event_hooks={"request": [self._note], "response": [self._bound]},
        )
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            default_headers=dict(headers) or None,
            default_query=dict(query) or None,
            max_retries=0,
            timeout=self.target.timeout_s,
            http_client=self._http,
        )

    def _note(self, request: httpx2.Request) -> None:
        """httpx's request hook: the request as it goes out, its credentials added (the
        request a response names may lack them), for a redirect to repeat."""
        self._sent = request

    def _bound(self, response: httpx2.Response) -> None:
        """httpx's response hook: every body, the SDK's reads of refusals included, is read
        within the exchange's deadline and the target's size cap."""
        response.stream = bounds.BoundedStream(
            response,
            self.target.max_reply_bytes,
            self._deadline,
            self.target.timeout_s,
            head=BODY_EXCERPT,
        )

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._client.close()

    def model(self, api: Api) -> str:
        """The model name this target uses for ``api``."""
        return self.target.models[api]

    def send(
        self,
        api: Api,
        params: dict[str, Any],
        *,
        label: str,
        headers: Mapping[str, str] | None = None,
        server_errors: bool = False,
    ) -> Reply:
        """Send one request and return its reply; a 4xx is a reply, infrastructure faults raise.

        ``params`` is the JSON body without ``model``. Parameters the SDK does not know
        (``best_of`` on chat, provider extensions) are sent through ``extra_body``.
        A 429, a 503 or a broken connection is retried up to ``target.retries`` times, after
        a backoff that honours Retry-After (capped at ``target.max_retry_wait_s``); then it
        is a ProbeError, like a timeout or a malformed reply. The number of retries is kept
        in the exchange. ``headers`` are sent on top of the target's own.

        A server failure (a 5xx after the retries, or an error event in a 2xx stream) is a
        ProbeError too, unless ``server_errors`` asks for it as a reply to classify; even
        then only when a fresh request fails the same way: a transient fault is never an
        outcome.
        """
        reply = self._send(api, params, label=label, headers=headers)
        if api is Api.RESPONSES and _not_served(reply, params):
            raise ApiNotServed(
                f"{API_NOT_SERVED}: POST /responses was answered {reply.status}", self.exchanges
            )
        failure = reply.failure
        if failure is None:
            return reply
        if not server_errors:
            raise ProbeError(f"{label}: {failure}", self.exchanges)
        # The confirming request goes on a fresh connection, as a new client's would.
        self._client.close()
        self._client = self._new_client()
        try:
            again = self._send(api, params, label=f"{label} (confirming)", headers=headers)
        except self.fatal:
            # A replay whose cassette was recorded before failures were confirmed.
            raise ProbeError(
                f"{label}: {failure}; the recording holds no fresh request to confirm it, "
                "so it cannot be told from a transient fault (re-record the case)",
                self.exchanges,
            ) from None
        if again.failure is None:
            raise ProbeError(
                f"{label}: {failure}, which a fresh request did not reproduce (it got "
                f"{again.status}): a transient fault",
                self.exchanges,
            )
        return again

    def _send(
        self,
        api: Api,
        params: dict[str, Any],
        *,
        label: str,
        headers: Mapping[str, str] | None,
    ) -> Reply:
        """One request, retried after a 429, a 503 or a reset; a 429 that stays raises."""
        body = {"model": self.model(api), **params}
        known = {k: v for k, v in body.items() if k in _SDK_PARAMS[api] and k not in _SDK_CONTROLS}
        extra = {k: v for k, v in body.items() if k not in known}
        stream = bool(body.get("stream"))
        started = time.monotonic()
        retries = 0
        while True:
            resource = {
                Api.CHAT: self._client.chat.completions,
                Api.COMPLETIONS: self._client.completions,
                Api.RESPONSES: self._client.responses,
            }[api]
            try:
                with self.slots or contextlib.nullcontext():
                    reply = self._call(
                        api, resource, known, extra, stream=stream, label=label, headers=headers
                    )
            except openai.APITimeoutError as exc:
                self._record_failure(label, body, exc, retries, started)
                raise ProbeError(
                    f"{label}: timed out after {self.target.timeout_s:g} s", self.exchanges
                ) from None
            except openai.APIConnectionError as exc:
                if isinstance(exc.__cause__, self.fatal):
                    raise exc.__cause__ from None
                if retries < self.target.retries:
                    retries += 1
                    # A server that dropped a keep-alive connection after an earlier error resets
                    # the next request on it, so every retry starts on a fresh connection.
                    self._client.close()
                    self._client = self._new_client()
                    self.sleep(self._wait(retries, None))
                    continue
                self._record_failure(label, body, exc, retries, started)
                raise ProbeError(
                    f"{label}: connection failed {_times(retries + 1)}: {_cause(exc)}",
                    self.exchanges,
                ) from None
            if reply.status in RETRY_STATUSES and retries < self.target.retries:
                retries += 1
                assert reply.exchange.response is not None
                self.sleep(self._wait(retries, reply.exchange.response.headers))
                continue
            break
        reply.exchange.retries = retries
        # A refusal's body is the server's own; only a completion's usage is read.
        reply.exchange.tokens = reply.tokens() if reply.ok else Tokens()
        reply.exchange.duration_s = round(time.monotonic() - started, 4)
        self.exchanges.append(reply.exchange)
        if reply.status == 429:
            # Not a refusal of what was asked: a probe must not read it as "rejected".
            raise ProbeError(
                f"{label}: rate limited (429){_after(retries)}: {_excerpt(reply.exchange)}",
                self.exchanges,
            )
        return reply

    def _wait(self, retry: int, headers: Mapping[str, str] | None) -> float:
        """Seconds to wait before retry number ``retry``: what the server asked, else a backoff."""
        asked = retry_after(headers) if headers is not None else None
        if asked is None:
            # After a reset the first retry is immediate (see above); otherwise exponential.
            steps = retry - 1 if headers is not None else retry - 2
            asked = 0.0 if steps < 0 else BACKOFF_S * 2**steps
        return max(0.0, min(asked, self.target.max_retry_wait_s))

    def _call(
        self,
        api: Api,
        resource: Any,
        known: dict[str, Any],
        extra: dict[str, Any],
        *,
        stream: bool,
        label: str,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        self._deadline = time.monotonic() + self.target.timeout_s
        try:
            try:
                with resource.with_streaming_response.create(
                    **known,
                    extra_body=extra or None,
                    extra_headers=dict(headers) if headers else None,
                ) as response:
                    http = response.http_response
                    return self._read(api, http, stream=stream, label=label)
            except openai.APIStatusError as exc:
                http = exc.response
            return self._follow(api, http, stream=stream, label=label)
        except bounds.Exceeded as exc:
            # Not retried: the same server would only send as much again.
            self.exchanges.append(_exchange(label, exc.response, partial=True))
            raise ProbeError(f"{label}: {exc}", self.exchanges) from None
        except httpx2.TimeoutException as exc:
            # The status line came, then the body stalled: handled like any timeout.
            raise openai.APITimeoutError(request=exc.request) from exc
        except httpx2.TransportError as exc:
            # The status line came, then the connection broke mid-body: handled like a reset.
            raise openai.APIConnectionError(request=exc.request) from exc
        except httpx2.HTTPError as exc:
            # A body that cannot be decoded (a bad content-encoding) is malformed, not a reset.
            raise ProbeError(f"{label}: unreadable body: {exc}", self.exchanges) from None

    def _follow(self, api: Api, http: httpx2.Response, *, stream: bool, label: str) -> Reply:
        """The reply to a request the server did not answer with a 2xx: a refusal, or where
        a 307 or 308 sends it, within the same origin and for at most MAX_REDIRECTS hops.
        Every hop is kept as evidence."""
        reply = self._read(api, http, stream=stream, label=label)
        for _ in range(MAX_REDIRECTS + 1):
            if not 300 <= reply.status < 400:
                return reply
            moved = f"{label}: redirected ({reply.status})"
            location = http.headers.get("location")
            reply.exchange.label = f"{label} (redirected)"
            self.exchanges.append(reply.exchange)
            if reply.status not in KEPT_REDIRECTS or not location:
                raise ProbeError(
                    f"{moved} to {location!r}: only a 307 or 308 with a location keeps the "
                    "request as it was, so the redirect is not followed",
                    self.exchanges,
                )
            url = http.request.url.join(location)
            if url.origin != http.request.url.origin:
                raise ProbeError(
                    f"{moved} to another origin ({_origin(url)}): not "
                    "followed, so that the key goes nowhere but to the target",
                    self.exchanges,
                )
            sent = self._sent or http.request
            request = self._http.build_request(
                sent.method, url, headers=sent.headers, content=sent.content
            )
            http = self._http.send(request, stream=True)
            try:
                reply = self._read(api, http, stream=stream, label=label)
            finally:
                http.close()
        raise ProbeError(f"{label}: more than {MAX_REDIRECTS} redirects", self.exchanges)

    def _read(self, api: Api, http: httpx2.Response, *, stream: bool, label: str) -> Reply:
        """Read and parse ``http``'s body, within the target's bounds; a 2xx must be a
        well-formed completion (or a stream that ended in an error event)."""
        if not (stream and http.status_code < 300):
            raw = http.read().decode("utf-8", errors="replace")
            exchange = _exchange(label, http, body=raw)
            if http.status_code >= 300:
                return Reply(http.status_code, exchange, body=_json_or_none(raw), api=api)
            if http.headers.get("content-type", "").startswith("text/event-stream"):
                self.exchanges.append(exchange)
                raise ProbeError(
                    f"{label}: a request without stream: true was answered with an event "
                    f"stream: {clip(raw, QUOTE)!r}",
                    self.exchanges,
                )
            reply = Reply(
                http.status_code, exchange, body=self._json(raw, exchange, label), api=api
            )
        else:
            lines = []
            events = 0
            for line in sse.read_lines(http.iter_bytes()):
                lines.append(line)
                events += line.startswith("data")
                if events > self.target.max_sse_events:
                    raise bounds.Exceeded(
                        f"the stream exceeded max_sse_events ({self.target.max_sse_events})",
                        http,
                    )
            exchange = _exchange(label, http, sse_lines=lines)
            try:
                parsed = sse.parse(lines)
            # A JSON payload can also fail as too deep or as a too long integer.
            except (ValueError, RecursionError) as exc:
                self.exchanges.append(exchange)
                raise ProbeError(f"{label}: malformed stream: {exc}", self.exchanges) from None
            reply = Reply(http.status_code, exchange, stream=parsed, api=api)
            if parsed.error is not None:
                return reply  # a server failure after its 200: send() judges it
            cut_off = _cut_off(api, parsed)
            if cut_off:
                self.exchanges.append(exchange)
                raise ProbeError(f"{label}: {cut_off}", self.exchanges)
        problem = _malformed(reply)
        if problem:
            self.exchanges.append(exchange)
            raise ProbeError(f"{label}: malformed reply: {problem}", self.exchanges)
        exchange.shape = (
            shape.check(api, reply.chunks, chunks=True)
            if stream
            else shape.check(api, [reply.body or {}], chunks=False)
        )
        return reply

    def stored(self, method: str, response_id: str, *, label: str) -> Reply:
        """``GET`` or ``DELETE`` ``/responses/{response_id}`` through the SDK, kept as evidence.

        A 4xx is a reply (a response not stored is a 404); a 5xx, a timeout or a broken
        connection is a ProbeError: there is nothing to classify.
        """
        resource = self._client.responses.with_streaming_response
        call = resource.retrieve if method == "GET" else resource.delete
        self._deadline = time.monotonic() + self.target.timeout_s
        started = time.monotonic()
        try:
            with self.slots or contextlib.nullcontext():
                try:
                    with call(response_id) as response:
                        raw = response.http_response.read().decode("utf-8", errors="replace")
                        http = response.http_response
                except openai.APIStatusError as exc:
                    http = exc.response
                    raw = http.read().decode("utf-8", errors="replace")
        except openai.APIConnectionError as exc:
            if isinstance(exc.__cause__, self.fatal):
                raise exc.__cause__ from None
            self._record_failure(label, {}, exc, 0, started)
            raise ProbeError(f"{label}: {method} failed: {_cause(exc)}", self.exchanges) from None
        except (httpx2.HTTPError, bounds.Exceeded) as exc:
            raise ProbeError(f"{label}: {method} failed: {exc}", self.exchanges) from None
        exchange = _exchange(label, http, body=raw)
        exchange.duration_s = round(time.monotonic() - started, 4)
        self.exchanges.append(exchange)
        reply = Reply(http.status_code, exchange, body=_json_or_none(raw), api=Api.RESPONSES)
        if reply.status >= 500 or reply.status == 429:
            raise ProbeError(f"{label}: {method} answered {reply.status}", self.exchanges)
        return reply

    def _json(self, raw: str, exchange: Exchange, label: str) -> dict[str, Any]:
        parsed = _json_or_none(raw)
        if parsed is None:
            self.exchanges.append(exchange)
            raise ProbeError(
                f"{label}: the body is not a JSON object: {clip(raw, QUOTE)!r}", self.exchanges
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


_TLS_LOCK = threading.Lock()
_TLS_CONTEXTS: list[ssl.SSLContext] = []


def environment_proxies() -> dict[str, str | None]:
    """The proxy routes the environment sets (``HTTPS_PROXY``, ``NO_PROXY`` and the like) as
    httpx reads them: a URL pattern, and the proxy for it (None: no proxy).

    A run reads them once, on the thread that starts it, for every client it makes: httpx
    would read the whole environment again for each client, on the case's thread, while
    pytest renames the current test in it (``PYTEST_CURRENT_TEST``) on the run's own; a
    read that met a rename raised KeyError, and a live case now and then errored for it.
    """
    from httpx2._utils import get_environment_proxies  # noqa: PLC0415  (httpx has no public one)

    return get_environment_proxies()


def _proxy_mounts(
    proxies: Mapping[str, str | None] | None,
) -> dict[str, httpx2.BaseTransport | None] | None:
    """The transports httpx would mount for ``proxies``, had it read them itself."""
    if not proxies:
        return None
    return {
        pattern: None if url is None else httpx2.HTTPTransport(verify=_tls_context(), proxy=url)
        for pattern, url in proxies.items()
    }


def _tls_context() -> ssl.SSLContext:
    """The TLS context every endpoint shares, as httpx makes it by default.

    Built once under a lock: a live run starts its threads together, and a bare cache
    would let each of them load the CA bundle at the same time.
    """
    with _TLS_LOCK:
        if not _TLS_CONTEXTS:
            _TLS_CONTEXTS.append(httpx2.create_ssl_context())
        return _TLS_CONTEXTS[0]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a response asks the client to wait: ``retry-after-ms``, or ``retry-after`` as
    seconds or an HTTP date; None when it asks nothing (or nothing readable)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    milliseconds = lowered.get("retry-after-ms")
    if milliseconds is not None:
        with contextlib.suppress(ValueError):
            seconds = float(milliseconds) / 1000
            if math.isfinite(seconds):
                return max(0.0, seconds)
    value = lowered.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
    return None


def _not_served(reply: Reply, params: Mapping[str, Any]) -> bool:
    """True when a 404 or 405 says the endpoint is missing, not that something the request
    names is: a stored response (``previous_response_id``), a model, or a named ``param``."""
    if reply.status not in (404, 405) or "previous_response_id" in params:
        return False
    error = reply.error
    return error.get("code") not in _SERVED_NOT_FOUND and not error.get("param")


def _cut_off(api: Api, stream: sse.SseStream) -> str | None:
    """Why a 2xx stream was cut off, or None when it is complete.

    A Responses stream is complete when it ends with a terminal event (``response.completed``,
    ``.incomplete`` or ``.failed``), with or without ``[DONE]``. A completions stream whose
    every choice finished is complete without [DONE] (the SDK reads it to the end too;
    stream.framing tells it apart); one that stops before that was cut off.
    """
    if api is Api.RESPONSES:
        last = stream.chunks[-1].get("type") if stream.chunks else None
        if last in RESPONSES_TERMINAL:
            return None
        return f"the stream ended with {last!r}, not a terminal event (response.completed ...)"
    if stream.done or _every_choice_finished(stream):
        return None
    return "the stream ended without data: [DONE] before every choice finished"


def _malformed(reply: Reply) -> str | None:
    """Why a 2xx reply cannot be read as a completion, or None when it can."""
    if reply.api is Api.RESPONSES:
        return _malformed_response(reply)
    if reply.stream is not None:
        if not any(chunk.get("choices") for chunk in reply.chunks):
            return "the stream carried no choices"
        for position, chunk in enumerate(reply.chunks):
            problem = _object_problem(chunk, delta=True)
            if problem:
                return f"chunk {position}: {problem}"
        return None
    body = reply.body or {}
    if not isinstance(body.get("choices"), list):
        return "the body has no choices list"
    return _object_problem(body, delta=False)


def _malformed_response(reply: Reply) -> str | None:
    """Why a 2xx Responses reply cannot be read as one, or None when it can."""
    if reply.stream is not None:
        for position, event in enumerate(reply.chunks):
            if not isinstance(event.get("type"), str):
                return f"event {position} has no string type"
    response = reply.response
    if not isinstance(response.get("output"), list):
        return "the response has no output list"
    if not all(isinstance(item, dict) for item in response["output"]):
        return "an output item is not an object"
    return _usage_problem(response.get("usage"), ("input_tokens", "output_tokens"))


def _object_problem(item: dict[str, Any], *, delta: bool) -> str | None:
    choices = item.get("choices")
    if choices is not None and not isinstance(choices, list):
        return "choices is not a list"
    for choice in choices or []:
        if not isinstance(choice, dict):
            return "a choice is not an object"
        if not isinstance(choice.get("index", 0), int):
            return "a choice's index is not an integer"
        if not isinstance(choice.get("finish_reason"), str | None):
            return "a finish_reason is not a string"
        if not isinstance(choice.get("text"), str | None):
            return "a choice's text is not a string"
        holder = choice.get("delta" if delta else "message")
        if holder is not None and not isinstance(holder, dict):
            return "a message or delta is not an object"
        if holder is not None and not isinstance(holder.get("content"), str | None):
            return "a message's content is not a string"
    return _usage_problem(item.get("usage"), ("prompt_tokens", "completion_tokens"))


def _usage_problem(usage: Any, counts: tuple[str, ...]) -> str | None:
    """Why a usage object (None: absent) cannot be read, its ``counts`` as integers."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return "usage is not an object"
    for name in counts:
        count = usage.get(name)
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            return f"usage.{name} is not an integer"
    return None


def _every_choice_finished(stream: sse.SseStream) -> bool:
    """True when the stream has choices and each of them sent a finish_reason."""
    finished: dict[int, bool] = {}
    for chunk in stream.chunks:
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            index = choice.get("index", 0) if isinstance(choice, dict) else None
            if isinstance(index, int):  # a malformed index is _malformed's to report
                finished[index] = finished.get(index, False) or bool(choice.get("finish_reason"))
    return bool(finished) and all(finished.values())


def _json_or_none(raw: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, a too long integer, too deep
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
    partial: bool = False,
) -> Exchange:
    """The exchange as evidence, long bodies, streams and lines excerpted; ``partial``:
    what arrived of a body cut short by a bound (its first bytes)."""
    if partial:
        head = getattr(http.stream, "head", b"")
        received = getattr(http.stream, "received", len(head))
        text = head.decode("utf-8", errors="replace") + (
            f"... (cut after {received} bytes)" if received > len(head) else ""
        )
        streamed = http.headers.get("content-type", "").startswith("text/event-stream")
        body, sse_lines = (None, text.split("\n")) if streamed else (text, None)
    if sse_lines is not None:
        sse_lines = [clip(line, LINE_EXCERPT) for line in sse_lines]
    if sse_lines is not None and len(sse_lines) > SSE_EXCERPT:
        kept = SSE_EXCERPT // 2
        omitted = len(sse_lines) - 2 * kept
        sse_lines = [*sse_lines[:kept], f": ... {omitted} lines omitted ...", *sse_lines[-kept:]]
    if body is not None and not partial:  # a partial body is its first BODY_EXCERPT bytes
        body = clip(body, BODY_EXCERPT)
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
    return clip(body or "", QUOTE)


def _origin(url: httpx2.URL) -> str:
    return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")


def _after(retries: int) -> str:
    return f" after {_count(retries, 'retry', 'retries')}" if retries else ""


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _times(number: int) -> str:
    return {1: "once", 2: "twice"}.get(number, f"{number} times")


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(exc).__name__}: {cause or exc}"
