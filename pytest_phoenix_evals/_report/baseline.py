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

    rows = [[c.annotation, c.examples, pct(c.baseline), pct(c.now),
             "-" if c.delta is None else f"{100 * c.delta:+.1f} pts",
             len(c.regressed), len(c.improved),
             "" if max_regression is None else ("FAIL" if c.failed else "pass")]
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
    lines.append(f"  side by side in Phoenix: {link}")
    return lines

