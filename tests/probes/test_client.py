"""The endpoint's shared pieces, built once however many threads ask at once."""

from __future__ import annotations

import ssl
import threading
import time

import pytest

from conformance.probes import client


def test_tls_context_is_built_once_when_threads_ask_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[ssl.SSLContext] = []

    def slow_context() -> ssl.SSLContext:
        time.sleep(0.05)  # long enough for every thread to arrive while the first builds
        built.append(ssl.create_default_context())
        return built[-1]

    monkeypatch.setattr(client.httpx2, "create_ssl_context", slow_context)
    monkeypatch.setattr(client, "_TLS_CONTEXTS", [])
    start = threading.Barrier(8)
    got: list[ssl.SSLContext] = []

    def ask() -> None:
        start.wait()
        got.append(client._tls_context())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert len(got) == 8
    assert all(context is built[0] for context in got)
