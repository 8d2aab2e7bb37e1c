"""The mutation matrix: the proof that no check is vacuous.

For every behavior and every outcome it declares, the reference server is switched to that
outcome (through the same YAML mapping its dialects use) and the real suite runs every API
and variant of the behavior against it, live over HTTP. The suite must observe exactly that
outcome, and the verdict against every profile must be what that profile's expectation says.
"""

from __future__ import annotations

import pytest

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.plan import Case
from conformance.recording import Mode
from conformance.reference import dialect, server
from conformance.verdict import Verdict, judge
from tests.conftest import SPECS

CATALOG = load(SPECS)
SETTINGS = [
    (behavior.id, outcome)
    for behavior in sorted(CATALOG.behaviors.values(), key=lambda b: b.id)
    for outcome in behavior.outcomes
]
KEY = "matrix-test-key-0123456789"


def _expected_verdict(profile: str, behavior_id: str, outcome: str) -> Verdict:
    expected = CATALOG.expectation(profile, behavior_id).outcomes
    if expected is None:
        return Verdict.OBSERVED
    return Verdict.PASS if outcome in expected else Verdict.DEVIATION


@pytest.mark.parametrize(
    ("behavior_id", "outcome"), SETTINGS, ids=[f"{b}={o}" for b, o in SETTINGS]
)
def test_suite_observes_what_the_server_does(
    behavior_id: str, outcome: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    behavior = CATALOG.behaviors[behavior_id]
    switches = dialect.switches_for(CATALOG, "openai", {behavior_id: outcome})
    monkeypatch.setenv("REFERENCE_API_KEY", KEY)
    reference = CATALOG.targets["reference-openai"]
    config = server.ServerConfig(
        switches=switches, context_window=reference.window(behavior.apis[0]), api_key=KEY
    )
    # Each API and variant is probed once, claiming the profiles in turn: a verdict is the
    # observed outcome judged against the claim (test_every_known_expectation_can_deviate
    # shows every profile's expectation both passes and deviates), so probing once per
    # profile would only send the same requests again.
    profiles = sorted(CATALOG.profiles)
    variants = [(api, stream) for api in behavior.apis for stream in behavior.variants.stream]
    with server.start(config) as running:
        runner = Runner(CATALOG, Settings(mode=Mode.LIVE, base_url=running.base_url))
        for turn, (api, stream) in enumerate(variants):
            claimed = profiles[(turn + len(behavior_id)) % len(profiles)]
            target = reference.model_copy(update={"profile": claimed})
            result = runner.execute(Case(behavior, target, api, stream))
            where = f"{result.id} claiming {claimed}: {result.summary}"
            assert result.observed == outcome, where
            assert result.verdict is _expected_verdict(claimed, behavior_id, outcome), where
            assert result.evidence, "every observation keeps its evidence"
            assert KEY not in result.model_dump_json()


@pytest.mark.parametrize("profile", sorted(CATALOG.profiles))
def test_every_known_expectation_can_deviate(profile: str) -> None:
    """An expectation that accepted every outcome could never fail; the matrix shows the
    server produces every outcome, so each known expectation both passes and deviates."""
    for behavior_id, behavior in CATALOG.behaviors.items():
        verdicts = {
            judge(CATALOG.expectation(profile, behavior_id).outcomes, o) for o in behavior.outcomes
        }
        assert verdicts in ({Verdict.PASS, Verdict.DEVIATION}, {Verdict.OBSERVED}), (
            profile,
            behavior_id,
        )


def test_matrix_covers_every_outcome_of_every_behavior() -> None:
    declared = {(b.id, o) for b in CATALOG.behaviors.values() for o in b.outcomes}
    assert declared == set(SETTINGS)
