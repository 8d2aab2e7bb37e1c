"""The CI gate: baselines, how each case stands against one, and the exit code of each case.

The exit-code tests run `conformance run` in replay as a user would, from the shipped
cassettes: a target made to claim the other profile gives real deviations, and an edited
cassette gives a real error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import gate
from conformance.gate import Baseline, BaselineEntry, ExitCode, Kind
from conformance.results import CaseResult
from conformance.spec.errors import SpecError
from conformance.verdict import Verdict
from tests.conftest import REPO, SPECS
from tests.report.factory import case, results

# --- the baseline model --------------------------------------------------------------


def test_patterns_treat_brackets_literally() -> None:
    entry = BaselineEntry(case="stop.inclusion[acme-*-stream]", verdict=[Verdict.DEVIATION])
    assert entry.matches("stop.inclusion[acme-chat-stream]")
    assert entry.matches("stop.inclusion[acme-completions-stream]")
    assert not entry.matches("stop.inclusion[acme-chat-nostream]")
    assert not entry.matches("stop.inclusionX[acme-chat-stream]")
    # fnmatch would read "[acme-chat-stream]" as a character class and match "stop.inclusiona".
    exact = BaselineEntry(case="stop.inclusion[acme-chat-stream]", verdict=[Verdict.DEVIATION])
    assert exact.exact
    assert not exact.matches("stop.inclusiona")


def test_an_exact_id_wins_over_an_earlier_pattern() -> None:
    baseline = Baseline(
        targets={
            "acme": [
                BaselineEntry(case="stop.*", flaky=True),
                BaselineEntry(case="stop.inclusion[acme-chat-nostream]", verdict=["deviation"]),  # type: ignore[list-item]
            ]
        }
    )
    entry = baseline.entry_for("acme", "stop.inclusion[acme-chat-nostream]")
    assert entry is not None
    assert not entry.flaky
    chat_stream = baseline.entry_for("acme", "stop.inclusion[acme-chat-stream]")
    assert chat_stream is not None
    assert chat_stream.flaky
    assert baseline.entry_for("other", "stop.inclusion[other-chat-stream]") is None


@pytest.mark.parametrize(
    ("observed", "entry", "kind"),
    [
        ("omitted", None, Kind.EXPECTED),
        ("included", None, Kind.UNEXPECTED_DEVIATION),
        (None, None, Kind.UNEXPECTED_ERROR),
        ("included", {"verdict": "deviation"}, Kind.KNOWN),
        ("included", {"verdict": "deviation", "observed": "included"}, Kind.KNOWN),
        # A deviation to another outcome than the pinned one is news.
        ("rejected", {"verdict": "deviation", "observed": "included"}, Kind.UNEXPECTED_DEVIATION),
        ("omitted", {"verdict": "deviation"}, Kind.UNEXPECTED_PASS),
        ("omitted", {"verdict": ["pass", "deviation"]}, Kind.EXPECTED),
        (None, {"verdict": "deviation"}, Kind.UNEXPECTED_ERROR),
        (None, {"verdict": "error"}, Kind.KNOWN),
        (None, {"flaky": True}, Kind.KNOWN),
        ("included", {"flaky": True}, Kind.KNOWN),
        ("omitted", {"flaky": True}, Kind.KNOWN),
    ],
)
def test_judge(observed: str | None, entry: dict[str, object] | None, kind: Kind) -> None:
    item = case("acme", "stop.inclusion", observed)
    model = BaselineEntry.model_validate({"case": item.id, **entry}) if entry else None
    assert gate.judge(item, model) is kind


def test_skipped_cases_are_never_unexpected() -> None:
    skipped = case("acme", observed=None, verdict=Verdict.SKIPPED, evidence=[])
    assert gate.judge(skipped, None) is Kind.EXPECTED
    entry = BaselineEntry(case=skipped.id, verdict=[Verdict.DEVIATION])
    assert gate.judge(skipped, entry) is Kind.EXPECTED


def test_known_failures_carry_their_reason() -> None:
    deviating = case("acme", observed="included")
    erroring = case("acme", "stream.usage", None, stream=True)
    passing = case("acme", "max_tokens.overflow", "rejected")
    baseline = Baseline(
        targets={
            "acme": [
                BaselineEntry(case="stop.*", verdict=[Verdict.DEVIATION], reason="issue 3"),
                BaselineEntry(case="stream.*", flaky=True),
                BaselineEntry(case="max_tokens.*", verdict=[Verdict.DEVIATION]),
            ]
        }
    )
    assert gate.known_failure(baseline, deviating) == "issue 3"
    assert gate.known_failure(baseline, erroring) == "flaky"
    assert gate.known_failure(baseline, passing) is None  # an unexpected pass, not a failure
    assert gate.known_failure(None, deviating) is None


def test_exit_codes_follow_the_worst_unexpected_finding() -> None:
    passing = case("acme", observed="omitted")
    deviating = case("acme", "stream.usage", "finish_chunk", stream=True)
    erroring = case("acme", "max_tokens.overflow", None)
    assert gate.evaluate([passing], None, None).exit_code is ExitCode.AS_EXPECTED
    assert gate.evaluate([passing, erroring], None, None).exit_code is ExitCode.INFRA_ERROR
    assert (
        gate.evaluate([passing, erroring, deviating], None, None).exit_code
        is ExitCode.UNEXPECTED_DEVIATION
    )
    known = Baseline(
        targets={"acme": [BaselineEntry(case=deviating.id, verdict=[Verdict.DEVIATION])]}
    )
    report = gate.evaluate([passing, erroring, deviating], known, Path("b.yaml"))
    assert report.exit_code is ExitCode.INFRA_ERROR
    assert "infrastructure errors only" in report.headline()


def test_unexpected_passes_and_unused_entries_are_reported_without_failing() -> None:
    fixed = case("acme", observed="omitted")
    baseline = Baseline(
        targets={
            "acme": [
                BaselineEntry(case=fixed.id, verdict=[Verdict.DEVIATION], reason="bug 12"),
                BaselineEntry(case="option.best_of[*]", verdict=[Verdict.DEVIATION]),
            ],
            "not-run": [BaselineEntry(case="*", flaky=True)],
        }
    )
    report = gate.evaluate([fixed], baseline, Path("b.yaml"))
    assert report.exit_code is ExitCode.AS_EXPECTED
    assert [f.case.id for f in report.of(Kind.UNEXPECTED_PASS)] == [fixed.id]
    # Entries of targets that did not run are not "unused": the run did not select them.
    assert [(u.target, u.entry.case) for u in report.unused] == [("acme", "option.best_of[*]")]
    text = "\n".join(report.lines())
    assert "unexpected pass" in text
    assert "unused baseline entry: acme: option.best_of[*]" in text


def test_load_reports_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "baseline.yaml"
    path.write_text(
        "targets:\n  acme:\n    - case: stop.*\n      verdict: deviation\n"
        "    - case: stream.*\n      verdict: deviaton\n"
    )
    with pytest.raises(SpecError) as caught:
        gate.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:6:")
    assert "targets.acme[1].verdict" in message
    path.write_text("targets:\n  acme:\n    - case: stop.*\n      reason: no verdict\n")
    with pytest.raises(SpecError, match=r"needs 'verdict'"):
        gate.load(path)
    path.write_text("targets:\n  acme:\n    - case: stop.*\n      flaky: true\n      colour: red\n")
    with pytest.raises(SpecError, match=r":5:7: .*unknown key 'colour'"):
        gate.load(path)


# --- baseline update: only what this run decided changes -------------------------------

EDITED_BY_HAND = """\
# Our known deviations; see the tracker for each.
schema_version: 1
targets:
  acme:
  # keep the first: it documents the upstream bug
  - reason: issue 7  # a reason first, by hand
    case: stop.inclusion[acme-chat-nostream]
    verdict: deviation
    observed: included
  - case: max_tokens.*
    flaky: true
  - case: stream.usage[acme-chat-stream]
    verdict: error
    reason: the gateway drops usage in streams
  - case: option.best_of[*]
    verdict: deviation
  zeta:
  - case: stop.inclusion[zeta-chat-nostream]
    verdict: deviation
    reason: not run this time
