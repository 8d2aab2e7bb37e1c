"""Load the catalog, built-in or overlaid with a user's specs folder, validated and cross-checked.

The built-in catalog ships inside the package (``conformance/builtin_specs/``). A user's folder
is laid over it: a file with the same name under ``behaviors/``, ``profiles/`` or ``targets/``
replaces the built-in one, and a new file adds to it. Each file is validated against its pydantic model; then the files are checked against each
other (ids unique, expected outcomes declared, profiles and dialects exist, no ``extends``
cycle). The first problem found becomes one SpecError naming the file, line and place.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.resources
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
#: The folder inside the package that holds the built-in catalog and the JSON Schemas.
BUILTIN_FOLDER = "builtin_specs"


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
    """Everything in the catalog, validated. Lookups by id; no raw dicts.

    ``overlay`` is the user's specs folder laid over the built-in catalog, if any.
    """

    overlay: Path | None
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

    def origin(self, kind: str, key: str) -> str:
        """Where ``kind``/``key`` comes from: ``built-in``, or the overlay file declaring it."""
        document, _ = self._origins[(kind, key)]
        return "built-in" if document.file.is_relative_to(builtin_specs()) else str(document.file)

    def error(self, kind: str, key: str, path: Sequence[PathPart], message: str) -> SpecError:
        """A SpecError at ``path`` inside the spec object ``kind``/``key``."""
        document, prefix = self._origins[(kind, key)]
        return document.error((*prefix, *path), message)


def builtin_specs() -> Path:
    """The folder of the built-in catalog inside the installed package."""
    folder = importlib.resources.files("conformance") / BUILTIN_FOLDER
    # pip installs a wheel as plain files; only a zipped import would give something else.
    if not isinstance(folder, Path):
        raise SpecError(Path(str(folder)), "the built-in catalog must be installed as files")
    return folder


def spec_files(overlay: Path | None = None) -> dict[str, list[Path]]:
    """Per subfolder, the built-in spec files with ``overlay``'s laid over them by file name."""
    builtin = builtin_specs()
    roots = [builtin]
    if overlay is not None and Path(overlay).resolve() != builtin.resolve():
        overlay = Path(overlay)
        if not overlay.is_dir():
            raise SpecError(overlay, "no such specs folder (give another with --specs DIR)")
        if not any((overlay / sub).is_dir() for sub in SUBFOLDERS):
            raise SpecError(
                overlay,
                "the specs folder has no 'behaviors', 'profiles' or 'targets' folder",
            )
        roots.append(overlay)
    files: dict[str, list[Path]] = {}
    for sub in SUBFOLDERS:
        by_name = {file.name: file for root in roots for file in sorted(root.glob(f"{sub}/*.yaml"))}
        files[sub] = [by_name[name] for name in sorted(by_name)]
    return files


def load_specs(overlay: Path | None = None) -> Catalog:
    """Read and check the built-in catalog with ``overlay`` laid over it; SpecError on a problem."""
    files = spec_files(overlay)
    origins: dict[tuple[str, str], tuple[Document, tuple[PathPart, ...]]] = {}
    behaviors: dict[str, Behavior] = {}
    for document in _documents(files["behaviors"]):
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

    profiles = _load_named(files["profiles"], Profile, "profile", "id", origins)
    targets = _load_named(files["targets"], Target, "target", "name", origins)
    overlay = Path(overlay) if overlay is not None else None
    catalog = Catalog(overlay, behaviors, profiles, targets, _digest(files), origins)
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


def _documents(files: list[Path]) -> list[Document]:
    return [read(file) for file in files]


def _load_named(
    files: list[Path],
    model: type[ModelT],
    kind: str,
    key_field: str,
    origins: dict[tuple[str, str], tuple[Document, tuple[PathPart, ...]]],
) -> dict[str, ModelT]:
    loaded: dict[str, ModelT] = {}
    for document in _documents(files):
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


def _digest(files: dict[str, list[Path]]) -> str:
    """A hash of every spec file's place (subfolder/name) and bytes, recorded as provenance."""
    digest = hashlib.sha256()
    for sub, paths in sorted(files.items()):
        for file in paths:
            digest.update(f"{sub}/{file.name}".encode())
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
