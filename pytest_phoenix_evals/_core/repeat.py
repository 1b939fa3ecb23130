"""Repetitions (--phoenix-repetitions=N): one pytest case per example, N runs of it.

The pass rule (--phoenix-pass-rule) decides the case from its runs: ``all`` (the default),
``majority`` (more than half), ``any``, or a number K (at least K runs pass). Whatever the
rule, a case is *stable-pass* when every run passed, *stable-fail* when none did, and *flaky*
otherwise; its report shows each annotation's spread over the runs.

With ``--phoenix-repetitions=auto:N`` a case runs once, and again only while it is not
*settled* (:func:`settled`), at most N times. After m runs it is settled when

1. m = N; or
2. the pass rule's outcome over N runs is decided, whatever the N - m runs left would do
   (:func:`decided`); or
3. the m runs agree (all passed or all failed) and none of them is *unclear*: an error (the
   task's or an evaluator's), or a score within :func:`margin` of the threshold that decided
   it (:func:`unclear`).

Its verdict is the pass rule over N runs, the runs not made counted as the runs made went (by
rule 3 they all agree; by rule 2 they cannot change it): see :attr:`Repeated.passed`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .types import Case, CaseResult, Score
from .verdict import Threshold

#: ``auto`` with no bound: at most this many runs.
AUTO_BOUND = 5


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


def parse_repetitions(text: str) -> tuple[int, bool]:
    """``N`` or ``auto[:N]``: (the number of runs, or their bound; whether it is auto)."""
    given = text.strip().lower()
    word, colon, bound = given.partition(":")
    if word == "auto":
        if not colon:
            return AUTO_BOUND, True
        try:
            n = int(bound)
        except ValueError:
            n = 0
        if n < 2:
            raise ValueError(f"{text!r}: the bound of auto is a whole number of runs >= 2, "
                             f"for example auto:5 (auto:1 would be one run: leave the option "
                             f"out)")
        return n, True
    try:
        n = int(given)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{text!r} is not an integer >= 1, nor auto:N (each example once, "
                         f"again only while its verdict is unsettled, at most N times)")
    return n, False


def decided(rule: str, bound: int, passes: int, runs: int) -> bool | None:
    """The pass rule's outcome over ``bound`` runs when ``runs`` of them were made and
    ``passes`` of those passed, if the runs left can no longer change it (else None)."""
    need = needed(rule, bound)
    if passes >= need:
        return True
    if passes + (bound - runs) < need:
        return False
    return None


def margin(threshold: float) -> float:
    """How near its threshold a score is *unclear*: 5 % of the threshold's size, and at
    least 0.05 (for a threshold of 0.8: 0.75 to 0.85; of 70: 66.5 to 73.5)."""
    return 0.05 * max(1.0, abs(threshold))


def boundary(score: Score, thresholds: Mapping[str, Threshold],
             declared: Mapping[str, Threshold]) -> float | None:
    """The threshold that decided the score's verdict, found as the verdict rules find it
    (``_core/verdict.decide``): the user's, the evaluator's declared one, the config's; None
    when a label decided it."""
    chosen = (thresholds.get(score.name) or thresholds.get(score.evaluator)
              or declared.get(score.evaluator))
    if chosen is not None:
        return chosen.value
    config = score.config
    if (config is not None and config.best_labels() is None and config.kind == "FREEFORM"
            and config.threshold is not None and config.direction != "NONE"):
        return config.threshold
    return None


def unclear(result: CaseResult, thresholds: Mapping[str, Threshold],
            declared: Mapping[str, Threshold] = {}) -> str | None:
    """Why one run does not settle its case alone (None when it does): an error, or a score
    near the threshold that decided it."""
    if result.error is not None:
        return "the task errored"
    for score, verdict in zip(result.scores, result.verdicts):
        if score.error is not None or verdict.status == "error":
            return f"{score.name}: the evaluator errored"
        if verdict.status not in ("pass", "fail") or score.score is None:
            continue
        edge = boundary(score, thresholds, declared)
        if edge is not None and abs(score.score - edge) <= margin(edge):
            return f"{score.name}: {score.score:g} is within {margin(edge):g} of {edge:g}"
    return None


def settled(results: Sequence[CaseResult], rule: str, bound: int,
            thresholds: Mapping[str, Threshold],
            declared: Mapping[str, Threshold] = {}) -> bool:
    """Whether an auto-repeated case needs no more runs (see the module docstring)."""
    runs = len(results)
    passes = sum(r.passed for r in results)
    if runs >= bound or decided(rule, bound, passes, runs) is not None:
        return True
    return passes in (0, runs) and all(unclear(r, thresholds, declared) is None
                                       for r in results)


class RunsMade:
    """The runs of each case that were made (with auto, a case's runs are those it took);
    a case none of whose runs was made has its first run, which never ran."""

    def __init__(self, results: Sequence[CaseResult]) -> None:
        self._made: dict[tuple[str, str], list[Case]] = {}
        for result in results:
            case = result.case
            self._made.setdefault((case.group.key, case.example.id), []).append(case)

    def of(self, case: Case) -> list[Case]:
        made = self._made.get((case.group.key, case.example.id))
        return sorted(made, key=lambda c: c.repetition) if made else [case]


@dataclass
class Repeated:
    """The runs of one example and what the pass rule made of them; ``bound``: with auto,
    the most runs the case could have taken (its verdict is the rule's over that many)."""

    results: list[CaseResult]
    rule: str
    bound: int | None = None

    @property
    def passes(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def passed(self) -> bool:
        runs = len(self.results)
        if self.bound is None:
            return self.passes >= needed(self.rule, runs)
        outcome = decided(self.rule, self.bound, self.passes, runs)
        # Not decided: it stopped on agreeing, clear runs (or was stopped early): as they went.
        return outcome if outcome is not None else self.passes == runs > 0

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
        if self.bound is not None:
            return (f"{self.passes} of {n} runs passed (auto, at most {self.bound}); pass "
                    f"rule {self.rule} needs {needed(self.rule, self.bound)} of {self.bound}: "
                    f"{self.stability}")
        return (f"{self.passes} of {n} runs passed; pass rule {self.rule} needs "
                f"{needed(self.rule, n)}: {self.stability}")


