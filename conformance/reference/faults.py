"""Provider faults the reference server injects on request, for the suite's own tests.

Real providers rate-limit, fail, drop connections and cut streams; the suite must turn each
of those into an ``error`` with a reason, never into a verdict. This ASGI layer wraps the
app (whose semantics know nothing of it) and, by ``FaultSpec``, makes completion requests
(POSTs) fail in one of these ways:

- ``rate_limit``: 429 with ``Retry-After``;
- ``server_error_500``, ``server_error_503``;
- ``reset_before_stream``: the connection is reset (a TCP RST) before any byte of the reply;
- ``reset_mid_stream``: a streamed reply is reset after some events;
- ``truncated_stream``: a streamed reply ends cleanly after some events, without ``[DONE]``;
- ``malformed_chunk``: a streamed reply carries a ``data:`` line that is not JSON;
- ``keep_alive``: SSE comment lines before every event (not a fault: clients must cope);
- ``slow_first_byte``: the reply starts only after ``delay_s``;
- ``error_event``: a streamed reply (a 200) ends with an SSE error event after some events;
- ``trickle``: the reply is sent one byte at a time, ``delay_s`` apart;
- ``endless_stream``: a streamed reply repeats one of its events until the client leaves;
- ``long_line``: a streamed reply sends a data line of ``size`` bytes with no line end;
- ``huge_body``: a 200 whose JSON body is ``size`` bytes long;
- ``redirect_307``, ``redirect_308``: the request is sent on to the same path with
  ``?again=1``, which is then answered;
- ``redirect_loop``: every request is sent on again, ``?again=2``, ``?again=3``...;
- ``redirect_away``: the request is sent on (307) to ``location``, another origin.

Stream faults change only ``text/event-stream`` replies. ``after`` and ``times`` choose
which requests fault, so a test can fault the third request of a probe, or only the first
try of a request that is then retried.

It also plays a careless gateway when ``echo`` is given: every reply echoes the credential
the request presented (in an ``x-served-for`` header, a leading SSE comment, and the message
of the layer's own errors), so tests can show the suite scrubs what servers send back.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import typing
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

FaultKind = Literal[
    "none",
    "rate_limit",
    "server_error_500",
    "server_error_503",
    "reset_before_stream",
    "reset_mid_stream",
    "truncated_stream",
    "malformed_chunk",
    "keep_alive",
    "slow_first_byte",
    "error_event",
    "trickle",
    "endless_stream",
    "long_line",
    "huge_body",
    "redirect_307",
    "redirect_308",
    "redirect_loop",
    "redirect_away",
]
#: Every fault, "none" excluded.
FAULTS: tuple[str, ...] = typing.get_args(FaultKind)[1:]
STREAM_FAULTS = frozenset(
    {
        "reset_mid_stream",
        "truncated_stream",
        "malformed_chunk",
        "keep_alive",
        "error_event",
        "endless_stream",
        "long_line",
    }
)
REDIRECT_FAULTS = frozenset({"redirect_307", "redirect_308", "redirect_loop", "redirect_away"})

#: What ``malformed_chunk`` inserts: a data line whose JSON is cut short.
MALFORMED_LINE = b'data: {"choices": [{"index": 0, "delta": {"content": "x"}\n\n'
KEEP_ALIVE = b": keep-alive\n\n"
#: What ``error_event`` ends a stream with, as OpenAI's API sends a failure after its 200.
ERROR_EVENT = (
    b'data: {"error": {"message": "The server had an error while processing your request.", '
    b'"type": "server_error", "param": null, "code": "server_error"}}\n\n'
)
#: How much of a long body or line is handed to the server at once.
PIECE = 65536
ECHO_HEADER = b"x-served-for"


class FaultSpec(BaseModel):
    """Which fault the reference server injects, and into which requests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind = "none"
    after: int = Field(default=0, ge=0, description="Requests answered normally first.")
    times: int | None = Field(
        default=None, ge=0, description="How many requests fault, then none; None: all."
    )
    retry_after_s: float | None = Field(
        default=1.0, ge=0, description="rate_limit's Retry-After; None sends no header."
    )
    delay_s: float = Field(default=1.0, ge=0, description="slow_first_byte's delay.")
    events: int = Field(
        default=2, ge=0, description="Stream faults: SSE events sent before the fault."
    )
    size: int = Field(
        default=16_000_000, ge=0, description="long_line's and huge_body's length in bytes."
    )
    location: str = Field(
        default="http://127.0.0.1:9/v1/chat/completions", description="redirect_away's target."
    )

    def applies(self, index: int) -> bool:
        """True when the request numbered ``index`` (from 0) gets the fault."""
        if self.kind == "none" or index < self.after:
            return False
        return self.times is None or index < self.after + self.times


# --------------------------------------------------------------------------- connection resets

#: Open connections by (server address, client address), as ASGI scopes name them.
_TRANSPORTS: dict[tuple[Any, Any], asyncio.Transport] = {}


class ResettableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, keeping each connection's transport so the fault layer can
    reset it: ASGI itself offers no way to abort a connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Keep the transport, then proceed as uvicorn does."""
        super().connection_made(transport)
        _TRANSPORTS[(self.server, self.client)] = transport

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the transport, then proceed as uvicorn does."""
        _TRANSPORTS.pop((self.server, self.client), None)
        super().connection_lost(exc)


def _key(address: Any) -> Any:
    return tuple(address) if address is not None else None


def reset(scope: Scope) -> None:
    """Reset the connection ``scope`` arrived on: a TCP RST, not an orderly close."""
    transport = _TRANSPORTS.get((_key(scope.get("server")), _key(scope.get("client"))))
    if transport is None:
        raise RuntimeError("the connection to reset is unknown; serve with ResettableH11Protocol")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger on, with a zero timeout: close() then sends RST and drops unsent data.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# --------------------------------------------------------------------------- the layer


def connected(scope: Scope) -> bool:
    """True while the client of ``scope``'s request is still connected (uvicorn drops what
    is sent after it left without a word, so endless senders ask)."""
    transport = _TRANSPORTS.get((_key(scope.get("server")), _key(scope.get("client"))))
    return transport is not None and not transport.is_closing()


def kind_is_immediate(kind: str) -> bool:
    """True for a fault that acts on any request; stream faults act only on streamed replies."""
    return kind not in STREAM_FAULTS


class FaultLayer:
    """ASGI middleware that injects ``spec``'s fault.

    ``requests`` counts the completion requests (POSTs) seen, ``faulted`` those the fault
    actually changed.
    """

    def __init__(
        self,
        app: ASGIApp,
        spec: FaultSpec | None = None,
        *,
        echo: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self.app = app
        self.spec = spec or FaultSpec()
        self.echo = echo
        self.requests = 0
        self.faulted = 0

    def configure(self, spec: FaultSpec) -> None:
        """Inject ``spec`` from the next request on, counting requests from zero again."""
        self.spec = spec
        self.requests = 0
        self.faulted = 0

    def _count_fault(self) -> None:
        # Counted when the fault starts, not when the app ends: a test that reads the count
        # as soon as its client gave up must not miss it (nor see it after a reconfigure).
        self.faulted += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credential = self.echo(scope) if self.echo is not None else None
        if credential:
            send = _echoing(send, credential)
        spec = self.spec
        active = False
        if scope.get("method") == "POST" and _redirected_here(scope, spec):
            await self.app(scope, receive, send)  # the redirect's own target: answered
            return
        if scope.get("method") == "POST":
            active = spec.applies(self.requests)
            self.requests += 1
            if active and kind_is_immediate(spec.kind):
                self.faulted += 1  # a stream fault counts once it meets a stream: _StreamFault
        if not active:
            await self.app(scope, receive, send)
            return
        kind = spec.kind
        if kind == "rate_limit":
            headers = {}
            if spec.retry_after_s is not None:
                headers["retry-after"] = f"{spec.retry_after_s:g}"
            await _drain(receive)
            await _error(
                send,
                429,
                "Rate limit reached for requests.",
                code="rate_limit_exceeded",
                credential=credential,
                headers=headers,
            )
        elif kind in ("server_error_500", "server_error_503"):
            status = 500 if kind == "server_error_500" else 503
            message = (
                "The server had an error while processing your request."
                if status == 500
                else "The engine is currently overloaded, please try again later."
            )
            await _drain(receive)
            await _error(
                send, status, message, code="server_error", credential=credential, headers={}
            )
        elif kind == "reset_before_stream":
            await _drain(receive)  # the whole request is in: the client now waits for a reply
            reset(scope)
            await _until_disconnected(receive)
        elif kind == "slow_first_byte":
            body = await _drain(receive)
            await asyncio.sleep(spec.delay_s)
            await self.app(scope, _replaying(body, receive), send)
        elif kind == "trickle":
            await self.app(scope, receive, _trickling(send, scope, spec.delay_s))
        elif kind == "huge_body":
            await _drain(receive)
            await _huge_body(send, scope, spec.size)
        elif kind in REDIRECT_FAULTS:
            await _drain(receive)
            await _redirect(send, scope, spec)
        else:
            fault = _StreamFault(spec, scope, send, self._count_fault)
            await self.app(scope, receive, fault.send)
            if fault.reset:
                await _until_disconnected(receive)


async def _drain(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def _until_disconnected(receive: Receive) -> None:
    # After an abort uvicorn reports the disconnect; returning earlier would make it answer 500.
    while (await receive())["type"] != "http.disconnect":
        pass


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _error(
    send: Send,
    status: int,
    message: str,
    *,
    code: str,
    credential: str | None,
    headers: dict[str, str],
) -> None:
    if credential:
        message += f" (request made with key {credential})"  # what careless gateways do
    kind = "requests" if status == 429 else "server_error"
    body = json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}
    ).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.encode(), value.encode()) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _echoing(send: Send, credential: str) -> Send:
    streaming = False
    first_body = True

    async def echo(message: Message) -> None:
        nonlocal streaming, first_body
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            streaming = any(
                name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                for name, value in headers
            )
            headers.append((ECHO_HEADER, credential.encode("latin-1", errors="replace")))
            message = {**message, "headers": headers}
        elif message["type"] == "http.response.body" and streaming and first_body:
            first_body = False
            comment = f": served for {credential}\n\n".encode()
            message = {**message, "body": comment + message.get("body", b"")}
        await send(message)

    return echo


