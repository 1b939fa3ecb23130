"""What crosses between pytest-xdist's controller and its workers, as plain data: the keys of
``workerinput`` / ``workeroutput``, a worker's share of the run's limits, and a result's wire
form (xdist carries builtins only).

pytest-free, so that the modes and the session read the same keys the xdist plugin writes
without importing it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._core.types import CaseResult
    from .._judge_settings import JudgeSettings

# workerinput / workeroutput keys.
EXPERIMENTS = "phoenix_evals_experiments"
SHARED_DIR = "phoenix_evals_shared_dir"
RESULTS = "phoenix_evals_results"
# workerinput: the items are dealt out by position (item i to worker i % N), all at once, so
# each worker knows its share and starts its cases ahead (--phoenix-concurrency) as one
# process does.
SHARES = "phoenix_evals_shares"
#: The shared folder's subfolder where workers leave their trace spans for the controller.
SPANS_DIR = "spans"
#: workerinput: the file holding what the controller read from Phoenix (its gateway's tape),
#: for the workers to take instead of asking again.
TAPE = "phoenix_evals_tape"
#: workerinput: the file in which the controller left a project's span listing.
SPANS = "phoenix_evals_spans"


def workers_in(workerinput: dict[str, Any]) -> int:
    """How many pytest-xdist workers run this session's cases (1 outside a worker)."""
    return max(1, int(workerinput.get("workercount") or 1)) if workerinput else 1


def judges_share(judge: JudgeSettings, workers: int) -> JudgeSettings:
    """A worker's part of the judges' limits. --phoenix-judge-concurrency (a provider's rate
    limit, often) and --phoenix-budget-usd are the run's, however many workers share it: each
    of N workers gets 1/N (at least one call at once)."""
    if workers <= 1:
        return judge
    return judge._replace(
        concurrency=max(1, judge.concurrency // workers),
        budget_usd=None if judge.budget_usd is None else judge.budget_usd / workers)


_SCORE_FIELDS = ("name", "evaluator", "annotator_kind", "label", "score", "explanation",
                 "error", "metadata", "trace_id")


def dump_result(result: CaseResult) -> dict[str, Any]:
    """What the controller's summary and gates read of a result (the output stays behind:
    the worker has uploaded it)."""
    from .sinks.base import group_to_wire

    example = result.case.example
    return {
        "group": group_to_wire(result.case.group),
        "dataset_name": example.dataset_name, "dataset_id": example.dataset_id,
        "example_id": example.id, "splits": list(example.splits),
        "metadata": example.metadata, "case_id": result.case.case_id,
        "repetition": result.case.repetition, "error": result.error,
        "trace_id": result.trace_id,
        # (the task's latency, for the gates and the summary)
        "start_time": result.start_time.isoformat() if result.start_time else None,
        "end_time": result.end_time.isoformat() if result.end_time else None,
        "scores": [{f: getattr(s, f) for f in _SCORE_FIELDS} for s in result.scores],
        "verdicts": [[v.status, v.rule] for v in result.verdicts],
    }


def load_result(data: dict[str, Any]) -> CaseResult:
    from .._core.types import Case, CaseResult, Example, Score, Verdict
    from .sinks.base import group_from_wire

    group = group_from_wire(data["group"])
    example = Example(id=data["example_id"], input=None, reference=None,
                      metadata=dict(data.get("metadata") or {}),
                      dataset_name=data["dataset_name"], dataset_id=data["dataset_id"],
                      version_id=group.version_id,
                      splits=tuple(data.get("splits") or ()))
    return CaseResult(
        case=Case(example=example, case_id=data["case_id"], repetition=data["repetition"],
                  group=group),
        error=data["error"], trace_id=data["trace_id"],
        start_time=_moment(data.get("start_time")), end_time=_moment(data.get("end_time")),
        scores=[Score(**score) for score in data["scores"]],
        verdicts=[Verdict(status, rule) for status, rule in data["verdicts"]])


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