"""


def _updated(text: str | None, *cases: CaseResult, targets: Sequence[str] = ()) -> str:
    new_text, _ = gate.updated(results(list(cases)), text, targets)
    return new_text


def test_update_keeps_the_file_as_written_when_nothing_new_was_decided() -> None:
    unchanged = _updated(
        EDITED_BY_HAND,
        case("acme", observed="included"),  # a known deviation
        case("acme", "max_tokens.overflow", "clamped"),  # flaky: anything goes
        case("acme", "stream.usage", None, stream=True),  # a known error
        case("acme", "option.best_of", None, api="completions"),  # an error: says nothing
        case("acme", "stop.inclusion", None, stream=True, verdict=Verdict.SKIPPED),
    )
    assert unchanged == EDITED_BY_HAND


def test_update_keeps_a_known_deviation_whose_case_errored_or_was_skipped() -> None:
    for verdict in (Verdict.ERROR, Verdict.SKIPPED):
        run = case("acme", observed=None, verdict=verdict)
        assert _updated(EDITED_BY_HAND, run) == EDITED_BY_HAND


def test_update_adds_a_new_deviation_in_order_and_a_new_target() -> None:
    text = _updated(
        EDITED_BY_HAND,
        case("acme", observed="included", stream=True),
        case("beta", observed="included"),
    )
    added = (
        "  - case: stop.inclusion[acme-chat-stream]\n"
        "    verdict: deviation\n"
        "    observed: included\n"
    )
    target = (
        "  beta:\n  - case: stop.inclusion[beta-chat-nostream]\n    verdict: deviation\n"
        "    observed: included\n"
    )
    # Before the first exact entry that sorts after it; the new target before zeta.
    assert added + "  - case: stream.usage[acme-chat-stream]\n" in text
    assert target + "  zeta:\n" in text
    assert text.replace(added, "").replace(target, "") == EDITED_BY_HAND


def test_update_repins_a_deviation_to_its_new_outcome_and_keeps_its_reason() -> None:
    text = _updated(EDITED_BY_HAND, case("acme", observed="rejected"))
    assert text == EDITED_BY_HAND.replace(
        "    verdict: deviation\n    observed: included\n",
        "    verdict: deviation\n    observed: rejected\n",
    )


def test_update_turns_an_error_entry_whose_case_now_deviates_into_a_deviation() -> None:
    text = _updated(EDITED_BY_HAND, case("acme", "stream.usage", "finish_chunk", stream=True))
    assert text == EDITED_BY_HAND.replace(
        "    verdict: error\n    reason: the gateway",
        "    verdict: deviation\n    observed: finish_chunk\n    reason: the gateway",
    )


def test_update_removes_the_entry_of_a_case_that_now_passes_and_keeps_the_others() -> None:
    text = _updated(EDITED_BY_HAND, case("zeta", observed="omitted"))
    assert (
        text == EDITED_BY_HAND.split("  zeta:\n", maxsplit=1)[0]
    )  # its only entry: the target goes
    fixed = _updated(EDITED_BY_HAND, case("acme", observed="omitted"))
    assert "stop.inclusion[acme-chat-nostream]" not in fixed
    assert "issue 7" not in fixed
    assert "reason: the gateway drops usage in streams" in fixed
    assert fixed.startswith("# Our known deviations; see the tracker for each.\n")
    # A pattern also covers cases that did not run: it stays, and the gate names the pass.
    passing = case("acme", "option.best_of", "ignored", api="completions", verdict=Verdict.PASS)
    assert _updated(EDITED_BY_HAND, passing) == EDITED_BY_HAND


def test_update_pins_a_deviation_that_a_pattern_does_not_expect_with_an_exact_entry() -> None:
    text = "targets:\n  acme:\n  - case: stop.inclusion[*]\n    verdict: error\n"
    new = _updated(text, case("acme", observed="included"))
    assert new == text + (
        "  - case: stop.inclusion[acme-chat-nostream]\n    verdict: deviation\n"
        "    observed: included\n"
    )


def test_update_updates_only_the_targets_asked_for() -> None:
    deviating = case("zeta", observed="included", stream=True)
    assert _updated(EDITED_BY_HAND, deviating, targets=["acme"]) == EDITED_BY_HAND
    assert "zeta-chat-stream" in _updated(EDITED_BY_HAND, deviating, targets=["zeta"])


def test_update_keeps_the_files_indentation() -> None:
    indented = (
        "targets:\n"
        "    acme:\n"
        "        - case: stop.inclusion[acme-chat-nostream]\n"
        "          verdict: deviation  # seen in March\n"
        "          reason: >-\n"
        "              a folded reason\n"
        "              on two lines\n"
    )
    text = _updated(indented, case("acme", observed="included", stream=True))
    assert text.startswith(indented)
    assert text.endswith(
        "        - case: stop.inclusion[acme-chat-stream]\n"
        "          verdict: deviation\n"
        "          observed: included\n"
    )


def test_update_makes_a_new_file_with_a_header(tmp_path: Path) -> None:
    path = tmp_path / "new" / "baseline.yaml"
    run = results([case("acme", observed="included"), case("acme", "stream.usage", None)])
    changes = gate.update(run, path)
    assert (changes.added, changes.entries, changes.targets) == (1, 1, 1)
    text = path.read_text()
    assert text.startswith(gate.HEADER)
    assert "verdict: deviation\n" in text
    assert gate.evaluate(run.cases, gate.load(path), path).exit_code is ExitCode.INFRA_ERROR
    assert [p.name for p in path.parent.iterdir()] == ["baseline.yaml"]


def test_update_refuses_a_bad_file_and_leaves_it_alone(tmp_path: Path) -> None:
    path = tmp_path / "baseline.yaml"
    bad = "targets:\n  acme:\n    - case: x\n      verdict: nope\n"
    path.write_text(bad)
    with pytest.raises(SpecError, match=r"baseline.yaml:4:"):
        gate.update(results([case("acme", observed="included")]), path)
    assert path.read_text() == bad


_OUTCOMES = st.sampled_from(["omitted", "included", "rejected", None])
_CASES = st.lists(
    st.builds(
        lambda target, behavior, stream, observed, skipped: case(
            target,
            behavior,
            observed,
            stream=stream,
            verdict=Verdict.SKIPPED if skipped and observed is None else None,
        ),
        st.sampled_from(["acme", "zeta", "beta"]),
        st.sampled_from(["stop.inclusion", "stream.usage", "option.best_of"]),
        st.booleans(),
        _OUTCOMES,
        st.booleans(),
    ),
    max_size=8,
    unique_by=lambda c: c.id,
)


@settings(deadline=None, max_examples=60)  # no test may depend on an idle machine
@given(_CASES)
def test_an_updated_baseline_expects_the_run_and_a_second_update_changes_nothing(
    cases: list[CaseResult],
) -> None:
    run = results(cases)
    once, _ = gate.updated(run, EDITED_BY_HAND)
    twice, changes = gate.updated(run, once)
    assert twice == once
    assert (changes.added, changes.changed, changes.removed) == (0, 0, 0)
    baseline = Baseline.model_validate(yaml.safe_load(once))
    report = gate.evaluate(run.cases, baseline, None)
    assert not report.of(Kind.UNEXPECTED_DEVIATION)
    # Entries of cases that were not decided stay: the errors and the skips say nothing.
    kept = Baseline.model_validate(yaml.safe_load(EDITED_BY_HAND))
    decided = {c.id for c in cases if c.verdict in gate.DECIDED}
    for target, entries in kept.targets.items():
        for entry in entries:
            if not any(entry.matches(c) for c in decided):
                assert entry in baseline.targets.get(target, []), entry.case


# --- exit codes of `conformance run`, end to end ---------------------------------------


def conformance(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the `conformance` command as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def claims_openai(specs_copy: Path) -> Path:
    """The specs, with reference-fireworks claiming openai: its replay deviates for real."""
    target = specs_copy / "targets" / "reference-fireworks.yaml"
    text = target.read_text()
    assert "\nprofile: fireworks\n" in text
    target.write_text(text.replace("\nprofile: fireworks\n", "\nprofile: openai\n"))
    return specs_copy


@pytest.fixture
def broken_cassettes(tmp_path: Path) -> Path:
    """A copy of reference-openai's stop.inclusion cassettes, one of them edited: an error."""
    root = tmp_path / "cassettes"
    source = REPO / "cassettes" / "reference-openai" / "stop.inclusion"
    shutil.copytree(source, root / "reference-openai" / "stop.inclusion")
    cassette = root / "reference-openai" / "stop.inclusion" / "chat-nostream.yaml"
    text = cassette.read_text()
    assert "lighthouse keeper" in text
    cassette.write_text(text.replace("lighthouse keeper", "lighthouse sweeper"))
    return root


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return conformance(
        "run",
        "--cassettes",
        str(REPO / "cassettes"),
        "--behavior",
        "stop.inclusion",
        *args,
        cwd=cwd,
    )


