"""Recording never destroys a good cassette, and a damaged one replays as a clear error.

A case's new recording replaces its old cassette only when the case ends with an
observation; an unreachable server, a server that dies halfway, a probe that errs or skips,
or an interrupt leave the old cassette byte for byte, with no temporary file beside it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import files, results
from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.observation import NotApplicable, ProbeError
from conformance.plan import Case
from conformance.probes.client import Endpoint
from conformance.recording import Mode, cassette
from conformance.reference.faults import FaultSpec
from conformance.reference.server import ServerConfig, start
from conformance.spec import Api
from conformance.verdict import Verdict
from tests._cli import conformance
from tests.conftest import REPO, SPECS

CATALOG = load(SPECS)
TARGET = CATALOG.targets["reference-openai"]
STOP = CATALOG.behaviors["stop.inclusion"]
SHIPPED = REPO / "cassettes" / "reference-openai" / "stop.inclusion"
BODY = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) and its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def cassettes(tmp_path: Path) -> Path:
    """A copy of reference-openai's shipped stop.inclusion cassettes."""
    root = tmp_path / "cassettes"
    shutil.copytree(SHIPPED, root / "reference-openai" / "stop.inclusion")
    return root


def test_recording_against_an_unreachable_server_keeps_every_cassette(
    tmp_path: Path, cassettes: Path
) -> None:
    before = _snapshot(cassettes)
    completed = conformance(
        "run",
        "--specs",
        str(SPECS),
        "--cassettes",
        str(cassettes),
        "--mode",
        "record",
        "--target",
        "reference-openai",
        "--behavior",
        "stop.inclusion",
        "--base-url",
        "http://127.0.0.1:1/v1",
        cwd=tmp_path,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert _snapshot(cassettes) == before, "a cassette changed, or a temporary file was left"
    assert "old cassette kept for 4 case(s) with no observation: stop.inclusion[" in output
    written = results.load(tmp_path / "reports" / "results.json")
    assert all(case.summary.endswith("(old cassette kept)") for case in written.cases)
    reports = sorted(p.name for p in (tmp_path / "reports").iterdir())
    assert reports == ["index.html", "junit.xml", "results.json", "summary.md"]


def test_a_server_that_dies_halfway_keeps_the_cassettes_of_the_cases_after(
    cassettes: Path,
) -> None:
    before = _snapshot(cassettes)
    first, second = Case(STOP, TARGET, Api.CHAT, False), Case(STOP, TARGET, Api.CHAT, True)
    with start(ServerConfig()) as server:
        runner = Runner(
            CATALOG, Settings(mode=Mode.RECORD, base_url=server.base_url, cassettes=cassettes)
        )
        recorded = runner.execute(first)
        server.faults.configure(FaultSpec(kind="reset_before_stream"))  # the server is gone
        failed = runner.execute(second)
        runner.close()
    assert recorded.verdict is Verdict.PASS, recorded.summary
    assert failed.verdict is Verdict.ERROR, failed.summary
    assert failed.summary.endswith("(old cassette kept)")
    after = _snapshot(cassettes)
    assert set(after) == set(before), "a temporary file was left"
    name = str(second.cassette(cassettes).relative_to(cassettes))
    assert after[name] == before[name]
    renewed = str(first.cassette(cassettes).relative_to(cassettes))
    assert after[renewed] != before[renewed]  # a fresh recording, with its new date
    replayed = Runner(CATALOG, Settings(mode=Mode.REPLAY, cassettes=cassettes))
    assert replayed.execute(first).verdict is Verdict.PASS
    assert replayed.execute(second).verdict is Verdict.PASS


@pytest.mark.parametrize(
    "stop",
    [KeyboardInterrupt(), ProbeError("a 503"), NotApplicable("no such feature"), ValueError("bug")],
    ids=["interrupt", "error", "skip", "probe-bug"],
)
def test_a_case_without_an_observation_keeps_the_old_cassette(
    tmp_path: Path, stop: BaseException
) -> None:
    path = tmp_path / "case.yaml"
    old = (SHIPPED / "chat-nostream.yaml").read_bytes()
    path.write_bytes(old)
    with start(ServerConfig()) as server:
        endpoint = Endpoint(TARGET, server.base_url, "k")

        def record_then_stop() -> None:
            with cassette(path, Mode.RECORD, secrets=[]):
                endpoint.send(Api.CHAT, BODY, label="first")
                raise stop

        with pytest.raises(type(stop)):
            record_then_stop()
        endpoint.close()
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["case.yaml"], "a temporary file was left"


def test_an_observation_replaces_the_cassette_and_clears_a_killed_runs_leftover(
    tmp_path: Path,
) -> None:
    path = tmp_path / "case.yaml"
    path.write_bytes((SHIPPED / "chat-nostream.yaml").read_bytes())
    path.chmod(0o640)
    leftover = files.temporary_name(path)
    leftover.write_text("interactions:\n- request: {")  # a run killed with -9 mid-write
    with start(ServerConfig()) as server:
        endpoint = Endpoint(TARGET, server.base_url, "k")
        with cassette(path, Mode.RECORD, secrets=[], server_version="ref 1"):
            endpoint.send(Api.CHAT, BODY, label="first")
        endpoint.close()
    text = path.read_text()
    assert "server_version: ref 1" in text
    assert text.count("- request:") == 1
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["case.yaml"]


# --- damaged cassettes ------------------------------------------------------------------

RECORD_COMMAND = (
    "re-record it with: conformance run --mode record --target reference-openai "
    "--behavior stop.inclusion --specs specs"
)


def _replay(cassettes: Path) -> tuple[Verdict, str]:
    runner = Runner(CATALOG, Settings(mode=Mode.REPLAY, cassettes=cassettes, specs_arg="specs"))
    result = runner.execute(Case(STOP, TARGET, Api.CHAT, False))
    return result.verdict, result.summary


DAMAGE: dict[str, Callable[[str], str]] = {
    "unclosed-quote": lambda text: text.replace("version: 1", 'version: "1'),
    "tab-indent": lambda text: text.replace("\n    headers:", "\n\theaders:", 1),
    "not-utf8": lambda text: text.replace("lighthouse", "lighthouse \udcff"),
    "no-interactions": lambda text: "version: 1\nmetadata: {}\n",
    "a-list": lambda text: "- 1\n- 2\n",
    "interaction-without-request": lambda text: "interactions:\n- response: {}\nversion: 1\n",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_hand_edited_cassette_is_an_error_naming_it_and_the_command(
    cassettes: Path, damage: str
) -> None:
    path = Case(STOP, TARGET, Api.CHAT, False).cassette(cassettes)
    text = DAMAGE[damage](path.read_text())
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    verdict, summary = _replay(cassettes)
    assert verdict is Verdict.ERROR
    assert f"the cassette {path} cannot be read whole" in summary
    assert RECORD_COMMAND in summary
    assert "crashed" not in summary


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kept=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_a_cassette_cut_short_is_an_error_naming_it(cassettes: Path, kept: float) -> None:
    """Wherever a killed write cut the file, it is an error, never a verdict or a crash."""
    path = Case(STOP, TARGET, Api.CHAT, False).cassette(cassettes)
    whole = (SHIPPED / "chat-nostream.yaml").read_bytes().rstrip(b"\n")
    path.write_bytes(whole[: int(len(whole) * kept)])
    verdict, summary = _replay(cassettes)
    assert verdict is Verdict.ERROR, summary
    assert f"the cassette {path} cannot be read whole" in summary
    assert RECORD_COMMAND in summary
