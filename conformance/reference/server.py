"""Run the reference server: blocking for the CLI, or in a background thread for tests.

In a test or fixture::

    with start(ServerConfig(switches=Switches(stop="keep"))) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn

from conformance.reference.app import create_app, presented_key
from conformance.reference.faults import FaultLayer, FaultSpec, ResettableH11Protocol
from conformance.reference.switches import Switches

LOOPBACK = "127.0.0.1"
#: How long ``start`` waits for the server to accept connections, and ``stop`` for it to end.
STARTUP_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ServerConfig:
    """What a reference server runs with."""

    switches: Switches = field(default_factory=Switches)
    #: The toy model's context window in tokens (the reference targets say 256).
    context_window: int = 256
    #: Slots sharing the window, as llama.cpp's ``--parallel``: each request gets
    #: ``context_window // slots`` tokens, whatever a target file declares.
    slots: int = 1
    #: The toy model's output cap: the most tokens one completion may ask for (the reference
    #: targets' max_output_tokens say 192); None for no cap beyond the window.
    max_output_tokens: int | None = 192
    #: When set, requests need ``Authorization: Bearer <api_key>``; otherwise 401. Out of
    #: the repr, as a traceback's locals (pytest -l) would print it.
    api_key: str | None = field(default=None, repr=False)
    #: Where the key goes: ``authorization`` (as a bearer token), or another header that
    #: carries the bare key (``api-key`` as Azure, ``x-api-key`` as some gateways).
    api_key_header: str = "authorization"
    #: When set, the key is this query parameter instead (``?api-key=...``), not a header.
    api_key_query: str | None = None
    #: A provider fault to inject (see ``faults.py``); tests may change it while running.
    faults: FaultSpec = field(default_factory=FaultSpec)
    #: Play a careless gateway that echoes the presented key in its replies (see faults.py).
    echo_key: bool = False
    host: str = LOOPBACK
    port: int = 8000
    #: The one model served: ``/v1/models`` lists it, and a request naming another gets what
    #: the unknown_model switch says (by default a 404, as OpenAI answers).
    model: str = "toy"
    #: The share of temperature-0 requests that diverge after a few tokens (``jitter.py``),
    #: drawn from a generator seeded with ``jitter_seed`` (None: seeded from the OS).
    jitter: float = 0.0
    jitter_seed: int | None = None


def _app(config: ServerConfig) -> FaultLayer:
    echo = None
    if config.echo_key:

        def echo(scope: Any) -> str | None:
            return presented_key(scope, config.api_key_header, config.api_key_query)

    return FaultLayer(create_app(config), config.faults, echo=echo)


def _uvicorn_config(config: ServerConfig, app: FaultLayer, *, quiet: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=ResettableH11Protocol,  # so that the fault layer can reset connections
        host=config.host,
        port=config.port,
        log_level="warning",
        # In-process servers leave the host program's logging alone.
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
        access_log=False,
        lifespan="off",
        server_header=False,  # the app sets its own server header
        timeout_graceful_shutdown=2,
    )


def serve(config: ServerConfig) -> None:
    """Serve ``config`` on ``config.host:config.port`` until interrupted (Ctrl-C)."""
    uvicorn.Server(_uvicorn_config(config, _app(config), quiet=False)).run()


class RunningServer:
    """A reference server running in a background thread; a context manager that stops it."""

    def __init__(self, config: ServerConfig, sock: socket.socket) -> None:
        self.config = config
        self._socket = sock
        self.host, self.port = sock.getsockname()[:2]
        #: The fault layer: ``faults.configure(FaultSpec(...))`` changes the fault, and
        #: ``faults.requests`` counts the completion requests served.
        self.faults = _app(config)
        self._server = uvicorn.Server(_uvicorn_config(config, self.faults, quiet=True))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"reference-server-{self.port}",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def _start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                self._socket.close()
                raise RuntimeError("the reference server stopped while starting")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the reference server did not start in {STARTUP_TIMEOUT_S:g} s")
            time.sleep(0.01)

    def request_stop(self) -> None:
        """Ask the server to shut down without waiting (``stop`` waits)."""
        self._server.should_exit = True

    def stop(self) -> None:
        """Shut the server down and join its thread; safe to call twice."""
        self.request_stop()
        if self._thread.is_alive():
            self._thread.join(SHUTDOWN_TIMEOUT_S)
        if self._thread.is_alive():
            # Open connections outlived the graceful period; uvicorn then closes them itself.
            self._server.force_exit = True
            self._thread.join(SHUTDOWN_TIMEOUT_S)
        self._socket.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start(
    config: ServerConfig | None = None, *, sock: socket.socket | None = None
) -> RunningServer:
    """Start a server in a background thread and wait until it accepts connections.

    It listens on ``sock`` if given (already bound), otherwise on a free loopback port
    (``config.host`` and ``config.port`` are not used). Stop it with ``.stop()`` or a ``with``.
    """
    config = config or ServerConfig()
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))
    running = RunningServer(config, sock)
    running._start()
    return running


def stop_all(servers: Iterable[RunningServer]) -> None:
    """Stop several servers at once: uvicorn's shutdown takes ~0.2 s, so they overlap."""
    servers = list(servers)
    for server in servers:
        server.request_stop()
    for server in servers:
        server.stop()
