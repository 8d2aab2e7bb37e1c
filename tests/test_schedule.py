"""The order of a live run's cases: the longest recorded chains of requests first."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from conformance.catalog import load
from conformance.plan import Case, plan
from conformance.schedule import longest_first, recorded_requests
from tests.conftest import REPO, SPECS

CASSETTES = REPO / "cassettes"
CATALOG = load(SPECS)
#: Cases whose shipped cassettes hold from 0 to 5 requests.
CASES = plan(CATALOG, targets=["reference-openai", "vllm"], behaviors=["completions", "max_tokens"])


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_count_is_the_number_of_interactions_vcrpy_reads(case: Case) -> None:
    path = case.cassette(CASSETTES)
    if not path.exists():
        assert recorded_requests(path) is None
        return
    interactions = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)["interactions"]
    assert recorded_requests(path) == len(interactions)


def test_the_cases_chosen_hold_chains_of_every_length_from_none_to_five() -> None:
    counts = {recorded_requests(case.cassette(CASSETTES)) for case in CASES}
    assert {0, 1, 2, 3, 4, 5} <= counts


def test_no_cassette_is_no_count(tmp_path: Path) -> None:
    assert recorded_requests(tmp_path / "missing.yaml") is None
    assert recorded_requests(tmp_path) is None  # a folder is no cassette either


def _link(cases: list[Case], root: Path) -> None:
    """The shipped cassettes of ``cases`` under ``root``, as links: nothing is written."""
    for case in cases:
        link = case.cassette(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(case.cassette(CASSETTES))


@given(
    order=st.permutations(CASES),
    recorded=st.sets(st.sampled_from([case.name for case in CASES])),
)
def test_longest_first_puts_unknown_then_most_requests_first_and_keeps_ties(
    order: list[Case], recorded: set[str]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _link([case for case in CASES if case.name in recorded], root)
        scheduled = longest_first(order, root)
        count = {case.name: recorded_requests(case.cassette(root)) for case in CASES}
    assert sorted(case.name for case in scheduled) == sorted(case.name for case in order)
    counts = [count[case.name] for case in scheduled]
    unknown = counts.count(None)
    assert counts[:unknown] == [None] * unknown
    known = [count for count in counts if count is not None]
    assert known == counts[unknown:]
    assert known == sorted(known, reverse=True)
    for value in set(counts):  # equal counts keep the order they were given in
        tied = [case.name for case in scheduled if count[case.name] == value]
        assert tied == [case.name for case in order if count[case.name] == value]
