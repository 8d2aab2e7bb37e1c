"""The ``conformance`` command: parses arguments and calls the library.

The exit codes of ``conformance run`` (the CI gate, ``conformance.gate.ExitCode``) are in
``RUN_EPILOG``, which ``conformance run --help`` prints. The other commands exit 0, or 4 on
a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeAlias

from pydantic import BaseModel

from conformance import __version__
from conformance.spec.errors import SpecError
from conformance.spec.loader import suggest
from conformance.untrusted import printable

if TYPE_CHECKING:
    from conformance.catalog import Catalog
    from conformance.results import Results
    from conformance.spec.models import Target

EXIT_USAGE = 4  # = conformance.gate.ExitCode.USAGE_ERROR
DEFAULT_PORT = 8000
MODES = ("replay", "record", "live")
SPECS_HELP = (
    "a specs folder laid over the built-in catalog: its behaviors/, profiles/ and targets/ "
    "files replace built-in files of the same name or add to them"
)
RUN_EPILOG = """\
-- PYTEST ARGS
  Anything after a lone -- goes to pytest, which runs the suite underneath, e.g.
  conformance run -- -n 4 (cases spread over 4 processes), -- -k stream -x, or
  -- --tb=long -ra (full tracebacks, and a line for every skip).

exit codes
  0  every case as expected: passed, observed, skipped, or an outcome the baseline expects
  1  an unexpected deviation (without --baseline, any deviation)
  2  infrastructure errors only: no unexpected deviation, but a case with no observation
     (connection failure, 5xx, timeout, a request missing from its cassette, runs of a
     --repeat that disagree) that the baseline does not allow; also an interrupted run
  4  a usage or spec error: bad arguments, a bad spec or baseline file, an unknown
     target, a missing key for a target named with --target in live mode, an
     unwritable report folder
  5  no case was selected, or in record or live mode every case was skipped because
     its target's key is not set
  Unexpected passes (a baseline entry that no longer happens) are reported, exit unchanged.
"""


def load(specs: str | None) -> Catalog:
    """The checked catalog, with the ``--specs`` folder laid over the built-in one. Imported
    late: the probes pull in the openai SDK, and `run` must not import it before pytest
    starts, or pytest cannot rewrite the anyio plugin's asserts."""
    from conformance.catalog import load as load_catalog  # noqa: PLC0415

    return load_catalog(Path(specs) if specs else None)


def command() -> NoReturn:
    """The ``conformance`` command: ``main`` with the process's arguments, then its end."""
    from conformance.memory import exit_without_last_collections  # noqa: PLC0415

    exit_without_last_collections(main())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``conformance`` command with ``argv`` (default: the process's arguments)."""
    parser = _parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in arguments:
        split = arguments.index("--")
        arguments, passthrough = arguments[:split], arguments[split + 1 :]
    options = parser.parse_args(arguments)
    try:
        return int(options.handler(options, passthrough))
    except SpecError as exc:
        print(f"conformance: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"conformance: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 4 as every usage error of the command does."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


_Commands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="conformance", description="Conformance tests for OpenAI-compatible APIs."
    )
    parser.add_argument("--version", action="version", version=f"conformance {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND", parser_class=_Parser)
    for add in (
        _add_run,
        _add_report,
        _add_compare,
        _add_baseline,
        _add_list,
        _add_init,
        _add_diff,
        _add_serve,
        _add_schema,
    ):
        add(commands)
    return parser


def _add_run(commands: _Commands) -> None:
    run = commands.add_parser(
        "run",
        help="run the suite (replaying cassettes by default)",
        usage="conformance run [OPTIONS] [-- PYTEST ARGS]",
        description="Run the suite: plan the selected cases, probe or replay them, judge them "
        "against the profile each target claims, and write results.json, index.html, "
        "summary.md and junit.xml.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME",
        help="a target to run (repeatable; globs and dotted prefixes work; default: all)",
    )
    run.add_argument(
        "--behavior",
        action="append",
        default=[],
        metavar="ID",
        help="a behavior to run (repeatable; 'stop' selects every stop.*; default: all)",
    )
    run.add_argument(
        "--mode",
        choices=MODES,
        default=MODES[0],
        help="replay cassettes (default), record them, or run live without them",
    )
    run.add_argument("--specs", default=None, metavar="DIR", help=SPECS_HELP)
    run.add_argument("--cassettes", default="cassettes", metavar="DIR", help="the cassettes folder")
    run.add_argument(
        "--report-dir",
        default="reports",
        metavar="DIR",
        help="where results.json, index.html, summary.md and junit.xml go (default reports)",
    )
    run.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help="send the one selected target's requests here instead of its base_url",
    )
    run.add_argument(
        "--server-version",
        default=None,
        metavar="TEXT",
        help="the server's name and version, stored in cassettes and results",
    )
    run.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help="cases run at once: live, on threads (default: what the targets' "
        "max_concurrency allows together, at most 64); replays, in forked processes "
        "(default: one per core, at most 4)",
    )
    run.add_argument(
        "--repeat",
        type=int,
        default=None,
        metavar="N",
        help="live runs: run each case N times, a stability check; a case whose runs "
        "disagree is unstable (an error, unless the baseline marks it flaky)",
    )
    run.add_argument(
        "--baseline",
        default=None,
        metavar="FILE",
        help="known deviations and flaky cases; fail only on unexpected outcomes",
    )
    run.add_argument(
        "--previous",
        action="append",
        default=[],
        metavar="RESULTS",
        help="an earlier results.json the report compares with (repeatable, oldest first)",
    )
    run.set_defaults(handler=_run)


