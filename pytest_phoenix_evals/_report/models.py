"""A prompt run on several models (--phoenix-model), side by side: per model the pass rate of
each annotation with its 95 % Wilson interval (every case in the denominator, as the gates
count), the cost Phoenix computed for the runs' LLM spans, and the task's latency p50 and p95.
For the terminal and the markdown summary. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._core.agreement import Estimate, wilson
from .._core.measures import RunCost, Stat, costs_of, latency, statistic, usd
from .._core.types import CaseResult


@dataclass
class ModelRow:
    model: str
    label: str  # the group (its experiment): "qa (gpt-4.1)"
    cases: int
    rates: dict[str, Estimate] = field(default_factory=dict)
    cost: float | None = None
    cost_note: str = ""
    p50: Stat = field(default_factory=lambda: Stat(None))
    p95: Stat = field(default_factory=lambda: Stat(None))


def model_rows(groups: Sequence[tuple[str, str, Sequence[CaseResult]]],
               costs: Mapping[str, RunCost] | None, costs_problem: str | None
               ) -> list[ModelRow]:
    """One row per (model, group label, its results)."""
    rows = []
    for model, label, results in groups:
        row = ModelRow(model, label, len(results))
        names = list(dict.fromkeys(s.name for r in results for s, v in zip(r.scores, r.verdicts)
                                   if v.status != "recorded"))
        for name in names:
            passed = sum(any(s.name == name and v.status == "pass"
                             for s, v in zip(r.scores, r.verdicts)) for r in results)
            row.rates[name] = wilson(passed, len(results))
        if costs is None:
            row.cost_note = costs_problem or "not read"
        else:
            values, untraced, unpriced = costs_of(results, costs)
            row.cost = sum(values) if values else None
            notes = []
            if untraced:
                notes.append(f"{untraced} run(s) not traced in Phoenix")
            if unpriced:
                notes.append(f"{unpriced} run(s) of a model Phoenix has no price for")
            row.cost_note = "; ".join(notes)
        times = [t for r in results if (t := latency(r)) is not None]
        row.p50, row.p95 = statistic("p50", times), statistic("p95", times)
        rows.append(row)
    return rows


def _rate(estimate: Estimate | None) -> str:
    if estimate is None or estimate.value is None:
        return "-"
    return (f"{100 * estimate.value:.1f}% [{100 * (estimate.low or 0):.0f}, "
            f"{100 * (estimate.high or 0):.0f}]")


def _cost(row: ModelRow) -> str:
    shown = "-" if row.cost is None else usd(row.cost)
    return shown + (" *" if row.cost_note else "")


def _seconds(stat: Stat) -> str:
    return "-" if stat.value is None else f"{stat.value:.2f} s"


def _table(rows: Sequence[ModelRow]) -> tuple[list[str], list[list[str]]]:
    names = list(dict.fromkeys(name for row in rows for name in row.rates))
    headers = ["model", "cases", *[f"{name} pass rate [95% CI]" for name in names],
               "cost", "latency p50", "latency p95"]
    body = [[row.model, str(row.cases), *[_rate(row.rates.get(name)) for name in names],
             _cost(row), _seconds(row.p50), _seconds(row.p95)] for row in rows]
    return headers, body


def _notes(rows: Sequence[ModelRow]) -> list[str]:
    notes = [f"* {row.model}: {row.cost_note}" for row in rows if row.cost_note]
    return [*notes, "pass rates: every case counts (an error fails); intervals: Wilson 95%; "
                    "cost: what Phoenix computed for the runs' LLM spans; latency: the task's "
                    "run time per case"]


def model_lines(rows: Sequence[ModelRow]) -> list[str]:
    """The terminal's side-by-side table."""
    from tabulate import tabulate

    headers, body = _table(rows)
    return [f"models side by side ({len(rows)}):",
            *tabulate(body, headers=headers, tablefmt="simple",
                      disable_numparse=True).splitlines(),
            *_notes(rows)]


def model_markdown(rows: Sequence[ModelRow]) -> str:
    """The markdown summary's side-by-side table."""
    headers, body = _table(rows)
    cell = [" | ".join(h.replace("|", "\\|") for h in line) for line in [headers, *body]]
    lines = ["### Models side by side", "", f"| {cell[0]} |",
             "| " + " | ".join("---" for _ in headers) + " |", *[f"| {c} |" for c in cell[1:]],
             "", *[f"{note}  " for note in _notes(rows)]]
    return "\n".join(lines) + "\n"
