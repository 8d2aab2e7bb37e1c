"""Read YAML while keeping where each value came from, so errors can name a line.

Spec and baseline files may come from elsewhere: one that nests too deep, or whose aliases
expand too far (an alias bomb), is refused before anything walks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conformance.spec.errors import SpecError

PathPart = str | int

#: libyaml's safe loader when PyYAML was built with it, else the pure-Python one.
_FastLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: How deep a spec or baseline may nest (the shipped specs reach 11 levels), and how many
#: values it may hold once its aliases are expanded (no shipped file holds 2,000). Beyond
#: them a file is refused before anything walks it: an alias bomb would hang the run, and
#: nesting too deep would crash it.
MAX_DEPTH = 64
MAX_VALUES = 100_000


@dataclass(frozen=True)
class Document:
    """A parsed YAML file: its data, and its node tree for positions."""

    file: Path
    data: Any
    root: yaml.Node | None

    def error(self, path: Sequence[PathPart], message: str, *, at_key: bool = False) -> SpecError:
        """A SpecError pointing at ``path`` in this document (at the key itself if ``at_key``)."""
        node = locate(self.root, path, at_key=at_key) if self.root is not None else None
        line = node.start_mark.line + 1 if node is not None else None
        column = node.start_mark.column + 1 if node is not None else None
        return SpecError(self.file, message, line=line, column=column, where=dotted(path))


def dotted(path: Sequence[PathPart]) -> str:
    """``("behaviors", 2, "probe")`` as ``behaviors[2].probe``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def read(file: Path) -> Document:
    """Parse one YAML file; a syntax error or a duplicate key becomes a SpecError."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(file, f"cannot read the file: {exc}") from None
    try:
        # libyaml's events first, to refuse what would hang or crash a tree walk; then one
        # composition: the node tree keeps the positions, and the data is built from it
        # rather than by parsing the text again.
        _check_bounds(file, text)
        root = yaml.compose(text, Loader=_FastLoader)
        data = _FastLoader("").construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise SpecError(
            file,
            f"YAML syntax error: {problem}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(file, f"YAML error: {exc}") from None
    document = Document(file, data, root)
    if root is not None:
        _reject_duplicate_keys(document, root, ())
    return document


@dataclass
class _Open:
    """A mapping or sequence being read: its anchor, the values counted before it, and the
    deepest level reached inside it so far (aliases counted as expanded)."""

    anchor: str | None
    values_before: int
    deepest: int


def _check_bounds(file: Path, text: str) -> None:
    """Refuse a document that nests deeper than MAX_DEPTH or whose aliases expand to more
    than MAX_VALUES values, by reading its events once: that costs nothing recursive."""
    expanded: dict[str, tuple[int, int]] = {}  # anchor -> (values, levels) it stands for
    open_: list[_Open] = []
    values = 0
    for event in yaml.parse(text, Loader=_FastLoader):
        if isinstance(event, yaml.CollectionEndEvent):
            closed = open_.pop()
            levels = closed.deepest - len(open_)
            if closed.anchor is not None:
                expanded[closed.anchor] = (values - closed.values_before, levels)
            if open_:
                open_[-1].deepest = max(open_[-1].deepest, closed.deepest)
            continue
        if isinstance(event, yaml.AliasEvent):
            # An unknown anchor is left for the composer, which reports it at its line.
            size, levels = expanded.get(str(event.anchor), (1, 0))
        elif isinstance(event, yaml.CollectionStartEvent | yaml.ScalarEvent):
            size, levels = 1, 1 if isinstance(event, yaml.CollectionStartEvent) else 0
        else:
            continue
        values += size
        depth = len(open_) + levels
        if depth > MAX_DEPTH:
            raise _refused(file, event, f"the YAML nests deeper than {MAX_DEPTH} levels")
        if values > MAX_VALUES:
            raise _refused(
                file,
                event,
                f"the YAML holds more than {MAX_VALUES:,} values once its aliases are expanded "
                "(an alias bomb?)",
            )
        if isinstance(event, yaml.CollectionStartEvent):
            open_.append(_Open(event.anchor, values - 1, depth))
        else:
            if open_:
                open_[-1].deepest = max(open_[-1].deepest, depth)
            if isinstance(event, yaml.ScalarEvent) and event.anchor is not None:
                expanded[event.anchor] = (1, 0)


def _refused(file: Path, event: yaml.Event, message: str) -> SpecError:
    mark = event.start_mark
    if mark is None:
        return SpecError(file, message)
    return SpecError(file, message, line=mark.line + 1, column=mark.column + 1)


def locate(
    node: yaml.Node | None, path: Sequence[PathPart], *, at_key: bool = False
) -> yaml.Node | None:
    """The deepest node along ``path``: the best place to point at for an error."""
    current = node
    for depth, part in enumerate(path):
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if key_node.value == str(part):
                    last = depth == len(path) - 1
                    current = key_node if (at_key and last) else value_node
                    break
            else:
                return current
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                return current
            current = current.value[part]
        else:
            return current
    return current


def _reject_duplicate_keys(document: Document, node: yaml.Node, path: tuple[PathPart, ...]) -> None:
    # PyYAML keeps the last of two equal keys; in a spec that silently drops a setting.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                mark = key_node.start_mark  # the second occurrence, which locate() would not find
                raise SpecError(
                    document.file,
                    f"duplicate key '{key}'",
                    line=mark.line + 1,
                    column=mark.column + 1,
                    where=dotted((*path, key)),
                )
            seen.add(key)
            _reject_duplicate_keys(document, value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _reject_duplicate_keys(document, item, (*path, index))