def _add_report(commands: _Commands) -> None:
    report = commands.add_parser(
        "report",
        help="rebuild index.html and summary.md from a results file, or merge several runs",
    )
    report.add_argument(
        "results",
        nargs="*",
        default=["reports/results.json"],
        metavar="RESULTS",
        help="results files; several are merged into one results.json (the newest run wins "
        "a target they share)",
    )
    report.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="where to write (default: next to RESULTS; required to merge several)",
    )
    report.add_argument(
        "--previous",
        action="append",
        default=[],
        metavar="RESULTS",
        help="an earlier results.json to compare with (repeatable, oldest first)",
    )
    report.add_argument(
        "--baseline",
        default=None,
        metavar="FILE",
        help="show the gate's decision against this baseline",
    )
    report.set_defaults(handler=_report)


def _add_compare(commands: _Commands) -> None:
    compare = commands.add_parser("compare", help="what changed between two runs")
    compare.add_argument("old", metavar="OLD.json", help="the earlier results file")
    compare.add_argument("new", metavar="NEW.json", help="the later results file")
    compare.add_argument(
        "--html",
        default="reports/compare.html",
        metavar="FILE",
        help="also write the changes as HTML here ('' for none)",
    )
    compare.set_defaults(handler=_compare)


def _add_baseline(commands: _Commands) -> None:
    baseline = commands.add_parser("baseline", help="manage a CI baseline")
    actions = baseline.add_subparsers(required=True, metavar="ACTION", parser_class=_Parser)
    update = actions.add_parser(
        "update",
        help="write a baseline that expects a run's deviations (and marks unstable cases flaky)",
    )
    update.add_argument(
        "--results",
        default="reports/results.json",
        metavar="RESULTS",
        help="the run to expect (default reports/results.json)",
    )
    update.add_argument(
        "--baseline",
        default="conformance-baseline.yaml",
        metavar="FILE",
        help="the baseline to update or create (default conformance-baseline.yaml)",
    )
    update.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME",
        help="update only these targets' entries (default: every recorded target)",
    )
    update.set_defaults(handler=_baseline_update)


def _add_list(commands: _Commands) -> None:
    listing = commands.add_parser("list", help="list behaviors, profiles and targets")
    listing.add_argument("--specs", default=None, metavar="DIR", help=SPECS_HELP)
    listing.set_defaults(handler=_list)


def _add_init(commands: _Commands) -> None:
    init = commands.add_parser(
        "init", help="write a starter target, an empty baseline and a CI workflow into a repository"
    )
    init.add_argument(
        "--target", default="mycloud", metavar="NAME", help="your target's name (default mycloud)"
    )
    init.add_argument("--dir", default=".", metavar="DIR", help="the repository's root")
    init.add_argument("--force", action="store_true", help="overwrite files that are there")
    init.set_defaults(handler=_init)


