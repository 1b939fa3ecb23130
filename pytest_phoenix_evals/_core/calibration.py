"""A pass rate corrected for the judge's own error (--phoenix-judge-calibration).

An LLM judge that passes a case is sometimes wrong. Its benchmark against human labels
measures how often: its sensitivity Se (of the cases people pass, the share it passes) and its
specificity Sp (of the cases people fail, the share it fails). A run's observed pass rate p is
then corrected as Rogan and Gladen did for an imperfect test:

    corrected = (p + Sp - 1) / (Se + Sp - 1),  clipped to [0, 1],

defined when the judge is better than chance (Se + Sp > 1). Its 95 % interval carries the
uncertainty of all three proportions: a Monte Carlo draw of each from its Jeffreys posterior
(Beta(x + 1/2, n - x + 1/2)), 4,000 draws with a fixed seed, the 2.5th and 97.5th
percentiles of the corrected rate. A small benchmark widens it, as it should; one too small to
rule out a judge no better than chance (more than 2.5 % of the draws) gives [0, 1], since such
a judge's pass rate says nothing of the true one.

Written by hand in the standard library (``random.betavariate``): a few lines, against a
statistics dependency for one formula.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .paired import SEED, percentile

DRAWS = 4000


@dataclass(frozen=True)
class Corrected:
    """A corrected pass rate: its value and 95 % interval (None when undefined), and why not."""

    value: float | None
    low: float | None
    high: float | None
    why: str = ""


@dataclass(frozen=True)
class Calibration:
    """A judge's measured error: how many of the human-passed cases it passed, of how many,
    and the same for the human-failed cases it failed; and where that was measured."""

    annotation: str
    true_pass: int
    human_pass: int
    true_fail: int
    human_fail: int
    source: str

    @property
    def sensitivity(self) -> float | None:
        return self.true_pass / self.human_pass if self.human_pass else None

    @property
    def specificity(self) -> float | None:
        return self.true_fail / self.human_fail if self.human_fail else None

    def describe(self) -> str:
        def share(hits: int, n: int) -> str:
            return f"{hits}/{n}" if n else "unmeasured"

        return (f"sensitivity {share(self.true_pass, self.human_pass)}, specificity "
                f"{share(self.true_fail, self.human_fail)} ({self.source})")

    def corrected(self, passed: int, total: int) -> Corrected:
        """The pass rate ``passed / total`` corrected for this judge's error."""
        se, sp = self.sensitivity, self.specificity
        if not total:
            return Corrected(None, None, None, "no case")
        if se is None or sp is None:
            missing = "passed" if se is None else "failed"
            return Corrected(None, None, None, f"the benchmark had no case people {missing}: "
                                               f"the judge's error is not measured")
        if se + sp <= 1:
            return Corrected(None, None, None, f"the judge is no better than chance on its "
                                               f"benchmark (sensitivity + specificity "
                                               f"{se + sp:.2f} <= 1)")
        value = _rogan_gladen(passed / total, se, sp)
        rng = random.Random(SEED)
        draws = []
        for _ in range(DRAWS):
            p = rng.betavariate(passed + 0.5, total - passed + 0.5)
            s = rng.betavariate(self.true_pass + 0.5, self.human_pass - self.true_pass + 0.5)
            f = rng.betavariate(self.true_fail + 0.5, self.human_fail - self.true_fail + 0.5)
            if s + f > 1:
                draws.append(_rogan_gladen(p, s, f))
        if len(draws) < 0.975 * DRAWS:
            # The benchmark cannot rule out a judge no better than chance (Se + Sp <= 1 in
            # more than 2.5 % of the draws), and such a judge says nothing of the true rate.
            return Corrected(value, 0.0, 1.0, "the benchmark cannot rule out a judge no "
                                              "better than chance: benchmark it on more cases")
        draws.sort()
        return Corrected(value, percentile(draws, 0.025), percentile(draws, 0.975))


def _rogan_gladen(p: float, se: float, sp: float) -> float:
    return min(1.0, max(0.0, (p + sp - 1) / (se + sp - 1)))


def from_figures(annotation: str, figures: Mapping[str, Any], passing: set[str],
                 source: str) -> Calibration:
    """A calibration from a benchmark's confusion matrix (rows: the human label, columns: the
    judge's), with ``passing`` the labels the gate counts as a pass."""
    confusion = figures.get("confusion") or {}
    labels = [str(label) for label in confusion.get("labels") or ()]
    counts = confusion.get("counts") or ()
    true_pass = human_pass = true_fail = human_fail = 0
    for human, row in zip(labels, counts, strict=False):
        for judged, count in zip(labels, row, strict=False):
            if human in passing:
                human_pass += int(count)
                true_pass += int(count) if judged in passing else 0
            else:
                human_fail += int(count)
                true_fail += int(count) if judged not in passing else 0
    return Calibration(annotation, true_pass, human_pass, true_fail, human_fail, source)
