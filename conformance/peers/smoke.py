"""A smoke test of a running peer with the official ``openai`` SDK.

It proves that a peer answers chat and completions, streaming or not, that greedy output is the
tiny model's readable walk and deterministic, reports prompt token counts (to compare across
peers), and checks that ``frequency_penalty`` and ``logit_bias`` change the output. It is not the
conformance suite: it only shows that a peer is fit to be recorded, and notes oddities it sees
(extra fields, usage in streams) for a person to read.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openai import APIConnectionError, APIStatusError, OpenAI

from conformance.peers.model import MODEL_NAME

#: Prompts ending in " alpha": the walk continues with " bravo charlie ...".
PLAIN_PROMPT = "Say alpha"
WALK_START = " bravo charlie delta echo"
#: Long enough that the walk revisits words (after 26 tokens), so penalties can show.
PENALTY_MAX_TOKENS = 60
TIMING_REPEATS = 5


#: Checks of optional features: a peer failing them is a finding for the suite, not unfit.
OPTIONAL_CHECKS = frozenset(
    {"frequency_penalty changes output", "logit_bias {100: +100}", "chat logit_bias {200: +100}"}
)


@dataclass
class Check:
    """One smoke check: its name, whether it passed, what was seen and how long it took."""

    name: str
    ok: bool
    detail: str
    seconds: float

    @property
    def required(self) -> bool:
        """Whether a peer must pass this check to be worth recording."""
        return self.name not in OPTIONAL_CHECKS


@dataclass
class SmokeReport:
    """All checks of one peer, plus observations that are not pass/fail."""

    peer: str
    checks: list[Check] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every required check passed."""
        return all(c.ok for c in self.checks if c.required)

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(
            {
                "peer": self.peer,
                "ok": self.ok,
                "checks": [{**c.__dict__, "required": c.required} for c in self.checks],
                "notes": self.notes,
            },
            indent=2,
            default=str,
        )


def _extras(obj: Any) -> list[str]:
    # openai's pydantic models keep unknown response fields in model_extra.
    extra = getattr(obj, "model_extra", None) or {}
    return sorted(extra)


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, APIStatusError):
        return f"HTTP {exc.status_code}: {exc.response.text[:300]}"
    return f"{type(exc).__name__}: {exc}"


