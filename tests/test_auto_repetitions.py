"""--phoenix-repetitions=auto:N: each example runs once, and again only while its verdict is
unsettled, at most N times (a dataset of our own, a real Phoenix, pytester runs, -n 2).

The task is built to be flaky in known ways. It answers a confidence, which the code evaluator
``confidence`` (threshold >= 0.5) passes on; per question, the n-th call of the process answers:

* ``steady``: 0.9 (a clear pass);
* ``wrong``: 0.1 (a clear fail);
* ``borderline flaky``: 0.53 on odd calls, 0.47 on even ones (both within 0.05 of 0.5);
* ``borderline steady``: 0.52 (a pass, always near the threshold);
* ``error first``: nothing on the 1st call (the evaluator raises), 0.9 after;
* ``odd right even wrong``: 0.9 on odd calls, 0.1 on even ones (clear each time).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_phoenix_evals._core.repeat import Repeated, decided, parse_repetitions, settled
from pytest_phoenix_evals._core.types import Case, CaseResult, Example, Group, Score, Verdict
from pytest_phoenix_evals._core.verdict import Threshold
from pytest_phoenix_evals._options import OPTIONS

APP = '''
import threading

lock = threading.Lock()
calls = {}

SCRIPT = {
    "steady": lambda n: 0.9,
    "wrong": lambda n: 0.1,
    "borderline flaky": lambda n: 0.53 if n % 2 else 0.47,
    "borderline steady": lambda n: 0.52,
    "error first": lambda n: None if n == 1 else 0.9,
    "odd right even wrong": lambda n: 0.9 if n % 2 else 0.1,
}

def answer(input):
    question = input["question"]
    with lock:
        calls[question] = calls.get(question, 0) + 1
        n = calls[question]
    return {"confidence": SCRIPT[question](n)}
'''

CONFTEST = '''
import json, os
from pytest_phoenix_evals import evaluator

@evaluator(threshold=">=0.5")
def confidence(output):
    return float(output["confidence"])  # None: a TypeError, the evaluator's error

def pytest_phoenix_evals_evaluators(config, dataset):
    return [confidence]

def pytest_phoenix_evals_case_result(config, result):
    # One line per run, from whichever process ran it (xdist workers included).
    with open(config.rootpath / f"runs-{os.getpid()}.jsonl", "a") as out:
        out.write(json.dumps([result.case.example.input["question"], result.case.repetition,
                              result.passed]) + "\\n")
'''

QUESTIONS = ["steady", "wrong", "borderline flaky", "borderline steady", "error first",
             "odd right even wrong"]


@pytest.fixture
def auto_app(pytester: pytest.Pytester, phoenix_env: str, admin: Any) -> tuple[pytest.Pytester,
                                                                               str, str]:
    """(pytester with the app and conftest, the dataset's name, its id)."""
    name = f"auto-{uuid.uuid4().hex[:8]}"
    dataset_id = admin.create_dataset(name, [
        {"input": {"question": q}, "output": {}, "metadata": {}} for q in QUESTIONS])
    pytester.makepyfile(auto_app=APP)
    pytester.makeconftest(CONFTEST)
    pytester.syspathinsert()
    return pytester, name, dataset_id


def _runs(pytester: pytest.Pytester) -> dict[str, list[tuple[int, bool]]]:
    """Each question's runs (repetition, passed), as the case hook saw them; the logs are
    removed, for the next run."""
    runs: dict[str, list[tuple[int, bool]]] = {q: [] for q in QUESTIONS}
    for log in Path(pytester.path).glob("runs-*.jsonl"):
        for line in log.read_text().splitlines():
            question, repetition, passed = json.loads(line)
            runs[question].append((repetition, passed))
        log.unlink()
    return {q: sorted(r) for q, r in runs.items()}


def _run_args(name: str, *extra: str) -> list[str]:
    return [f"--phoenix-dataset={name}", "--phoenix-task=auto_app:answer",
            "-p", "no:cacheprovider", *extra]


# --- against a real Phoenix -------------------------------------------------------------------

def test_auto_runs_again_only_the_unsettled_cases_and_says_what_it_cost(
        auto_app: tuple[pytest.Pytester, str, str], admin: Any) -> None:
    pytester, name, dataset_id = auto_app
    experiment_name = f"auto-all-{uuid.uuid4().hex[:8]}"
    result = pytester.runpytest(*_run_args(name, "--phoenix-repetitions=auto:5",
                                           f"--phoenix-experiment-name={experiment_name}"))
    # One test per example; pass rule all over at most 5 runs.
    result.assert_outcomes(passed=3, failed=3)
    runs = _runs(pytester)
    assert runs == {
        "steady": [(1, True)],                      # clear pass: settled by one run
        "wrong": [(1, False)],                      # clear fail: settled by one run
        "borderline flaky": [(1, True), (2, False)],  # near: again; a fail decides 'all'
        "borderline steady": [(r, True) for r in range(1, 6)],  # near every time: to the bound
        "error first": [(1, False)],                # an error fails, which decides 'all'
        "odd right even wrong": [(1, True)],        # clear, so never found flaky (documented)
    }
    result.stdout.fnmatch_lines([
        "ex*-borderline-flaky failed: 1 of 2 runs passed (auto, at most 5); pass rule all "
        "needs 5 of 5: flaky",
    ])
    result.stdout.fnmatch_lines([
        "repetitions: auto, at most 5 runs per case, pass rule all: 6 cases, 3 stable-pass, "
        "1 flaky, 2 stable-fail",
        "  runs: 11 for 6 cases: 5 extra run(s), 2 case(s) run again until settled (a fixed 5 "
        "would have made 30)",
        "  flaky: ex*-borderline-flaky (1/2 runs passed; fails the rule)",
    ])
    # The experiment is made for the bound; the runs not made are simply absent.
    experiment = next(e for e in admin.experiments(dataset_id)
                      if e.get("name") == experiment_name)
    assert experiment["repetitions"] == 5
    # Phoenix counts the 19 runs not made as missing (and lists them as incomplete runs).
    assert (experiment["successful_run_count"], experiment["missing_run_count"]) == (11, 19)
    server_runs = admin.runs(experiment["id"])
    assert len(server_runs) == 11
    assert Counter(r["repetition_number"] for r in server_runs) == {1: 6, 2: 2, 3: 1, 4: 1, 5: 1}
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_the_pass_rule_decides_how_far_a_case_runs(
        auto_app: tuple[pytest.Pytester, str, str]) -> None:
    pytester, name, _ = auto_app
    result = pytester.runpytest(*_run_args(name, "--phoenix-repetitions=auto:5",
                                           "--phoenix-pass-rule=majority",
                                           "--phoenix-no-upload"))
    result.assert_outcomes(passed=5, failed=1)
    assert {q: len(r) for q, r in _runs(pytester).items()} == {
        "steady": 1, "wrong": 1,
        "borderline flaky": 5,   # P F P F P: 3 of 5 only at the 5th run
        "borderline steady": 3,  # 3 passes decide a majority of 5
        "error first": 4,        # E P P P: the 3rd pass at the 4th run
        "odd right even wrong": 1}
    result.stdout.fnmatch_lines([
        "  runs: 15 for 6 cases: 9 extra run(s), 3 case(s) run again until settled (a fixed 5 "
        "would have made 30)",
        "  flaky: ex*-borderline-flaky (3/5 runs passed; passes the rule)",
        "  flaky: ex*-error-first (3/4 runs passed; passes the rule)",
    ])

    result = pytester.runpytest(*_run_args(name, "--phoenix-repetitions=auto:5",
                                           "--phoenix-pass-rule=any", "--phoenix-no-upload"))
    result.assert_outcomes(passed=5, failed=1)
    assert {q: len(r) for q, r in _runs(pytester).items()} == {
        "steady": 1, "wrong": 1, "borderline flaky": 1, "borderline steady": 1,
        "error first": 2,  # the error settles nothing; the pass after it decides 'any'
        "odd right even wrong": 1}


def test_auto_under_xdist_counts_the_runs_made_in_the_gates(
        auto_app: tuple[pytest.Pytester, str, str], admin: Any) -> None:
    pytester, name, dataset_id = auto_app
    experiment_name = f"auto-n2-{uuid.uuid4().hex[:8]}"
    result = pytester.runpytest_subprocess(*_run_args(
        name, "-n", "2", "--phoenix-repetitions=auto:5",
        f"--phoenix-experiment-name={experiment_name}",
        "--phoenix-fail-under=confidence=0.7"))
    result.assert_outcomes(passed=3, failed=3)
    assert {q: len(r) for q, r in _runs(pytester).items()} == {
        "steady": 1, "wrong": 1, "borderline flaky": 2, "borderline steady": 5,
        "error first": 1, "odd right even wrong": 1}
    result.stdout.fnmatch_lines([
        "  runs: 11 for 6 cases: 5 extra run(s), 2 case(s) run again until settled (a fixed 5 "
        "would have made 30)",
    ])
    # The gate counts the 11 runs made (8 passed), none as "did not run".
    result.stdout.fnmatch_lines(["*confidence=0.7*11*72.7%*pass*"])
    assert "did not run" not in result.stdout.str()
    experiment = next(e for e in admin.experiments(dataset_id)
                      if e.get("name") == experiment_name)
    assert len(admin.runs(experiment["id"])) == 11


def test_stopped_early_every_run_made_is_observed_and_in_phoenix(
        auto_app: tuple[pytest.Pytester, str, str], admin: Any) -> None:
    """-x stops at the 2nd case; the runs the other cases had made by then (started ahead)
    are told to the case hook and uploaded all the same."""
    pytester, name, dataset_id = auto_app
    experiment_name = f"auto-x-{uuid.uuid4().hex[:8]}"
    result = pytester.runpytest(*_run_args(name, "-x", "--phoenix-repetitions=auto:5",
                                           f"--phoenix-experiment-name={experiment_name}"))
    result.assert_outcomes(passed=1, failed=1)
    observed = sum(len(r) for r in _runs(pytester).values())
    experiment = next(e for e in admin.experiments(dataset_id)
                      if e.get("name") == experiment_name)
    assert observed == len(admin.runs(experiment["id"])) >= 2


@pytest.mark.parametrize(("value", "message"), [
    ("auto:1", "'auto:1': the bound of auto is a whole number of runs >= 2, for example auto:5 "
               "(auto:1 would be one run: leave the option out)"),
    ("auto:many", "'auto:many': the bound of auto is a whole number of runs >= 2*"),
    ("lots", "'lots' is not an integer >= 1, nor auto:N (each example once, again only while "
             "its verdict is unsettled, at most N times)"),
])
def test_a_bad_repetitions_value_is_a_usage_error(
        auto_app: tuple[pytest.Pytester, str, str], value: str, message: str) -> None:
    pytester, name, _ = auto_app
    result = pytester.runpytest(*_run_args(name, f"--phoenix-repetitions={value}"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --phoenix-repetitions: {message}"])
    result = pytester.runpytest(*_run_args(name, "--phoenix-repetitions=auto:3",
                                           "--phoenix-pass-rule=4"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --phoenix-pass-rule: '4': K must be between 1 and the "
                                 "number of repetitions (3)"])


# --- the rule itself (pure) -------------------------------------------------------------------

_GROUP = Group("dataset", "rules", "rules", "ds", "rules", "v1")
_EXAMPLE = Example(id="RGF0YXNldEV4YW1wbGU6MQ==", input={"question": "q"}, reference={},
                   metadata={}, dataset_name="rules", dataset_id="ds", version_id="v1")
_T = {"s": Threshold("s", ">=", 0.5)}


def _result(score: float | None, repetition: int = 1) -> CaseResult:
    """One run scored ``score`` by annotation ``s`` (None: the evaluator errored)."""
    now = datetime.now(UTC)
    case = Case(_EXAMPLE, f"ex1-q-rep{repetition}", _GROUP, repetition)
    if score is None:
        return CaseResult(case, start_time=now, end_time=now,
                          scores=[Score("s", "s", error="boom")],
                          verdicts=[Verdict("error", "the evaluator errored")])
    ok = score >= 0.5
    return CaseResult(case, start_time=now, end_time=now, scores=[Score("s", "s", score=score)],
                      verdicts=[Verdict("pass" if ok else "fail", "score must be >= 0.5")])


@pytest.mark.parametrize(("scores", "rule", "bound", "done"), [
    ([0.9], "all", 5, True),                  # agreeing, clear
    ([0.1], "majority", 5, True),             # agreeing, clear (a fail)
    ([0.54], "all", 5, False),                # within 0.05 of 0.5
    ([0.56], "all", 5, True),                 # beyond it
    ([None], "any", 5, False),                # an error settles nothing alone
    ([None], "all", 5, True),                 # ... unless it decides the rule: 'all' failed
    ([0.9, 0.1], "majority", 5, False),       # disagreeing, undecided
    ([0.9, 0.1, 0.9, 0.9], "majority", 5, True),  # 3 of 5 reached
    ([0.52, 0.52], "2", 5, True),             # K = 2 reached, however near
    ([0.52] * 4, "all", 5, False),            # near: on to the bound
    ([0.52] * 5, "all", 5, True),             # the bound
])
def test_when_a_case_is_settled(scores: list[float | None], rule: str, bound: int,
                                done: bool) -> None:
    results = [_result(s, i + 1) for i, s in enumerate(scores)]
    assert settled(results, rule, bound, _T) is done


def test_the_verdict_counts_the_runs_not_made_as_the_runs_made_went() -> None:
    assert Repeated([_result(0.9)], "all", bound=5).passed  # 1 clear pass stands for 5
    assert not Repeated([_result(0.1)], "any", bound=5).passed
    assert Repeated([_result(0.9), _result(0.1, 2), _result(0.9, 3)], "2", bound=5).passed
    assert not Repeated([_result(0.9), _result(0.1, 2)], "all", bound=5).passed
    # Without the bound (fixed N) the rule is over the runs made, as before.
    assert not Repeated([_result(0.9)], "2").passed
    assert decided("majority", 5, passes=2, runs=4) is None
    assert decided("majority", 5, passes=1, runs=4) is False


@pytest.mark.parametrize(("text", "parsed"), [
    ("3", (3, False)), ("auto", (5, True)), ("AUTO:7", (7, True)), (" auto:2 ", (2, True))])
def test_repetitions_parse(text: str, parsed: tuple[int, bool]) -> None:
    assert parse_repetitions(text) == parsed
    option = next(o for o in OPTIONS if o.name == "repetitions")
    assert option.parse(text, option.flag) == ({"repetitions": parsed[0],
                                                "repetitions_auto": True}
                                               if parsed[1] else parsed[0])
