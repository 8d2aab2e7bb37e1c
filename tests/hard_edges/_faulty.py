"""One case run against the reference server with a fault injected: the tests of faults,
transient failures and redirects share it."""

from __future__ import annotations

from pathlib import Path

from conformance.catalog import load
from conformance.execute import Runner, Settings
from conformance.plan import Case
from conformance.recording import Mode
from conformance.reference.faults import FaultSpec
from conformance.reference.server import RunningServer
from conformance.results import CaseResult
from tests.conftest import SPECS

CATALOG = load(SPECS)


def execute(
    server: RunningServer, case: Case, spec: FaultSpec, mode: Mode = Mode.LIVE, **settings: Path
) -> CaseResult:
    """``case``'s result against ``server`` with ``spec`` injected (``settings``: e.g. the
    cassettes folder for a recording or a replay)."""
    server.faults.configure(spec)
    runner = Runner(CATALOG, Settings(mode=mode, base_url=server.base_url, **settings))
    try:
        return runner.execute(case)
    finally:
        runner.close()
