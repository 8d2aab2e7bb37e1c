"""Sessions for everyone: the default replays the shipped cassettes and writes reports/.

nox                      # = nox -s conformance: replay every shipped cassette
nox -s tests             # the project's own tests (pytest -n auto)
nox -s record -- --target reference-openai
nox -s live -- --target openai      # needs OPENAI_API_KEY
nox -s lint                         # ruff, mypy, actionlint
nox -s report -- reports/results.json --previous old/results.json
nox -s peers -- llamacpp-server     # record a real peer (see the peers session)
nox -s bench                        # benchmarks/bench.py

CI (.ci/run) runs `nox -s conformance tests lint`, so CI and these sessions cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

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
    _install(session, "[dev,peers]")  # the peers' model builder has tests too
    session.run("pytest", *(session.posargs or ["-n", "auto"]))


@nox.session
def record(session: nox.Session) -> None:
    """Run live and write cassettes (default: the reference targets, which need no key)."""
    _install(session)
    arguments = session.posargs or ["--target", "reference-*"]
    session.run("conformance", "run", "--mode", "record", *arguments)


@nox.session
def live(session: nox.Session) -> None:
    """Run live without cassettes (default: the reference targets); -- --target NAME."""
    _install(session)
    arguments = session.posargs or ["--target", "reference-*"]
    session.run("conformance", "run", "--mode", "live", *arguments)


@nox.session
def report(session: nox.Session) -> None:
    """Rebuild index.html and summary.md from results files (default reports/results.json,
    written first by a replay when it is not there)."""
    _install(session)
    if not session.posargs and not Path("reports/results.json").is_file():
        session.run("conformance", "run", "--baseline", "cassettes/baseline.yaml")
    session.run("conformance", "report", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format), mypy, and actionlint on the GitHub Action and workflows."""
    _install(session, "[dev,peers]")  # mypy follows the peers' code into numpy
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("python", ".ci/actionlint.py")


@nox.session
def peers(session: nox.Session) -> None:
    """Install, start and record real peers: ``nox -s peers -- PEER|all [-- run arguments]``.

    PEER is vllm, llamacpp, llamacpp-server, transformers or litellm (``litellm --upstream
    PEER`` fronts another peer than llama-cpp-python).

    Deviations are findings, not failures of the recording, so exit code 1 is a success here.
    """
    _install(session, "[peers]")
    arguments = session.posargs or ["all"]
    session.run("python", "-m", "conformance.peers", "record", *arguments, success_codes=[0, 1])


@nox.session
def bench(session: nox.Session) -> None:
    """Print the benchmark's figures, each against its goal: the replay against bare pytest
    and its peak RSS, the report's size and load time in Chromium, a live run at 1 s a request
    against its bound, tokens, the report's build, and live runs against a jittered server
    (``nox -s bench -- --jitter-runs 0 0`` leaves those out)."""
    _install(session)
    session.run("python", "benchmarks/bench.py", *session.posargs)
