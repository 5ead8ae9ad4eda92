"""Statistics of results over seeds: the one place the lab computes mean ± std, paired differences and their tests.

Every number the lab prints about several seeds comes from here, so that "mean ± std" means the same thing in
every table: the arithmetic mean and the *sample* standard deviation (ddof 1) of the finite values, with n.

Paired comparisons (a method against ERM) pair runs by seed: at a given seed both runs see the same training images
and start from the same weights (the data layer and the model builder derive both from ``train.seed``), so the
per-seed difference removes the variance those two sources share. The interval is Student's t on the differences,
the test the paired t-test (``scipy.stats.ttest_rel``), and the sign-flip (permutation) test beside it, which
assumes only that the differences are symmetric about 0 under the null: exact up to 16 pairs, from 100,000
fixed-seed draws of the sign assignments beyond.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sstats

__all__ = ["Paired", "fmt_mean_std", "mean_std", "paired", "paired_wilcoxon"]


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_std(values: Sequence[Any]) -> tuple[float, float, int]:
    """(mean, sample standard deviation (ddof 1; nan for n < 2), n) of the finite values; (nan, nan, 0) if none.

    ``None`` and non-finite values are skipped (a run that never evaluated leaves ``None`` in its summary).
    """
    vals = _finite(values)
    if not vals:
        return math.nan, math.nan, 0
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else math.nan), len(vals)


def fmt_mean_std(m: float, s: float, n: int, digits: int = 2) -> str:
    """``"m ± s"``; ``"m"`` for n = 1; ``"-"`` for n = 0."""
    if n == 0:
        return "-"
    if n == 1 or math.isnan(s):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


@dataclass(frozen=True)
class Paired:
    """A paired comparison ``b - a`` over the seeds both have.

    Attributes:
        seeds: the seeds present in both, sorted.
        diffs: ``b[seed] - a[seed]`` per seed, in the order of ``seeds``.
        mean: mean difference.
        std: sample standard deviation of the differences (nan for n < 2).
        ci_low, ci_high: 95% Student-t interval of the mean difference (nan for n < 2).
        p_t: two-sided p-value of the paired t-test (nan for n < 2 or zero spread).
        p_sign_flip: two-sided p-value of the sign-flip test (nan for n = 0); exact up to 16 pairs, where its smallest
            possible value is 2 / 2**n (with 5 seeds no result can be below 0.0625), drawn beyond (at least 1 / 100,001).
        wins: seeds with ``b < a`` (lower is better for errors).
    """

    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    mean: float
    std: float
    ci_low: float
    ci_high: float
    p_t: float
    p_sign_flip: float
    wins: int

    @property
    def n(self) -> int:
        return len(self.diffs)

    def describe(self, digits: int = 2) -> str:
        """``"-1.23 [-2.00, -0.46] (n=5, t-test p=0.012, sign-flip p=0.062, 5/5 seeds lower)"``."""
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{self.mean:+.{digits}f} (n=1)"
        return (
            f"{self.mean:+.{digits}f} [{self.ci_low:+.{digits}f}, {self.ci_high:+.{digits}f}] (n={self.n}, "
            f"t-test p={self.p_t:.3g}, sign-flip p={self.p_sign_flip:.3g}, {self.wins}/{self.n} seeds lower)"
        )


def _differences(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """``b - a`` per pair, rounded to 9 decimals. Error rates are counts over a test split: two seeds that differ by
    the same number of rows must have equal differences (tied ranks, a constant difference with no spread) and a
    zero difference must be zero, which the float subtraction breaks in its last bits (1.1111111111111107 vs
    1.1111111111111143). 9 decimals lie far below one row of any split."""
    return np.round(np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64), 9) + 0.0


def paired(a: Mapping[int, Any], b: Mapping[int, Any]) -> Paired:
    """Compare ``b`` against ``a``, both ``seed -> value``; seeds missing or non-finite on either side are dropped."""
    seeds = tuple(sorted(s for s in a.keys() & b.keys() if _finite([a[s]]) and _finite([b[s]])))
    diffs = tuple(float(x) for x in _differences([a[s] for s in seeds], [b[s] for s in seeds]))
    n = len(diffs)
    nan = math.nan
    if n == 0:
        return Paired(seeds, diffs, nan, nan, nan, nan, nan, nan, 0)
    mean = statistics.mean(diffs)
    wins = sum(d < 0 for d in diffs)
    if n == 1:
        return Paired(seeds, diffs, mean, nan, nan, nan, nan, 1.0, wins)
    std = statistics.stdev(diffs)
    half = float(sstats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    p_t = float(sstats.ttest_1samp(diffs, 0.0).pvalue) if std > 0 else nan
    return Paired(seeds, diffs, mean, std, mean - half, mean + half, p_t, _sign_flip_p(diffs, mean), wins)


# The sign-flip test enumerates the 2**n sign assignments up to this many pairs; beyond, it draws this many of
# them from a fixed-seed generator (the same p on every machine) and counts the observed one in (a valid p value).
SIGN_FLIP_EXACT_MAX = 16
SIGN_FLIP_DRAWS = 100_000


def _sign_flip_p(diffs: Sequence[float], mean: float) -> float:
    """The share of sign assignments of ``diffs`` whose |mean| is at least the observed ``|mean|``."""
    n = len(diffs)
    observed = abs(mean) - 1e-12
    if n <= SIGN_FLIP_EXACT_MAX:
        flips = [abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) / n for signs in _signs(n)]
        return sum(f >= observed for f in flips) / len(flips)
    rng = np.random.default_rng(0)
    d = np.asarray(diffs, dtype=np.float64)
    hits, left = 0, SIGN_FLIP_DRAWS
    while left:  # in blocks, so that many pairs do not need a (draws, n) matrix at once
        size = min(left, 10_000)
        signs = rng.choice(np.array([1.0, -1.0]), size=(size, n))
        hits += int((np.abs(signs @ d) / n >= observed).sum())
        left -= size
    return (hits + 1) / (SIGN_FLIP_DRAWS + 1)


def _signs(n: int) -> list[tuple[int, ...]]:
    return list(itertools.product((1, -1), repeat=n))


def paired_wilcoxon(erm: Sequence[float], mixup: Sequence[float]) -> dict[str, Any]:
    """Paired comparison of per-seed errors (same seeds, same order), as the UCI table reports it (many seeds).

    Returns a dict with ``n``, mean and std (ddof=1) of ``mixup - erm``, ``wins``/``ties``/``losses`` (seeds where
    mixup's error is lower/equal/higher), the Wilcoxon signed-rank test (two-sided, zero differences dropped:
    ``wilcoxon_stat``, ``wilcoxon_p``; p = 1 when every difference is zero, NaN with fewer than 2 pairs) and the
    paired t-test p-value ``ttest_p`` for reference.
    """
    a, b = np.asarray(erm, dtype=np.float64), np.asarray(mixup, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_wilcoxon needs two 1-D sequences of equal length, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)  # a pair with a missing value is no comparison, as in `paired`
    a, b = a[keep], b[keep]
    diff = _differences(a, b)
    n = len(diff)
    out: dict[str, Any] = {
        "n": n,
        "diff_mean": float(np.round(diff.mean(), 12)) + 0.0 if n else float("nan"),  # no "-0.00" from round-off
        "diff_std": float(diff.std(ddof=1)) if n > 1 else float("nan"),
        "wins": int((diff < 0).sum()),
        "ties": int((diff == 0).sum()),
        "losses": int((diff > 0).sum()),
        "wilcoxon_stat": float("nan"),
        "wilcoxon_p": float("nan"),
        "ttest_p": float("nan"),
    }
    if n < 2:
        return out
    if not np.any(diff != 0):
        out.update(wilcoxon_stat=0.0, wilcoxon_p=1.0, ttest_p=1.0)
        return out
    w = sstats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
    out["wilcoxon_stat"], out["wilcoxon_p"] = float(w.statistic), float(w.pvalue)
    if np.ptp(diff) > 0:  # the t statistic is undefined for a constant non-zero difference: p stays NaN
        out["ttest_p"] = float(sstats.ttest_1samp(diff, 0.0).pvalue)
    return out
