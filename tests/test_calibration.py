"""Pass rates corrected for the judge's own error (--phoenix-judge-calibration): the
arithmetic against hand-computed values, and a judge benchmarked against human labels in a
real Phoenix whose error then corrects a dataset run's gate."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from pytest_phoenix_evals._core.calibration import Calibration, from_figures
from pytest_phoenix_evals._core.gates import evaluate_gates, parse_gate
from pytest_phoenix_evals._core.types import Case, CaseResult, Example, Group, Score, Verdict

from phoenix_admin import PhoenixAdmin
from stand_in_judge import StandInJudge


def test_rogan_gladen_against_hand_computed_values() -> None:
    judge = Calibration("c", true_pass=4, human_pass=5, true_fail=3, human_fail=5, source="b")
    assert (judge.sensitivity, judge.specificity) == (0.8, 0.6)
    # (p + Sp - 1) / (Se + Sp - 1) = (0.6 + 0.6 - 1) / (0.8 + 0.6 - 1) = 0.5
    corrected = judge.corrected(3, 5)
    assert corrected.value is not None and math.isclose(corrected.value, 0.5)
    assert corrected.low is not None and corrected.high is not None
    assert 0 <= corrected.low < 0.5 < corrected.high <= 1  # five cases and ten labels: wide
    assert judge.corrected(3, 5) == corrected  # a fixed seed: the same figures each time
    assert judge.corrected(5, 5).value == 1.0 and judge.corrected(1, 5).value == 0.0  # clipped
    bigger = Calibration("c", 400, 500, 300, 500, "b").corrected(300, 500)
    assert bigger.low is not None and bigger.high is not None and corrected.high is not None
    assert bigger.high - bigger.low < corrected.high - corrected.low  # more data, narrower
    chance = Calibration("c", 1, 2, 1, 2, "b").corrected(3, 5)  # Se + Sp = 1
    assert chance.value is None and "no better than chance" in chance.why
    unmeasured = Calibration("c", 0, 0, 3, 5, "b").corrected(3, 5)
    assert unmeasured.value is None and "no case people passed" in unmeasured.why


def test_a_confusion_matrix_becomes_sensitivity_and_specificity() -> None:
    figures = {"confusion": {"labels": ["factual", "hallucinated", "(no label)"],
                             "counts": [[4, 1, 0], [2, 3, 1], [0, 0, 0]]}}
    judge = from_figures("h", figures, {"factual"}, "b")
    # Of 5 the people passed, the judge passed 4; of 6 they failed, it failed 3 + 1 (no label).
    assert (judge.true_pass, judge.human_pass, judge.true_fail, judge.human_fail) == (4, 5, 4, 6)


def test_a_corrected_gate_reads_the_calibration() -> None:
    group = Group(kind="dataset", key="d", label="qa", dataset_id="D", dataset_name="qa",
                  version_id="V")
    cases, results = [], []
    for i, passed in enumerate([True, True, True, False, False]):
        example = Example(id=f"E{i}", input={}, reference={}, metadata={}, dataset_name="qa",
                          dataset_id="D", version_id="V")
        case = Case(example, f"ex{i}", group)
        cases.append(case)
        results.append(CaseResult(case=case, scores=[Score(name="h", evaluator="h",
                                                           label="x", score=float(passed))],
                                  verdicts=[Verdict("pass" if passed else "fail", "rule")]))
    judge = Calibration("h", 4, 5, 3, 5, "benchmark B")
    gates = [parse_gate("corrected(h)=0.6"), parse_gate("h=0.6")]
    corrected, observed = evaluate_gates(gates, cases, results, {"h": judge})
    assert corrected.value is not None and math.isclose(corrected.value, 0.5)
    assert not corrected.passed and observed.passed  # 60 % observed, 50 % corrected
    assert "corrected for the judge: 50.0% [" in observed.detail
    assert "sensitivity 4/5, specificity 3/5 (benchmark B)" in observed.detail
    (alone,) = evaluate_gates([gates[0]], cases, results)
    assert not alone.passed and "no measured judge error" in alone.detail
    with pytest.raises(ValueError, match="at least RATE"):
        parse_gate("corrected(h)<0.5")


CONFIG = {"name": "hallucination", "optimizationDirection": "MAXIMIZE",
          "values": [{"label": "factual", "score": 1}, {"label": "hallucinated", "score": 0}]}
# The stand-in judge says "hallucinated" when the answer holds FABRICATED, else "factual".
RULES = [["FABRICATED", "hallucinated"]]
# 4 true passes, 1 false fail (of 5 people passed), 3 true fails, 2 false passes (of 5 failed).
GOLDEN = ([("fine", "factual")] * 4 + [("FABRICATED", "factual")]
          + [("FABRICATED", "hallucinated")] * 3 + [("fine", "hallucinated")] * 2)
APP = """
def answer(input):
    return {"answer": "a FABRICATED answer" if input["i"] >= 3 else "a fine answer"}
