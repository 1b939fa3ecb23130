"""What a code evaluator returns, and what becomes of it: numpy scalars are the numbers and
bools they hold; a dict with none of score, label and explanation, and a score that is NaN or
infinite, are evaluator errors that say so (never an empty annotation, never a value the server
cannot store). Unit tests, then one run against the real Phoenix."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

import numpy as np
import pytest
from pytest_phoenix_evals._core.types import Example
from pytest_phoenix_evals._evaluators.code import evaluator, normalize_result

from phoenix_admin import PhoenixAdmin


@pytest.mark.parametrize(("result", "expected"), [
    (np.float32(0.5), [{"score": 0.5}]),
    (np.int64(3), [{"score": 3.0}]),
    (np.bool_(True), [{"score": 1.0, "label": "True"}]),
    (np.bool_(False), [{"score": 0.0, "label": "False"}]),
    (np.array(0.25), [{"score": 0.25}]),  # a 0-d array is a scalar too
    ({"score": np.float32(0.75), "label": "good"}, [{"score": 0.75, "label": "good"}]),
    ([{"score": np.int8(1), "name": "a"}, {"label": "b", "name": "b"}],
     [{"score": 1.0, "name": "a"}, {"label": "b", "name": "b"}]),
    (Decimal("0.5"), [{"score": 0.5}]),
])
def test_numpy_and_other_numbers_are_scores(result: Any, expected: list[dict[str, Any]]
                                            ) -> None:
    normalized = normalize_result(result)
    assert normalized == expected
    assert all(type(item.get("score", 0.0)) is float for item in normalized)


@pytest.mark.parametrize(("result", "error", "message"), [
    ({"correct": True}, ValueError,
     "the result dict has keys 'correct'; it needs one of 'score', 'label', 'explanation' "
     "(and may have 'name' and 'metadata')"),
    ({"scroe": 1.0, "name": "x"}, ValueError,
     "the result dict has keys 'scroe', 'name'; it needs one of 'score', 'label', "
     "'explanation' (and may have 'name' and 'metadata')"),
    ({}, ValueError, "the result dict has no keys; it needs one of 'score', 'label', "
                     "'explanation' (and may have 'name' and 'metadata')"),
    ([{"score": 1.0}, {"ok": 1}], ValueError, "the result dict has keys 'ok'; *"),
    ({"score": "high"}, TypeError, "the result dict's 'score' is str 'high', not a number"),
    (float("nan"), ValueError,
     "the score is nan, which is not a finite number: Phoenix cannot store it"),
    (np.float32("inf"), ValueError,
     "the score is inf, which is not a finite number: Phoenix cannot store it"),
    ({"score": float("-inf"), "name": "drift"}, ValueError,
     "the score of 'drift' is -inf, which is not a finite number: Phoenix cannot store it"),
    ((float("nan"), "unsure"), ValueError,
     "the score is nan, which is not a finite number: Phoenix cannot store it"),
])
def test_a_result_that_cannot_be_an_annotation_is_refused_saying_why(
        result: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as raised:
        normalize_result(result)
    assert fnmatchcase(str(raised.value), message), str(raised.value)


EXAMPLE = Example(id="ex1", input={"q": 1}, reference={"a": 1}, metadata={},
                  dataset_name="d", dataset_id="D", version_id="V")
CONTEXT = {"input": {"q": 1}, "output": "x", "reference": {"a": 1}, "metadata": {}}


@pytest.mark.parametrize(("returned", "error"), [
    ({"passed": True}, "ValueError: the result dict has keys 'passed'; it needs one of "
                       "'score', 'label', 'explanation' (and may have 'name' and 'metadata')"),
    (float("nan"), "ValueError: the score is nan, which is not a finite number: Phoenix "
                   "cannot store it"),
])
def test_the_evaluator_errors_instead_of_an_empty_or_unstorable_annotation(
        returned: Any, error: str) -> None:
    from pytest_phoenix_evals._core.where import shown

    check = evaluator(lambda output: returned, name="check")
    [score] = asyncio.run(check.evaluate(CONTEXT, EXAMPLE))
    # The error names where the evaluator is defined (the lambda's line, above).
    line = check.fn.__code__.co_firstlineno
    where = f" (evaluator check, {shown(check.fn.__code__.co_filename)}:{line})"
    assert (score.name, score.error, score.score, score.label) == ("check", error + where,
                                                                   None, None)


def test_a_numpy_bool_passes_as_a_bool_does() -> None:
    check = evaluator(lambda output: np.bool_(output == "x"), name="check")
    [score] = asyncio.run(check.evaluate(CONTEXT, EXAMPLE))
    assert (score.error, score.score, score.label) == (None, 1.0, "True")
    assert check.verdict(score) is None  # no declared rule: the default rules decide


CONFTEST = '''
import math
import numpy as np
from pytest_phoenix_evals import evaluator

@evaluator(threshold=">=0.5")
def np_overlap(output, expected):
    return np.float32(1.0 if output == expected["answer"] else 0.0)

def np_exact(output, expected):
    return np.bool_(output == expected["answer"])

def typo(output):
    return {"scroe": 1.0}

def not_finite(output):
    return math.nan

def pytest_phoenix_evals_evaluators(config, dataset):
    return [np_overlap, np_exact, typo, not_finite]
'''
APP = '''
ANSWERS = {"What is the capital of France?": "Paris", "Who wrote Hamlet?": "Shakespeare",
           "What is the capital of Spain?": "Madrid"}

def answer(input):
    return ANSWERS[input["question"]]
'''


def test_results_as_they_reach_phoenix(pytester: pytest.Pytester, phoenix_env: str,
                                       admin: PhoenixAdmin,
                                       judged_dataset: dict[str, Any]) -> None:
    pytester.makepyfile(app=APP)
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest_subprocess(
        "--phoenix-dataset=judged", "--phoenix-task=app:answer", "-p", "no:cacheprovider",
        "--phoenix-experiment-name=bad-results")
    output = result.stdout.str()
    assert "INTERNALERROR" not in output and "Traceback" not in output
    result.assert_outcomes(failed=3)  # the two evaluator errors fail each case
    result.stdout.fnmatch_lines([
        "typo error: ValueError: the result dict has keys 'scroe'; it needs one of 'score', "
        "'label', 'explanation' (and may have 'name' and 'metadata') (evaluator typo, "
        "conftest.py:*)",
        "not_finite error: ValueError: the score is nan, which is not a finite number: "
        "Phoenix cannot store it (evaluator not_finite, conftest.py:*)"])
    assert "could not upload" not in output
    experiment = next(e for e in admin.experiments(judged_dataset["id"])
                      if e.get("name") == "bad-results")
    annotations = admin.annotations(experiment["id"])
    by_name: dict[str, list[dict[str, Any]]] = {}
    for annotation in annotations:
        by_name.setdefault(annotation["name"], []).append(annotation)
    assert sorted(by_name) == ["not_finite", "np_exact", "np_overlap", "typo"]
    assert [a["score"] for a in by_name["np_overlap"]] == [1.0] * 3
    assert {(a["score"], a["label"]) for a in by_name["np_exact"]} == {(1.0, "True")}
    assert all("'scroe'" in (a["error"] or "") and a["score"] is None
               for a in by_name["typo"])
    assert all("not a finite number" in (a["error"] or "") for a in by_name["not_finite"])
