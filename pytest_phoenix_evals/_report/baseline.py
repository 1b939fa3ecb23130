"""The baseline comparison in the summary: per annotation, then the examples that moved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._core.baseline import SIGNIFICANT, Change
from .._core.paired import Interval


def comparison_lines(changes: Sequence[Change], dataset: str, baseline: Mapping[str, Any],
                     link: str, max_regression: float | str | None,
                     alpha: float = 0.05) -> list[str]:
    from tabulate import tabulate

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    if max_regression == SIGNIFICANT:
        allowed = (f", a regression fails the run when the paired test finds it (p < "
                   f"{alpha:g})")
    elif isinstance(max_regression, (int, float)):
        allowed = f", at most {100 * max_regression:g} pts of regression allowed"
    else:
        allowed = ""

    def result(change: Change) -> str:
        if max_regression is None:
            return ""
        return "FAIL" if change.failed else "pass" if change.examples else "-"

    rows = [[c.annotation, c.examples, pct(c.baseline), pct(c.now),
             "-" if c.delta is None else f"{100 * c.delta:+.1f} pts",
             len(c.regressed), len(c.improved), result(c)]
            for c in changes]
    lines = [f"{dataset}: compared with baseline {baseline.get('name')} ({baseline['id']})"
             + allowed,
             *tabulate(rows, headers=["annotation", "examples", "baseline", "now", "change",
                                      "regressed", "improved", "result"],
                       tablefmt="simple", disable_numparse=True).splitlines()]
    lines += paired_lines(changes)
    for c in changes:
        if c.regressed:
            lines.append(f"  regressed on {c.annotation}: {', '.join(c.regressed[:20])}"
                         + (f" and {len(c.regressed) - 20} more" if len(c.regressed) > 20
                            else ""))
        if c.improved:
            lines.append(f"  improved on {c.annotation}: {', '.join(c.improved[:20])}"
                         + (f" and {len(c.improved) - 20} more" if len(c.improved) > 20
                            else ""))
    if missing := [c.annotation for c in changes if not c.examples]:
        lines.append(f"  not compared: {', '.join(missing)} (the baseline has no pass/fail "
                     f"verdict of it on an example of this run)")
    lines.append(f"  side by side in Phoenix: {link}")
    return lines


def paired_lines(changes: Sequence[Change]) -> list[str]:
    """The paired statistics of each annotation compared: b and c, the change in pass rate
    and in mean score with their 95 % intervals, and the p-value of a regression."""
    from tabulate import tabulate

    def points(value: float | None, interval: Interval) -> str:
        if value is None:
            return "-"
        shown = f"{100 * value:+.1f} pts"
        if interval.low is None or interval.high is None:
            return shown
        return f"{shown} [{100 * interval.low:+.1f}, {100 * interval.high:+.1f}]"

    def score(value: float | None, interval: Interval) -> str:
        if value is None:
            return "-"
        if interval.low is None or interval.high is None:
            return f"{value:+.3g}"
        return f"{value:+.3g} [{interval.low:+.3g}, {interval.high:+.3g}]"

    rows = [[c.annotation, c.paired.b, c.paired.c,
             points(c.paired.delta, c.paired.interval), f"{c.paired.p:.3g}",
             score(c.paired.score_delta, c.paired.score_interval)]
            for c in changes if c.paired is not None]
    if not rows:
        return []
    return ["  example by example (b: pass to fail, c: fail to pass; 95% intervals by a "
            "paired bootstrap over examples; p: one-sided exact McNemar test of a "
            "regression):",
            *("  " + line for line in tabulate(
                rows, headers=["annotation", "b", "c", "pass rate change [95% CI]",
                               "p (regression)", "mean score change [95% CI]"],
                tablefmt="simple", disable_numparse=True).splitlines())]


def nothing_compared_lines(why: str, dataset: str, baseline: Mapping[str, Any], link: str,
                           fails: bool) -> list[str]:
    """A comparison that compared nothing: why, and whether that fails the run."""
    lines = [f"{dataset}: nothing was compared with baseline {baseline.get('name')} "
             f"({baseline['id']}): {why}"]
    if fails:
        lines.append("  regression check: FAIL (--phoenix-max-regression): with nothing "
                     "compared, no regression was measured")
    lines.append(f"  side by side in Phoenix: {link}")
    return lines

