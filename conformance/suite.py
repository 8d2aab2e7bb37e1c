"""The conformance suite: one test, which the plugin runs once per case.

Run it with ``conformance run`` or ``pytest --pyargs conformance.suite``. Each item is
named ``<behavior>[<target>-<api>-<variant>]``. The probe runs while the item's fixture is
set up, so a case with no observation is a pytest *error*, and a deviation is a *failure*.
"""

import pytest

from conformance.results import CaseResult
from conformance.verdict import Verdict


def test_behavior(conformance_case: CaseResult) -> None:
    """The observed outcome is one the target's profile documents."""
    if conformance_case.verdict is Verdict.DEVIATION:
        pytest.fail(conformance_case.explain(), pytrace=False)
