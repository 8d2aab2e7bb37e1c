"""Run one case: reach the target (live, recording, or from a cassette), probe, judge.

Every case ends as a CaseResult, whatever happens inside the probe, so nothing is lost;
and every key the run knows is scrubbed from it, and from the log, before anyone sees it.
"""

from __future__ import annotations

import functools
import os
import secrets
import shlex
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance import memory, redaction
from conformance.observation import (
    BrokenCassette,
    Exchange,
    NotApplicable,
    Observation,
    ProbeError,
    ReplayMismatch,
    Tokens,
)
from conformance.plan import Case
from conformance.probes import Endpoint, ProbeContext, registered
from conformance.probes.client import API_NOT_SERVED, ApiNotServed, environment_proxies
from conformance.recording import Mode, cassette
from conformance.results import CaseResult
from conformance.spec import Catalog, Target
from conformance.spec.models import interpolate
from conformance.stability import combine
from conformance.verdict import Verdict, judge

if TYPE_CHECKING:
    from conformance.reference.server import ServerConfig

#: Replays send a key so the SDK is satisfied; cassettes never hold one, so any value matches.
REPLAY_KEY = "replay-without-key"


class MissingKey(Exception):
    """A target's key variable is unset in a mode that reaches the network.

    The message names the target's file and the line of the setting that needs it.
    """

    def __init__(self, message: str, variable: str) -> None:
        super().__init__(message)
        self.variable = variable


@dataclass(frozen=True)
class Credentials:
    """What a target's requests carry: the bearer key, and headers and query as sent.

    Its repr names no value: pytest's ``-l`` prints the locals of a failing case's frames,
    and so would print the key into the terminal and junit.xml.
    """

    key: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    query: dict[str, str] = field(repr=False)

    def values(self) -> list[str]:
        """Every value here that came from the environment or was made for the run."""
        return [self.key, *self.headers.values(), *self.query.values()]


@dataclass
class Settings:
    """How a run reaches its targets."""

    mode: Mode = Mode.REPLAY
    cassettes: Path = Path("cassettes")
    base_url: str | None = None
    server_version: str | None = None
    specs_arg: str | None = None
    #: Times each case runs (``--repeat``); their outcomes are combined (conformance.stability).
    repeat: int = 1


