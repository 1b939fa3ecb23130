"""The failure report of one case (and of a repeated case). Pure: builds lines."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .._core.repeat import Repeated
from .._core.types import CaseResult

MAX_VALUE = 300
MAX_CELL = 80


def _short(value: Any, limit: int = MAX_VALUE) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           default=repr)
    text = " ".join(text.split()) if isinstance(value, str) else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def case_header(result: CaseResult) -> list[str]:
    example = result.case.example
    kind = result.case.group.kind
    where = (f"dataset {example.dataset_name!r}, example {example.id}"
             if kind in ("dataset", "test")
             else f"project {example.dataset_name!r}, {kind[:-1]} {example.id}")
    return [
        where
        + (f", repetition {result.case.repetition}" if result.case.repetition > 1 else ""),
        f"input:     {_short(example.input)}",
        f"output:    {_short(result.output) if result.error is None else '(task failed)'}",
        f"reference: {_short(example.reference)}",
    ]


def score_table(result: CaseResult) -> list[str]:
    from tabulate import tabulate

    rows = []
    for score, verdict in zip(result.scores, result.verdicts):
        rows.append([
            score.evaluator if score.evaluator == score.name else
            f"{score.evaluator} → {score.name}",
            score.label if score.label is not None else "",
            _number(score.score),
            verdict.status.upper(),
            _short(score.error if score.error is not None else score.explanation or "",
                   MAX_CELL),
        ])
    if not rows:
        return ["(no evaluators ran)"]
    table: str = tabulate(rows, headers=["evaluator", "label", "score", "verdict", "explanation"],
                          tablefmt="simple", disable_numparse=True)
    return table.splitlines()


def failure_lines(result: CaseResult) -> list[str]:
    """Everything needed to understand a failed case, on one screen; the first line sums up.
    Secrets are masked: the input, output and reference are the app's own values."""
    from .._core.secrets import redact

    return [redact(line) for line in _failure_lines(result)]


def _failure_lines(result: CaseResult) -> list[str]:
    if result.error is not None:
        return [f"{result.case.case_id}: the task failed", *case_header(result),
                f"task error: {result.error}", *trace_lines(result)]
    failed = [(s, v) for s, v in zip(result.scores, result.verdicts) if v.failed]
    lines = [f"{result.case.case_id} failed: {', '.join(s.name for s, _ in failed)}",
             *case_header(result), "", *score_table(result), ""]
    for score, verdict in failed:
        if score.error is not None:
            lines.append(f"{score.name} error: {score.error}")
            if score.hint:
                lines.append(f"  hint: {score.hint}")
        else:
            lines.append(f"{score.name}: {verdict.rule}")
    return lines + trace_lines(result)


def trace_lines(result: CaseResult) -> list[str]:
    """The trace ids of the task and of each judge call, to look up in Phoenix."""
    traces = [f"task {result.trace_id}"] if result.trace_id else []
    seen = set()
    for score in result.scores:
        if score.trace_id and score.trace_id not in seen:
            seen.add(score.trace_id)
            traces.append(f"{score.evaluator} {score.trace_id}")
    return [f"traces: {'; '.join(traces)}"] if traces else []



def spread_lines(results: Sequence[CaseResult]) -> list[str]:
    """Per annotation over the runs: passes, score range and mean, label counts."""
    from tabulate import tabulate

    rows: dict[str, list[object]] = {}
    scores: dict[str, list[float]] = {}
    labels: dict[str, Counter[str]] = {}
    for result in results:
        if result.error is not None:
            continue
        for score, verdict in zip(result.scores, result.verdicts):
            row = rows.setdefault(score.name, [score.name, 0, 0])
            row[1] = int(row[1]) + (verdict.status == "pass")  # type: ignore[call-overload]
            # Runs where it was asserted (a recorded score neither passes nor fails).
            row[2] = int(row[2]) + (verdict.status != "recorded")  # type: ignore[call-overload]
            if score.score is not None:
                scores.setdefault(score.name, []).append(score.score)
            if score.label is not None:
                labels.setdefault(score.name, Counter())[score.label] += 1
    table = []
    for name, (_, passes, runs) in rows.items():
        values = scores.get(name, [])
        table.append([
            name, f"{passes}/{runs}" if runs else "recorded",
            f"{min(values):g}..{max(values):g}" if values else "",
            f"{sum(values) / len(values):.3g}" if values else "",
            ", ".join(f"{label}×{count}" for label, count in labels.get(name, Counter())
                      .most_common()),
        ])
    errors = sum(r.error is not None for r in results)
    lines = tabulate(table, headers=["annotation", "passed", "score range", "mean", "labels"],
                     tablefmt="simple", disable_numparse=True).splitlines() if table else []
    if errors:
        lines.append(f"task failed in {errors} of {len(results)} runs")
    return lines


def repeated_failure_lines(repeated: Repeated) -> list[str]:
    """The failure report of a repeated case: the verdict, the spread, then the first failing
    run in full."""
    lines = [f"{repeated.case_id} failed: {repeated.headline()}", *spread_lines(repeated.results)]
    failing = next((r for r in repeated.results if not r.passed), None)
    if failing is not None:
        lines += ["", f"first failing run (repetition {failing.case.repetition}):",
                  *failure_lines(failing)[1:]]
    return lines