class _Smoke:
    """The checks, sharing one client; each group of checks survives the others' failures."""

    def __init__(self, base_url: str, api_key: str | None, peer: str, model: str) -> None:
        self.client = OpenAI(
            base_url=base_url, api_key=api_key or "unused", max_retries=0, timeout=60
        )
        self.model = model
        self.report = SmokeReport(peer=peer)
        self.started = 0.0

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        elapsed = time.perf_counter() - self.started
        self.report.checks.append(Check(name, ok, detail, round(elapsed, 4)))

    def note(self, key: str, value: Any) -> None:
        self.report.notes[key] = value

    def run(self, name: str, group: Callable[[], None], *, retried: bool = False) -> None:
        """Run one group of checks; an API error fails the group's check instead of the run."""
        self.started = time.perf_counter()
        try:
            group()
        except APIConnectionError as exc:
            if retried:
                self.check(name, False, f"connection failed twice: {exc}")
                return
            # Some servers drop a kept-alive connection after answering a 500; the next request
            # on it fails. Retry once (on a fresh connection) and say that it happened.
            self.note(f"{name}: connection retried", _describe_error(exc))
            self.run(name, group, retried=True)
        except APIStatusError as exc:
            self.check(name, False, _describe_error(exc))
        except (TypeError, ValueError, AttributeError, IndexError) as exc:
            # A response the SDK parsed but that is not shaped as expected: a finding, not a crash.
            self.check(name, False, f"unexpected response shape: {type(exc).__name__}: {exc}")

    def complete(self, **kw: Any) -> Any:
        self.started = time.perf_counter()
        return self.client.completions.create(model=self.model, temperature=0, **kw)

    def chat(self, content: str, **kw: Any) -> Any:
        self.started = time.perf_counter()
        messages: Any = [{"role": "user", "content": content}]
        return self.client.chat.completions.create(
            model=self.model, messages=messages, temperature=0, **kw
        )

    def models(self) -> None:
        ids = [m.id for m in self.client.models.list().data]
        self.check("models.list", self.model in ids, f"ids={ids}")

    def completions(self) -> None:
        first = self.complete(prompt=PLAIN_PROMPT, max_tokens=30)
        text = first.choices[0].text
        self.check("completions walk", text.startswith(WALK_START), repr(text))
        again = self.complete(prompt=PLAIN_PROMPT, max_tokens=30)
        self.check("completions deterministic", again.choices[0].text == text)
        self.note("completions.usage", first.usage.model_dump() if first.usage else None)
        self.note("completions.finish_reason", first.choices[0].finish_reason)
        self.note("completions.extra_fields", _extras(first))
        self.note("completions.choice_extra_fields", _extras(first.choices[0]))
        parts: list[str] = []
        usage, chunks = None, 0
        stream = self.complete(
            prompt=PLAIN_PROMPT, max_tokens=30, stream=True, stream_options={"include_usage": True}
        )
        for chunk in stream:
            chunks += 1
            usage = chunk.usage or usage
            parts.extend(c.text or "" for c in chunk.choices)  # LiteLLM sends text: null
        streamed = "".join(parts)
        self.check("completions stream", streamed == text, f"{chunks} chunks, {streamed!r}")
        self.note("completions.stream_usage", usage.model_dump() if usage else None)

    def chats(self) -> None:
        # The template leaves the user's message open, so the reply continues it.
        reply = self.chat(PLAIN_PROMPT, max_tokens=30)
        content = reply.choices[0].message.content or ""
        self.check("chat walk", WALK_START.strip() in content, repr(content))
        again = self.chat(PLAIN_PROMPT, max_tokens=30)
        self.check("chat deterministic", again.choices[0].message.content == content)
        self.note("chat.usage", reply.usage.model_dump() if reply.usage else None)
        self.note("chat.finish_reason", reply.choices[0].finish_reason)
        self.note("chat.extra_fields", _extras(reply))
        self.note("chat.message_extra_fields", _extras(reply.choices[0].message))
        parts: list[str] = []
        usage, chunks = None, 0
        stream = self.chat(
            PLAIN_PROMPT, max_tokens=30, stream=True, stream_options={"include_usage": True}
        )
        for chunk in stream:
            chunks += 1
            usage = chunk.usage or usage
            parts.extend(c.delta.content or "" for c in chunk.choices)
        streamed = "".join(parts)
        self.check("chat stream", streamed == content, f"{chunks} chunks, {streamed!r}")
        self.note("chat.stream_usage", usage.model_dump() if usage else None)

    def end_trigger(self) -> None:
        # "~" is followed by " over" and end-of-sequence: a natural finish_reason "stop".
        end = self.complete(prompt="Over and out ~", max_tokens=10)
        choice = end.choices[0]
        ok = choice.text.strip() == "over" and choice.finish_reason == "stop"
        self.check("end trigger", ok, f"{choice.text!r} finish_reason={choice.finish_reason}")

    def penalties(self) -> None:
        # Penalties need the walk to revisit words: compare with a control of the same length.
        control = self.complete(prompt=PLAIN_PROMPT, max_tokens=PENALTY_MAX_TOKENS).choices[0].text
        # A server's default sampling settings (a repeat penalty) could bend the control walk.
        self.note("control_walk_has_runner_up", "roger" in control.split())
        penalized = (
            self.complete(prompt=PLAIN_PROMPT, max_tokens=PENALTY_MAX_TOKENS, frequency_penalty=2)
            .choices[0]
            .text
        )
        self.check("frequency_penalty changes output", penalized != control, repr(penalized))
        presence = (
            self.complete(prompt=PLAIN_PROMPT, max_tokens=PENALTY_MAX_TOKENS, presence_penalty=2)
            .choices[0]
            .text
        )
        self.note("presence_penalty_changes_output", presence != control)

    def logit_bias_completion(self) -> None:
        text = self.complete(prompt=PLAIN_PROMPT, max_tokens=8, logit_bias={"100": 100})
        got = text.choices[0].text
        self.check("logit_bias {100: +100}", got.split() == ["yes"] * 8, repr(got))

    def logit_bias_chat(self) -> None:
        reply = self.chat(PLAIN_PROMPT, max_tokens=8, logit_bias={"200": 100})
        got = reply.choices[0].message.content or ""
        self.check("chat logit_bias {200: +100}", got.split() == ["no"] * 8, repr(got))

    def token_counts(self) -> None:
        # Exact counts to compare across peers (the model adds no BOS token).
        counts: dict[str, int | None] = {}
        for label, prompt in TOKEN_COUNT_PROMPTS.items():
            usage = self.complete(prompt=prompt, max_tokens=1).usage
            counts[label] = usage.prompt_tokens if usage else None
        messages: Any = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ]
        usage = self.client.chat.completions.create(
            model=self.model, messages=messages, temperature=0, max_tokens=1
        ).usage
        counts["chat system+user"] = usage.prompt_tokens if usage else None
        self.note("prompt_tokens", counts)
        self.check("prompt token counts", None not in counts.values(), json.dumps(counts))

    def timing(self) -> None:
        # Median wall time of small requests, for docs/peers.md (not a check).
        calls: dict[str, Callable[[], Any]] = {
            "completions": lambda: self.complete(prompt=PLAIN_PROMPT, max_tokens=16),
            "chat": lambda: self.chat(PLAIN_PROMPT, max_tokens=16),
        }
        for label, call in calls.items():
            times = []
            for _ in range(TIMING_REPEATS):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            self.note(f"timing.{label}_16_tokens_median_ms", round(statistics.median(times) * 1000))

    def errors(self) -> None:
        # What a client error looks like here (status and body), for a person to compare.
        bad_requests: dict[str, dict[str, Any]] = {
            "unknown model": {"model": "no-such-model"},
            "max_tokens -1": {"max_tokens": -1},
        }
        for label, change in bad_requests.items():
            body: dict[str, Any] = {"model": self.model, "prompt": PLAIN_PROMPT, "max_tokens": 4}
            body.update(change)
            try:
                self.client.completions.create(**body)
                self.note(f"error.{label}", "accepted (HTTP 200)")
            except APIStatusError as exc:
                self.note(f"error.{label}", _describe_error(exc))
            except APIConnectionError as exc:
                self.note(f"error.{label}", _describe_error(exc))


def run_smoke(
    base_url: str, api_key: str | None, peer: str, model: str = MODEL_NAME
) -> SmokeReport:
    """Run the smoke checks against ``base_url`` and return what was seen."""
    smoke = _Smoke(base_url, api_key, peer, model)
    smoke.run("models.list", smoke.models)
    smoke.run("completions", smoke.completions)
    smoke.run("chat", smoke.chats)
    smoke.run("end trigger", smoke.end_trigger)
    smoke.run("penalties", smoke.penalties)
    smoke.run("logit_bias {100: +100}", smoke.logit_bias_completion)
    smoke.run("chat logit_bias {200: +100}", smoke.logit_bias_chat)
    smoke.run("prompt token counts", smoke.token_counts)
    smoke.run("timing", smoke.timing)
    # Last: some servers answer bad requests with a 500 and then drop the connection.
    smoke.run("errors", smoke.errors)
    return smoke.report


#: Completion prompts whose token counts are compared across peers, with the counts the HF
#: tokenizer of the tiny model gives (checked by the unit tests).
TOKEN_COUNT_PROMPTS = {
    "plain": PLAIN_PROMPT,
    "sentence": "Count from 1 to 30, separated by ', '.",
    "non-ascii": "héllo wörld\n~",
}