def _add_diff(commands: _Commands) -> None:
    diff = commands.add_parser("diff", help="two profiles' documented semantics side by side")
    diff.add_argument(
        "profiles", nargs=2, metavar="PROFILE", help="two profile names, e.g. openai fireworks"
    )
    diff.add_argument("--specs", default=None, metavar="DIR", help=SPECS_HELP)
    diff.add_argument(
        "--only-differences",
        action="store_true",
        help="leave out the behaviors both profiles document alike",
    )
    diff.set_defaults(handler=_diff)


def _add_serve(commands: _Commands) -> None:
    serve = commands.add_parser("serve", help="run the reference server on 127.0.0.1")
    served = serve.add_mutually_exclusive_group()
    served.add_argument(
        "--dialect",
        default=None,
        metavar="PROFILE",
        help="the profile that sets every switch (default openai)",
    )
    served.add_argument(
        "--target",
        default=None,
        metavar="NAME",
        help="serve as this reference target is served when it records: its dialect, "
        "context window, output cap, and the key in its api_key_env, which must be set",
    )
    serve.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="BEHAVIOR=OUTCOME",
        help="override one switch (repeatable)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the port (default {DEFAULT_PORT})"
    )
    serve.add_argument(
        "--context-window",
        type=int,
        default=None,
        metavar="TOKENS",
        help="the toy model's context window (default: the target's, else 256)",
    )
    serve.add_argument(
        "--jitter",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="the share of temperature-0 requests that diverge after a few tokens",
    )
    serve.add_argument(
        "--jitter-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed the jitter's draws, so a run can be repeated (default: a fresh seed)",
    )
    serve.add_argument(
        "--api-key-env",
        default=None,
        metavar="NAME",
        help="require the key held in this environment variable (without it and without "
        "--target, any key is accepted)",
    )
    serve.add_argument("--specs", default=None, metavar="DIR", help=SPECS_HELP)
    serve.set_defaults(handler=_serve)


def _add_schema(commands: _Commands) -> None:
    schema = commands.add_parser("schema", help="write the JSON Schemas of spec and results files")
    schema.add_argument(
        "--out", default=None, metavar="DIR", help="default: the built-in catalog's schema folder"
    )
    schema.set_defaults(handler=_schema)


def _run(options: argparse.Namespace, passthrough: list[str]) -> int:
    import pytest  # noqa: PLC0415  (only the run command needs it)

    report_dir = Path(options.report_dir)
    arguments = [
        "--pyargs",
        "conformance.suite",
        "--mode",
        options.mode,
        "--cassettes",
        options.cassettes,
        "--report-dir",
        str(report_dir),
        f"--junitxml={report_dir / 'junit.xml'}",
        "-p",
        "no:cacheprovider",
        # Plugins the suite does not use, whose hooks run for every one of its items
        # (pytest-asyncio stays: a project's own pytest settings may configure it).
        # (pytest-asyncio, when installed, also warns on every run that its loop scope is
        # unset: the suite's one test is synchronous and needs none of them.)
        "-p",
        "no:anyio",
        "-p",
        "no:asyncio",
        "-p",
        "no:hypothesispytest",
        # It collects every cycle at the end, rescanning each result the run keeps (half a
        # second for the shipped catalog), to report unraisable exceptions the cases catch.
        "-p",
        "no:unraisableexception",
        # The suite's one test asserts nothing; rewriting every plugin's asserts costs seconds.
        "--assert=plain",
        # A case that fails or errs is one line in the gate's summary, which names it, what
        # was expected and observed, and why; pytest's tracebacks and short summary would only
        # repeat it (-- --tb=short -rfE brings them back).
        "--tb=no",
        "-rN",
    ]
    for name in ("target", "behavior"):
        for value in getattr(options, name):
            arguments += [f"--{name}", value]
    for name in ("specs", "base_url", "server_version", "baseline", "concurrency", "repeat"):
        value = getattr(options, name)
        if value is not None:
            arguments += [f"--{name.replace('_', '-')}", str(value)]
    for value in options.previous:
        arguments += ["--previous", value]
    return int(pytest.main([*arguments, *passthrough]))


def _read_results(path: str) -> Results:
    from conformance import results  # noqa: PLC0415

    try:
        return results.load(Path(path))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:
        first = " ".join(str(exc).splitlines()[:3])
        raise ValueError(f"{path}: not a results file: {first}") from None


