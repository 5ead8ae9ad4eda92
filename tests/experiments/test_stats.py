"""Statistics over seeds: mean ± sample std, paired differences, their interval and tests, against scipy."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats as sstats

from vicinal.experiments.stats import fmt_mean_std, mean_std, paired, paired_wilcoxon


def test_mean_std_is_the_sample_std_of_the_finite_values() -> None:
    assert mean_std([10.0, 12.0, 14.0]) == (12.0, 2.0, 3)
    m, s, n = mean_std([3.0, None, float("nan")])
    assert (m, n) == (3.0, 1) and math.isnan(s)
    assert mean_std([])[2] == 0
    assert fmt_mean_std(12.0, 2.0, 3) == "12.00 ± 2.00"
    assert fmt_mean_std(3.0, math.nan, 1) == "3.00"
    assert fmt_mean_std(math.nan, math.nan, 0) == "-"


def test_paired_matches_scipy_and_the_t_interval() -> None:
    a = {0: 30.1, 1: 29.4, 2: 31.0, 3: 30.7, 4: 29.9}
    b = {0: 28.0, 1: 28.9, 2: 29.1, 3: 29.5, 4: 28.2, 9: 1.0}  # seed 9 has no partner: dropped
    r = paired(a, b)
    assert r.seeds == (0, 1, 2, 3, 4) and r.n == 5
    diffs = [b[s] - a[s] for s in range(5)]
    assert r.diffs == pytest.approx(diffs)
    assert r.p_t == pytest.approx(sstats.ttest_rel([b[s] for s in range(5)], [a[s] for s in range(5)]).pvalue)
    ci = sstats.t.interval(0.95, 4, loc=sum(diffs) / 5, scale=sstats.sem(diffs))
    assert (r.ci_low, r.ci_high) == pytest.approx(ci)
    assert r.wins == 5
    # every difference negative: only the all-negative and all-positive sign patterns are as extreme, 2 of 32
    assert r.p_sign_flip == pytest.approx(2 / 32)


def test_paired_sign_flip_counts_ties_and_edge_cases() -> None:
    r = paired({0: 1.0, 1: 1.0}, {0: 2.0, 1: 0.0})  # differences +1 and -1: mean 0, every pattern as extreme
    assert r.mean == 0.0 and r.p_sign_flip == 1.0
    one = paired({0: 1.0}, {0: 0.5})
    assert one.n == 1 and one.mean == -0.5 and math.isnan(one.ci_low) and one.describe() == "-0.50 (n=1)"
    none = paired({0: 1.0}, {1: 0.5})
    assert none.n == 0 and none.describe() == "-"
    same = paired({0: 1.0, 1: 2.0}, {0: 1.5, 1: 2.5})  # zero spread: the t-test is undefined, not 0
    assert math.isnan(same.p_t) and same.mean == 0.5


def test_paired_wilcoxon_matches_scipy() -> None:
    erm = [10.0, 12.0, 11.0, 9.0, 14.0, 10.0]
    mix = [9.0, 12.0, 8.0, 9.5, 10.0, 7.0]
    out = paired_wilcoxon(erm, mix)
    ref = sstats.wilcoxon(mix, erm)
    assert out["wilcoxon_p"] == pytest.approx(ref.pvalue) and out["wilcoxon_stat"] == pytest.approx(ref.statistic)
    assert out["ttest_p"] == pytest.approx(sstats.ttest_rel(mix, erm).pvalue)
    assert (out["wins"], out["ties"], out["losses"]) == (4, 1, 1)
    assert out["diff_mean"] == pytest.approx(-10.5 / 6)
    assert out["diff_std"] == pytest.approx(np.std(np.subtract(mix, erm), ddof=1))
    assert paired_wilcoxon([3.0, 4.0], [3.0, 4.0])["wilcoxon_p"] == 1.0
    # differences of the same number of test rows tie in the ranks and zero ones are zero, whatever their float
    # subtraction's last bits (as error rates of a split of 90 rows: 100 * k / 90)
    rate = [100 * k / 90 for k in (7, 12, 30, 45, 61, 3)]
    erm, mix = rate, [rate[0] + 100 / 90, rate[1] + 100 / 90, rate[2] - 100 / 90, rate[3], rate[4] + 200 / 90, rate[5]]
    out = paired_wilcoxon(erm, mix)
    rows = [1, 1, -1, 0, 2, 0]  # the differences in rows
    ref = sstats.wilcoxon(rows, zero_method="wilcox")
    assert (out["wins"], out["ties"], out["losses"]) == (1, 2, 3)
    assert out["wilcoxon_stat"] == ref.statistic and out["wilcoxon_p"] == pytest.approx(ref.pvalue, rel=1e-12)
    # a constant non-zero difference: the t statistic is undefined (NaN), not p = 0
    assert math.isnan(paired_wilcoxon([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])["ttest_p"])
    # the report's paired comparison, on the same rates: each seed one row of 91 worse gave t-test p = 2.4e-60
    rates = {s: 100 * k / 91 for s, k in enumerate((7, 12, 30, 45, 61))}
    worse = {s: r + 100 / 91 for s, r in rates.items()}
    result = paired(rates, worse)
    assert len(set(result.diffs)) == 1 and math.isnan(result.p_t)
    assert math.isnan(paired_wilcoxon([3.0], [2.0])["wilcoxon_p"])
    with pytest.raises(
        ValueError, match=r"paired_wilcoxon needs two 1-D sequences of equal length, got \(2,\) and \(3,\)"
    ):
        paired_wilcoxon([1.0, 2.0], [1.0, 2.0, 3.0])


def test_the_sign_flip_test_draws_assignments_beyond_16_pairs() -> None:
    # 17 seeds raised "n = 17 is too many" out of `vicinal report` (a traceback, no report written)
    exact = paired({s: 10.0 for s in range(16)}, {s: 9.0 for s in range(16)})
    assert exact.p_sign_flip == 2 / 2**16  # only the all-minus and all-plus assignments reach |mean| 1
    drawn = paired({s: 10.0 for s in range(17)}, {s: 9.0 for s in range(17)})
    again = paired({s: 10.0 for s in range(17)}, {s: 9.0 for s in range(17)})
    # two of 2**17 assignments reach it: ~1.5 of 100,000 draws, plus the observed one (a fixed-seed draw: the same p)
    assert drawn.p_sign_flip == again.p_sign_flip and 1 / 100_001 <= drawn.p_sign_flip <= 10 / 100_001
    mixed = paired({s: 10.0 for s in range(20)}, {s: 10.0 + (1 if s % 2 else -1) for s in range(20)})
    assert mixed.p_sign_flip == pytest.approx(1.0, abs=1e-9)  # mean 0: every assignment is at least as far


def test_paired_wilcoxon_drops_a_pair_with_a_missing_value() -> None:
    got = paired_wilcoxon([1.0, 2.0, float("nan"), 4.0], [0.5, 2.5, 3.0, 3.0])
    want = paired_wilcoxon([1.0, 2.0, 4.0], [0.5, 2.5, 3.0])
    assert got == want and got["n"] == 3 and got["wins"] + got["ties"] + got["losses"] == 3


def test_a_tied_seed_is_no_win_and_a_single_pair_has_sign_flip_p_1() -> None:
    # "k/n seeds lower" counts strictly lower errors: a seed where both runs erred alike is no win
    r = paired({0: 10.0, 1: 10.0, 2: 10.0}, {0: 9.0, 1: 10.0, 2: 8.0})
    assert r.diffs == (-1.0, 0.0, -2.0) and r.wins == 2
    assert r.describe().endswith("2/3 seeds lower)")
    # one pair: both sign assignments are as extreme as the observed one (exact test, p = 2/2), no interval or t-test
    one = paired({0: 1.0}, {0: 0.5})
    assert one.p_sign_flip == 1.0 and math.isnan(one.p_t) and math.isnan(one.std) and one.wins == 1


def test_the_observed_sign_assignment_always_counts_itself() -> None:
    # error rates of a 90-row split (100 * k / 90), every seed lower: only the all-minus and all-plus assignments
    # reach the observed |mean|, p = 2/8; the float sum of the differences (4.074074073999999) falls below their
    # exact mean (4.074074074), which must not leave the observed assignment out (p = 0)
    erm = {s: 100 * k / 90 for s, k in enumerate((23, 15, 13))}
    mix = {s: 100 * k / 90 for s, k in enumerate((20, 14, 6))}
    r = paired(erm, mix)
    assert r.diffs == (-3.333333333, -1.111111111, -7.777777778)
    assert r.p_sign_flip == 2 / 8


def test_a_drawn_sign_flip_p_is_never_zero() -> None:
    # 30 equal differences: 2 of 2**30 assignments reach |mean|, none of the 100,000 drawn ones does in practice;
    # the observed assignment is counted in, so p is 1 / 100,001 (a valid p value), not 0
    r = paired({s: 10.0 for s in range(30)}, {s: 9.0 for s in range(30)})
    assert r.p_sign_flip == 1 / 100_001


def test_a_zero_difference_is_a_positive_zero() -> None:
    # 0.3 - (0.1 + 0.2) rounds to -0.0: the per-seed column printed "-0.00" for a seed where both runs erred alike
    r = paired({0: 0.1 + 0.2}, {0: 0.3})
    assert r.diffs == (0.0,) and math.copysign(1.0, r.diffs[0]) == 1.0 and f"{r.diffs[0]:+.2f}" == "+0.00"
    assert r.wins == 0 and r.describe() == "+0.00 (n=1)"
    # differences that cancel in the float mean (-9.25e-18): the UCI table printed a mean difference of "-0.00"
    out = paired_wilcoxon([0.0, 0.0, 0.0], [0.3, -0.1, -0.2])
    assert out["diff_mean"] == 0.0 and f"{out['diff_mean']:+.2f}" == "+0.00"


def test_paired_wilcoxon_of_equal_errors_at_every_seed() -> None:
    # every difference zero: nothing to rank (p = 1) and no difference for the t-test to find (p = 1), all ties
    assert paired_wilcoxon([3.0, 4.0, 5.0], [3.0, 4.0, 5.0]) == {
        "n": 3,
        "diff_mean": 0.0,
        "diff_std": 0.0,
        "wins": 0,
        "ties": 3,
        "losses": 0,
        "wilcoxon_stat": 0.0,
        "wilcoxon_p": 1.0,
        "ttest_p": 1.0,
    }


def test_a_seed_missing_on_either_side_is_no_pair() -> None:
    # a run that never evaluated leaves None (or NaN) in its summary: on either side the seed is left out, and the
    # difference of the others is not NaN
    r = paired({0: 10.0, 1: 12.0, 2: 11.0}, {0: 9.0, 1: None, 2: float("nan")})
    assert r.seeds == (0,) and r.diffs == (-1.0,) and r.mean == -1.0
    r = paired({0: 10.0, 1: None, 2: float("inf")}, {0: 9.0, 1: 8.0, 2: 7.0})
    assert r.seeds == (0,) and r.mean == -1.0
    got = paired_wilcoxon([1.0, 2.0, 3.0, 4.0], [0.5, 2.5, float("nan"), 3.0])
    assert got == paired_wilcoxon([1.0, 2.0, 4.0], [0.5, 2.5, 3.0]) and got["n"] == 3


def test_mean_std_counts_only_finite_values() -> None:
    # n is the number of values averaged: a row whose runs all lack the value has none, however many runs it has
    m, s, n = mean_std([None, float("nan"), float("inf")])
    assert n == 0 and math.isnan(m) and math.isnan(s)
    assert mean_std([1.0, None, 3.0, float("-inf")]) == (2.0, statistics.stdev([1.0, 3.0]), 2)
