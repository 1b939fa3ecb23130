"""The paired statistics of a run against its baseline, against hand-computed values and
scipy (the reference implementation); no server."""

from __future__ import annotations

import math

import pytest
from pytest_phoenix_evals._core.paired import (
    mcnemar_regression_p,
    paired_bootstrap,
    paired_change,
)
from scipy import stats


@pytest.mark.parametrize(("b", "c", "expected"), [
    (0, 0, 1.0),  # nothing changed: no evidence of a regression
    (2, 0, 1 / 4),  # both flips were regressions: P(X >= 2), X ~ Bin(2, 1/2)
    (5, 0, 1 / 32),
    (5, 1, 7 / 64),  # (C(6,5) + C(6,6)) / 2^6
    (10, 2, 79 / 4096),  # (66 + 12 + 1) / 2^12
    (0, 3, 1.0),  # only improvements
    (3, 3, 42 / 64),  # (20 + 15 + 6 + 1) / 2^6
])
def test_mcnemar_against_hand_computed_values(b: int, c: int, expected: float) -> None:
    assert mcnemar_regression_p(b, c) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(("b", "c"), [(1, 0), (4, 1), (7, 3), (12, 12), (30, 18), (200, 160),
                                      (1500, 1400)])
def test_mcnemar_agrees_with_scipys_exact_binomial_test(b: int, c: int) -> None:
    reference = stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue
    assert mcnemar_regression_p(b, c) == pytest.approx(reference, rel=1e-9, abs=1e-300)


def test_the_bootstrap_is_repeatable_and_honest_at_the_edges() -> None:
    now = [1, 1, 0, 1, 0, 1, 1, 1, 0, 1]
    before = [1, 1, 1, 1, 1, 1, 1, 1, 0, 1]
    first, again = paired_bootstrap(now, before), paired_bootstrap(now, before)
    assert first == again  # a fixed seed: the same runs give the same interval
    assert first.low is not None and first.high is not None
    assert first.low <= -0.2 <= first.high  # the point estimate lies inside
    assert first.high == 0.0  # no example improved: the upper end is no change at all
    same = paired_bootstrap([1, 0, 1], [1, 0, 1])  # no example changed: no spread at all
    assert (same.low, same.high) == (0.0, 0.0)
    assert paired_bootstrap([], []) == paired_bootstrap([], [])
    assert paired_bootstrap([], []).low is None
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [])


def test_the_bootstrap_interval_is_scipys_percentile_interval() -> None:
    """The same method as scipy.stats.bootstrap (paired, percentile), up to resampling
    noise."""
    import random

    rng = random.Random(7)
    now = [rng.random() for _ in range(60)]
    before = [x + rng.gauss(0.1, 0.2) for x in now]
    mine = paired_bootstrap(now, before)
    reference = stats.bootstrap(
        (now, before), lambda a, b: sum(a) / len(a) - sum(b) / len(b), paired=True,
        vectorized=False, method="percentile", n_resamples=4000, random_state=1)
    assert mine.low == pytest.approx(reference.confidence_interval.low, abs=0.02)
    assert mine.high == pytest.approx(reference.confidence_interval.high, abs=0.02)


def test_a_paired_change_counts_flips_and_only_full_passes_pass() -> None:
    # (now, before) pass rates: with repetitions an example passes when all its runs pass.
    change = paired_change([(1, 1), (0, 1), (0.5, 1), (1, 0), (1, 0.5), (0, 0)],
                           scores=[(0.2, 0.9), (0.4, 0.5)])
    assert (change.b, change.c) == (2, 2)
    assert change.delta == pytest.approx((3.5 - 3.5) / 6)
    assert change.p == pytest.approx(11 / 16)  # P(X >= 2), X ~ Bin(4, 1/2)
    assert change.score_delta == pytest.approx(-0.4)
    assert not change.significant(0.05)
    regressed = paired_change([(0, 1)] * 6 + [(1, 1)] * 4)
    assert (regressed.b, regressed.c) == (6, 0)
    assert regressed.p == pytest.approx(1 / 64)
    assert regressed.significant(0.05) and not regressed.significant(0.01)
    assert regressed.score_delta is None and regressed.score_interval.low is None
    assert math.isclose(regressed.delta or 0, -0.6)


@pytest.mark.parametrize(("args", "message"), [
    (["--phoenix-max-regression=sometimes"],
     "*--phoenix-max-regression: 'sometimes' is not a number >= 0"),
    (["--phoenix-max-regression=0.05", "--phoenix-alpha=0.1"],
     "*--phoenix-alpha: the level of the paired test of --phoenix-max-regression=significant; "
     "add that"),
    (["--phoenix-max-regression=significant", "--phoenix-alpha=1.5"],
     "*--phoenix-alpha: '1.5' is not a level between 0 and 1, for example 0.05"),
    (["--phoenix-max-regression=significant"],
     "*--phoenix-max-regression: a regression is measured against a baseline: add "
     "--phoenix-baseline=*"),
])
def test_bad_significance_options_name_what_to_fix(pytester: pytest.Pytester, args: list[str],
                                                    message: str) -> None:
    result = pytester.runpytest("--phoenix-dataset=qa", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
