"""Load the specs and check them against the Python side: probes and reference switches."""

from __future__ import annotations

from pathlib import Path

from conformance.probes import registered
from conformance.spec import Catalog, SpecError, load_specs
from conformance.spec.loader import suggest

__all__ = ["Catalog", "SpecError", "load"]


def load(overlay: Path | None = None) -> Catalog:
    """The built-in catalog with ``overlay`` laid over it, fully checked; SpecError if not."""
    catalog = load_specs(overlay)
    _check_probes(catalog)
    from conformance.reference.dialect import check_switch_mappings  # noqa: PLC0415

    check_switch_mappings(catalog)
    return catalog


def _check_probes(catalog: Catalog) -> None:
    probes = registered()
    for behavior in catalog.behaviors.values():
        probe = probes.get(behavior.probe)
        if probe is None:
            raise catalog.error(
                "behavior",
                behavior.id,
                ("probe",),
                f"unknown probe '{behavior.probe}'; {suggest(behavior.probe, probes)}",
            )
        # A probe may know more outcomes than one behavior's params can produce (stream_usage
        # rejects only when stream_options is sent); an outcome it can never observe is dead.
        never = sorted(set(behavior.outcomes) - probe.outcomes)
        if never:
            raise catalog.error(
                "behavior",
                behavior.id,
                ("outcomes", never[0]),
                f"probe '{probe.name}' never observes '{never[0]}'; it observes: "
                + ", ".join(sorted(probe.outcomes)),
            )
