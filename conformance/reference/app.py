"""The reference server's ASGI app: OpenAI's chat, legacy completions and Responses APIs.

Only the HTTP side is here: the endpoints, the middleware that sets the ``server`` header and
checks the API key, and ``create_app``. A completion request goes through
``planning.plan_request`` (validated, with the switches' semantics), ``generation.run`` and
``rendering``; a refusal is an ``ApiError`` in OpenAI's error envelope.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.reference import rendering, responses_app, streaming
from conformance.reference.generation import run
from conformance.reference.jitter import Jitter
from conformance.reference.planning import plan_request
from conformance.reference.validation import Api, ApiError, check_model, error_response

if TYPE_CHECKING:
    from conformance.reference.server import ServerConfig

_log = logging.getLogger(__name__)


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


def _completion_endpoint(api: Api, config: ServerConfig, jitter: Jitter) -> Any:
    fingerprint = rendering.fingerprint(config)
    prefix = "chatcmpl-" if api == "chat" else "cmpl-"

    async def endpoint(request: Request) -> Response:
        try:
            p = plan_request(await _json_body(request), api, config)
        except ApiError as error:
            return error.response(config.switches.error_envelope)
        result = run(jitter.apply(p))
        ident = prefix + uuid.uuid4().hex[:24]
        created = int(time.time())
        if p.stream:
            chunks = streaming.shape_chunks(
                rendering.render_chunks(p, result, ident, created, fingerprint), config.switches
            )
            return StreamingResponse(
                streaming.sse(
                    [rendering.shaped(chunk, config.switches) for chunk in chunks],
                    config.switches.stream_framing,
                ),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        body = rendering.render_body(p, result, ident, created, fingerprint)
        return JSONResponse(rendering.shaped(body, config.switches))

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
                headers.append((b"server", rendering.SERVER_HEADER.encode()))
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
            check_model(name, config)
        except ApiError as error:
            return error.response(config.switches.error_envelope)
        return JSONResponse(_model_object(name))

    jitter = Jitter(config.jitter, config.jitter_seed)  # one generator for both endpoints
    routes = [
        Route(
            "/v1/chat/completions", _completion_endpoint("chat", config, jitter), methods=["POST"]
        ),
        Route(
            "/v1/completions", _completion_endpoint("completions", config, jitter), methods=["POST"]
        ),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{name:path}", get_model, methods=["GET"]),
        *responses_app.routes(config, _json_body),
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
