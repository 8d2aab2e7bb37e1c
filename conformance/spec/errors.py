"""The one error type a bad spec produces."""

from __future__ import annotations

from pathlib import Path


class SpecError(Exception):
    """A spec file is invalid. ``str()`` is the single message shown to the user."""

    def __init__(
        self,
        file: Path,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        where: str = "",
    ) -> None:
        self.file = file
        self.message = message
        self.line = line
        self.column = column
        self.where = where
        super().__init__(str(self))

    def __str__(self) -> str:
        place = str(self.file)
        if self.line is not None:
            place += f":{self.line}"
            if self.column is not None:
                place += f":{self.column}"
        where = f" {self.where}:" if self.where else ""
        return f"{place}:{where} {self.message}"
