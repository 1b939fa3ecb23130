"""Aggregate gates (--phoenix-fail-under): the session's exit status follows pass rates and
means over every selected case, against a real Phoenix (dataset 'qa', task qa_app:answer).

On 'qa' the task gets France and 2 + 2 right, Hamlet half right ("William Shakespeare") and
Spain wrong: exact_match passes 2 of 4, contains 3 of 4; edit_distance (recorded) means 4.
"""

from __future__ import annotations

import re

import pytest
from pytest_phoenix_evals._core.gates import parse_gate

RUN = ("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer", "--phoenix-no-upload",
       "-p", "no:cacheprovider")


def test_passing_gates_make_the_session_pass_though_cases_failed(
        pytester: pytest.Pytester, qa_app: None) -> None:
    result = pytester.runpytest(*RUN, "--phoenix-fail-under=contains=0.75",
                                "--phoenix-fail-under=mean(edit_distance)<=4")
    result.assert_outcomes(passed=2, failed=2)  # each case is still reported
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "gates: all 2 passed; the exit status follows them (--phoenix-fail-under)",
        "gate*dataset*cases*value*needs*result*notes",
        "contains=0.75*qa*4*75.0%*pass rate of contains >= 75%*pass*",
        "mean(edit_distance)<=4*qa*4*4*mean(edit_distance) <= 4*pass*",
    ])


def test_a_failing_gate_fails_the_session_and_deselected_cases_do_not_count(
        pytester: pytest.Pytester, qa_app: None) -> None:
    result = pytester.runpytest(*RUN, "--phoenix-fail-under=exact_match=60%",
                                "--phoenix-fail-under=contains=0.5", "-k", "not spain")
    result.assert_outcomes(passed=2, failed=1, deselected=1)
    assert result.ret == pytest.ExitCode.OK
    # Deselected cases are not in the denominator: 2 of the 3 selected pass exact_match.
    result.stdout.fnmatch_lines([
        "gates: all 2 passed; the exit status follows them (--phoenix-fail-under)",
        "*exact_match=60%*qa*3*66.7%*pass rate of exact_match >= 60%*pass*",
    ])
    result = pytester.runpytest(*RUN, "--phoenix-fail-under=exact_match=0.6")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "gates: 1 of 1 failed; the exit status follows them (--phoenix-fail-under)",
        "*exact_match=0.6*qa*4*50.0%*pass rate of exact_match >= 60%*FAIL*",
    ])


def test_gates_per_split_and_per_metadata_value(pytester: pytest.Pytester, qa_app: None) -> None:
    result = pytester.runpytest(*RUN, "--phoenix-fail-under=contains=0.5@split",
                                "--phoenix-fail-under=exact_match=1@metadata.topic",
                                "--phoenix-fail-under=exact_match=1@metadata.topic=math")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "gates: 2 of 5 failed*",
        "*contains=0.5@split*qa [[]split=geo[]]*2*50.0%*pass*",
        "*exact_match=1@metadata.topic*qa [[]metadata.topic=geography[]]*2*50.0%*FAIL*",
        "*exact_match=1@metadata.topic*qa [[]metadata.topic=literature[]]*1*0.0%*FAIL*",
        "*exact_match=1@metadata.topic*qa [[]metadata.topic=math[]]*1*100.0%*pass*",
        "*exact_match=1@metadata.topic=math*qa [[]metadata.topic=math[]]*1*100.0%*pass*",
    ])


def test_cases_that_never_ran_fail_every_gate(pytester: pytest.Pytester, phoenix_env: str,
                                              qa_dataset: dict) -> None:
    # Cases run one at a time; Hamlet fails and -x stops the session while Spain (the last
    # case) is still running, so Spain never finishes: a gate every finished case meets fails.
    pytester.makepyfile(app="""
import time

def answer(input):
    if "Spain" in input["question"]:
        time.sleep(5)
    return {"What is the capital of France?": "Paris", "What is 2 + 2?": "4",
            "Who wrote Hamlet?": "W. Shakespeare"}.get(input["question"], "Madrid")
""")
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=app:answer",
                                "--phoenix-no-upload", "-x", "--phoenix-concurrency=1",
                                "--phoenix-fail-under=contains=0.5",
                                "--phoenix-fail-under=mean(edit_distance)<=100")
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "gates: 2 of 2 failed*",
        "*contains=0.5*qa*4*75.0%*FAIL*1 of 4 cases did not run",
        "*mean(edit_distance)<=100*qa*4*FAIL*1 of 4 cases did not run",
    ])