def test_exit_0_when_every_case_is_as_expected(tmp_path: Path) -> None:
    completed = _run(tmp_path, "--specs", str(SPECS), "--target", "reference-*")
    assert completed.returncode == ExitCode.AS_EXPECTED, completed.stdout + completed.stderr
    assert "gate (without a baseline): every case as expected" in completed.stdout
    summary = (tmp_path / "reports" / "summary.md").read_text()
    assert summary.startswith("## ✅ Conformance: every case as expected")
    assert (tmp_path / "reports" / "junit.xml").is_file()


def test_exit_1_on_an_unexpected_deviation(tmp_path: Path, claims_openai: Path) -> None:
    completed = _run(tmp_path, "--specs", str(claims_openai), "--target", "reference-fireworks")
    assert completed.returncode == ExitCode.UNEXPECTED_DEVIATION, completed.stdout
    assert "unexpected deviation: stop.inclusion[reference-fireworks-chat-nostream]" in (
        completed.stdout
    )
    summary = (tmp_path / "reports" / "summary.md").read_text()
    assert "### Unexpected deviations (4)" in summary


def test_a_baseline_makes_known_deviations_pass_and_junit_shows_them_as_xfail(
    tmp_path: Path, claims_openai: Path
) -> None:
    first = _run(tmp_path, "--specs", str(claims_openai), "--target", "reference-fireworks")
    assert first.returncode == ExitCode.UNEXPECTED_DEVIATION
    written = conformance("baseline", "update", "--baseline", "baseline.yaml", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert "4 entries" in written.stdout
    again = _run(
        tmp_path,
        "--specs",
        str(claims_openai),
        "--target",
        "reference-fireworks",
        "--baseline",
        "baseline.yaml",
    )
    assert again.returncode == ExitCode.AS_EXPECTED, again.stdout + again.stderr
    assert "4 known (baseline)" in again.stdout
    suite = ET.parse(tmp_path / "reports" / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "0"
    assert suite.get("skipped") == "4"  # pytest writes xfails as skipped, with their reason
    known = [skipped.attrib for skipped in suite.iter("skipped")]
    assert [entry["type"] for entry in known] == ["pytest.xfail"] * 4
    assert all(entry["message"].startswith("known deviation (") for entry in known)
    assert "4 xfailed" in again.stdout
    # The same baseline pinned to another outcome: that deviation is news again.
    pinned = tmp_path / "baseline.yaml"
    pinned.write_text(pinned.read_text().replace("observed: included", "observed: rejected"))
    moved = _run(
        tmp_path,
        "--specs",
        str(claims_openai),
        "--target",
        "reference-fireworks",
        "--baseline",
        str(pinned),
    )
    assert moved.returncode == ExitCode.UNEXPECTED_DEVIATION


def test_exit_0_reports_unexpected_passes(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(
        "targets:\n  reference-openai:\n"
        "    - case: stop.inclusion[reference-openai-chat-*]\n      verdict: deviation\n"
    )
    completed = _run(
        tmp_path,
        "--specs",
        str(SPECS),
        "--target",
        "reference-openai",
        "--baseline",
        "baseline.yaml",
    )
    assert completed.returncode == ExitCode.AS_EXPECTED, completed.stdout
    assert "2 unexpected passes" in completed.stdout
    assert "unexpected pass (stale baseline entry): stop.inclusion[reference-openai-chat-" in (
        completed.stdout
    )
    assert "### Unexpected passes (2)" in (tmp_path / "reports" / "summary.md").read_text()


def test_exit_2_on_infrastructure_errors_only(tmp_path: Path, broken_cassettes: Path) -> None:
    arguments = ["--specs", str(SPECS), "--target", "reference-openai", "--behavior", "stop"]
    completed = conformance("run", "--cassettes", str(broken_cassettes), *arguments, cwd=tmp_path)
    assert completed.returncode == ExitCode.INFRA_ERROR, completed.stdout + completed.stderr
    assert "infrastructure errors only" in completed.stdout
    # Known flaky: allowed.
    (tmp_path / "flaky.yaml").write_text(
        "targets:\n  reference-openai:\n    - case: stop.inclusion[*-chat-nostream]\n"
        "      flaky: true\n      reason: the cassette is being re-recorded\n"
    )
    allowed = conformance(
        "run",
        "--cassettes",
        str(broken_cassettes),
        *arguments,
        "--baseline",
        "flaky.yaml",
        cwd=tmp_path,
    )
    assert allowed.returncode == ExitCode.AS_EXPECTED, allowed.stdout


def test_exit_1_wins_over_errors(
    tmp_path: Path, claims_openai: Path, broken_cassettes: Path
) -> None:
    # reference-fireworks deviates (its cassettes are the shipped ones, copied in);
    # reference-openai errors on the edited cassette.
    shutil.copytree(
        REPO / "cassettes" / "reference-fireworks" / "stop.inclusion",
        broken_cassettes / "reference-fireworks" / "stop.inclusion",
    )
    completed = conformance(
        "run",
        "--cassettes",
        str(broken_cassettes),
        "--specs",
        str(claims_openai),
        "--target",
        "reference-*",
        "--behavior",
        "stop",
        cwd=tmp_path,
    )
    assert completed.returncode == ExitCode.UNEXPECTED_DEVIATION, completed.stdout
    assert "unexpected error" in completed.stdout


def test_exit_4_on_a_bad_baseline(tmp_path: Path) -> None:
    (tmp_path / "baseline.yaml").write_text(
        "targets:\n  acme:\n    - case: x\n      verdict: nope\n"
    )
    completed = _run(tmp_path, "--specs", str(SPECS), "--baseline", "baseline.yaml")
    assert completed.returncode == ExitCode.USAGE_ERROR
    output = completed.stdout + completed.stderr
    assert "baseline.yaml:4:" in output
    assert "Traceback" not in output
    missing = _run(tmp_path, "--specs", str(SPECS), "--baseline", "missing.yaml")
    assert missing.returncode == ExitCode.USAGE_ERROR
    assert "missing.yaml: cannot read the file" in missing.stdout + missing.stderr


def test_exit_5_when_nothing_is_selected(tmp_path: Path) -> None:
    completed = _run(tmp_path, "--specs", str(SPECS), "--", "-k", "no-such-case")
    assert completed.returncode == ExitCode.NO_CASES, completed.stdout
