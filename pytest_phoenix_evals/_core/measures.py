"""A run's measures per case (the task's latency, the cost Phoenix computed for its LLM spans)
and their statistics with a 95 % interval: the mean (percentile bootstrap), a percentile
(distribution-free, from order statistics) and the sum (the run's own total: no interval).

Written in the standard library like :mod:`.paired`: each is a few lines, and numpy or scipy
would be by far the largest dependencies of the plugin. Pure.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .paired import RESAMPLES, SEED, percentile
from .types import CaseResult

#: The run's measures a gate can name: ``p95(latency)<=2.5``, ``sum(cost)<=0.50``.
MEASURES = ("latency", "cost")
#: The statistics of a measure: mean, max, sum and percentiles p1 .. p99.
STATISTICS = ("mean", "max", "sum")
#: Resampling every value this many times at most (a bootstrap of a large run would take
#: seconds); beyond it the mean's interval is the normal one, which is good at that size.
BOOTSTRAP_BUDGET = 2_000_000

#: How each interval is made, as the notes say it.
METHODS = {
    "bootstrap": "bootstrap",  # percentile bootstrap of the cases, fixed seed
    "normal": "normal approximation",  # a mean over more cases than the bootstrap's budget
    "percentile": "order statistics",  # distribution-free, from the binomial
    "sum": "the run's own total: no interval",
    "max": "the run's own largest: no interval",
}


@dataclass(frozen=True)
class Stat:
    """A statistic of a measure with its 95 % interval (None at an end that the cases
    cannot bound: a p95's upper end needs 59 cases)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    method: str = ""

    def interval(self, shown: str = "{:.4g}") -> str:
        if self.value is None or (self.low is None and self.high is None):
            return ""
        low = shown.format(self.low) if self.low is not None else "-inf"
        high = shown.format(self.high) if self.high is not None else "?"
        return f"[{low}, {high}]"


def usd(value: float) -> str:
    """A cost in USD with two significant digits at least (LLM calls cost fractions of a
    cent): $0.0123, $0.0000021."""
    if value == 0:
        return "$0"
    digits = max(4, 1 - math.floor(math.log10(abs(value))) + 1)
    return f"${value:.{digits}f}"


def latency(result: CaseResult) -> float | None:
    """The task's run time in seconds, as the experiment run records it (start to end)."""
    if result.start_time is None or result.end_time is None:
        return None
    return max(0.0, (result.end_time - result.start_time).total_seconds())


def quantile_of(stat: str) -> float | None:
    """0.95 for ``p95`` (None for a statistic that is no percentile)."""
    if stat.startswith("p") and stat[1:].isdigit() and 1 <= int(stat[1:]) <= 99:
        return int(stat[1:]) / 100
    return None


def statistic(stat: str, values: Sequence[float]) -> Stat:
    """``stat`` (mean, max, sum, pNN) of ``values`` with its 95 % interval."""
    n = len(values)
    if not n:
        return Stat(None, n=0)
    ordered = sorted(values)
    if stat == "sum":
        return Stat(math.fsum(values), n=n, method=METHODS["sum"])
    if stat == "max":
        return Stat(ordered[-1], n=n, method=METHODS["max"])
    if stat == "mean":
        return _mean(values)
    q = quantile_of(stat)
    if q is None:
        raise ValueError(f"no statistic {stat!r}")
    low, high = _order_interval(n, q)
    return Stat(percentile(ordered, q), ordered[low - 1] if low else None,
                ordered[high - 1] if high else None, n, METHODS["percentile"])


def _mean(values: Sequence[float]) -> Stat:
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return Stat(mean, n=1, method="one case: no interval")
    if n * RESAMPLES <= BOOTSTRAP_BUDGET:
        rng = random.Random(SEED)
        means = sorted(math.fsum(rng.choices(values, k=n)) / n for _ in range(RESAMPLES))
        return Stat(mean, percentile(means, 0.025), percentile(means, 0.975), n,
                    METHODS["bootstrap"])
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = 1.959963984540054 * sd / math.sqrt(n)
    return Stat(mean, mean - half, mean + half, n, METHODS["normal"])


def _binomial_cdf(n: int, q: float) -> list[float]:
    """P(Binomial(n, q) <= k) for k = 0 .. n, each term in log space (no overflow for large
    n), summed once."""
    log_q, log_p = math.log(q), math.log1p(-q)
    cdf, total = [], 0.0
    for i in range(n + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                          + i * log_q + (n - i) * log_p)
        cdf.append(min(1.0, total))
    return cdf


def _order_interval(n: int, q: float, alpha: float = 0.05) -> tuple[int, int]:
    """The 1-based ranks (l, u) of the order statistics that bound the q-quantile with at
    least 1 - alpha confidence, each tail at most alpha / 2; 0 for an end the cases cannot
    bound. The number of values below the quantile is Binomial(n, q): x(l) is below it unless
    fewer than l are, x(u) above it unless u or more are."""
    cdf = _binomial_cdf(n, q)  # cdf[k] = P(B <= k)
    # the largest l with P(B <= l - 1) <= alpha / 2
    low = max((rank for rank in range(1, n + 1) if cdf[rank - 1] <= alpha / 2), default=0)
    # the smallest u with P(B <= u - 1) >= 1 - alpha / 2
    high = min((rank for rank in range(1, n + 1) if cdf[rank - 1] >= 1 - alpha / 2),
               default=0)
    return low, high


@dataclass(frozen=True)
class RunCost:
    """What Phoenix computed for one run's trace: its tokens and their cost in USD. A trace
    with tokens and no cost used a model Phoenix has no price for."""

    cost: float | None
    tokens: float | None

    @property
    def priced(self) -> bool:
        return not self.tokens or bool(self.cost)


def costs_of(results: Sequence[CaseResult], costs: Mapping[str, RunCost]
             ) -> tuple[list[float], int, int]:
    """Each result's cost (by its trace id): the values, how many results Phoenix had no
    trace for, and how many used tokens it has no price for. A traced run without LLM tokens
    cost nothing."""
    values: list[float] = []
    untraced = unpriced = 0
    for result in results:
        found = costs.get(result.trace_id or "")
        if found is None:
            untraced += 1
        elif not found.priced:
            unpriced += 1
        else:
            values.append(found.cost or 0.0)
    return values, untraced, unpriced