"""


def _judged_dataset(admin: PhoenixAdmin, name: str, prompt: str,
                    examples: list[dict[str, Any]]) -> str:
    dataset_id = admin.create_dataset(name, examples)
    admin.attach_llm_evaluator(dataset_id, "hallucination", prompt, [CONFIG],
                               {"answer": "$.output.answer"}, prompt_version_tag="production")
    return dataset_id


def test_a_benchmarked_judges_error_corrects_a_runs_gate(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    suffix = uuid.uuid4().hex[:8]
    prompt = f"calibrated-judge-{suffix}"
    admin.create_prompt(prompt, [{"role": "user", "content": "Supported? {{answer}}"}],
                        output_configs=[CONFIG], tags=["production"])
    golden, runs = f"cal-golden-{suffix}", f"cal-runs-{suffix}"
    _judged_dataset(admin, golden, prompt, [
        {"input": {"i": i}, "output": {"answer": f"a {text} answer"},
         "metadata": {"label": label}} for i, (text, label) in enumerate(GOLDEN)])
    _judged_dataset(admin, runs, prompt, [{"input": {"i": i}, "output": {}, "metadata": {}}
                                          for i in range(5)])
    judge.configure(rules=RULES)
    pytester.makepyfile(cal_app=APP)

    # Before any benchmark: the calibration cannot be had, and the error says how to get it.
    early = pytester.runpytest(f"--phoenix-dataset={runs}", "--phoenix-task=cal_app:answer",
                               "--phoenix-judge-calibration=latest",
                               "--phoenix-fail-under=corrected(hallucination)=0.4",
                               "-p", "no:cacheprovider")
    assert early.ret == pytest.ExitCode.USAGE_ERROR
    early.stderr.fnmatch_lines([
        "*--phoenix-judge-calibration=latest: judge 'hallucination' (prompt version *) has no "
        "benchmark of it in Phoenix; benchmark it on a golden set labelled by people first "
        "(--phoenix-benchmark=hallucination with --phoenix-dataset naming the golden set; "
        "docs/judge-benchmarks.md)"])

    bench = pytester.runpytest(f"--phoenix-dataset={golden}",
                               "--phoenix-benchmark=hallucination", "-p", "no:cacheprovider")
    bench.stdout.fnmatch_lines(["*agreement: 0.700*"])  # 7 of 10 agree

    # Observed: 3 of 5 pass (60 %). Corrected: (0.6 + 0.6 - 1) / (0.8 + 0.6 - 1) = 50 %.
    gated = pytester.runpytest(f"--phoenix-dataset={runs}", "--phoenix-task=cal_app:answer",
                               "--phoenix-judge-calibration=latest",
                               "--phoenix-fail-under=hallucination=0.6",
                               "--phoenix-fail-under=corrected(hallucination)=0.6",
                               "-p", "no:cacheprovider")
    assert gated.ret == pytest.ExitCode.TESTS_FAILED, gated.stdout.str()
    text = " ".join(gated.stdout.str().split())
    assert "corrected for the judge: 50.0% [" in text, text
    assert "observed 3/5; sensitivity 4/5, specificity 3/5 (benchmark" in text
    gated.stdout.fnmatch_lines(["hallucination=0.6 *60.0%*pass*",
                                "corrected(hallucination)=0.6 *50.0%*FAIL*"])
    lenient = pytester.runpytest(f"--phoenix-dataset={runs}", "--phoenix-task=cal_app:answer",
                                 "--phoenix-judge-calibration=latest",
                                 "--phoenix-fail-under=corrected(hallucination)=0.4",
                                 "-p", "no:cacheprovider")
    assert lenient.ret == pytest.ExitCode.OK, lenient.stdout.str()


def test_a_corrected_gate_without_calibration_is_a_usage_error(
        pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--phoenix-dataset=qa",
                                "--phoenix-fail-under=corrected(hallucination)=0.9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*a corrected(NAME) gate needs the judge's measured error: add "
                                 "--phoenix-judge-calibration=latest*"])
