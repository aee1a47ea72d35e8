"""The lanes of tests/lanes.py: a test that starts a process is marked e2e by what it uses, and any other test that
starts one fails. Small test sessions run in-process (pytester) with the same conftest hooks as this suite."""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest

from tests import lanes
from tests.lanes import spawn_guard

__all__ = ["spawn_guard"]


def pytest_configure(config):
    lanes.install_audit_hook()
    config.addinivalue_line("markers", "e2e: starts processes")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    lanes.mark_end_to_end(items)
"""

HELPERS = """
import subprocess


def run_true():
    subprocess.run(["true"], check=True)


class Stack:
    def start(self):
        run_true()
"""

TESTS = """
import importlib
import multiprocessing
import os

import pytest

import helpers_for_lanes
from helpers_for_lanes import Stack, run_true


def test_plain():
    assert 1 + 1 == 2


def test_through_a_helper():
    run_true()


def test_through_a_class():
    Stack().start()


def test_through_a_module_attribute():
    helpers_for_lanes.run_true()


@pytest.fixture
def stack():
    Stack().start()


def test_through_a_fixture(stack):
    pass


def test_forks():
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)


def test_multiprocessing():
    process = multiprocessing.get_context("spawn").Process(target=print)
    process.start()
    process.join()


def test_hidden_from_the_detection():
    getattr(importlib.import_module("sub" + "process"), "run")(["true"], check=True)


@pytest.mark.e2e
def test_hidden_but_marked_by_hand():
    getattr(importlib.import_module("sub" + "process"), "run")(["true"], check=True)
"""


@pytest.fixture
def session(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(helpers_for_lanes=HELPERS, test_sample=TESTS)
    pytester.syspathinsert()
    return pytester


@pytest.mark.parametrize(
    ("lane", "expected"),
    [
        ("not e2e", {"test_plain", "test_hidden_from_the_detection"}),
        (
            "e2e",
            {
                "test_through_a_helper",
                "test_through_a_class",
                "test_through_a_module_attribute",
                "test_through_a_fixture",
                "test_forks",
                "test_multiprocessing",
                "test_hidden_but_marked_by_hand",
            },
        ),
    ],
)
def test_what_a_test_uses_marks_it_e2e_and_m_selects_by_it(
    session: pytest.Pytester, lane: str, expected: set[str]
) -> None:
    collected = session.runpytest("-m", lane, "--collect-only", "-q")
    assert {line.split("::")[-1] for line in collected.outlines if "::" in line} == expected


def test_the_e2e_lane_may_start_processes(session: pytest.Pytester) -> None:
    result = session.runpytest("-m", "e2e", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7, deselected=2)


def test_outside_the_e2e_lane_starting_a_process_fails_with_how_to_fix_it(session: pytest.Pytester) -> None:
    result = session.runpytest("-m", "not e2e", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, deselected=7)
    result.stdout.fnmatch_lines(
        ["*ProcessSpawnRefused: test_sample.py::test_hidden_from_the_detection started a process*@pytest.mark.e2e*"]
    )
