"""Planning cases and judging them."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.plan import SelectionError, matches, plan
from conformance.spec import load_specs
from conformance.verdict import Verdict, judge
from tests.conftest import SPECS


def test_every_behavior_target_api_variant_is_a_case() -> None:
    catalog = load_specs(SPECS)
    cases = plan(catalog, targets=["reference-openai"])
    names = {case.name for case in cases}
    assert "stop.inclusion[reference-openai-chat-stream]" in names
    assert "stop.inclusion[reference-openai-completions-nostream]" in names
    assert "option.best_of[reference-openai-completions-nostream]" in names
    assert not any(name.startswith("option.best_of[reference-openai-chat") for name in names)
    assert not any("stream.usage[" in name and "nostream" in name for name in names)
    expected = sum(len(b.apis) * len(b.variants.stream) for b in catalog.behaviors.values())
    assert len(cases) == expected


def test_selection_by_prefix_and_glob() -> None:
    assert matches("stop.inclusion", ["stop"])
    assert matches("reference-openai", ["reference-*"])
    assert not matches("stopper", ["stop"])
    catalog = load_specs(SPECS)
    assert {c.behavior.id for c in plan(catalog, behaviors=["stream.usage"])} == {
        "stream.usage",
        "stream.usage.include_usage",
    }


def test_unknown_selection_suggests() -> None:
    with pytest.raises(SelectionError, match="did you mean 'reference-openai'"):
        plan(load_specs(SPECS), targets=["reference-opnai"])


@pytest.mark.parametrize(
    ("expected", "observed", "verdict"),
    [
        (frozenset({"omitted"}), "omitted", Verdict.PASS),
        (frozenset({"omitted"}), "included", Verdict.DEVIATION),
        (frozenset({"rejected", "ignored"}), "ignored", Verdict.PASS),
        (frozenset({"rejected", "ignored"}), "honoured", Verdict.DEVIATION),
        (None, "honoured", Verdict.OBSERVED),
    ],
)
def test_judge(expected: frozenset[str] | None, observed: str, verdict: Verdict) -> None:
    assert judge(expected, observed) is verdict


def test_behaviors_marked_first_lead_the_plan(specs_copy: Path) -> None:
    option = specs_copy / "behaviors" / "option.yaml"
    option.write_text(
        option.read_text().replace(
            "  - id: option.presence_penalty\n",
            "  - id: option.presence_penalty\n    first: true\n",
        )
    )
    catalog = load_specs(specs_copy)
    ids = [case.behavior.id for case in plan(catalog)]
    # The shipped specs mark some behaviors first already (request.unknown_field).
    first = {behavior.id for behavior in catalog.behaviors.values() if behavior.first}
    assert "option.presence_penalty" in first
    leading = ids[: sum(ids.count(behavior) for behavior in first)]
    assert set(leading) == first
    assert leading == sorted(leading)
    assert ids[len(leading) :] == sorted(ids[len(leading) :])


def test_a_behavior_on_the_responses_api_is_planned_where_targets_serve_it(
    specs_copy: Path,
) -> None:
    behaviors = specs_copy / "behaviors" / "request.yaml"
    behaviors.write_text(
        behaviors.read_text().replace(
            "    apis: [chat, completions]\n", "    apis: [responses]\n", 1
        )
    )
    vllm = specs_copy / "targets" / "vllm.yaml"
    vllm.write_text(
        vllm.read_text().replace("[chat, completions, responses]", "[chat, completions]")
    )
    cases = [c for c in plan(load_specs(specs_copy)) if c.behavior.id == "request.unknown_field"]
    assert {case.api for case in cases} == {"responses"}
    by_target = {case.target.name: case for case in cases}
    served = by_target["reference-openai"]
    assert served.name == "request.unknown_field[reference-openai-responses-nostream]"
    assert served.skip_reason is None
    assert by_target["vllm"].skip_reason == "vllm does not serve the responses API"
