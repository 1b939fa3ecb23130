"""Files for CI: the results table (--phoenix-results), the markdown summary
(--phoenix-summary-md, $GITHUB_STEP_SUMMARY) and the JUnit properties of each case.

Everything here is built from redacted text only: outputs and annotations pass
``_secrets.redact`` before they reach a row, a property or a line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core.secrets import redact
from .._core.types import CaseResult

if TYPE_CHECKING:
    from .summary import Summary

RESULT_SUFFIXES = (".csv", ".parquet", ".jsonl")
#: Failing cases listed in the markdown summary (the rest are counted).
MD_FAILURES = 30


def check_results_path(path: str) -> str | None:
    """Why ``path`` cannot take the results (checked before any case runs), or None."""
    suffix = Path(path).suffix.lower()
    if suffix not in RESULT_SUFFIXES:
        return (f"{path!r}: the results file must end in {', '.join(RESULT_SUFFIXES)} "
                f"(the format follows the suffix)")
    import importlib.util

    if importlib.util.find_spec("pandas") is None:
        return "writing results needs pandas: pip install pandas"
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        return (f"{path!r}: writing .parquet needs pyarrow: pip install pyarrow "
                f"(or use .csv or .jsonl)")
    return None


def _json(value: Any) -> str:
    return redact(json.dumps(value, ensure_ascii=False, default=repr))


def result_rows(result: CaseResult, experiment_url: str | None) -> list[dict[str, Any]]:
    """One row per annotation of the case (one row with empty annotation columns when the
    task failed before any evaluator ran): long format, easy to pivot."""
    example = result.case.example
    base = {
        "dataset": example.dataset_name,
        "dataset_version_id": example.version_id,
        "example_id": example.id,
        "case_id": result.case.case_id,
        "repetition": result.case.repetition,
        "passed": result.passed,
        "input": _json(example.input),
        "reference": _json(example.reference),
        "output": _json(result.output) if result.error is None else None,
        "task_error": redact(result.error) if result.error is not None else None,
        "task_trace_id": result.trace_id,
        "experiment_url": experiment_url,
    }
    rows = []
    for score, verdict in zip(result.scores, result.verdicts):
        rows.append({
            **base,
            "annotation": score.name,
            "evaluator": score.evaluator,
            "annotator_kind": score.annotator_kind,
            "label": score.label,
            "score": score.score,
            "explanation": score.explanation,
            "evaluator_error": score.error,
            "verdict": verdict.status,
            "rule": verdict.rule,
            "judge_trace_id": score.trace_id,
            # --phoenix-benchmark: what the human said, beside the judge's label
            "human_label": (score.metadata or {}).get("human_label"),
        })
    if not rows:
        rows.append({**base, **dict.fromkeys(
            ("annotation", "evaluator", "annotator_kind", "label", "score", "explanation",
             "evaluator_error", "verdict", "rule", "judge_trace_id", "human_label"))})
    return rows


def write_results(path: str, rows: Sequence[dict[str, Any]]) -> int:
    """Write the rows as a pandas DataFrame in the format the suffix names; the row count."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(target, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(target, index=False)
    else:
        frame.to_json(target, orient="records", lines=True, force_ascii=False)
    return len(frame)


def junit_properties(result: CaseResult, experiment_url: str | None) -> list[tuple[str, str]]:
    """``(name, value)`` pairs for the case's JUnit XML <properties> (pytest's
    ``record_property``): each annotation's label, score and verdict, and where to look."""
    example = result.case.example
    props = [("phoenix.dataset", example.dataset_name), ("phoenix.example_id", example.id)]
    if result.case.repetition > 1:
        props.append(("phoenix.repetition", str(result.case.repetition)))
    if experiment_url:
        props.append(("phoenix.experiment_url", experiment_url))
    if result.trace_id:
        props.append(("phoenix.trace_id", result.trace_id))
    if result.error is not None:
        props.append(("phoenix.task_error", redact(result.error)))
    for score, verdict in zip(result.scores, result.verdicts):
        prefix = f"phoenix.{score.name}"
        if score.label is not None:
            props.append((f"{prefix}.label", score.label))
        if score.score is not None:
            props.append((f"{prefix}.score", f"{score.score:g}"))
        if score.error is not None:
            props.append((f"{prefix}.error", score.error))
        props.append((f"{prefix}.verdict", verdict.status))
    return props


