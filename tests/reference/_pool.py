"""Reference servers by switch settings, shared by a test module's tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from conformance.reference.server import RunningServer, ServerConfig, start, stop_all
from conformance.reference.switches import Switches

#: ``pool(stop="keep")``: the running server with those switches (the rest OpenAI's defaults).
Pool = Callable[..., RunningServer]


@contextlib.contextmanager
def server_pool(**config: Any) -> Iterator[Pool]:
    """Servers started on first use for each set of switch settings, all with ``config``
    (a key, a window...), and stopped together at the end: starting is fast, but uvicorn's
    shutdown takes about 0.2 s, so a module shares them."""
    running: dict[frozenset[tuple[str, str]], RunningServer] = {}

    def get(**switches: str) -> RunningServer:
        key = frozenset(switches.items())
        if key not in running:
            settings = Switches().with_settings(switches)
            running[key] = start(ServerConfig(switches=settings, **config))
        return running[key]

    try:
        yield get
    finally:
        stop_all(running.values())