@dataclass
class Runner:
    """Executes cases against their targets and keeps what the run learns about each target."""

    catalog: Catalog
    settings: Settings
    base_urls: dict[str, str] = field(default_factory=dict)
    _credentials: dict[str, Credentials] = field(default_factory=dict)
    _servers: dict[str, Any] = field(default_factory=dict)
    _slots: dict[str, threading.BoundedSemaphore] = field(default_factory=dict)
    #: Read as the run starts, before any case runs on another thread (``environment_proxies``).
    proxies: dict[str, str | None] = field(default_factory=environment_proxies)
    #: Cases may run on several threads (see ahead.Threads): what the run learns is shared under it.
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        # Keys in the environment are scrubbed from every log line, from the start of the run.
        redaction.scrub_logs(self.secrets)

    @property
    def secrets(self) -> list[str]:
        """Every key this run used or could see, for scrubbing what it writes."""
        found: set[str] = set()
        with self._lock:
            known = list(self._credentials.values())
        for credentials in known:
            found.update(credentials.values())
        found.update(os.environ[name] for name in self._key_variables if os.environ.get(name))
        found -= {REPLAY_KEY, "no-key"}  # placeholders, not secrets
        return sorted(found, key=len, reverse=True)

    @functools.cached_property
    def _key_variables(self) -> list[str]:
        """The environment variables the targets' keys, headers and query come from; named
        once, as every case asks for the secrets twice."""
        names = [
            name
            for target in self.catalog.targets.values()
            for name in (target.api_key_env, *target.env_references())
        ]
        return [name for name in dict.fromkeys(names) if name]

    def key_for(self, target: Target) -> str:
        """The API key to send to ``target`` in this run's mode.

        Raises MissingKey when the key, or a variable the target's headers or query refer
        to, is unset in a mode that reaches the network.
        """
        return self.credentials_for(target).key

    def credentials_for(self, target: Target) -> Credentials:
        """The key, headers and query ``target``'s requests carry in this run's mode."""
        with self._lock:
            return self._credentials_for(target)

    def _credentials_for(self, target: Target) -> Credentials:
        if target.name in self._credentials:
            return self._credentials[target.name]
        if self.settings.mode is Mode.REPLAY:
            # Cassettes hold no key and requests match without headers or query strings.
            key = REPLAY_KEY
        elif target.api_key_env and os.environ.get(target.api_key_env):
            key = os.environ[target.api_key_env]
        elif self._manages(target):
            key = "ref-" + secrets.token_urlsafe(24)
        elif target.reference is not None:
            key = "no-key"  # a reference server started by hand, without --api-key-env
        elif target.api_key_env:
            raise self._missing(target, ("api_key_env",), target.api_key_env)
        else:
            key = "no-key"
        credentials = Credentials(
            key,
            self._resolve(target, "headers", target.headers),
            self._resolve(target, "query", target.query),
        )
        self._credentials[target.name] = credentials
        redaction.scrub_logs(self.secrets)
        return credentials

    def _resolve(self, target: Target, kind: str, values: dict[str, str]) -> dict[str, str]:
        resolved = {}
        environ: Mapping[str, str] = os.environ
        if self.settings.mode is Mode.REPLAY:
            environ = _PLACEHOLDERS
        for name, value in values.items():
            try:
                resolved[name] = interpolate(value, environ)
            except KeyError as exc:
                raise self._missing(target, (kind, name), str(exc.args[0])) from None
        return resolved

    def _missing(self, target: Target, where: tuple[str, ...], variable: str) -> MissingKey:
        message = f"target {target.name} needs ${variable} set to run in {self.settings.mode} mode"
        try:
            located = str(self.catalog.error("target", target.name, where, message))
        except KeyError:  # a target made in code, with no file behind it
            located = message
        return MissingKey(located, variable)

    def slots_for(self, target: Target) -> threading.BoundedSemaphore:
        """The semaphore that keeps ``target``'s requests in flight within its max_concurrency."""
        with self._lock:
            if target.name not in self._slots:
                self._slots[target.name] = threading.BoundedSemaphore(target.max_concurrency)
            return self._slots[target.name]

    def base_url_for(self, target: Target) -> str:
        """Where to send ``target``'s requests: an override, a managed server, or its base_url."""
        with self._lock:
            return self._base_url_for(target)

    def _base_url_for(self, target: Target) -> str:
        if target.name not in self.base_urls:
            if self.settings.base_url:
                url = self.settings.base_url
            elif self._manages(target):
                url = self._start_reference(target)
            else:
                url = target.base_url
            self.base_urls[target.name] = url
        return self.base_urls[target.name]

    def _manages(self, target: Target) -> bool:
        return (
            target.reference is not None
            and self.settings.mode is not Mode.REPLAY
            and not self.settings.base_url
        )

    def _start_reference(self, target: Target) -> str:
        from conformance.reference import server  # noqa: PLC0415  (only when serving)

        running = server.start(reference_config(self.catalog, target, self.key_for(target)))
        self._servers[target.name] = running
        return str(running.base_url)

    def close(self) -> None:
        """Stop every reference server this run started, and the log scrubbing."""
        for running in self._servers.values():
            running.stop()
        self._servers.clear()
        redaction.stop_scrubbing_logs()

    def missing_key(self, target: Target) -> str | None:
        """The unset variable ``target`` needs in this run's mode, or None."""
        try:
            self.credentials_for(target)
        except MissingKey as exc:
            return exc.variable
        return None

    def record_command(self, case: Case) -> str:
        """The command that records ``case``'s cassette."""
        return self.record_target_command(case.target, case.behavior.id)

    def record_target_command(self, target: Target, behavior: str | None = None) -> str:
        """The command that records ``target``'s cassettes (only ``behavior``'s, if given)."""
        words = ["conformance", "run", "--mode", "record", "--target", target.name]
        if behavior:
            words += ["--behavior", behavior]
        if self.settings.specs_arg:
            words += ["--specs", self.settings.specs_arg]
        command = shlex.join(words)
        variables = target.env_references()
        if target.api_key_env and target.reference is None:
            variables.insert(0, target.api_key_env)
        return " ".join([*(f"{name}=..." for name in dict.fromkeys(variables)), command])

    def execute(self, case: Case) -> CaseResult:
        """Probe ``case`` and judge it; every failure becomes an ``error`` result. With
        ``repeat`` above 1, the case runs that many times, back to back, and the results of
        its runs are combined into one.

        A recording that ends without an observation keeps the case's old cassette, and
        its summary says so.
        """
        memory.count_case()  # what cases leave in cycles is swept every so many
        if self.settings.repeat != 1:
            return combine(
                [self._scrubbed(self._execute(case)) for _ in range(self.settings.repeat)]
            )
        result = self._execute(case)
        if self.kept_cassette(case, result):
            result = result.model_copy(update={"summary": f"{result.summary} (old cassette kept)"})
        return self._scrubbed(result)

    def kept_cassette(self, case: Case, result: CaseResult) -> bool:
        """Whether recording ``case`` ended without an observation while a cassette recorded
        before exists, which then stays as it was (an API not served is recorded anew)."""
        return (
            self.settings.mode is Mode.RECORD
            and result.verdict in (Verdict.ERROR, Verdict.SKIPPED)
            and not result.summary.startswith(API_NOT_SERVED)
            and case.cassette(self.settings.cassettes).exists()
        )

    def _scrubbed(self, result: CaseResult) -> CaseResult:
        # The last net: whatever a server echoed or an error quoted, no key leaves the case.
        known = self.secrets
        if not known:
            return result
        return CaseResult.model_validate(redaction.data(result.model_dump(mode="json"), known))

    def _execute(self, case: Case) -> CaseResult:
        started = time.monotonic()
        expected = self.catalog.expectation(case.target.profile, case.behavior.id).outcomes

        def result(
            verdict: Verdict, summary: str, observation: Observation | None = None, **extra: Any
        ) -> CaseResult:
            return CaseResult(
                id=case.name,
                behavior=case.behavior.id,
                target=case.target.name,
                api=case.api.value,
                stream=case.stream,
                profile=case.target.profile,
                expected=sorted(expected) if expected is not None else None,
                observed=observation.outcome if observation else None,
                verdict=verdict,
                summary=summary,
                evidence=observation.exchanges if observation else extra.pop("evidence", []),
                checks=observation.checks if observation else [],
                tokens=observation.tokens if observation else Tokens(),
                duration_s=round(time.monotonic() - started, 4),
            )

        if case.skip_reason:
            return result(Verdict.SKIPPED, case.skip_reason)
        path = case.cassette(self.settings.cassettes)
        if self.settings.mode is Mode.REPLAY and not path.exists():
            return result(
                Verdict.SKIPPED,
                f"no cassette at {path}; record it with: {self.record_command(case)}",
            )
        try:
            credentials = self.credentials_for(case.target)
        except MissingKey as exc:
            return result(Verdict.SKIPPED, str(exc))

        # Before the cassette: a reference server started for the run is not recorded.
        base_url = self.base_url_for(case.target)
        probe = registered()[case.behavior.probe]
        exchanges: list[Exchange] = []  # the endpoint's, kept here for the errors below
        try:
            with cassette(
                path,
                self.settings.mode,
                secrets=self.secrets,
                server_version=self.settings.server_version,
            ) as reel:
                endpoint = Endpoint(
                    case.target,
                    base_url,
                    credentials.key,
                    fatal=(ReplayMismatch,),
                    headers=credentials.headers,
                    query=credentials.query,
                    # A replayed 429 needs no waiting: the cassette holds what came after it.
                    sleep=_no_wait if self.settings.mode is Mode.REPLAY else time.sleep,
                    transport=reel.transport,
                    slots=self.slots_for(case.target),
                    exchanges=exchanges,
                    proxies=self.proxies,
                )
                context = ProbeContext(endpoint, case.api, case.stream, case.behavior.params)
                try:
                    observation = probe.run(context)
                except ApiNotServed as exc:
                    # Caught inside: the cassette keeps the 404, so a replay skips alike.
                    return result(Verdict.SKIPPED, exc.reason, evidence=exc.exchanges)
                finally:
                    endpoint.close()
                if observation.outcome not in case.behavior.outcomes:
                    # Raised inside: a recording with no observation is not kept.
                    raise ProbeError(
                        f"the probe returned an undeclared outcome {observation.outcome!r}",
                        observation.exchanges,
                    )
        except ProbeError as exc:
            return result(Verdict.ERROR, exc.reason, evidence=exc.exchanges)
        except NotApplicable as exc:
            skipped = result(Verdict.SKIPPED, exc.reason, evidence=exc.exchanges)
            skipped.warning = exc.warning
            return skipped
        except BrokenCassette as exc:
            return result(
                Verdict.ERROR,
                f"the cassette {path} cannot be read whole ({exc}); it was cut short or edited; "
                f"re-record it with: {self.record_command(case)}",
            )
        except ReplayMismatch as exc:
            return result(
                Verdict.ERROR,
                f"a request is not in the cassette {path} ({exc}); the probe or the spec changed "
                f"since it was recorded; re-record with: {self.record_command(case)}",
                evidence=exchanges,
            )
        except Exception as exc:  # a bug in one probe must error that case only
            where = traceback.extract_tb(exc.__traceback__)[-1]
            return result(
                Verdict.ERROR,
                f"the probe crashed: {type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})",
                evidence=exchanges,
            )
        verdict = judge(expected, observation.outcome)
        judged = result(verdict, observation.summary, observation)
        judged.server_version = _server_version(
            reel.metadata, self.settings.server_version, observation
        )
        return judged


