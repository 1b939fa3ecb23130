"""Repetitions: each example runs N times, the pass rule decides, flaky cases are named
(dataset 'qa', a real Phoenix)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

FLAKY_APP = """
import threading

lock = threading.Lock()
calls = {}

def answer(input):
    question = input["question"]
    with lock:
        calls[question] = calls.get(question, 0) + 1
        n = calls[question]
    if "Hamlet" in question:  # right on the 1st and 3rd call, wrong on the 2nd
        return "Shakespeare" if n % 2 else "Marlowe"
    return {"What is the capital of France?": "Paris", "What is 2 + 2?": "4"}.get(
        question, "Barcelona")
"""

RUN = ("--phoenix-dataset=qa", "--phoenix-task=flaky:answer", "--phoenix-repetitions=3",
       "-p", "no:cacheprovider")


@pytest.fixture
def flaky_app(pytester: pytest.Pytester, phoenix_env: str, qa_dataset: dict) -> pytest.Pytester:
    pytester.makepyfile(flaky=FLAKY_APP)
    pytester.syspathinsert()
    return pytester


def test_every_run_must_pass_by_default_and_flaky_cases_are_named(
        flaky_app: pytest.Pytester, admin: Any, qa_dataset: dict[str, Any]) -> None:
    result = flaky_app.runpytest(*RUN, "--phoenix-experiment-name=reps-all")
    result.assert_outcomes(passed=2, failed=2)  # one test per example, not per run
    result.stdout.fnmatch_lines([
        "ex*-who-wrote-hamlet failed: 2 of 3 runs passed; pass rule all needs 3: flaky",
        "annotation*passed*score range*mean*labels",
        "exact_match*2/3*0..1*0.667*true×2, false×1",
        "edit_distance*recorded*0..9*3",
        "",
        "first failing run (repetition 2):",
        "dataset 'qa', example *, repetition 2",
        "output:    Marlowe",
    ])
    result.stdout.fnmatch_lines([
        "repetitions: 3 runs per case, pass rule all: 4 cases, 2 stable-pass, 1 flaky, "
        "1 stable-fail",
        "  flaky: ex*-who-wrote-hamlet (2/3 runs passed; fails the rule)",
    ])
    experiment = next(e for e in admin.experiments(qa_dataset["id"])
                      if e.get("name") == "reps-all")
    assert experiment["repetitions"] == 3
    runs = admin.runs(experiment["id"])
    assert Counter(r["repetition_number"] for r in runs) == {1: 4, 2: 4, 3: 4}
    assert len({(r["dataset_example_id"], r["repetition_number"]) for r in runs}) == 12


def test_majority_any_and_k_rules(flaky_app: pytest.Pytester) -> None:
    result = flaky_app.runpytest(*RUN, "--phoenix-no-upload", "--phoenix-pass-rule=majority")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["  flaky: ex*-who-wrote-hamlet (2/3 runs passed; passes the "
                                 "rule)"])
    result = flaky_app.runpytest(*RUN, "--phoenix-no-upload", "--phoenix-pass-rule=3")
    result.assert_outcomes(passed=2, failed=2)
    result = flaky_app.runpytest(*RUN, "--phoenix-no-upload", "--phoenix-pass-rule=any",
                                 "--phoenix-fail-under=exact_match=0.5")
    result.assert_outcomes(passed=3, failed=1)
    # A gate counts every run: 3 + 3 + 2 + 0 of 12 pass exact_match.
    result.stdout.fnmatch_lines(["*exact_match=0.5*qa*12*66.7%*pass*"])


@pytest.mark.parametrize(("rule", "message"), [
    ("4", "*'4': K must be between 1 and the number of repetitions (3)"),
    ("most", "*'most' is not a pass rule: use all, majority, any or a number of runs K"),
])
def test_a_bad_pass_rule_is_a_usage_error(flaky_app: pytest.Pytester, rule: str,
                                          message: str) -> None:
    result = flaky_app.runpytest(*RUN, f"--phoenix-pass-rule={rule}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --phoenix-pass-rule: {message}"])
