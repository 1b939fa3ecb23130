"""The test command's own tools: workers by default (scripts/run_tests.py) and a run that is
never silent for long (tests/progress.py). No server."""

from __future__ import annotations

from pathlib import Path

import pytest

from run_tests import MAX_WORKERS, workers

TESTS = Path(__file__).resolve().parent

HEARTBEAT_CONFTEST = """
import sys
sys.path.insert(0, {tests!r})
from progress import install_heartbeat

def pytest_configure(config):
    install_heartbeat(config, interval=0.5)
"""

SLOW_TEST = """
import time
from progress import HEARTBEAT_PLUGIN

def test_quick():
    pass

def test_slow(request):
    beat = request.config.pluginmanager.get_plugin(HEARTBEAT_PLUGIN)
    deadline = time.monotonic() + 60
    while beat.beats < 1 and time.monotonic() < deadline:  # until it spoke, not a set time
        time.sleep(0.05)
    assert beat.beats >= 1
"""


@pytest.mark.parametrize(("args", "cpus", "expected"), [
    ([], 2, ["-n", "2"]),
    ([], 16, ["-n", str(MAX_WORKERS)]),
    ([], 1, []),
    (["-x", "-q", "tests/test_gates.py", "-k", "baseline"], 2, ["-n", "2"]),
    (["-n", "0"], 2, []),
    (["-n3"], 2, []),
    (["--numprocesses=auto"], 2, []),
    (["--dist", "loadfile"], 2, []),
    (["-p", "no:xdist"], 2, []),
    (["-p", "pytester"], 2, ["-n", "2"]),
    (["--collect-only", "-q"], 2, []),
    (["--co"], 2, []),
    (["--help"], 2, []),
    (["--pdb"], 2, []),
    (["-s"], 2, []),
])
def test_the_test_command_runs_on_workers_unless_told_otherwise(
        args: list[str], cpus: int, expected: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    assert workers(args, cpus=cpus) == expected


def test_workers_chosen_in_pytest_addopts_are_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:xdist")
    assert workers([], cpus=2) == []
    monkeypatch.setenv("PYTEST_ADDOPTS", "-q")
    assert workers([], cpus=2) == ["-n", "2"]


def test_a_long_test_is_named_while_it_runs(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HEARTBEAT_CONFTEST.format(tests=str(TESTS)))
    pytester.makepyfile(test_long=SLOW_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["... still running: test_long.py::test_slow (* s)"])
    assert "test_quick" not in "".join(
        line for line in result.outlines if "still running" in line)


def test_no_heartbeat_when_collecting_only(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HEARTBEAT_CONFTEST.format(tests=str(TESTS)) + """
from progress import HEARTBEAT_PLUGIN

def pytest_collection_finish(session):
    print("HEARTBEAT:", session.config.pluginmanager.get_plugin(HEARTBEAT_PLUGIN) is not None)
""")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    collecting = pytester.runpytest_subprocess("--collect-only", "-p", "no:cacheprovider")
    collecting.stdout.fnmatch_lines(["HEARTBEAT: False"])
    running = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    running.stdout.fnmatch_lines(["HEARTBEAT: True"])

