"""Load the specs and check them against the Python side: probes and reference switches."""

from __future__ import annotations

from pathlib import Path

from conformance.probes import registered
from conformance.spec import Catalog, SpecError, load_specs
from conformance.spec.loader import suggest

__all__ = ["Catalog", "SpecError", "load"]


def load(root: Path) -> Catalog:
    """The catalog under ``root``, fully checked; raises SpecError on the first problem."""
    catalog = load_specs(root)
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
        declared = set(behavior.outcomes)
        if declared != probe.outcomes:
            missing = sorted(probe.outcomes - declared)
            extra = sorted(declared - probe.outcomes)
            problems = []
            if missing:
                problems.append(f"the probe can also observe {', '.join(missing)}")
            if extra:
                problems.append(f"the probe never observes {', '.join(extra)}")
            raise catalog.error(
                "behavior",
                behavior.id,
                ("outcomes",),
                f"outcomes do not match probe '{probe.name}': {'; '.join(problems)}",
            )
