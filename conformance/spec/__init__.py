"""Spec stage: YAML files of the catalog (conformance/builtin_specs/, and a --specs overlay) become typed, cross-checked objects."""

from conformance.spec.errors import SpecError
from conformance.spec.loader import Catalog, ResolvedExpectation, load_specs
from conformance.spec.models import (
    UNKNOWN,
    Api,
    Behavior,
    Caveat,
    Expectation,
    Outcome,
    Profile,
    Target,
)

__all__ = [
    "UNKNOWN",
    "Api",
    "Behavior",
    "Catalog",
    "Caveat",
    "Expectation",
    "Outcome",
    "Profile",
    "ResolvedExpectation",
    "SpecError",
    "Target",
    "load_specs",
]