def _report(options: argparse.Namespace, _: list[str]) -> int:
    from conformance import gate, merge  # noqa: PLC0415
    from conformance import results as results_file  # noqa: PLC0415
    from conformance.report import html, markdown  # noqa: PLC0415

    if len(options.results) > 1 and not options.out:
        raise ValueError("merging several results files needs --out DIR")
    runs = [(path, _read_results(path)) for path in options.results]
    results = merge.merge(runs) if len(runs) > 1 else runs[0][1]
    previous = [_read_results(path) for path in options.previous]
    baseline = gate.load(Path(options.baseline)) if options.baseline else None
    report = gate.evaluate(
        results.cases, baseline, Path(options.baseline) if options.baseline else None
    )
    out = Path(options.out) if options.out else Path(options.results[0]).parent
    if len(runs) > 1:
        results_file.write(results, out / "results.json")
        print(out / "results.json")
    html.write(results, out / "index.html", previous=previous, gate=report)
    markdown.write(results, out / "summary.md", gate=report)
    print(out / "index.html")
    print(out / "summary.md")
    return 0


def _compare(options: argparse.Namespace, _: list[str]) -> int:
    from conformance import compare, files  # noqa: PLC0415
    from conformance.report import html  # noqa: PLC0415

    comparison = compare.compare(_read_results(options.old), _read_results(options.new))
    print(printable(compare.render_text(comparison, options.old, options.new)))
    if options.html:
        path = Path(options.html)
        files.write_text(path, html.render_comparison(comparison, options.old, options.new))
        print(f"HTML: {path}")
    return 0


def _baseline_update(options: argparse.Namespace, _: list[str]) -> int:
    from conformance import gate  # noqa: PLC0415

    results = _read_results(options.results)
    path = Path(options.baseline)
    changes = gate.update(results, path, options.target)
    print(
        f"{path}: {changes.entries} entr{'y' if changes.entries == 1 else 'ies'} for "
        f"{changes.targets} targets ({changes.added} added, {changes.changed} changed, "
        f"{changes.removed} removed)"
    )
    return 0


def _list(options: argparse.Namespace, _: list[str]) -> int:
    catalog = load(options.specs)
    print(f"Behaviors ({len(catalog.behaviors)})")
    for behavior in sorted(catalog.behaviors.values(), key=lambda b: b.id):
        variants = "/".join("stream" if s else "nostream" for s in behavior.variants.stream)
        apis = ",".join(api.value for api in behavior.apis)
        print(
            f"  {behavior.id:<40} {apis:<17} {variants:<16} {behavior.title}"
            f"  [{catalog.origin('behavior', behavior.id)}]"
        )
        print(f"  {'':<40} outcomes: {', '.join(behavior.outcomes)}")
    print(f"\nProfiles ({len(catalog.profiles)})")
    for profile in sorted(catalog.profiles.values(), key=lambda p: p.id):
        extends = f" (extends {profile.extends})" if profile.extends else ""
        print(
            f"  {profile.id:<20} {profile.title}{extends}  [{catalog.origin('profile', profile.id)}]"
        )
    print(f"\nTargets ({len(catalog.targets)})")
    for target in sorted(catalog.targets.values(), key=lambda t: t.name):
        origin = catalog.origin("target", target.name)
        if target.live_only:
            note = f"live only, needs ${target.api_key_env}" if target.api_key_env else "live only"
        else:
            note = "recorded in the suite's repository" if origin == "built-in" else "your target"
        print(
            f"  {target.name:<20} claims {target.profile:<18} {target.base_url}  ({note})"
            f"  [{origin}]"
        )
    return 0


def _init(options: argparse.Namespace, _: list[str]) -> int:
    from conformance import starter  # noqa: PLC0415

    for path in starter.write(Path(options.dir), options.target, force=options.force):
        print(path)
    print(
        f"Next: fill in {starter.SPECS_FOLDER}/targets/{options.target}.yaml, then "
        f"`conformance run --mode live --specs {starter.SPECS_FOLDER} --target {options.target}`"
    )
    return 0


