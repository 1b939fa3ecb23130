"""Pictures for the markdown summary (--phoenix-summary-md, $GITHUB_STEP_SUMMARY): a gated
annotation's pass rate over the dataset's recent experiments as a Mermaid ``xychart-beta``
chart, which GitHub renders, with a table of the same values for readers that do not. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

THIS_RUN = "this run"
BASELINE = "baseline"


@dataclass(frozen=True)
class ChartPoint:
    label: str  # the x label: a date and time, "baseline" or "this run"
    experiment: str  # what it stands for (an experiment's name, or this run)
    rate: float | None  # None: the experiment has no such annotation (left off the chart)


def _quoted(text: str) -> str:
    return '"' + text.replace('"', "'").replace("\n", " ") + '"'


def short_time(created_at: str) -> str:
    """``2026-12-05T11:30:12+00:00`` as ``12-05 11:30`` (an x label)."""
    date, _, time = created_at.partition("T")
    return f"{date[5:]} {time[:5]}".strip() or "?"


def pass_rate_chart(annotation: str, where: str, points: Sequence[ChartPoint]) -> str:
    """The chart (x: experiments oldest to newest, y: pass rate 0 to 1) and its table."""
    shown = [p for p in points if p.rate is not None]
    lines = [f"#### Pass rate of {annotation} on {where}", "",
             "```mermaid", "xychart-beta",
             f"    title {_quoted(f'{annotation}: pass rate, recent experiments')}",
             f"    x-axis [{', '.join(_quoted(p.label) for p in shown)}]",
             '    y-axis "pass rate" 0 --> 1',
             f"    line [{', '.join(f'{p.rate:.3f}' for p in shown)}]",
             "```", "",
             "| point | experiment | pass rate |", "| --- | --- | --- |"]
    for point in points:
        rate = "-" if point.rate is None else f"{100 * point.rate:.1f}%"
        name = point.experiment.replace("|", "\\|")
        lines.append(f"| {point.label} | {name} | {rate} |")
    return "\n".join(lines) + "\n"


def unreadable_chart(annotation: str, where: str, why: str) -> str:
    """What stands in the chart's place when the recent experiments cannot be read (the run's
    result does not change)."""
    shown = " ".join(why.split()).replace("`", "'")  # one line, quoted: it may hold HTML
    shown = shown if len(shown) <= 300 else shown[:299] + "…"
    return (f"#### Pass rate of {annotation} on {where}\n\nno chart: the recent experiments "
            f"could not be read (`{shown}`); this run's result does not depend on them.\n")
