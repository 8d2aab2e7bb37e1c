"""Switch settings from the specs: a profile's expectations, then single overrides.

The server knows no behavior or outcome; each outcome's ``reference`` mapping in
``specs/behaviors/*.yaml`` names the switch settings that make the server show it. A dialect
is the settings of the outcomes a profile expects.
"""

from __future__ import annotations

from collections.abc import Mapping

from conformance.reference.switches import SWITCH_NAMES, Switches, switch_values
from conformance.spec import UNKNOWN, Catalog
from conformance.spec.loader import suggest


def _expected_outcome(catalog: Catalog, profile_id: str, behavior_id: str) -> str | None:
    """The outcome whose settings stand for what ``profile_id`` expects, or None if unknown."""
    try:
        resolved = catalog.expectation(profile_id, behavior_id)
    except KeyError:
        return None
    expect = resolved.expectation.expect
    if isinstance(expect, list):
        # Several outcomes are acceptable: the first listed is the one the server shows.
        return expect[0] if expect else None
    return None if expect == UNKNOWN else expect


def switches_for(
    catalog: Catalog, profile_id: str, overrides: Mapping[str, str] | None = None
) -> Switches:
    """The switches of the reference server that follows profile ``profile_id``.

    Behaviors the profile expects ``unknown`` of keep OpenAI's defaults. ``overrides``
    (behavior id -> outcome name, from ``--set`` or a target's ``reference.set``) then set
    single behaviors. ValueError names an unknown profile, behavior or outcome.
    """
    if profile_id not in catalog.profiles:
        raise ValueError(f"unknown profile '{profile_id}'; {suggest(profile_id, catalog.profiles)}")
    chosen: dict[str, str] = {}
    for behavior_id in catalog.behaviors:
        outcome = _expected_outcome(catalog, profile_id, behavior_id)
        if outcome is not None:
            chosen[behavior_id] = outcome
    for behavior_id, outcome in (overrides or {}).items():
        behavior = catalog.behaviors.get(behavior_id)
        if behavior is None:
            raise ValueError(
                f"unknown behavior '{behavior_id}'; {suggest(behavior_id, catalog.behaviors)}"
            )
        if outcome not in behavior.outcomes:
            raise ValueError(
                f"'{outcome}' is not an outcome of {behavior_id}; "
                f"{suggest(outcome, behavior.outcomes)}"
            )
        if not behavior.outcomes[outcome].reference:
            raise ValueError(
                f"outcome '{outcome}' of {behavior_id} has no reference switch settings, "
                "so the reference server cannot show it"
            )
        chosen[behavior_id] = outcome
    # Each behavior owns its switches (check_switch_mappings), so merging cannot conflict.
    settings: dict[str, str] = {}
    for behavior_id, outcome in chosen.items():
        settings.update(catalog.behaviors[behavior_id].outcomes[outcome].reference)
    return Switches().with_settings(settings)


def check_switch_mappings(catalog: Catalog) -> None:
    """Raise the SpecError for the first outcome ``reference`` mapping the server cannot apply.

    That is an unknown switch, a value the switch does not take, or a switch that a second
    behavior also sets (each switch belongs to one behavior).
    """
    owners: dict[str, str] = {}
    for behavior_id, behavior in catalog.behaviors.items():
        for outcome_name, outcome in behavior.outcomes.items():
            for switch, value in outcome.reference.items():
                place = ("outcomes", outcome_name, "reference", switch)
                if switch not in SWITCH_NAMES:
                    raise catalog.error(
                        "behavior",
                        behavior_id,
                        place,
                        f"unknown reference switch '{switch}'; {suggest(switch, SWITCH_NAMES)}",
                    )
                allowed = switch_values(switch)
                if value not in allowed:
                    raise catalog.error(
                        "behavior",
                        behavior_id,
                        place,
                        f"switch '{switch}' does not take '{value}'; "
                        f"{suggest(str(value), allowed)}",
                    )
                owner = owners.setdefault(switch, behavior_id)
                if owner != behavior_id:
                    raise catalog.error(
                        "behavior",
                        behavior_id,
                        place,
                        f"switch '{switch}' is already set by behavior '{owner}'; "
                        "each switch belongs to one behavior",
                    )
