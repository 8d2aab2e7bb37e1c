"""Plan stage: behaviors x targets x APIs x variants become cases."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.spec import Api, Behavior, Catalog, Target
from conformance.spec.loader import suggest


class SelectionError(ValueError):
    """A --target or --behavior selection names nothing that exists."""


@dataclass(frozen=True)
class Case:
    """One behavior, probed on one target, through one API, in one variant."""

    behavior: Behavior
    target: Target
    api: Api
    stream: bool

    @property
    def variant(self) -> str:
        """``stream`` or ``nostream``."""
        return "stream" if self.stream else "nostream"

    @property
    def params_id(self) -> str:
        """The part inside the brackets of the test id: ``target-api-variant``."""
        return f"{self.target.name}-{self.api}-{self.variant}"

    @property
    def name(self) -> str:
        """The test id, e.g. ``stop.inclusion[fireworks-chat-stream]``."""
        return f"{self.behavior.id}[{self.params_id}]"

    @property
    def skip_reason(self) -> str | None:
        """Why the case does not apply to its target, or None when it does."""
        if self.api not in self.target.apis:
            return f"{self.target.name} does not serve the {self.api} API"
        return None

    def cassette(self, root: Path) -> Path:
        """Where this case's cassette lives under the cassettes folder ``root``."""
        return root / self.target.name / self.behavior.id / f"{self.api}-{self.variant}.yaml"


def matches(name: str, patterns: Sequence[str]) -> bool:
    """True if ``name`` is selected: an exact id, a glob, or a dotted prefix (``stop`` = ``stop.*``)."""
    return any(
        name == pattern or fnmatch.fnmatchcase(name, pattern) or name.startswith(pattern + ".")
        for pattern in patterns
    )


def plan(
    catalog: Catalog, targets: Sequence[str] = (), behaviors: Sequence[str] = ()
) -> list[Case]:
    """Every case for the selected targets and behaviors (all of them when none are given)."""
    _check_selection(targets, catalog.targets, "target")
    _check_selection(behaviors, catalog.behaviors, "behavior")
    return [
        Case(behavior, target, api, stream)
        # Behaviors marked first (whose outcome qualifies the others') lead.
        for behavior in sorted(catalog.behaviors.values(), key=lambda b: (not b.first, b.id))
        if not behaviors or matches(behavior.id, behaviors)
        for target in sorted(catalog.targets.values(), key=lambda t: t.name)
        if not targets or matches(target.name, targets)
        for api in behavior.apis
        for stream in behavior.variants.stream
    ]


def _check_selection(patterns: Sequence[str], known: Mapping[str, object], kind: str) -> None:
    for pattern in patterns:
        if not any(matches(name, [pattern]) for name in known):
            raise SelectionError(f"no {kind} matches '{pattern}'; {suggest(pattern, known)}")
