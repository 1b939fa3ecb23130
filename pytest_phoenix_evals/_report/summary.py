"""Reports: the failure message of one case, and the session summary. Pure: builds lines."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._core.types import NOT_RUN, CaseResult

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
    return [
        f"dataset {example.dataset_name!r}, example {example.id}"
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
    table = tabulate(rows, headers=["evaluator", "label", "score", "verdict", "explanation"],
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


@dataclass
class _Tally:
    evaluator: str = ""
    cases: int = 0
    asserted: int = 0
    passed: int = 0
    errors: int = 0
    scores: list[float] = field(default_factory=list)


def summary_lines(
    results: Iterable[CaseResult],
    experiments: Sequence[tuple[str, str]],
    failures: Sequence[str],
    pending: int = 0,
    no_upload: bool = False,
    notes: Sequence[str] = (),
    journaled: Mapping[str, int] | None = None,
) -> list[str]:
    """The terminal summary: per dataset and annotation, then links and upload problems."""
    from tabulate import tabulate

    by_dataset: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        by_dataset[result.case.example.dataset_name].append(result)
    lines: list[str] = []
    for dataset, cases in by_dataset.items():
        passed = sum(r.passed for r in cases)
        task_errors = sum(r.error is not None for r in cases)
        line = f"{dataset}: {len(cases)} case{'s' if len(cases) != 1 else ''}, {passed} passed, "
        line += f"{len(cases) - passed} failed"
        line += f" ({task_errors} with task errors)" if task_errors else ""
        lines.append(line)
        tallies: dict[str, _Tally] = {}
        for result in cases:
            for score, verdict in zip(result.scores, result.verdicts):
                tally = tallies.setdefault(score.name, _Tally(evaluator=score.evaluator))
                tally.cases += 1
                tally.errors += score.error is not None
                if verdict.status != "recorded":
                    tally.asserted += 1
                    tally.passed += verdict.status == "pass"
                if score.score is not None:
                    tally.scores.append(score.score)
        rows = [[
            name,
            t.evaluator if t.evaluator != name else "",
            t.cases,
            f"{100 * t.passed / t.asserted:.1f}%" if t.asserted else "recorded",
            f"{sum(t.scores) / len(t.scores):.3g}" if t.scores else "",
            t.errors or "",
        ] for name, t in tallies.items()]
        if rows:
            lines += tabulate(rows, headers=["annotation", "evaluator", "cases", "pass rate",
                                             "mean score", "errors"],
                              tablefmt="simple", disable_numparse=True).splitlines()
        lines.append("")
    results = [r for cases in by_dataset.values() for r in cases]
    if usage := judge_usage(results):
        lines.append(usage)
    lines += not_run(results)
    lines += notes
    for dataset, url in experiments:
        lines.append(f"experiment for {dataset}: {url}")
    if no_upload:
        lines.append("nothing uploaded (--phoenix-no-upload)")
    if failures or pending:
        lines.append(f"could not upload {len(failures) + pending} item(s):")
        lines += [f"  {failure}" for failure in failures[:20]]
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more")
        if pending:
            lines.append(f"  {pending} case(s) still uploading when the wait ran out")
    if journaled:
        import os

        total = sum(journaled.values())
        lines.append(f"{total} result(s) are not all in Phoenix yet; they are kept in:")
        lines += [f"  {os.path.relpath(path)} ({count})" for path, count in journaled.items()]
        lines.append("  when Phoenix is back, run `pytest --phoenix-upload-pending` in this "
                     "directory to upload them into the same experiment")
    return lines


def judge_usage(results: Iterable[CaseResult]) -> str | None:
    """One line summing the judges' calls, tokens and (when priced) cost."""
    calls = prompt = completion = hits = 0
    cost = 0.0
    priced = False
    for result in results:
        seen: set[str] = set()
        for score in result.scores:
            meta = score.metadata
            # A judge with several output configs made one call; count it once.
            if score.annotator_kind != "LLM" or "total_tokens" not in meta \
                    or score.evaluator in seen:
                continue
            seen.add(score.evaluator)
            if meta.get("judge_cache") == "hit":
                hits += 1
                continue
            calls += 1
            prompt += int(meta.get("prompt_tokens") or 0)
            completion += int(meta.get("completion_tokens") or 0)
            if "cost_usd" in meta:
                priced = True
                cost += float(meta["cost_usd"])
    if not calls and not hits:
        return None
    line = (f"judge usage: {calls} call{'s' if calls != 1 else ''}, {prompt} prompt + "
            f"{completion} completion = {prompt + completion} tokens")
    line += f", ${cost:.4f}" if priced else " (cost: set --phoenix-judge-price)"
    return line + (f"; {hits} answer{'s' if hits != 1 else ''} from the judge cache "
                   f"(--phoenix-cache)" if hits else "")



def not_run(results: Iterable[CaseResult]) -> list[str]:
    """Evaluators that never ran (the server could not run them, ...), with the first reason."""
    reasons: dict[str, tuple[int, str]] = {}
    for result in results:
        for score in result.scores:
            if score.error and score.error.startswith(NOT_RUN):
                count, reason = reasons.get(score.evaluator, (0, score.error))
                reasons[score.evaluator] = (count + 1, reason)
    return [f"{evaluator} was not run on {count} case{'s' if count != 1 else ''}: "
            f"{reason.removeprefix(NOT_RUN)}" for evaluator, (count, reason) in reasons.items()]
