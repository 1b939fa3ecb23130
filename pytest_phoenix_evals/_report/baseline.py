"""The baseline comparison in the summary: per annotation, then the examples that moved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._core.baseline import Change


def comparison_lines(changes: Sequence[Change], dataset: str, baseline: Mapping[str, Any],
                     link: str, max_regression: float | None) -> list[str]:
    from tabulate import tabulate

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    def result(change: Change) -> str:
        if max_regression is None:
            return ""
        return "FAIL" if change.failed else "pass" if change.examples else "-"

    rows = [[c.annotation, c.examples, pct(c.baseline), pct(c.now),
             "-" if c.delta is None else f"{100 * c.delta:+.1f} pts",
             len(c.regressed), len(c.improved), result(c)]
            for c in changes]
    lines = [f"{dataset}: compared with baseline {baseline.get('name')} ({baseline['id']})"
             + (f", at most {100 * max_regression:g} pts of regression allowed"
                if max_regression is not None else ""),
             *tabulate(rows, headers=["annotation", "examples", "baseline", "now", "change",
                                      "regressed", "improved", "result"],
                       tablefmt="simple", disable_numparse=True).splitlines()]
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

