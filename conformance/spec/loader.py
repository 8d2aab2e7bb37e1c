"""Load a specs folder into a validated, cross-checked Catalog.

Each file is validated against its pydantic model; then the files are checked against each
other (ids unique, expected outcomes declared, profiles and dialects exist, no ``extends``
cycle). The first problem found becomes one SpecError naming the file, line and place.
"""

from __future__ import annotations

import difflib
import hashlib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from conformance.spec.errors import SpecError
from conformance.spec.models import (
    UNKNOWN,
    Behavior,
    BehaviorFile,
    Expectation,
    Profile,
    Target,
)
from conformance.spec.yamlpos import Document, PathPart, read

ModelT = TypeVar("ModelT", bound=BaseModel)

SUBFOLDERS = ("behaviors", "profiles", "targets")


@dataclass(frozen=True)
class ResolvedExpectation:
    """An expectation as it applies to a profile, and the profile that declared it."""

    expectation: Expectation
    declared_in: str

    @property
    def outcomes(self) -> frozenset[str] | None:
        """The acceptable outcomes, or None when unknown."""
        return self.expectation.outcomes


@dataclass
class Catalog:
    """Everything in a specs folder, validated. Lookups by id; no raw dicts."""

    root: Path
    behaviors: dict[str, Behavior]
    profiles: dict[str, Profile]
    targets: dict[str, Target]
    digest: str
    _origins: dict[tuple[str, str], tuple[Document, tuple[PathPart, ...]]] = field(repr=False)

    def lineage(self, profile_id: str) -> list[str]:
        """The profile followed by the profiles it extends, nearest first."""
        chain = [profile_id]
        while (parent := self.profiles[chain[-1]].extends) is not None:
            chain.append(parent)
        return chain

    def expectation(self, profile_id: str, behavior_id: str) -> ResolvedExpectation:
        """What ``profile_id`` (with what it extends) expects of ``behavior_id``."""
        for name in self.lineage(profile_id):
            declared = self.profiles[name].expectations.get(behavior_id)
            if declared is not None:
                return ResolvedExpectation(declared, name)
        raise KeyError(f"profile {profile_id!r} has no expectation for {behavior_id!r}")

    def error(self, kind: str, key: str, path: Sequence[PathPart], message: str) -> SpecError:
        """A SpecError at ``path`` inside the spec object ``kind``/``key``."""
        document, prefix = self._origins[(kind, key)]
        return document.error((*prefix, *path), message)


def load_specs(root: Path) -> Catalog:
    """Read and check every spec file under ``root``; raise SpecError on the first problem."""
    root = Path(root)
    if not root.is_dir():
        raise SpecError(root, "no such specs folder (give another with --specs DIR)")
    for sub in SUBFOLDERS:
        if not (root / sub).is_dir():
            raise SpecError(root / sub, f"the specs folder has no '{sub}' folder")

    origins: dict[tuple[str, str], tuple[Document, tuple[PathPart, ...]]] = {}
    behaviors: dict[str, Behavior] = {}
    for document in _documents(root / "behaviors"):
        family = _validate(document, BehaviorFile)
        for index, behavior in enumerate(family.behaviors):
            if behavior.id in behaviors:
                first, _ = origins[("behavior", behavior.id)]
                raise document.error(
                    ("behaviors", index, "id"),
                    f"duplicate behavior id '{behavior.id}' (first defined in {first.file})",
                )
            behaviors[behavior.id] = behavior
            origins[("behavior", behavior.id)] = (document, ("behaviors", index))

    profiles = _load_named(root / "profiles", Profile, "profile", "id", origins)
    targets = _load_named(root / "targets", Target, "target", "name", origins)
    catalog = Catalog(root, behaviors, profiles, targets, _digest(root), origins)
    _check_profiles(catalog)
    _check_targets(catalog)
    _check_caveats(catalog)
    return catalog


def _check_caveats(catalog: Catalog) -> None:
    """A caveat must qualify an outcome that some other behavior declares."""
    for behavior in catalog.behaviors.values():
        for index, caveat in enumerate(behavior.caveats):
            others = {
                name
                for other in catalog.behaviors.values()
                if other.id != behavior.id
                for name in other.outcomes
            }
            if caveat.outcome not in others:
                raise catalog.error(
                    "behavior",
                    behavior.id,
                    ("caveats", index, "outcome"),
                    f"no other behavior has an outcome '{caveat.outcome}'; "
                    f"{suggest(caveat.outcome, others)}",
                )


def suggest(word: str, choices: Iterable[str]) -> str:
    """A "did you mean" phrase, or a list of what is allowed."""
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "expected one of: " + ", ".join(options) if options else "none are defined"


def _documents(folder: Path) -> list[Document]:
    return [read(file) for file in sorted(folder.glob("*.yaml"))]


def _load_named(
    folder: Path,
    model: type[ModelT],
    kind: str,
    key_field: str,
    origins: dict[tuple[str, str], tuple[Document, tuple[PathPart, ...]]],
) -> dict[str, ModelT]:
    loaded: dict[str, ModelT] = {}
    for document in _documents(folder):
        item = _validate(document, model)
        key = getattr(item, key_field)
        if key != document.file.stem:
            raise document.error(
                (key_field,),
                f"{kind} {key_field} '{key}' must match the file name '{document.file.stem}'",
            )
        loaded[key] = item
        origins[(kind, key)] = (document, ())
    return loaded


