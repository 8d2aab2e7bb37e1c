"""Log excerpts of the peer builds and launchers."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.peers.progress import PeerError, log_excerpt, run_logged, tail


def test_tail_keeps_last_redraw(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("a\n\nprogress 10%\rprogress 90%\nlast\n")
    assert tail(log, 2) == ["progress 90%", "last"]
    assert tail(tmp_path / "missing") == []


def test_failed_command_quotes_its_log(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with pytest.raises(PeerError, match=r"exit code 3(.|\n)*    no compiler here"):
        run_logged(["sh", "-c", "echo no compiler here; exit 3"], log)
    assert "$ sh -c" in log.read_text()
    assert log_excerpt(tmp_path / "missing").endswith("(log is empty)")
