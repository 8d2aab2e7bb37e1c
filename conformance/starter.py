"""``conformance init``: what a provider's repository needs to run the suite in its CI.

A starter target under ``.conformance/targets/``, an empty baseline and a GitHub workflow
that runs the suite's action. The texts are the package's ``starter_files/``, written for the
sample target ``mycloud`` and renamed here to the user's target.
"""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

from conformance import gate

#: The target name the starter files are written for.
SAMPLE = "mycloud"
SAMPLE_TITLE = "My Cloud"
#: A target name, as spec files allow it (it is also the target file's name).
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
#: Where the overlay folder goes in the user's repository (``--specs .conformance``).
SPECS_FOLDER = Path(".conformance")


def files(target: str) -> dict[Path, str]:
    """The starter files for ``target``, by path relative to the repository's root."""
    if not NAME.match(target):
        raise ValueError(
            f"target name {target!r}: use lower-case letters, digits, '-' and '_' "
            "(it becomes the target file's name)"
        )
    variable = re.sub(r"[^A-Z0-9]", "_", target.upper())
    folder = importlib.resources.files("conformance") / "starter_files"

    def starter(name: str) -> str:
        text = folder.joinpath(name).read_text(encoding="utf-8")
        text = text.replace(SAMPLE_TITLE, target).replace(SAMPLE, target)
        return text.replace(SAMPLE.upper(), variable)

    return {
        SPECS_FOLDER / "targets" / f"{target}.yaml": starter("target.yaml"),
        SPECS_FOLDER / "baseline.yaml": gate.empty(),
        Path(".github") / "workflows" / "conformance.yml": starter("workflow.yml"),
    }


def write(root: Path, target: str, *, force: bool = False) -> list[Path]:
    """Write the starter files under ``root``; ValueError if one exists and not ``force``."""
    planned = {root / path: text for path, text in files(target).items()}
    existing = [str(path) for path in planned if path.exists()]
    if existing and not force:
        raise ValueError(
            f"{', '.join(existing)}: already there; --force overwrites "
            f"{'it' if len(existing) == 1 else 'them'}"
        )
    for path, text in planned.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(planned)