def _again(scope: Scope) -> int:
    """The ``again`` query parameter of a redirected request; 0 for the first request."""
    for part in bytes(scope.get("query_string", b"")).decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if name == "again" and value.isdigit():
            return int(value)
    return 0


def _redirected_here(scope: Scope, spec: FaultSpec) -> bool:
    return spec.kind in ("redirect_307", "redirect_308") and _again(scope) > 0


async def _redirect(send: Send, scope: Scope, spec: FaultSpec) -> None:
    if spec.kind == "redirect_away":
        location = spec.location
    else:
        location = f"{scope['path']}?again={_again(scope) + 1}"
    status = 308 if spec.kind == "redirect_308" else 307
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _huge_body(send: Send, scope: Scope, size: int) -> None:
    head, tail = b'{"id": "huge", "padding": "', b'"}'
    filler = max(0, size - len(head) - len(tail))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(head) + filler + len(tail)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": head, "more_body": True})
    while filler > 0 and connected(scope):
        piece = min(PIECE, filler)
        filler -= piece
        await send({"type": "http.response.body", "body": b"x" * piece, "more_body": True})
    await send({"type": "http.response.body", "body": tail, "more_body": False})


def _trickling(send: Send, scope: Scope, delay_s: float) -> Send:
    async def trickle(message: Message) -> None:
        if message["type"] != "http.response.body":
            await send(message)
            return
        body = bytes(message.get("body", b""))
        for position in range(len(body)):
            if not connected(scope):
                return
            await send(
                {
                    "type": "http.response.body",
                    "body": body[position : position + 1],
                    "more_body": True,
                }
            )
            await asyncio.sleep(delay_s)
        if not message.get("more_body", False):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return trickle


class _StreamFault:
    """A ``send`` that alters a streamed reply event by event; other replies pass as they are."""

    def __init__(
        self, spec: FaultSpec, scope: Scope, send: Send, on_fault: Callable[[], None]
    ) -> None:
        self.spec = spec
        self.scope = scope
        self.downstream = send
        self.on_fault = on_fault
        self.streaming = False
        self.buffer = b""
        self.events = 0
        self.done = False  # the fault has ended the reply; the app's later messages are dropped
        self.reset = False

    async def send(self, message: Message) -> None:
        if self.done:
            return
        if message["type"] == "http.response.start":
            self.streaming = any(
                name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                for name, value in message.get("headers", [])
            )
            if self.streaming:
                self.on_fault()
            await self.downstream(message)
            if self.streaming and self.spec.kind == "keep_alive":
                await self._body(KEEP_ALIVE)
            return
        if message["type"] != "http.response.body" or not self.streaming:
            await self.downstream(message)
            return
        self.buffer += message.get("body", b"")
        while b"\n\n" in self.buffer and not self.done:
            event, self.buffer = self.buffer.split(b"\n\n", 1)
            await self._event(event + b"\n\n")
        if not message.get("more_body", False) and not self.done:
            await self.downstream(
                {"type": "http.response.body", "body": self.buffer, "more_body": False}
            )

    async def _body(self, chunk: bytes) -> None:
        await self.downstream({"type": "http.response.body", "body": chunk, "more_body": True})

    async def _end(self, event: bytes) -> None:
        """End the stream as error_event, long_line or endless_stream do, ``event`` being
        the event the fault takes the place of."""
        kind = self.spec.kind
        if kind == "error_event":
            await self._body(ERROR_EVENT)
        elif kind == "long_line":
            await self._body(b"data: ")
            left = self.spec.size
            while left > 0 and connected(self.scope):
                await self._body(b"x" * min(PIECE, left))
                left -= PIECE
        else:
            while connected(self.scope):
                await self._body(event)
                await asyncio.sleep(0)  # let the loop notice a client that left
        await self.downstream({"type": "http.response.body", "body": b"", "more_body": False})

    async def _event(self, event: bytes) -> None:
        kind = self.spec.kind
        if self.events == self.spec.events:
            if kind == "truncated_stream":
                self.done = True
                await self.downstream(
                    {"type": "http.response.body", "body": b"", "more_body": False}
                )
                return
            if kind == "reset_mid_stream":
                self.done = self.reset = True
                reset(self.scope)
                return
            if kind == "malformed_chunk":
                await self._body(MALFORMED_LINE)
            if kind in ("error_event", "long_line", "endless_stream"):
                self.done = True
                await self._end(event)
                return
        self.events += 1
        if kind == "keep_alive":
            event += KEEP_ALIVE
        await self._body(event)