class _Placeholders(Mapping[str, str]):
    """An environment in which every variable is set: replays send no real header values."""

    def __getitem__(self, name: str) -> str:
        return REPLAY_KEY

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


_PLACEHOLDERS = _Placeholders()


def _no_wait(_: float) -> None:
    return None


def _server_version(
    metadata: dict[str, Any], given: str | None, observation: Observation
) -> str | None:
    """The server's version: as recorded in the cassette, as given, or from a Server header."""
    if metadata.get("server_version"):
        return str(metadata["server_version"])
    if given:
        return given
    for exchange in observation.exchanges:
        if exchange.response is not None and exchange.response.headers.get("server"):
            return exchange.response.headers["server"]
    return None


def reference_config(
    catalog: Catalog,
    target: Target,
    api_key: str | None,
    overrides: Mapping[str, str] | None = None,
) -> ServerConfig:
    """The reference server that plays ``target`` (which has a ``reference:`` block): its
    dialect's switches, the target's own settings of them, then ``overrides``; its context
    window and output cap; checking ``api_key`` when one is given."""
    from conformance.reference import dialect, server  # noqa: PLC0415  (only when serving)

    assert target.reference is not None
    switches = dialect.switches_for(
        catalog, target.reference.dialect, {**target.reference.set, **(overrides or {})}
    )
    return server.ServerConfig(
        switches=switches,
        context_window=min(target.window(api) for api in target.apis),
        max_output_tokens=_output_cap(target),
        api_key=api_key,
    )


def _output_cap(target: Target) -> int | None:
    """The output cap a reference server for ``target`` enforces: the smallest of its APIs'
    documented caps, or None when the target documents none."""
    caps = [cap for api in target.apis if (cap := target.output_cap(api)) is not None]
    return min(caps) if caps else None
