"""Sessions for everyone: the default replays the shipped cassettes and writes reports/.

nox                      # = nox -s conformance: replay every shipped cassette
nox -s tests             # the project's own tests
nox -s record -- --target reference-openai
nox -s live -- --target openai      # needs OPENAI_API_KEY
nox -s lint
nox -s report -- reports/results.json --previous old/results.json
nox -s peers -- llamacpp            # record a real peer (vllm, llamacpp, transformers, litellm, all)
nox -s bench                        # benchmarks/bench.py
"""

from __future__ import annotations

import nox

nox.options.sessions = ["conformance"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session, extras: str = "") -> None:
    session.install("-e", f".{extras}")


@nox.session
def conformance(session: nox.Session) -> None:
    """Replay every shipped cassette and write reports/ (no keys, no network).

    Without arguments the shipped baseline applies, so the session succeeds exactly when the
    replay reproduces the recorded outcomes; any arguments replace it.
    """
    _install(session)
    arguments = session.posargs or ["--baseline", "cassettes/baseline.yaml"]
    session.run("conformance", "run", *arguments)


@nox.session
def tests(session: nox.Session) -> None:
    """The project's own tests, including the mutation matrix against the reference server."""
    _install(session, "[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def record(session: nox.Session) -> None:
    """Run live and write cassettes (default: the reference targets, which need no key)."""
    _install(session)
    arguments = session.posargs or ["--target", "reference-*"]
    session.run("conformance", "run", "--mode", "record", *arguments)


@nox.session
def live(session: nox.Session) -> None:
    """Run live without cassettes; name targets with -- --target NAME."""
    _install(session)
    session.run("conformance", "run", "--mode", "live", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Rebuild index.html and summary.md from a results file (default reports/results.json)."""
    _install(session)
    session.run("conformance", "report", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy."""
    _install(session, "[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def peers(session: nox.Session) -> None:
    """Install, start and record real peers: ``nox -s peers -- PEER|all [-- run arguments]``.

    Deviations are findings, not failures of the recording, so exit code 1 is a success here.
    """
    _install(session, "[peers]")
    arguments = session.posargs or ["all"]
    session.run("python", "-m", "conformance.peers", "record", *arguments, success_codes=[0, 1])


@nox.session
def bench(session: nox.Session) -> None:
    """Print the benchmark's figures: replay speed, a live run under latency, tokens, report,
    and the verdicts of live runs against a jittered reference server."""
    _install(session)
    session.run("python", "benchmarks/bench.py", *session.posargs)
