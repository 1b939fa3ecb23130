"""Repetitions (--phoenix-repetitions=N): one pytest case per example, N runs of it.

The pass rule (--phoenix-pass-rule) decides the case from its runs: ``all`` (the default),
``majority`` (more than half), ``any``, or a number K (at least K runs pass). Whatever the
rule, a case is *stable-pass* when every run passed, *stable-fail* when none did, and *flaky*
otherwise; its report shows each annotation's spread over the runs.
"""

from __future__ import annotations

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


