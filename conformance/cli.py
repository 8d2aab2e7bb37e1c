"""The ``conformance`` command: parses arguments and calls the library.

Exit codes of ``conformance run`` (the CI gate, ``conformance.gate.ExitCode``):

- 0: every case as expected: it passed or was observed, or the baseline expects its outcome;
- 1: an unexpected deviation (without ``--baseline``, any deviation);
- 2: no unexpected deviation, but unexpected errors (infrastructure: connection failures,
  5xx, timeouts, a request missing from its cassette); also an interrupted run;
- 4: a usage or spec error: bad arguments, a bad spec or baseline file, an unknown target,
  a missing key for a target named in live mode, an unwritable report folder;
- 5: no case was selected.

Unexpected passes (the baseline expects a deviation that no longer happens) are reported
but do not change the exit code. The other commands exit 0, or 4 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from conformance import __version__
from conformance.spec.errors import SpecError
from conformance.spec.loader import suggest

if TYPE_CHECKING:
    from conformance.catalog import Catalog
    from conformance.results import Results

EXIT_USAGE = 4  # = conformance.gate.ExitCode.USAGE_ERROR
DEFAULT_PORT = 8000
MODES = ("replay", "record", "live")


def load(specs: Path) -> Catalog:
    """The checked catalog. Imported late: the probes pull in the openai SDK, and `run` must
    not import it before pytest starts, or pytest cannot rewrite the anyio plugin's asserts."""
    from conformance.catalog import load as load_catalog  # noqa: PLC0415

    return load_catalog(specs)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``conformance`` command."""
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
        print(f"conformance: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conformance", description="Conformance tests for OpenAI-compatible APIs."
    )
    parser.add_argument("--version", action="version", version=f"conformance {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the suite (replaying cassettes by default)")
    run.add_argument("--target", action="append", default=[], help="a target to run (repeatable)")
    run.add_argument(
        "--behavior", action="append", default=[], help="a behavior to run (repeatable)"
    )
    run.add_argument("--mode", choices=MODES, default=MODES[0])
    run.add_argument(
        "--specs", default=None, metavar="DIR", help="the specs folder (default ./specs)"
    )
    run.add_argument("--cassettes", default="cassettes", metavar="DIR")
    run.add_argument("--report-dir", default="reports", metavar="DIR")
    run.add_argument(
        "--base-url", default=None, help="send the one selected target's requests here"
    )
    run.add_argument("--server-version", default=None, help="stored in cassettes and results")
    run.add_argument(
        "--concurrency",
        default=None,
        metavar="N",
        help="live runs: cases probed at once (default: what the targets' max_concurrency "
        "allows together, at most 64)",
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

    report = commands.add_parser(
        "report", help="rebuild index.html and summary.md from a results file"
    )
    report.add_argument("results", nargs="?", default="reports/results.json", metavar="RESULTS")
    report.add_argument(
        "--out", default=None, metavar="DIR", help="where to write (default: next to RESULTS)"
    )
    report.add_argument("--previous", action="append", default=[], metavar="RESULTS")
    report.add_argument("--baseline", default=None, metavar="FILE")
    report.set_defaults(handler=_report)

    compare = commands.add_parser("compare", help="what changed between two runs")
    compare.add_argument("old", metavar="OLD.json")
    compare.add_argument("new", metavar="NEW.json")
    compare.add_argument(
        "--html",
        default="reports/compare.html",
        metavar="FILE",
        help="also write the changes as HTML here ('' for none)",
    )
    compare.set_defaults(handler=_compare)

    baseline = commands.add_parser("baseline", help="manage a CI baseline")
    baseline_commands = baseline.add_subparsers(required=True, metavar="ACTION")
    update = baseline_commands.add_parser(
        "update", help="write a baseline that expects a run's deviations"
    )
    update.add_argument("--results", default="reports/results.json", metavar="RESULTS")
    update.add_argument("--baseline", default="conformance-baseline.yaml", metavar="FILE")
    update.add_argument(
        "--target",
        action="append",
        default=[],
        help="update only these targets' entries (default: every recorded target)",
    )
    update.set_defaults(handler=_baseline_update)

    listing = commands.add_parser("list", help="list behaviors, profiles and targets")
    listing.add_argument("--specs", default="specs", metavar="DIR")
    listing.set_defaults(handler=_list)

    diff = commands.add_parser("diff", help="two profiles' documented semantics side by side")
    diff.add_argument("profiles", nargs=2, metavar="PROFILE")
    diff.add_argument("--specs", default="specs", metavar="DIR")
    diff.add_argument("--only-differences", action="store_true")
    diff.set_defaults(handler=_diff)

    serve = commands.add_parser("serve", help="run the reference server on 127.0.0.1")
    serve.add_argument("--dialect", default="openai", help="the profile that sets every switch")
    serve.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="BEHAVIOR=OUTCOME",
        help="override one switch (repeatable)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--context-window", type=int, default=256)
    serve.add_argument(
        "--jitter",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="the share of temperature-0 requests that diverge after a few tokens",
    )
    serve.add_argument("--jitter-seed", type=int, default=None, metavar="N")
    serve.add_argument(
        "--api-key-env",
        default=None,
        metavar="NAME",
        help="require the key held in this environment variable",
    )
    serve.add_argument("--specs", default="specs", metavar="DIR")
    serve.set_defaults(handler=_serve)

    schema = commands.add_parser("schema", help="write the JSON Schemas of spec and results files")
    schema.add_argument("--out", default="specs/schema", metavar="DIR")
    schema.set_defaults(handler=_schema)
    return parser


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
        "-p",
        "no:anyio",
        "-p",
        "no:hypothesispytest",
        # The suite's one test asserts nothing; rewriting every plugin's asserts costs seconds.
        "--assert=plain",
        # Failures and errors in the short summary; skips and known deviations are in the
        # report, and one line each would bury the summary (-- -ra brings them back).
        "-rfE",
    ]
    for name in ("target", "behavior"):
        for value in getattr(options, name):
            arguments += [f"--{name}", value]
    for name in ("specs", "base_url", "server_version", "baseline", "concurrency"):
        value = getattr(options, name)
        if value:
            arguments += [f"--{name.replace('_', '-')}", value]
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
    from conformance import gate  # noqa: PLC0415
    from conformance.report import html, markdown  # noqa: PLC0415

    results = _read_results(options.results)
    previous = [_read_results(path) for path in options.previous]
    baseline = gate.load(Path(options.baseline)) if options.baseline else None
    report = gate.evaluate(
        results.cases, baseline, Path(options.baseline) if options.baseline else None
    )
    out = Path(options.out) if options.out else Path(options.results).parent
    html.write(results, out / "index.html", previous=previous, gate=report)
    markdown.write(results, out / "summary.md", gate=report)
    print(out / "index.html")
    print(out / "summary.md")
    return 0


def _compare(options: argparse.Namespace, _: list[str]) -> int:
    from conformance import compare  # noqa: PLC0415
    from conformance.report import html  # noqa: PLC0415

    comparison = compare.compare(_read_results(options.old), _read_results(options.new))
    print(compare.render_text(comparison, options.old, options.new))
    if options.html:
        path = Path(options.html)
        html.write_text(html.render_comparison(comparison, options.old, options.new), path)
        print(f"HTML: {path}")
    return 0


def _baseline_update(options: argparse.Namespace, _: list[str]) -> int:
    from conformance import gate  # noqa: PLC0415

    results = _read_results(options.results)
    path = Path(options.baseline)
    existing = gate.load(path) if path.exists() else None
    updated = gate.update(results, existing, options.target)
    gate.write(updated, path)
    entries = sum(len(entries) for entries in updated.targets.values())
    print(
        f"{path}: {entries} entr{'y' if entries == 1 else 'ies'} for {len(updated.targets)} targets"
    )
    return 0


def _list(options: argparse.Namespace, _: list[str]) -> int:
    catalog = load(Path(options.specs))
    print(f"Behaviors ({len(catalog.behaviors)})")
    for behavior in sorted(catalog.behaviors.values(), key=lambda b: b.id):
        variants = "/".join("stream" if s else "nostream" for s in behavior.variants.stream)
        apis = ",".join(api.value for api in behavior.apis)
        print(f"  {behavior.id:<40} {apis:<17} {variants:<16} {behavior.title}")
        print(f"  {'':<40} outcomes: {', '.join(behavior.outcomes)}")
    print(f"\nProfiles ({len(catalog.profiles)})")
    for profile in sorted(catalog.profiles.values(), key=lambda p: p.id):
        extends = f" (extends {profile.extends})" if profile.extends else ""
        print(f"  {profile.id:<20} {profile.title}{extends}")
    print(f"\nTargets ({len(catalog.targets)})")
    for target in sorted(catalog.targets.values(), key=lambda t: t.name):
        note = (
            "live only, needs $" + str(target.api_key_env)
            if target.live_only
            else "cassettes shipped"
        )
        print(f"  {target.name:<20} claims {target.profile:<18} {target.base_url}  ({note})")
    return 0


def _diff(options: argparse.Namespace, _: list[str]) -> int:
    catalog = load(Path(options.specs))
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
                print(textwrap.indent(textwrap.fill(f"{profile}: {source}", 96), "      "))
    print(f"\n{differing} of {len(catalog.behaviors)} behaviors differ between {left} and {right}.")
    return 0


def _expect(expect: str | list[str]) -> str:
    return expect if isinstance(expect, str) else " or ".join(expect)


def _serve(options: argparse.Namespace, _: list[str]) -> int:
    from conformance.reference import dialect, server  # noqa: PLC0415

    catalog = load(Path(options.specs))
    if options.dialect not in catalog.profiles:
        raise ValueError(
            f"unknown dialect '{options.dialect}'; {suggest(options.dialect, catalog.profiles)}"
        )
    overrides = {}
    for setting in options.set:
        behavior, equals, outcome = setting.partition("=")
        if not equals:
            raise ValueError(f"--set takes BEHAVIOR=OUTCOME, not {setting!r}")
        overrides[behavior] = outcome
    api_key = None
    if options.api_key_env:
        api_key = os.environ.get(options.api_key_env)
        if not api_key:
            raise ValueError(f"--api-key-env {options.api_key_env}: the variable is not set")
    switches = dialect.switches_for(catalog, options.dialect, overrides)
    config = server.ServerConfig(
        switches=switches,
        context_window=options.context_window,
        api_key=api_key,
        jitter=options.jitter,
        jitter_seed=options.jitter_seed,
        host=options.host,
        port=options.port,
    )
    print(
        f"reference server, {options.dialect} dialect, on http://{options.host}:{options.port}/v1",
        file=sys.stderr,
    )
    server.serve(config)
    return 0


def _schema(options: argparse.Namespace, _: list[str]) -> int:
    for name, text in schemas().items():
        path = Path(options.out) / name
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
