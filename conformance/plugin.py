"""The pytest plugin: options, one item per case, and the results file. Wiring only.

The plugin acts only when the suite module (``conformance.suite``) is part of the run, so
installing the package does not change any other pytest run.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conformance.ahead import Ahead
    from conformance.catalog import Catalog
    from conformance.execute import Runner
    from conformance.gate import Baseline, GateReport
    from conformance.plan import Case
    from conformance.results import CaseResult, Results

# The suite's modules import the openai SDK (and anyio); importing them only when the suite
# runs keeps every other pytest run untouched, and lets pytest rewrite anyio's plugin.
SUITE_FILE = Path(__file__).resolve().parent / "suite.py"
MODES = ("replay", "record", "live")
#: The attribute of an xdist worker's test report that carries its case's result to the
#: controller (as JSON, so that it survives xdist's serialization of reports).
REPORT_ATTRIBUTE = "conformance_result"


SESSION = pytest.StashKey["SuiteSession"]()
CASE = pytest.StashKey["Case"]()
RESULT = pytest.StashKey["CaseResult"]()
#: Why a case's failure is known (the baseline expects it): its set-up report becomes an xfail.
KNOWN = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, int, int]:
    """A suite run stops on SIGTERM as on Ctrl-C, writing what it finished; its cycle
    collector is off, and its garbage swept every so many cases, as the heap of results
    only grows (``memory``)."""
    if not _runs_suite(config):
        return (yield)
    from conformance.memory import sweeping  # noqa: PLC0415
    from conformance.recording import sigterm_as_interrupt  # noqa: PLC0415

    with sigterm_as_interrupt(), sweeping():
        return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """pytest's junitxml writes a suite run's junit.xml to a temporary file that replaces
    the old one once whole (inside the terminal summary, which names the file)."""
    from _pytest.junitxml import xml_key  # noqa: PLC0415

    xml = session.config.stash.get(xml_key, None)
    if xml is None or SESSION not in session.config.stash:
        return (yield)
    from conformance import files  # noqa: PLC0415

    final = Path(xml.logfile)
    try:
        with files.replacing(final) as temporary:
            xml.logfile = str(temporary)
            return (yield)
    finally:
        xml.logfile = str(final)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The suite's command-line options."""
    group = parser.getgroup("conformance", "conformance suite")
    group.addoption(
        "--target",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these targets (repeatable; globs and dotted prefixes work)",
    )
    group.addoption(
        "--behavior",
        action="append",
        default=[],
        metavar="ID",
        help="run only these behaviors (repeatable; 'stop' selects stop.*)",
    )
    group.addoption(
        "--mode",
        choices=MODES,
        default=MODES[0],
        help="replay cassettes (default), record them, or run live without them",
    )
    group.addoption(
        "--specs",
        default=None,
        metavar="DIR",
        help="a specs folder laid over the built-in catalog (same file name replaces, new adds)",
    )
    group.addoption("--cassettes", default="cassettes", metavar="DIR", help="the cassettes folder")
    group.addoption(
        "--report-dir", default="reports", metavar="DIR", help="where results.json goes"
    )
    group.addoption(
        "--base-url",
        default=None,
        metavar="URL",
        help="send the (single) selected target's requests here instead",
    )
    group.addoption(
        "--server-version",
        default=None,
        metavar="TEXT",
        help="the server's name and version, stored in cassettes and results",
    )
    group.addoption(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help="cases run at once: live, on threads (default: the selected targets' "
        "max_concurrency together, at most 64); replays, in forked processes (default: one "
        "per core, at most 4); recordings run one at a time per process",
    )
    group.addoption(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="live runs: run each case N times and record what its runs came to; a case "
        "whose runs disagree is unstable (an error, unless the baseline marks it flaky)",
    )
    group.addoption(
        "--baseline",
        default=None,
        metavar="FILE",
        help="known deviations and flaky cases per target; fail only on unexpected outcomes",
    )
    group.addoption(
        "--previous",
        action="append",
        default=[],
        metavar="RESULTS",
        help="an earlier results.json to compare with in the report (repeatable, oldest first)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Load and check the specs, plan the cases; a bad spec is a usage error (exit 4)."""
    if not _runs_suite(config):
        return
    from conformance import gate  # noqa: PLC0415
    from conformance.catalog import SpecError, load  # noqa: PLC0415
    from conformance.execute import MissingKey, Runner, Settings  # noqa: PLC0415
    from conformance.plan import SelectionError, plan  # noqa: PLC0415
    from conformance.recording import Mode  # noqa: PLC0415

    specs = config.getoption("specs")
    baseline_path = config.getoption("baseline")
    try:
        catalog = load(Path(specs) if specs else None)
        cases = plan(catalog, config.getoption("target"), config.getoption("behavior"))
        baseline = gate.load(Path(baseline_path)) if baseline_path else None
        previous = [_load_previous(Path(p)) for p in config.getoption("previous")]
    except (SpecError, SelectionError) as exc:
        raise pytest.UsageError(str(exc)) from None
    report_dir = Path(config.getoption("report_dir"))
    if not hasattr(config, "workerinput"):  # the controller writes the reports
        from conformance import results  # noqa: PLC0415

        try:
            results.check_writable(report_dir)
        except OSError as exc:
            raise pytest.UsageError(
                f"cannot write the results to {report_dir}: {exc.strerror or exc}"
            ) from None
    asked = config.getoption("concurrency")
    if asked is not None and (asked < 1 or config.getoption("mode") == "record"):
        raise pytest.UsageError(
            "--concurrency takes a number of at least 1, and not in record mode: recordings "
            "run one case at a time per process (spread them with -n)"
        )
    repeat = config.getoption("repeat")
    if repeat != 1 and (repeat < 1 or config.getoption("mode") != "live"):
        raise pytest.UsageError(
            "--repeat takes a number of at least 1, and only in live mode: a replay repeats "
            "its cassette exactly, and a recording keeps one run"
        )
    base_url = config.getoption("base_url")
    targets = {case.target.name for case in cases}
    if base_url and len(targets) != 1:
        raise pytest.UsageError(
            f"--base-url needs exactly one target; selected: {', '.join(sorted(targets))}"
        )
    settings = Settings(
        mode=Mode(config.getoption("mode")),
        cassettes=Path(config.getoption("cassettes")),
        base_url=base_url,
        server_version=config.getoption("server_version"),
        specs_arg=specs,
        repeat=repeat,
    )
    runner = Runner(catalog, settings)
    if settings.mode is not Mode.REPLAY:
        for pattern in config.getoption("target"):
            for name in sorted(targets):
                target = catalog.targets[name]
                if pattern == name and target.api_key_env:
                    try:
                        runner.key_for(target)
                    except MissingKey as exc:
                        raise pytest.UsageError(str(exc)) from None
    session = SuiteSession(
        catalog,
        cases,
        runner,
        report_dir,
        dt.datetime.now(dt.UTC),
        baseline=baseline,
        baseline_path=Path(baseline_path) if baseline_path else None,
        previous=previous,
        worker=hasattr(config, "workerinput"),
    )
    config.stash[SESSION] = session
    config.pluginmanager.register(session, "conformance-session")


def _load_previous(path: Path) -> Results:
    from conformance import results  # noqa: PLC0415
    from conformance.spec.errors import SpecError  # noqa: PLC0415

    try:
        return results.load(path)
    except (OSError, ValueError) as exc:
        first = " ".join(str(exc).splitlines()[:3])  # a validation error can run to pages
        raise SpecError(path, f"cannot read it as a results file: {first}") from None


@pytest.fixture
def conformance_case(request: pytest.FixtureRequest) -> CaseResult:
    """Probe this item's case and judge it; skips and errors happen here, during set-up.

    A deviation or error that the baseline expects is an xfail, so JUnit shows it as known.
    It is marked on the set-up's report (``SuiteSession.pytest_runtest_makereport``), not
    raised with ``pytest.xfail``: pytest would format the raise's traceback, through all of
    its own frames, for a report that shows none of it (about 0.4 s of CPU in the shipped
    replay).
    """
    from conformance import gate  # noqa: PLC0415
    from conformance.untrusted import printable  # noqa: PLC0415
    from conformance.verdict import Verdict  # noqa: PLC0415

    session = request.config.stash[SESSION]
    case = request.node.stash[CASE]
    result = session.ahead.result(case) if session.ahead else session.runner.execute(case)
    request.node.stash[RESULT] = result
    # A few plain facts for JUnit readers; the whole result travels on the report.
    request.node.user_properties.extend(
        [
            ("behavior", result.behavior),
            ("expected", " or ".join(result.expected) if result.expected else "unknown"),
            ("observed", result.observed or ""),
            ("verdict", result.verdict.value),
        ]
    )
    if result.verdict is Verdict.SKIPPED:
        pytest.skip(printable(result.summary))
    known = gate.known_failure(session.baseline, result)
    if known is not None:
        request.node.stash[KNOWN] = printable(
            f"known {result.verdict.value} ({known}): {result.summary}"
        )
        return result
    if result.verdict is Verdict.ERROR:
        # A set-up failure is a pytest error; without a trace it reads as the one line it is.
        pytest.fail(printable(f"error: {result.summary}"), pytrace=False)
    return result


@dataclass(eq=False)  # registered as a pluggy plugin, which must be hashable
class SuiteSession:
    """One run of the suite: makes the items, gathers their results, writes them."""

    catalog: Catalog
    cases: list[Case]
    runner: Runner
    report_dir: Path
    started_at: dt.datetime
    baseline: Baseline | None = None
    baseline_path: Path | None = None
    previous: list[Results] = field(default_factory=list)
    collected: dict[str, CaseResult] = field(default_factory=dict)
    write_error: str | None = None
    gate: GateReport | None = None
    ahead: Ahead | None = None
    #: An xdist worker: its results go to the controller on the reports.
    worker: bool = False
    #: Targets whose every case was skipped for want of a cassette or a key: by name, the
    #: unset variable (None: no cassette).
    not_run: dict[str, str | None] = field(default_factory=dict)

    def pytest_pycollect_makeitem(
        self, collector: pytest.Collector, name: str, obj: Any
    ) -> list[pytest.Item] | None:
        """Turn the suite's one test function into one item per planned case."""
        if name != "test_behavior" or not isinstance(collector, pytest.Module):
            return None
        if collector.path.resolve() != SUITE_FILE:
            return None
        items: list[pytest.Item] = []
        for case in self.cases:
            item = pytest.Function.from_parent(collector, name=case.name, callobj=obj)
            item.stash[CASE] = case
            items.append(item)
        return items

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Start running the selected cases ahead, several at a time: live, the longest
        chains of requests first, and the items then run in that order, so that each item's
        result is among the first ready; replayed, in plan order. A run whose cases run ahead
        compiles the report's templates meanwhile."""
        from conformance import ahead  # noqa: PLC0415
        from conformance.recording import Mode  # noqa: PLC0415
        from conformance.schedule import longest_first  # noqa: PLC0415

        if self.worker:
            return  # under xdist each worker runs the items it is sent, one at a time
        cases = [item.stash[CASE] for item in session.items if CASE in item.stash]
        mode = self.runner.settings.mode
        workers = ahead.concurrency(
            mode,
            [self.catalog.targets[name] for name in {case.target.name for case in cases}],
            session.config.getoption("concurrency"),
            len(cases),
        )
        if mode is Mode.LIVE and workers > 1:
            cases = longest_first(cases, self.runner.settings.cassettes)
            rank = {case.name: number for number, case in enumerate(cases)}
            # In place: pytest runs the list it collected. Items of no case go first.
            session.items.sort(
                key=lambda item: rank[item.stash[CASE].name] if CASE in item.stash else -1
            )
        self.ahead = ahead.start(mode, self.runner, cases, workers)
        if mode is not Mode.REPLAY or self.ahead is not None:
            from conformance.report import html  # noqa: PLC0415

            # The cases wait on the network, or run in worker processes (all forked by now,
            # see ahead.Forks): the report's templates compile meanwhile, on a thread,
            # rather than after the last result.
            html.compile_ahead()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Put the case's result on the report of the phase that produced it (the set-up);
        a known failure's set-up report is an xfail, as pytest's own would be, and its test
        does not run."""
        report = yield
        result = item.stash.get(RESULT, None)
        if result is not None and call.when == "setup":
            if KNOWN in item.stash and report.passed:
                report.outcome = "skipped"
                report.wasxfail = item.stash[KNOWN]
            if self.worker:
                setattr(report, REPORT_ATTRIBUTE, result.model_dump_json())
            else:
                self.collected[report.nodeid] = result
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """On the controller of an xdist run, keep the result each worker's report carries."""
        from conformance.results import CaseResult  # noqa: PLC0415

        carried = getattr(report, REPORT_ATTRIBUTE, None)
        if carried is not None and not self.worker:
            self.collected[report.nodeid] = CaseResult.model_validate_json(carried)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Stop servers; on the controller, write the results and reports, and gate the run.

        The gate decides the exit code whenever pytest itself finished normally (0 or 1):
        0 as expected, 1 an unexpected deviation, 2 unexpected errors only.
        """
        from conformance import ahead, gate, results  # noqa: PLC0415
        from conformance.report import html, markdown  # noqa: PLC0415

        if self.ahead is not None:
            self.ahead.close()
        if self.worker:
            self.runner.close()
            return  # the controller writes the merged results
        self.not_run = self._not_run()
        self.runner.close()
        written = self.results(complete=exitstatus != pytest.ExitCode.INTERRUPTED)
        self.gate = gate.evaluate(written.cases, self.baseline, self.baseline_path)
        page = functools.partial(
            html.write,
            written,
            self.report_dir / "index.html",
            previous=self.previous,
            gate=self.gate,
        )
        try:
            with ahead.beside(page):  # the longest to write, and needed by none of the others
                results.write(written, self.report_dir / "results.json")
                markdown.write(written, self.report_dir / "summary.md", gate=self.gate)
        except OSError as exc:
            self.write_error = (
                f"cannot write the results to {self.report_dir}: {exc.strerror or exc}"
            )
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = int(self.gate.exit_code)
            if self.nothing_ran_for_keys:
                session.exitstatus = int(gate.ExitCode.NO_CASES)

    def _not_run(self) -> dict[str, str | None]:
        from conformance.verdict import Verdict  # noqa: PLC0415

        by_target: dict[str, list[CaseResult]] = {}
        for case in self.collected.values():
            by_target.setdefault(case.target, []).append(case)
        found: dict[str, str | None] = {}
        for name, cases in sorted(by_target.items()):
            if any(case.verdict is not Verdict.SKIPPED for case in cases):
                continue
            missing = self.runner.missing_key(self.catalog.targets[name])
            if missing or all(case.summary.startswith("no cassette") for case in cases):
                found[name] = missing
        return found

    @property
    def nothing_ran_for_keys(self) -> bool:
        """Whether every case of a run that reaches the network was skipped for want of a key."""
        targets = {case.target for case in self.collected.values()}
        return bool(targets) and all(self.not_run.get(name) for name in targets)

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        """One line of verdict counts, and where the results went."""
        from conformance.gate import Kind  # noqa: PLC0415

        if self.worker:
            return
        terminalreporter.write_sep("-", "conformance")
        if self.write_error:
            terminalreporter.write_line(f"ERROR: {self.write_error}", red=True)
            return
        counts: dict[str, int] = {}
        for case in self.collected.values():
            counts[case.verdict.value] = counts.get(case.verdict.value, 0) + 1
        line = ", ".join(f"{count} {verdict}" for verdict, count in sorted(counts.items()))
        terminalreporter.write_line(
            f"{line or 'no cases'}; results in {self.report_dir / 'results.json'}, "
            f"report in {self.report_dir / 'index.html'}"
        )
        results = {case.id: case for case in self.collected.values()}
        kept = [
            case.name
            for case in self.cases
            if case.name in results and self.runner.kept_cassette(case, results[case.name])
        ]
        if kept:
            terminalreporter.write_line(
                f"old cassette kept for {len(kept)} case(s) with no observation: "
                f"{', '.join(kept[:5])}{', ...' if len(kept) > 5 else ''}",
                yellow=True,
            )
        from conformance.results import token_totals  # noqa: PLC0415

        spent = token_totals(self.collected.values())
        if any(tokens.total for tokens in spent.values()):
            terminalreporter.write_line(
                "tokens: "
                + ", ".join(
                    f"{name} {tokens.total:,} ({tokens.prompt:,} prompt + {tokens.completion:,} "
                    "completion)"
                    for name, tokens in spent.items()
                    if tokens.total
                )
            )
        warned = sorted({(c.target, c.warning) for c in self.collected.values() if c.warning})
        for name, warning in warned:
            terminalreporter.write_line(f"warning: target {name}: {warning}", yellow=True)
        # Unstable cases the gate expects (flaky in the baseline); it lists the others itself.
        known = (
            {f.case.id for f in self.gate.findings if f.kind is Kind.KNOWN} if self.gate else set()
        )
        for case in sorted(self.collected.values(), key=lambda c: c.id):
            if case.unstable and case.id in known:
                terminalreporter.write_line(
                    f"unstable, flaky in the baseline: {case.id}: {case.tally()}", yellow=True
                )
        for name, variable in self.not_run.items():
            target = self.catalog.targets[name]
            why = f"needs ${variable}" if variable else "no cassettes"
            live = "live only, " if target.live_only else ""
            terminalreporter.write_line(
                f"not run: {name} ({live}{why}); record it with: "
                f"{self.runner.record_target_command(target)}"
            )
        if self.nothing_ran_for_keys:
            needs = ", ".join(
                f"{name} needs ${variable}" for name, variable in self.not_run.items()
            )
            terminalreporter.write_line(
                f"no case ran: every case was skipped because a key is not set ({needs}); "
                "exit code 5",
                red=True,
                bold=True,
            )
            return
        if self.gate is not None and self.collected:
            # One line for every case that did not go as expected, however many there are.
            for number, text in enumerate(self.gate.lines(limit=len(self.collected))):
                failed = self.gate.exit_code != 0
                terminalreporter.write_line(text, red=failed and number == 0, bold=number == 0)

    def results(self, *, complete: bool) -> Results:
        """The results of the cases finished so far, with provenance and the documented specs."""
        from conformance import results  # noqa: PLC0415

        cases = sorted(self.collected.values(), key=lambda case: case.id)
        targets = {}
        for name in sorted({case.target for case in cases}):
            target = self.catalog.targets[name]
            versions = [c.server_version for c in cases if c.target == name and c.server_version]
            targets[name] = results.TargetInfo(
                title=target.title,
                profile=target.profile,
                base_url=self.runner.settings.base_url or target.base_url,
                models={str(api): model for api, model in target.models.items()},
                server_version=versions[0] if versions else None,
                warnings=sorted({c.warning for c in cases if c.target == name and c.warning}),
            )
        behaviors, profiles = results.documented(self.catalog)
        return results.Results(
            provenance=results.provenance(
                self.catalog, self.runner.settings.mode.value, self.started_at, complete=complete
            ),
            targets=targets,
            behaviors=behaviors,
            profiles=profiles,
            cases=cases,
        )


def _runs_suite(config: pytest.Config) -> bool:
    for argument in config.args:
        head = argument.split("::", 1)[0]
        if head == "conformance.suite":
            return True
        try:
            if Path(head).resolve() == SUITE_FILE:
                return True
        except OSError:
            continue
    return False
