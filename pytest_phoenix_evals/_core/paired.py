"""Paired statistics of a run against its baseline, example by example: did this change
really regress?

Both runs judged the same examples, so each example is its own control:

- the change in an annotation's pass rate, with a 95 % percentile-bootstrap interval that
  resamples examples (pairs), with a fixed seed so the same runs give the same interval;
- the one-sided exact McNemar test of a regression: of the examples whose verdict changed,
  ``b`` went from pass to fail and ``c`` from fail to pass; under "no change" each of the
  ``b + c`` is a fair coin, so ``p = P(Binomial(b + c, 1/2) >= b)``;
- the change in an annotation's mean score, with the same paired bootstrap interval.

Written by hand, in the standard library: each is a few lines, and scipy or statsmodels would
be by far the largest dependencies of the plugin (the tests check these against scipy).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

#: Resamples of the paired bootstrap, and its seed (the same pairs give the same interval).
RESAMPLES = 2000
SEED = 20261205


@dataclass(frozen=True)
class Interval:
    """A 95 % interval (None at either end when there is nothing to resample)."""

    low: float | None
    high: float | None


def mcnemar_regression_p(b: int, c: int) -> float:
    """One-sided exact McNemar p-value of a regression: P(Binomial(b + c, 1/2) >= b), with
    ``b`` examples that went from pass to fail and ``c`` from fail to pass (1 when none
    changed)."""
    n = b + c
    if n == 0:
        return 1.0
    # The upper tail summed exactly in integers, then one division: no float underflow for
    # large n, and exact for small.
    tail = sum(math.comb(n, k) for k in range(b, n + 1))
    return min(1.0, float(tail / 2 ** n))


def paired_bootstrap(now: Sequence[float], before: Sequence[float],
                     resamples: int = RESAMPLES, seed: int = SEED) -> Interval:
    """The 95 % percentile-bootstrap interval of mean(now) - mean(before), resampling the
    pairs (now[i], before[i]) with replacement."""
    n = len(now)
    if n != len(before):
        raise ValueError("paired values need one 'before' per 'now'")
    if n == 0:
        return Interval(None, None)
    differences = [a - b for a, b in zip(now, before, strict=True)]
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(differences, k=n)) / n for _ in range(resamples))
    return Interval(percentile(means, 0.025), percentile(means, 0.975))


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated linearly (numpy's default)."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass(frozen=True)
class PairedChange:
    """One annotation compared example by example with the baseline."""

    #: Examples that passed in the baseline and fail now (b), and the other way round (c).
    b: int
    c: int
    #: The pass rate's change and its interval.
    delta: float | None
    interval: Interval
    #: The one-sided McNemar p-value of a regression.
    p: float
    #: The mean score's change and its interval (None without scores in both runs).
    score_delta: float | None = None
    score_interval: Interval = Interval(None, None)

    def significant(self, alpha: float) -> bool:
        """A regression at level ``alpha``: more examples went from pass to fail than chance
        explains."""
        return self.b > self.c and self.p < alpha


def paired_change(now: Sequence[tuple[float, float]],
                  scores: Sequence[tuple[float, float]] = ()) -> PairedChange:
    """``now``: (pass rate now, pass rate in the baseline) of each shared example; an example
    passes when all its runs pass (rate 1). ``scores``: (mean score now, in the baseline) of
    each shared example that has a score in both."""
    b = sum(1 for current, before in now if before == 1 and current < 1)
    c = sum(1 for current, before in now if before < 1 and current == 1)
    delta = (sum(x for x, _ in now) - sum(y for _, y in now)) / len(now) if now else None
    score_delta = ((sum(x for x, _ in scores) - sum(y for _, y in scores)) / len(scores)
                   if scores else None)
    return PairedChange(
        b=b, c=c, delta=delta,
        interval=paired_bootstrap([x for x, _ in now], [y for _, y in now]),
        p=mcnemar_regression_p(b, c), score_delta=score_delta,
        score_interval=paired_bootstrap([x for x, _ in scores], [y for _, y in scores]))
