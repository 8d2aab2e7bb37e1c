"""Files written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance import files


def test_write_text_replaces_the_file_and_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("old")
    path.chmod(0o600)
    files.write_text(path, "new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert path.stat().st_mode & 0o777 == 0o600
    files.write_text(tmp_path / "made" / "new.md", "x")  # a missing folder is made
    assert (tmp_path / "made" / "new.md").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made", "results.json"]


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), OSError("disk full")])
def test_a_write_that_stops_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, stop: BaseException
) -> None:
    path = tmp_path / "index.html"
    path.write_text("old")

    def write_then_stop() -> None:
        with files.replacing(path) as temporary:
            temporary.write_text("half a rep")
            raise stop

    with pytest.raises(type(stop)):
        write_then_stop()
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]


def test_nothing_written_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text("old")
    with files.replacing(path):
        pass
    assert path.read_text() == "old"


def test_leftovers_are_the_temporary_files_of_that_file_only(tmp_path: Path) -> None:
    path = tmp_path / "chat-nostream.yaml"
    mine = files.temporary_name(path)
    other = files.temporary_name(tmp_path / "chat-stream.yaml")
    for made in (mine, other):
        made.write_text("cut sh")
    assert mine.name.startswith(".chat-nostream.yaml.")
    assert files.leftovers(path) == [mine]
    assert files.leftovers(tmp_path / "missing" / "x.yaml") == []