def test_task_errors_count_as_failures(pytester: pytest.Pytester, phoenix_env: str,
                                       qa_dataset: dict) -> None:
    pytester.makepyfile(app="""
def answer(input):
    if "Hamlet" in input["question"]:
        raise RuntimeError("no idea")
    return {"What is the capital of France?": "Paris", "What is 2 + 2?": "4"}.get(
        input["question"], "Madrid")
""")
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=app:answer",
                                "--phoenix-no-upload", "--phoenix-fail-under=contains=0.75")
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*contains=0.75*qa*4*75.0%*pass*"])
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=app:answer",
                                "--phoenix-no-upload", "--phoenix-fail-under=contains=0.8",
                                "--phoenix-fail-under=mean(edit_distance)<=1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*contains=0.8*qa*4*75.0%*FAIL*",
        "*mean(edit_distance)<=1*qa*4*0*FAIL*1 case without a score",
    ])


def test_gates_that_cannot_be_decided_fail_and_say_why(pytester: pytest.Pytester,
                                                       qa_app: None) -> None:
    result = pytester.runpytest(*RUN, "--phoenix-fail-under=edit_distance=0.5",
                                "--phoenix-fail-under=correctness=0.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*edit_distance=0.5*FAIL*edit_distance has no pass rule*gate on mean(edit_distance)*",
        "*correctness=0.5*(every dataset)*FAIL*no annotation named 'correctness'; "
        "annotations: contains, edit_distance, exact_match",
    ])


@pytest.mark.parametrize("text", ["correctness", "correctness=1.5", "correctness<0.5",
                                  "mean(x)>=abc", "x=0.5@splits", "mean(x)>=inf"])
def test_a_malformed_gate_is_a_usage_error(pytester: pytest.Pytester, qa_app: None,
                                           text: str) -> None:
    result = pytester.runpytest(*RUN, f"--phoenix-fail-under={text}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --phoenix-fail-under: *{text}*"])


def test_gate_syntax() -> None:
    gate = parse_gate(" mean( answer length ) < 12.5 @ metadata.a.b = x y ")
    assert (gate.name, gate.mean, gate.op, gate.value, gate.scope, gate.only) == (
        "answer length", True, "<", 12.5, "metadata.a.b", "x y")
    assert parse_gate("correct=90%").value == pytest.approx(0.9)
    assert parse_gate("correct>=0.9@split=hard").only == "hard"


def test_gates_under_xdist_cover_every_workers_cases(pytester: pytest.Pytester,
                                                      qa_app: None) -> None:
    result = pytester.runpytest_subprocess(*RUN, "-n", "2", "--phoenix-fail-under=contains=0.75",
                                           "--phoenix-fail-under=exact_match=1@metadata.topic")
    result.assert_outcomes(passed=2, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "gates: 2 of 4 failed*",
        "*contains=0.75*qa*4*75.0%*pass*",
        "*exact_match=1@metadata.topic*qa [[]metadata.topic=geography[]]*2*50.0%*FAIL*",
    ])


def test_latency_and_cost_gates_parse_and_bad_ones_say_what_to_write() -> None:
    gate = parse_gate("p95(latency)<=2.5")
    assert (gate.name, gate.stat, gate.op, gate.value, gate.rate) == ("latency", "p95", "<=",
                                                                      2.5, False)
    assert parse_gate("mean(latency)=1.2").op == "<="  # "=" bounds a measure from above
    assert parse_gate("sum(cost)<=0.50").describe() == "sum(cost) <= $0.5000"
    assert parse_gate("mean(correct)>=0.5").stat is None  # still an annotation's mean
    for text, says in [("latency<=2", "latency is gated by a statistic"),
                       ("p95(correct)<=2", "p95 is a statistic of the run's latency or cost"),
                       ("p0(latency)<1", "latency is gated by a statistic"),
                       ("p95(latency)<=2%", "in seconds")]:
        with pytest.raises(ValueError, match=re.escape(says)):
            parse_gate(text)


def test_a_percentiles_interval_is_scipys_order_statistic_interval() -> None:
    """The distribution-free interval of a quantile: the order statistics scipy's binomial
    distribution picks, each tail at most 2.5 %."""
    from pytest_phoenix_evals._core.measures import _order_interval, statistic
    from scipy.stats import binom

    for n, q in [(3, 0.95), (20, 0.5), (72, 0.95), (100, 0.5), (500, 0.95), (1000, 0.99)]:
        low = int(binom.ppf(0.025, n, q))  # the largest l with P(B <= l - 1) <= 2.5 %
        while low > 0 and binom.cdf(low - 1, n, q) > 0.025:
            low -= 1
        high = int(binom.ppf(0.975, n, q)) + 1  # the smallest u with P(B <= u - 1) >= 97.5 %
        expected = (low, high if high <= n else 0)
        assert _order_interval(n, q) == expected, (n, q)
    values = [float(v) for v in range(1, 101)]
    p50 = statistic("p50", values)
    assert (p50.value, p50.low, p50.high) == (50.5, 40.0, 61.0)
    mean = statistic("mean", values)
    assert mean.value == 50.5 and mean.low is not None and mean.high is not None
    assert 44 < mean.low < 50.5 < mean.high < 57  # the bootstrap's, about +-1.96 * 2.9
    assert statistic("sum", [0.25, 0.5]).value == 0.75