def _validate(document: Document, model: type[ModelT]) -> ModelT:
    if document.data is None:
        raise SpecError(document.file, "the file is empty")
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        path = tuple(part for part in first["loc"] if isinstance(part, str | int))
        if first["type"] == "extra_forbidden":
            key = str(path[-1])
            allowed = _allowed_keys(model, path[:-1])
            message = f"unknown key '{key}'; {suggest(key, allowed)}"
        else:
            message = first["msg"]
            if first["type"] == "missing":
                message = f"missing required key '{path[-1]}'"
        more = len(errors) - 1
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''} in this file)"
        raise document.error(path, message, at_key=first["type"] == "extra_forbidden") from None


def _allowed_keys(model: type[BaseModel], path: Sequence[PathPart]) -> list[str]:
    """The field names of the model found at ``path`` under ``model``, for suggestions."""
    current: Any = model
    for part in path:
        current = _step(current, part)
        if current is None:
            return []
    return list(current.model_fields) if _is_model(current) else []


def _step(annotation: Any, part: PathPart) -> Any:
    annotation = _unwrap(annotation)
    if _is_model(annotation):
        info = annotation.model_fields.get(str(part))
        return _unwrap(info.annotation) if info is not None else None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and args:
        return _unwrap(args[0])
    if origin is dict and len(args) == 2:
        return _unwrap(args[1])
    return None


def _unwrap(annotation: Any) -> Any:
    # Optional[X] / X | None and Annotated[X, ...] both hide the model we want to walk into.
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        models = [arg for arg in typing.get_args(annotation) if _is_model(_unwrap(arg))]
        return _unwrap(models[0]) if len(models) == 1 else annotation
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _digest(root: Path) -> str:
    """A hash of every spec file's path and bytes, recorded in results as provenance."""
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*.yaml")):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _check_profiles(catalog: Catalog) -> None:
    for profile in catalog.profiles.values():
        if profile.extends is not None and profile.extends not in catalog.profiles:
            raise catalog.error(
                "profile",
                profile.id,
                ("extends",),
                f"unknown profile '{profile.extends}'; {suggest(profile.extends, catalog.profiles)}",
            )
    for profile in catalog.profiles.values():
        seen = [profile.id]
        parent = profile.extends
        while parent is not None:
            if parent in seen:
                cycle = " -> ".join([*seen, parent])
                raise catalog.error("profile", profile.id, ("extends",), f"extends cycle: {cycle}")
            seen.append(parent)
            parent = catalog.profiles[parent].extends

    for profile in catalog.profiles.values():
        for behavior_id, expectation in profile.expectations.items():
            behavior = catalog.behaviors.get(behavior_id)
            if behavior is None:
                raise catalog.error(
                    "profile",
                    profile.id,
                    ("expectations", behavior_id),
                    f"unknown behavior '{behavior_id}'; {suggest(behavior_id, catalog.behaviors)}",
                )
            expected = (
                [expectation.expect] if isinstance(expectation.expect, str) else expectation.expect
            )
            if isinstance(expectation.expect, list) and not expected:
                raise catalog.error(
                    "profile", profile.id, ("expectations", behavior_id, "expect"), "empty list"
                )
            for outcome in expected:
                if outcome == UNKNOWN and isinstance(expectation.expect, str):
                    continue
                if outcome not in behavior.outcomes:
                    raise catalog.error(
                        "profile",
                        profile.id,
                        ("expectations", behavior_id, "expect"),
                        f"'{outcome}' is not an outcome of {behavior_id}; "
                        f"{suggest(outcome, behavior.outcomes)}",
                    )
        if profile.extends is None:
            missing = sorted(set(catalog.behaviors) - set(profile.expectations))
            if missing:
                raise catalog.error(
                    "profile",
                    profile.id,
                    ("expectations",),
                    "a profile that extends no other must state an expectation for every "
                    f"behavior (use 'unknown' where the docs are silent); missing: {', '.join(missing)}",
                )


def _check_targets(catalog: Catalog) -> None:
    for target in catalog.targets.values():
        if target.profile not in catalog.profiles:
            raise catalog.error(
                "target",
                target.name,
                ("profile",),
                f"unknown profile '{target.profile}'; {suggest(target.profile, catalog.profiles)}",
            )
        for api in target.apis:
            if api not in target.models:
                raise catalog.error("target", target.name, ("models",), f"no model for api '{api}'")
        if target.reference is None:
            continue
        if target.reference.dialect not in catalog.profiles:
            raise catalog.error(
                "target",
                target.name,
                ("reference", "dialect"),
                f"unknown profile '{target.reference.dialect}'; "
                f"{suggest(target.reference.dialect, catalog.profiles)}",
            )
        for behavior_id, outcome in target.reference.set.items():
            behavior = catalog.behaviors.get(behavior_id)
            place = ("reference", "set", behavior_id)
            if behavior is None:
                raise catalog.error(
                    "target",
                    target.name,
                    place,
                    f"unknown behavior '{behavior_id}'; {suggest(behavior_id, catalog.behaviors)}",
                )
            if outcome not in behavior.outcomes:
                raise catalog.error(
                    "target",
                    target.name,
                    place,
                    f"'{outcome}' is not an outcome of {behavior_id}; {suggest(outcome, behavior.outcomes)}",
                )
