"""The endpoint's shared pieces, built once however many threads ask at once; the
environment's proxies, read once by a run."""

from __future__ import annotations

import ssl
import threading
import time

import httpx2._utils as httpx2_utils
import pytest

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.plan import Case
from conformance.probes import client
from conformance.recording import Mode
from conformance.reference import server
from conformance.spec import Api
from tests.conftest import SPECS


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


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def _no_proxies_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_a_run_reads_the_proxies_once_and_its_clients_take_them_from_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clients are made on the cases' threads while pytest renames the current test in the
    environment on the run's own: a client that read the environment then raised KeyError.
    A run reads the proxies as it starts, and its clients never read the environment."""
    catalog = load(SPECS)
    _no_proxies_set(monkeypatch)
    with server.start(server.ServerConfig()) as proxy:
        # The reference server stands for the proxy: a request to a host that no resolver
        # knows reaches it only through the proxy (it answers 404: the path is the whole URL).
        monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.host}:{proxy.port}")
        runner = Runner(
            catalog, Settings(mode=Mode.LIVE, base_url="http://unresolvable.invalid/v1")
        )
        assert runner.proxies == {"http://": f"http://{proxy.host}:{proxy.port}"}

        def read_the_environment() -> dict[str, str]:
            raise AssertionError("a client read the environment's proxies again")

        monkeypatch.setattr(httpx2_utils, "getproxies", read_the_environment)
        target = catalog.targets["reference-openai"]
        result = runner.execute(Case(catalog.behaviors["usage.details"], target, Api.CHAT, False))
    assert result.evidence, result.summary
    sent = result.evidence[0]
    assert sent.request.url.startswith("http://unresolvable.invalid/v1/")
    assert sent.response is not None, result.summary  # the proxy answered
    assert sent.response.headers["server"].startswith("conformance-reference")


def test_without_the_runs_proxies_a_client_reads_the_environment_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_proxies_set(monkeypatch)
    read: list[None] = []
    monkeypatch.setattr(httpx2_utils, "getproxies", lambda: read.append(None) or {})
    target = load(SPECS).targets["reference-openai"]
    client.Endpoint(target, "http://127.0.0.1:9/v1", "key").close()
    assert read == [None]
    client.Endpoint(target, "http://127.0.0.1:9/v1", "key", proxies={}).close()
    assert read == [None]  # given, if empty, they are not read again
