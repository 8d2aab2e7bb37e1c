"""Results files made to order, with the shipped specs' behaviors and profiles."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from conformance.catalog import load
from conformance.observation import Exchange, RequestRecord, ResponseRecord
from conformance.results import CaseResult, Provenance, Results, TargetInfo, documented
from conformance.verdict import Verdict
from tests.conftest import SPECS

CATALOG = load(SPECS)
BEHAVIORS, PROFILES = documented(CATALOG)
WHEN = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)


def exchange(body: str = '{"ok": true}', *, sse: list[str] | None = None) -> Exchange:
    """One request and its response."""
    return Exchange(
        label="probe",
        request=RequestRecord(
            method="POST",
            url="http://127.0.0.1:9/v1/chat/completions",
            headers={"content-type": "application/json"},
            body={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        ),
        response=ResponseRecord(
            status=200,
            headers={"server": "acme/1.0"},
            body=None if sse is not None else body,
            sse=sse,
        ),
    )


def case(
    target: str = "acme",
    behavior: str = "stop.inclusion",
    observed: str | None = "omitted",
    *,
    api: str = "chat",
    stream: bool = False,
    profile: str = "openai",
    verdict: Verdict | None = None,
    summary: str = "what the probe saw",
    evidence: Sequence[Exchange] | None = None,
    server_version: str | None = None,
) -> CaseResult:
    """A case judged against ``profile`` as the shipped specs document it."""
    expected = PROFILES[profile].expectations[behavior].expected
    if verdict is None:
        if observed is None:
            verdict = Verdict.ERROR
        elif expected is None:
            verdict = Verdict.OBSERVED
        else:
            verdict = Verdict.PASS if observed in expected else Verdict.DEVIATION
    variant = "stream" if stream else "nostream"
    return CaseResult(
        id=f"{behavior}[{target}-{api}-{variant}]",
        behavior=behavior,
        target=target,
        api=api,
        stream=stream,
        profile=profile,
        expected=expected,
        observed=observed if verdict not in (Verdict.ERROR, Verdict.SKIPPED) else None,
        verdict=verdict,
        summary=summary,
        evidence=list(evidence if evidence is not None else [exchange()]),
        server_version=server_version,
    )


def results(
    cases: Sequence[CaseResult],
    *,
    when: dt.datetime = WHEN,
    titles: dict[str, str] | None = None,
    server_versions: dict[str, str] | None = None,
) -> Results:
    """A results file holding ``cases``, with a target entry for each of their targets."""
    targets = {}
    for item in cases:
        targets.setdefault(
            item.target,
            TargetInfo(
                title=(titles or {}).get(item.target, f"{item.target} endpoint"),
                profile=item.profile,
                base_url="http://127.0.0.1:9/v1",
                models={"chat": "m", "completions": "m"},
                server_version=(server_versions or {}).get(item.target),
            ),
        )
    return Results(
        provenance=Provenance(
            suite_version="0.1.0",
            git_revision="0123456789abcdef0123456789abcdef01234567",
            specs_digest="f" * 64,
            openai_version="3.57.0",
            python_version="3.11.7",
            mode="replay",
            started_at=when,
            finished_at=when + dt.timedelta(seconds=3),
            complete=True,
        ),
        targets=targets,
        behaviors={name: doc.model_copy(deep=True) for name, doc in BEHAVIORS.items()},
        profiles={name: doc.model_copy(deep=True) for name, doc in PROFILES.items()},
        cases=list(cases),
    )
