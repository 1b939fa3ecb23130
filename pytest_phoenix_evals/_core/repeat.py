"""Repetitions (--phoenix-repetitions=N): one pytest case per example, N runs of it.

The pass rule (--phoenix-pass-rule) decides the case from its runs: ``all`` (the default),
``majority`` (more than half), ``any``, or a number K (at least K runs pass). Whatever the
rule, a case is *stable-pass* when every run passed, *stable-fail* when none did, and *flaky*
otherwise; its report shows each annotation's spread over the runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .types import CaseResult


def parse_pass_rule(text: str, repetitions: int) -> str:
    rule = text.strip().lower()
    if rule in ("all", "majority", "any"):
        return rule
    try:
        k = int(rule)
    except ValueError:
        raise ValueError(f"{text!r} is not a pass rule: use all, majority, any or a number "
                         f"of runs K") from None
    if not 1 <= k <= repetitions:
        raise ValueError(f"{text!r}: K must be between 1 and the number of repetitions "
                         f"({repetitions})")
    return str(k)


def needed(rule: str, repetitions: int) -> int:
    """How many of the runs must pass."""
    return {"all": repetitions, "majority": repetitions // 2 + 1, "any": 1}.get(
        rule, int(rule) if rule.isdigit() else repetitions)


@dataclass
class Repeated:
    """The runs of one example and what the pass rule made of them."""

    results: list[CaseResult]
    rule: str

    @property
    def passes(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def passed(self) -> bool:
        return self.passes >= needed(self.rule, len(self.results))

    @property
    def stability(self) -> str:
        if self.passes == len(self.results):
            return "stable-pass"
        return "stable-fail" if self.passes == 0 else "flaky"

    @property
    def case_id(self) -> str:
        return self.results[0].case.case_id

    def headline(self) -> str:
        n = len(self.results)
        return (f"{self.passes} of {n} runs passed; pass rule {self.rule} needs "
                f"{needed(self.rule, n)}: {self.stability}")


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
    from .._report.summary import failure_lines

    lines = [f"{repeated.case_id} failed: {repeated.headline()}", *spread_lines(repeated.results)]
    failing = next((r for r in repeated.results if not r.passed), None)
    if failing is not None:
        lines += ["", f"first failing run (repetition {failing.case.repetition}):",
                  *failure_lines(failing)[1:]]
    return lines
