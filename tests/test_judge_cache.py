"""--phoenix-cache: a judge is asked again only when what it would be sent changed."""

from __future__ import annotations

from typing import Any

import pytest

from stand_in_judge import StandInJudge

CONFTEST = """
from pytest_phoenix_evals import qa_correctness

def pytest_phoenix_evals_evaluators(config, dataset):
    return [qa_correctness(answer="$.output", reference="$.reference.answer")]
"""
APP = """
import os

def answer(input):
    if "Spain" in input["question"]:
        return os.environ.get("SPAIN", "Madrid")
    return {"What is the capital of France?": "Paris"}.get(input["question"], "Shakespeare")
"""
RUN = ("--phoenix-dataset=judged", "--phoenix-task=app:answer", "--phoenix-no-upload",
       "--phoenix-cache", "-p", "no:cacheprovider")


@pytest.fixture
def judged_app(pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
               judged_dataset: dict[str, Any]) -> pytest.Pytester:
    pytester.makepyfile(app=APP)
    pytester.makeconftest(CONFTEST)
    pytester.syspathinsert()
    return pytester


def test_only_changed_outputs_reach_the_judge(judged_app: pytest.Pytester, judge: StandInJudge,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    first = judged_app.runpytest(*RUN)
    first.assert_outcomes(passed=3)
    assert judge.stats().get("ok") == 3
    first.stdout.fnmatch_lines(["judge usage: 3 calls, * tokens*"])

    judge.reset()
    second = judged_app.runpytest(*RUN)
    second.assert_outcomes(passed=3)
    assert judge.stats().get("ok", 0) == 0  # every answer came from the cache
    second.stdout.fnmatch_lines(["judge usage: 0 calls, 0 prompt + 0 completion = 0 tokens*; "
                                 "3 answers from the judge cache (--phoenix-cache)"])

    # The app's answer for Spain changes: only that case is judged again, and judged anew.
    judge.reset()
    monkeypatch.setenv("SPAIN", "Barcelona")
    third = judged_app.runpytest(*RUN)
    third.assert_outcomes(passed=2, failed=1)
    assert judge.stats().get("ok") == 1
    third.stdout.fnmatch_lines(["judge usage: 1 call, *; 2 answers from the judge cache*"])

    # Without the flag, the judge is always asked.
    judge.reset()
    judged_app.runpytest(*[a for a in RUN if a != "--phoenix-cache"])
    assert judge.stats().get("ok") == 3
    assert (judged_app.path / ".phoenix-evals" / "judge-cache.sqlite").is_file()


def test_a_changed_judge_model_misses_the_cache(judged_app: pytest.Pytester,
                                                judge: StandInJudge) -> None:
    judged_app.runpytest(*RUN)
    judge.reset()
    judged_app.runpytest(*RUN, "--phoenix-judge-model=gpt-4.1-mini")
    assert judge.stats().get("ok") == 3


def test_repetitions_never_come_from_the_cache(judged_app: pytest.Pytester) -> None:
    result = judged_app.runpytest(*RUN, "--phoenix-repetitions=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --phoenix-cache: repetitions measure how a judge "
                                 "varies; they never come from the cache*"])