def _diff(options: argparse.Namespace, _: list[str]) -> int:
    catalog = load(options.specs)
    left, right = options.profiles
    for name in (left, right):
        if name not in catalog.profiles:
            raise ValueError(f"unknown profile '{name}'; {suggest(name, catalog.profiles)}")
    width = 34
    print(f"{'behavior':<40} {left:<{width}} {right}")
    differing = 0
    for behavior_id in sorted(catalog.behaviors):
        a, b = catalog.expectation(left, behavior_id), catalog.expectation(right, behavior_id)
        same = a.outcomes == b.outcomes
        differing += not same
        if same and options.only_differences:
            continue
        mark = " " if same else "≠"
        print(
            f"{mark} {behavior_id:<38} {_expect(a.expectation.expect):<{width}} {_expect(b.expectation.expect)}"
        )
        if not same:
            for profile, resolved in ((left, a), (right, b)):
                source = f"{resolved.expectation.source} (read {resolved.expectation.read})"
                print(_wrap(f"{profile}: {source}"))
    print(f"\n{differing} of {len(catalog.behaviors)} behaviors differ between {left} and {right}.")
    return 0


def _wrap(text: str, width: int = 96, indent: str = "      ") -> str:
    """``text`` filled to ``width`` and indented; a URL is never broken, even if too long."""
    return textwrap.fill(
        text,
        width,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _expect(expect: str | list[str]) -> str:
    return expect if isinstance(expect, str) else " or ".join(expect)


def _serve(options: argparse.Namespace, _: list[str]) -> int:
    from conformance.execute import reference_config  # noqa: PLC0415
    from conformance.reference import dialect, server  # noqa: PLC0415

    catalog = load(options.specs)
    overrides = {}
    for setting in options.set:
        behavior, equals, outcome = setting.partition("=")
        if not equals:
            raise ValueError(f"--set takes BEHAVIOR=OUTCOME, not {setting!r}")
        overrides[behavior] = outcome
    if options.target:
        target = _served_target(catalog, options.target)
        assert target.reference is not None
        dialect_name = target.reference.dialect
        variable = options.api_key_env or target.api_key_env
        config = reference_config(catalog, target, _served_key(variable), overrides)
    else:
        dialect_name = options.dialect or "openai"
        if dialect_name not in catalog.profiles:
            raise ValueError(
                f"unknown dialect '{dialect_name}'; {suggest(dialect_name, catalog.profiles)}"
            )
        variable = options.api_key_env
        switches = dialect.switches_for(catalog, dialect_name, overrides)
        config = server.ServerConfig(switches=switches, api_key=_served_key(variable))
    config = dataclasses.replace(
        config,
        host=options.host,
        port=options.port,
        context_window=options.context_window or config.context_window,
        jitter=options.jitter,
        jitter_seed=options.jitter_seed,
    )
    checks = f"checking the key in ${variable}" if variable else "accepting any key"
    print(
        f"reference server, {dialect_name} dialect, on http://{options.host}:{options.port}/v1, "
        f"{checks}",
        file=sys.stderr,
    )
    server.serve(config)
    return 0


def _served_key(variable: str | None) -> str | None:
    if not variable:
        return None
    key = os.environ.get(variable)
    if not key:
        raise ValueError(
            f"${variable} is not set: the server checks the key it holds, and a run against the "
            "server sends the key that variable holds there (any value will do)"
        )
    return key


def _served_target(catalog: Catalog, name: str) -> Target:
    if name not in catalog.targets:
        raise ValueError(f"unknown target '{name}'; {suggest(name, catalog.targets)}")
    target = catalog.targets[name]
    if target.reference is None:
        raise ValueError(f"target {name} has no reference: block; the suite does not serve it")
    return target


def _schema(options: argparse.Namespace, _: list[str]) -> int:
    from conformance.spec.loader import builtin_specs  # noqa: PLC0415

    out = Path(options.out) if options.out else builtin_specs() / "schema"
    for name, text in schemas().items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)
    return 0


def schemas() -> dict[str, str]:
    """The published JSON Schemas, by file name."""
    from conformance.gate import Baseline  # noqa: PLC0415
    from conformance.results import Results  # noqa: PLC0415
    from conformance.spec.models import BehaviorFile, Profile, Target  # noqa: PLC0415

    models: dict[str, type[BaseModel]] = {
        "behaviors.schema.json": BehaviorFile,
        "profiles.schema.json": Profile,
        "targets.schema.json": Target,
        "results.schema.json": Results,
        "baseline.schema.json": Baseline,
    }
    return {
        name: json.dumps(model.model_json_schema(), indent=2) + "\n"
        for name, model in models.items()
    }
