"""How far a judge agrees with human labels: agreement, Cohen's kappa, precision, recall, F1
(each with a 95 % confidence interval), the confusion matrix, and Spearman's rank correlation
for a judge that gives scores.

Written here rather than taken from scikit-learn or statsmodels: those would be the plugin's
largest dependencies by far, for a few lines of arithmetic each. The formulas are the textbook
ones, named at each function, and the tests check them against values computed by hand.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

#: z for a two-sided 95 % interval.
Z95 = 1.959963984540054

METRICS = ("agreement", "kappa", "precision", "recall", "f1", "spearman")

#: How each 95 % interval is made (also recorded in the benchmark experiment's metadata).
METHODS = {
    "agreement": "Wilson score interval",
    "precision": "Wilson score interval",
    "recall": "Wilson score interval",
    "kappa": "Wilson score interval of the observed agreement, through kappa's formula with "
             "the chance agreement held at its observed value",
    "f1": "Wilson score interval of TP / (TP + FP + FN), through F1 = 2J / (1 + J)",
    "spearman": "Fisher z transformation (none for n <= 3 or |rho| = 1)",
}


@dataclass(frozen=True)
class Estimate:
    """A metric's value and its 95 % confidence interval (None when undefined: no cases, or a
    denominator of zero)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0

    def shown(self) -> str:
        if self.value is None:
            return "undefined"
        if self.low is None or self.high is None:
            return f"{self.value:.3f}"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def wilson(successes: int, n: int) -> Estimate:
    """A proportion with its Wilson score interval (good at small n and near 0 or 1)."""
    if n == 0:
        return Estimate(None, n=0)
    p = successes / n
    denominator = 1 + Z95 ** 2 / n
    centre = (p + Z95 ** 2 / (2 * n)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / denominator
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n)


def agreement(pairs: Sequence[tuple[str, str]]) -> Estimate:
    """The share of (judge, human) pairs whose labels are equal."""
    return wilson(sum(judge == human for judge, human in pairs), len(pairs))


def kappa(pairs: Sequence[tuple[str, str]]) -> Estimate:
    """Cohen's kappa: (po - pe) / (1 - pe), pe from each rater's label frequencies.
    Undefined when both raters give one and the same label throughout.

    The interval is Wilson's score interval of the observed agreement po, carried through
    kappa's formula with pe held at its observed value (kappa rises with po for a fixed pe).
    The large-sample standard error (Cohen 1960, or Fleiss, Cohen and Everitt 1969) is zero at
    perfect agreement, which gave 1.000 [1.000, 1.000] on six examples; Wilson's interval
    keeps its width at po = 1 and at small n."""
    n = len(pairs)
    if n == 0:
        return Estimate(None, n=0)
    agreed = sum(judge == human for judge, human in pairs)
    judges = Counter(judge for judge, _ in pairs)
    humans = Counter(human for _, human in pairs)
    expected = sum(judges[label] * humans[label] for label in judges) / (n * n)
    if expected >= 1:
        return Estimate(None, n=n)
    observed = wilson(agreed, n)
    assert observed.low is not None and observed.high is not None

    def through(po: float) -> float:
        return max(-1.0, min(1.0, (po - expected) / (1 - expected)))

    return Estimate(through(agreed / n), through(observed.low), through(observed.high), n)


def precision(pairs: Sequence[tuple[str, str]], label: str) -> Estimate:
    """Of the cases the judge labelled ``label``, the share the human labelled so too."""
    said = [human for judge, human in pairs if judge == label]
    return wilson(sum(human == label for human in said), len(said))


def recall(pairs: Sequence[tuple[str, str]], label: str) -> Estimate:
    """Of the cases the human labelled ``label``, the share the judge labelled so too."""
    truth = [judge for judge, human in pairs if human == label]
    return wilson(sum(judge == label for judge in truth), len(truth))


def f1(pairs: Sequence[tuple[str, str]], label: str) -> Estimate:
    """The harmonic mean of precision and recall for ``label``: 2 TP / (2 TP + FP + FN).

    F1 is a rising function of the proportion J = TP / (TP + FP + FN) (F1 = 2 J / (1 + J)), so
    its interval is Wilson's score interval of J carried through that function. A percentile
    bootstrap, used before, gave [1.000, 1.000] whenever the judge never missed: every
    resample of perfect pairs is perfect."""
    tp = sum(j == label and h == label for j, h in pairs)
    fp = sum(j == label and h != label for j, h in pairs)
    fn = sum(j != label and h == label for j, h in pairs)
    if tp + fp + fn == 0:
        return Estimate(None, n=len(pairs))
    share = wilson(tp, tp + fp + fn)
    assert share.value is not None and share.low is not None and share.high is not None

    def through(j: float) -> float:
        return 2 * j / (1 + j)

    return Estimate(through(share.value), through(share.low), through(share.high), len(pairs))


def spearman(pairs: Sequence[tuple[float, float]]) -> Estimate:
    """Spearman's rank correlation of (judge score, human score) pairs (ties get their mean
    rank), with the Fisher z interval (standard error 1 / sqrt(n - 3)). Undefined for fewer
    than 2 pairs or when either side is constant."""
    n = len(pairs)
    if n < 2:
        return Estimate(None, n=n)
    rho = _pearson(_ranks([j for j, _ in pairs]), _ranks([h for _, h in pairs]))
    if rho is None:
        return Estimate(None, n=n)
    if n <= 3 or abs(rho) >= 1:
        return Estimate(rho, n=n)
    z, error = math.atanh(rho), 1 / math.sqrt(n - 3)
    return Estimate(rho, math.tanh(z - Z95 * error), math.tanh(z + Z95 * error), n)


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    at = 0
    while at < len(order):
        end = at
        while end + 1 < len(order) and values[order[end + 1]] == values[order[at]]:
            end += 1
        for i in order[at:end + 1]:
            ranks[i] = (at + end) / 2 + 1
        at = end + 1
    return ranks


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def confusion(pairs: Sequence[tuple[str, str]]) -> tuple[list[str], list[list[int]]]:
    """The labels (the human's first, then the judge's others, each sorted, so that the matrix
    does not depend on the order the cases finished in) and the matrix: row = human label,
    column = judge label."""
    human = sorted({h for _, h in pairs})
    labels = human + sorted({j for j, _ in pairs} - set(human))
    counts = Counter(pairs)
    return labels, [[counts[(judge, human)] for judge in labels] for human in labels]


def metric(name: str, pairs: Sequence[tuple[str, str]], label: str | None = None) -> Estimate:
    """One of :data:`METRICS` by name (``label`` for precision, recall and F1)."""
    if name == "agreement":
        return agreement(pairs)
    if name == "kappa":
        return kappa(pairs)
    if name in ("precision", "recall", "f1"):
        if label is None:
            raise ValueError(f"{name} needs a label: {name}(NAME=LABEL)")
        return {"precision": precision, "recall": recall, "f1": f1}[name](pairs, label)
    raise ValueError(f"unknown metric {name!r}")
