"""``conformance run --repeat N``: a stability check, as WPT's.

The reference server's fault layer changes its answer between runs of one case in a way the
test controls: ``keep_alive`` on the first request only makes the first run of a
``stream.framing`` case see SSE comments (outcome ``comments``) and the next runs a strict
stream (``strict``). A stable server gives the same case a plain verdict.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from conformance import gate
from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.observation import Tokens
from conformance.plan import Case
from conformance.recording import Mode
from conformance.reference.faults import FaultSpec
from conformance.reference.server import RunningServer, ServerConfig, start
from conformance.report import html, markdown
from conformance.results import CaseResult, Results
from conformance.spec import Api
from conformance.stability import combine
from conformance.verdict import Verdict
from tests._cli import conformance
from tests.conftest import SPECS
from tests.report.factory import results as results_of

CATALOG = load(SPECS)
TARGET = CATALOG.targets["reference-openai"]
FRAMING = Case(CATALOG.behaviors["stream.framing"], TARGET, Api.CHAT, True)
#: The first request of the run sees SSE comment lines; every later one a strict stream.
FIRST_RUN_DIFFERS = FaultSpec(kind="keep_alive", times=1)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start(ServerConfig()) as running:
        yield running


def _repeated(server: RunningServer, spec: FaultSpec, times: int = 3) -> CaseResult:
    server.faults.configure(spec)
    runner = Runner(CATALOG, Settings(mode=Mode.LIVE, base_url=server.base_url, repeat=times))
    try:
        return runner.execute(FRAMING)
    finally:
        runner.close()


def test_a_stable_case_keeps_its_verdict_and_counts_its_runs(server: RunningServer) -> None:
    result = _repeated(server, FaultSpec())
    assert result.verdict is Verdict.PASS
    assert result.observed == "strict"
    assert not result.unstable
    assert [(run.observed, run.count) for run in result.runs or []] == [("strict", 3)]


def test_an_unstable_case_is_an_error_listing_what_its_runs_came_to(
    server: RunningServer,
) -> None:
    result = _repeated(server, FIRST_RUN_DIFFERS)
    assert server.faults.faulted == 1
    assert result.unstable
    assert result.verdict is Verdict.ERROR
    assert result.observed is None
    assert [(run.observed, run.count) for run in result.runs or []] == [
        ("strict", 2),
        ("comments", 1),
    ]
    assert result.summary.startswith("unstable: its 3 runs came to 2 strict, 1 comments")
    # The evidence holds the first run of each outcome: the comment line is there to see.
    assert any(
        line.startswith(":")
        for exchange in result.evidence
        if exchange.response is not None
        for line in exchange.response.sse or []
    )


def _updated(results: Results, path: Path) -> gate.Baseline:
    """The baseline at ``path`` after ``baseline update`` from ``results``."""
    gate.update(results, path)
    return gate.load(path) if path.exists() else gate.Baseline()


def test_a_stable_and_an_unstable_run_get_different_marks_from_the_gate(
    server: RunningServer, tmp_path: Path
) -> None:
    stable = _repeated(server, FaultSpec())
    unstable = _repeated(server, FIRST_RUN_DIFFERS)
    # Without a baseline the unstable case is an unexpected error (exit 2), the stable one passes.
    assert gate.evaluate([stable], None, None).exit_code is gate.ExitCode.AS_EXPECTED
    assert gate.evaluate([unstable], None, None).exit_code is gate.ExitCode.INFRA_ERROR
    # baseline update marks the unstable case flaky, with its outcomes; the stable one not at all.
    marked = _updated(results_of([unstable]), tmp_path / "unstable.yaml")
    assert _updated(results_of([stable]), tmp_path / "stable.yaml").targets == {}
    (entry,) = marked.targets[TARGET.name]
    assert entry.flaky
    assert entry.case == FRAMING.name
    assert entry.observed == ["strict", "comments"]
    assert "unstable" in (entry.reason or "")
    # Against that baseline the gate no longer flaps: unstable or not, the case is as expected.
    for again in (_repeated(server, FIRST_RUN_DIFFERS), _repeated(server, FaultSpec())):
        assert gate.evaluate([again], marked, None).exit_code is gate.ExitCode.AS_EXPECTED


def test_baseline_update_keeps_an_earlier_reason_for_a_flaky_case(
    server: RunningServer, tmp_path: Path
) -> None:
    unstable = _repeated(server, FIRST_RUN_DIFFERS)
    path = tmp_path / "baseline.yaml"
    path.write_text(
        f"targets:\n  {TARGET.name}:\n    - case: {FRAMING.name}\n"
        "      verdict: deviation\n      reason: see issue 7\n",
        encoding="utf-8",
    )
    (entry,) = _updated(results_of([unstable]), path).targets[TARGET.name]
    assert entry.flaky
    assert entry.reason == "see issue 7"


def test_the_report_and_summary_flag_only_unstable_cases(
    server: RunningServer, tmp_path: Path
) -> None:
    for spec, flagged in ((FaultSpec(), False), (FIRST_RUN_DIFFERS, True)):
        results = results_of([_repeated(server, spec)])
        html.write(results, tmp_path / "index.html")
        markdown.write(results, tmp_path / "summary.md")
        page = (tmp_path / "index.html").read_text()
        summary = (tmp_path / "summary.md").read_text()
        assert ('class="badge flaky"' in page) is flagged
        assert ("### Unstable cases (1)" in summary) is flagged
        if flagged:
            assert "2 strict, 1 comments" in summary
            assert f"{FRAMING.name}: 2 strict, 1 comments" in page
            # In the legend, then in the one view that "every API" and chat share (the case is
            # chat's), not in completions'.
            assert page.count('class="badge flaky"') == 2


_RUN = st.tuples(
    st.sampled_from(list(Verdict)), st.sampled_from([None, "included", "omitted"])
).map(
    lambda pair: CaseResult(
        id="stop.inclusion[t-chat-stream]",
        behavior="stop.inclusion",
        target="t",
        api="chat",
        stream=True,
        profile="openai",
        expected=["omitted"],
        observed=pair[1],
        verdict=pair[0],
        summary=f"{pair[0].value} {pair[1]}",
        tokens=Tokens(prompt=3, completion=2),
        duration_s=0.5,
    )
)


@given(st.lists(_RUN, min_size=1, max_size=8))
def test_combining_runs_counts_every_run_and_is_unstable_exactly_when_they_differ(
    runs: list[CaseResult],
) -> None:
    combined = combine(runs)
    distinct = {(run.verdict, run.observed) for run in runs}
    assert combined.runs is not None
    assert sum(run.count for run in combined.runs) == len(runs)
    assert {(run.verdict, run.observed) for run in combined.runs} == distinct
    assert combined.unstable is (len(distinct) > 1)
    assert combined.tokens.total == 5 * len(runs)
    if combined.unstable:
        assert combined.verdict is Verdict.ERROR
        assert combined.observed is None
    else:
        assert (combined.verdict, combined.observed) == (runs[0].verdict, runs[0].observed)


# --- the command, end to end ------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "specs").symlink_to(SPECS)
    return tmp_path


def _cases(workdir: Path) -> dict[str, dict[str, object]]:
    data = json.loads((workdir / "reports" / "results.json").read_text())
    return {case["id"]: case for case in data["cases"]}


def test_repeat_is_for_live_runs_only(workdir: Path) -> None:
    for mode in ("replay", "record"):
        completed = conformance("run", "--mode", mode, "--repeat", "3", cwd=workdir)
        assert completed.returncode == 4
        assert "--repeat takes a number of at least 1, and only in live mode" in (
            completed.stdout + completed.stderr
        )
    completed = conformance("run", "--mode", "live", "--repeat", "0", cwd=workdir)
    assert completed.returncode == 4


def test_a_repeated_run_flags_unstable_cases_and_baseline_update_marks_them(
    server: RunningServer, workdir: Path
) -> None:
    def run(*extra: str) -> tuple[int, str]:
        server.faults.configure(FIRST_RUN_DIFFERS)
        completed = conformance(
            "run",
            "--mode",
            "live",
            "--target",
            TARGET.name,
            "--behavior",
            "stream.framing",
            "--base-url",
            server.base_url,
            "--concurrency",
            "1",
            "--repeat",
            "3",
            *extra,
            cwd=workdir,
        )
        return completed.returncode, completed.stdout

    code, out = run()
    assert code == 2, out
    unstable = [case for case in _cases(workdir).values() if case["runs"] and len(case["runs"]) > 1]
    assert len(unstable) == 1, out  # the one case whose first run met the fault
    (line,) = [line for line in out.splitlines() if unstable[0]["id"] in line]
    assert "unexpected error" in line
    assert "unstable: its 3 runs came to 2 strict, 1 comments" in line
    stable = [case for case in _cases(workdir).values() if case not in unstable]
    assert [case["verdict"] for case in stable] == ["pass"]
    assert stable[0]["runs"] == [{"verdict": "pass", "observed": "strict", "count": 3}]
    assert "### Unstable cases (1)" in (workdir / "reports" / "summary.md").read_text()

    updated = conformance("baseline", "update", "--baseline", "baseline.yaml", cwd=workdir)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    entries = yaml.safe_load((workdir / "baseline.yaml").read_text())["targets"][TARGET.name]
    assert entries == [
        {
            "case": unstable[0]["id"],
            "observed": ["strict", "comments"],
            "flaky": True,
            "reason": "unstable: 3 runs came to 2 strict, 1 comments",
        }
    ]
    code, out = run("--baseline", "baseline.yaml")
    assert code == 0, out
    (line,) = [line for line in out.splitlines() if unstable[0]["id"] in line]
    assert line == f"unstable, flaky in the baseline: {unstable[0]['id']}: 2 strict, 1 comments"
