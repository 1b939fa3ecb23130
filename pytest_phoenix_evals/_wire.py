"""Case results as plain data, to travel from a pytest-xdist worker to the controller.

Only what the controller's summary reads is carried: the example's dataset and id, the task's
error, and each annotation with its verdict. (The worker has already uploaded everything.)
"""

from __future__ import annotations

from typing import Any

from ._core.types import Case, CaseResult, Example, Score, Verdict

_SCORE_FIELDS = ("name", "evaluator", "annotator_kind", "label", "score", "explanation",
                 "error", "metadata", "trace_id")


def dump_result(result: CaseResult) -> dict[str, Any]:
    example = result.case.example
    return {
        "dataset_name": example.dataset_name, "dataset_id": example.dataset_id,
        "example_id": example.id, "case_id": result.case.case_id,
        "repetition": result.case.repetition, "error": result.error,
        "trace_id": result.trace_id,
        "scores": [{f: getattr(s, f) for f in _SCORE_FIELDS} for s in result.scores],
        "verdicts": [[v.status, v.rule] for v in result.verdicts],
    }


def load_result(data: dict[str, Any]) -> CaseResult:
    example = Example(id=data["example_id"], input=None, reference=None, metadata={},
                      dataset_name=data["dataset_name"], dataset_id=data["dataset_id"],
                      version_id="")
    return CaseResult(
        case=Case(example=example, case_id=data["case_id"], repetition=data["repetition"]),
        error=data["error"], trace_id=data["trace_id"],
        scores=[Score(**score) for score in data["scores"]],
        verdicts=[Verdict(status, rule) for status, rule in data["verdicts"]])