def _cell(text: Any) -> str:
    """Text safe inside a markdown table cell (one line, no column breaks)."""
    shown = " ".join(("" if text is None else str(text)).split()).replace("|", "\\|")
    return shown if len(shown) <= 120 else shown[:119] + "…"


def markdown_summary(results: Sequence[CaseResult], terminal: Sequence[str],
                     experiments: Iterable[tuple[str, str, str]], gates: Sequence[Any] | None,
                     outcome: str, sections: Sequence[str] = ()) -> str:
    """A GitHub-flavoured markdown report: the verdict, gates, per-annotation table (the
    terminal summary's), the modes' sections (charts, tables), experiment links and the
    failing cases."""
    lines = ["## Phoenix evals", "", outcome, ""]
    if gates:
        lines += ["| gate | dataset | cases | value | needs | result | notes |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| `{_cell(g.gate.text)}` | {_cell(g.where)} | {g.cases} | "
                  f"{g.shown_value()} | {_cell(g.gate.describe())} | "
                  f"{'pass' if g.passed else '**FAIL**'} | {_cell(g.detail)} |" for g in gates]
        lines.append("")
    lines += ["```", *terminal, "```", ""]
    for section in sections:
        lines += [section.rstrip("\n"), ""]
    links = [f"- {label}: [{noun} in Phoenix]({url})" for label, url, noun in experiments]
    if links:
        lines += links + [""]
    failed = [r for r in results if not r.passed]
    if failed:
        lines += [f"### Failing cases ({len(failed)})", "",
                  "| case | dataset | why |", "| --- | --- | --- |"]
        for result in failed[:MD_FAILURES]:
            why = result.error or "; ".join(
                f"{s.name}: {s.error or s.label or (f'{s.score:g}' if s.score is not None else '')}"
                for s, v in zip(result.scores, result.verdicts) if v.failed)
            lines.append(f"| `{_cell(result.case.case_id)}` | "
                         f"{_cell(result.case.example.dataset_name)} | {_cell(redact(why))} |")
        if len(failed) > MD_FAILURES:
            lines.append(f"\n... and {len(failed) - MD_FAILURES} more")
    return "\n".join(lines) + "\n"


def write_markdown(text: str, path: str | None) -> list[str]:
    """Write the summary to ``path`` and append it to ``$GITHUB_STEP_SUMMARY`` when set;
    the files written."""
    written = []
    if path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(str(target))
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        with open(step, "a", encoding="utf-8") as handle:
            handle.write(text)
        written.append(step)
    return written


def write_files(results_path: str | None, markdown_path: str | None,
                rows: Sequence[dict[str, Any]], summary: Summary, exitstatus: int) -> list[str]:
    """Write --phoenix-results and the markdown summary (also to $GITHUB_STEP_SUMMARY); a line
    for the summary about each. A file that cannot be written is said there: it never hides
    the run's outcome."""
    written = []
    if results_path:
        try:
            count = write_results(results_path, rows)
            written.append(f"results: {results_path} ({count} rows)")
        except Exception as exc:
            written.append(f"could not write results to {results_path}: "
                           f"{type(exc).__name__}: {exc}")
    if (markdown_path or os.environ.get("GITHUB_STEP_SUMMARY")) and (
            summary.results or summary.gate_results):
        # The terminal's tables, with the baseline comparison and the judge benchmark report.
        terminal = [*summary.main_lines(), *summary.baseline_lines]
        text = markdown_summary(summary.results, terminal, summary.experiments(),
                                summary.gate_results, summary.outcome(exitstatus),
                                summary.markdown)
        try:
            written += [f"markdown summary: {w}" for w in write_markdown(text, markdown_path)]
        except OSError as exc:
            written.append(f"could not write the markdown summary: {exc}")
    return written
