"""Probes by name: the contract between a behavior's YAML and the Python that observes it."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.observation import Check, NotApplicable, Observation, ProbeError, Tokens
from conformance.probes.client import Endpoint, Reply
from conformance.spec import Api


@dataclass
class ProbeContext:
    """Everything one case gives its probe: where to send, which API and variant, the params."""

    endpoint: Endpoint
    api: Api
    stream: bool
    params: Mapping[str, Any]
    #: True once two replies to one request disagreed: the target is not deterministic, so
    #: from then on an effect counts only where it reproduces (see ``agreed``).
    unsteady: bool = False

    def body(self, *, stream: bool | None = None, **fields: Any) -> dict[str, Any]:
        """A deterministic request for this case's API and variant, plus ``fields``.

        The prompt, max_tokens and seed come from the behavior's params; temperature is 0 so
        that a control request and the probed request differ only by what the probe changes.
        """
        prompt = self.params["prompt"]
        request: dict[str, Any] = (
            {"messages": [{"role": "user", "content": prompt}]}
            if self.api is Api.CHAT
            else {"prompt": prompt}
        )
        request["temperature"] = 0
        for name in ("max_tokens", "seed"):
            if name in self.params:
                request[name] = self.params[name]
        if self.stream if stream is None else stream:
            request["stream"] = True
        request.update(fields)
        return request

    def send(
        self,
        label: str,
        body: dict[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        server_errors: bool = False,
    ) -> Reply:
        """Send ``body``; the exchange is kept as evidence.

        ``headers`` override the target's own for this request (e.g. a wrong key). With
        ``server_errors`` a 5xx is a reply to classify rather than an error of the case:
        for probes whose subject is how a server answers a bad request.
        """
        return self.endpoint.send(
            self.api, body, label=label, headers=headers, server_errors=server_errors
        )

    def agreed(
        self,
        label: str,
        body: dict[str, Any],
        why: str,
        *,
        sent: Iterable[Reply] = (),
        key: Callable[[Reply], Hashable] = lambda reply: reply.text,
    ) -> Reply:
        """A reply to ``body`` that another reply to it agrees with on ``key`` (the text).

        ``sent`` are replies to ``body`` already had; more are sent, up to the target's
        ``attempts`` in all, until two agree, and the first of those is returned. This is the
        one place where a probe asks again: every attempt stays in the evidence and counts
        its tokens, and replies that never agree are an error that says so, not a verdict.
        A target with ``attempts: 1`` is trusted on its first reply. A refusal (``why`` names
        the request) is an error as with ``require_ok``.
        """
        replies = list(sent)
        limit = self.endpoint.target.attempts
        while True:
            keys = [key(reply) for reply in replies]
            for position, value in enumerate(keys):
                if value in keys[:position]:
                    return replies[keys.index(value)]
            if len(replies) >= 2:
                self.unsteady = True
            if replies and len(replies) >= limit:
                if limit == 1:
                    return replies[0]
                shown = "; ".join(repr(value)[:80] for value in keys)
                raise self.fail(f"{label}: {len(replies)} attempts disagreed: {shown}")
            attempt = len(replies) + 1
            named = {1: label, 2: f"{label}-repeat"}.get(attempt, f"{label}-attempt-{attempt}")
            replies.append(self.require_ok(self.send(named, body), why))

    def require_ok(self, reply: Reply, why: str) -> Reply:
        """A reply that must be a 2xx for the probe to go on; a refusal here is no observation."""
        if not reply.ok:
            raise self.fail(f"{reply.exchange.label}: {why} was refused with {reply.refusal}")
        return reply

    def fail(self, reason: str) -> ProbeError:
        """A ProbeError carrying the evidence gathered so far."""
        return ProbeError(reason, self.endpoint.exchanges)

    def not_applicable(self, reason: str) -> NotApplicable:
        """A NotApplicable (the case is skipped) carrying the evidence gathered so far."""
        return NotApplicable(reason, self.endpoint.exchanges)

    def observe(self, outcome: str, summary: str, checks: Iterable[Check] = ()) -> Observation:
        """The observation, with every exchange of this case and the tokens they used."""
        tokens = Tokens()
        for exchange in self.endpoint.exchanges:
            spent = exchange.tokens
            tokens = Tokens(
                prompt=tokens.prompt + spent.prompt, completion=tokens.completion + spent.completion
            )
        return Observation(
            outcome=outcome,
            summary=summary,
            exchanges=list(self.endpoint.exchanges),
            checks=list(checks),
            tokens=tokens,
        )


ProbeFunction = Callable[[ProbeContext], Observation]


@dataclass(frozen=True)
class Probe:
    """A registered probe and the outcomes it can classify into."""

    name: str
    outcomes: frozenset[str]
    run: ProbeFunction = field(compare=False)


REGISTRY: dict[str, Probe] = {}


def probe(name: str, outcomes: Iterable[str]) -> Callable[[ProbeFunction], ProbeFunction]:
    """Register ``function`` as the probe ``name``, classifying into ``outcomes``.

    The loader checks that a behavior using this probe declares exactly these outcomes.
    """

    def register(function: ProbeFunction) -> ProbeFunction:
        if name in REGISTRY:
            raise ValueError(f"probe {name!r} is registered twice")
        REGISTRY[name] = Probe(name, frozenset(outcomes), function)
        return function

    return register


def registered() -> Mapping[str, Probe]:
    """Every registered probe, by name (importing the probe modules registers them)."""
    _discover()
    return REGISTRY


@functools.cache
def _discover() -> None:
    # Registration is an import side effect of the probe modules: every module of the package.
    import conformance.probes as package  # noqa: PLC0415

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
