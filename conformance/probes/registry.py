"""Probes by name: the contract between a behavior's YAML and the Python that observes it."""

from __future__ import annotations

import functools
import importlib
import itertools
import pkgutil
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
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
        ``server_errors`` a server failure (a 5xx, or an error event in a 200 stream) that a
        fresh request reproduces is a reply to classify rather than an error of the case:
        for probes whose subject is how a server answers a bad request. One that does not
        reproduce is an error either way (see ``Endpoint.send``).
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
        ``attempts`` in all, until two agree, and the first of those is returned. With
        ``reconciled``, this is where a probe asks again: every attempt stays in the evidence
        and counts its tokens, and replies that never agree are an error that says so, not a
        verdict.
        A target with ``attempts: 1`` is trusted on its first reply. A refusal (``why`` names
        the request) is an error as with ``require_ok``.
        """
        replies = list(sent)
        limit = self.endpoint.target.attempts
        while True:
            found = _agreeing(replies, key)
            if found is not None:
                return found
            if len(replies) >= 2:
                self.unsteady = True
            if replies and len(replies) >= limit:
                if limit == 1:
                    return replies[0]
                shown = "; ".join(repr(key(reply))[:80] for reply in replies)
                raise self.fail(f"{label}: {len(replies)} attempts disagreed: {shown}")
            replies.append(self._again(Request(label, body, why), len(replies) + 1))

    def reconciled(
        self,
        requests: Sequence[Request],
        first: Sequence[Reply],
        explains: Callable[[Sequence[Reply]], bool],
    ) -> list[Reply]:
        """Replies to ``requests``, one each, that ``explains`` accepts together.

        ``first`` holds a reply to each request, which ``explains`` did not accept: one of
        them may have diverged. Each request is sent again in turn, and every combination of
        the replies so far is tried, until one is explained; or until every request's
        replies reproduce (three alike, none differing), which are returned unexplained for the
        probe to judge as replies of a steady target. Once replies have differed, the
        requests go on up to the target's ``attempts`` each, and then it is an error that
        says so.
        """
        pools = [[reply] for reply in first]
        limit = self.endpoint.target.attempts
        while True:
            keyed = [(pool, request.key) for pool, request in zip(pools, requests, strict=True)]
            disagreed = any(_disagree(*each) for each in keyed)
            self.unsteady = self.unsteady or disagreed
            # Steady: every request answered alike, three times where the target allows
            # (two replies alike can still be two that diverged the same way).
            steady = [pool[0] for pool in pools if len(pool) >= min(3, limit)]
            if not disagreed and len(steady) == len(pools):
                return steady
            if all(len(pool) >= limit for pool in pools):
                names = " and ".join(request.label for request in requests)
                raise Disagreement(
                    f"{names}: {limit} attempts disagreed, and no combination of their replies "
                    "fits",
                    self.endpoint.exchanges,
                    pools,
                )
            for position, (request, pool) in enumerate(zip(requests, pools, strict=True)):
                if len(pool) >= limit:
                    continue
                pool.append(self._again(request, len(pool) + 1))
                for combination in itertools.product(*pools):
                    if combination[position] is pool[-1] and explains(combination):
                        return list(combination)

    def _again(self, request: Request, attempt: int) -> Reply:
        """Attempt number ``attempt`` of ``request``, labelled as such in the evidence."""
        named = {1: request.label, 2: f"{request.label}-repeat"}.get(
            attempt, f"{request.label}-attempt-{attempt}"
        )
        return self.require_ok(self.send(named, request.body), request.why)

    def require_ok(self, reply: Reply, why: str) -> Reply:
        """A reply that must be a 2xx for the probe to go on; a refusal here is no observation."""
        if not reply.ok:
            raise self.fail(f"{reply.exchange.label}: {why} was refused with {reply.refusal}")
        return reply

    def fail(self, reason: str) -> ProbeError:
        """A ProbeError carrying the evidence gathered so far."""
        return ProbeError(reason, self.endpoint.exchanges)

    def not_applicable(self, reason: str, *, warning: str | None = None) -> NotApplicable:
        """A NotApplicable (the case is skipped) carrying the evidence gathered so far;
        ``warning`` is about the target as a whole (its file declares what it does not do)."""
        return NotApplicable(reason, self.endpoint.exchanges, warning=warning)

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


class Disagreement(ProbeError):
    """Replies that never agreed nor fitted, after every attempt: an error of the case,
    with every reply to each request (``pools``) for a probe that can still start over."""

    def __init__(self, reason: str, exchanges: list[Any], pools: list[list[Reply]]) -> None:
        super().__init__(reason, exchanges)
        self.pools = pools


@dataclass(frozen=True)
class Request:
    """A request a probe may send again: its label in the evidence, its body, and what it
    is for (named in the error when it is refused)."""

    label: str
    body: dict[str, Any]
    why: str
    #: What replies to it must agree on: the text, unless a probe reads more.
    key: Callable[[Reply], Hashable] = field(default=lambda reply: reply.text, compare=False)


def _agreeing(replies: Sequence[Reply], key: Callable[[Reply], Hashable]) -> Reply | None:
    """The first of two replies that agree on ``key``, or None."""
    keys = [key(reply) for reply in replies]
    for position, value in enumerate(keys):
        if value in keys[:position]:
            return replies[keys.index(value)]
    return None


def _disagree(replies: Sequence[Reply], key: Callable[[Reply], Hashable]) -> bool:
    return len({key(reply) for reply in replies}) > 1


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
