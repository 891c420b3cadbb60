"""Paired comparisons over seeds, each statistic one pure function: the one-sided paired t-test,
the two-sided Wilcoxon signed-rank test, the Hodges-Lehmann estimate with its exact confidence
interval, and Holm's correction.

Pairs share the seed (the same initial draw and the same embedding), so a seed's difference
removes what the seed alone moves. Every array here is (n,) over the n seeds both sides ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

ALPHA = 0.05  # the significance level of every verdict


@dataclass(frozen=True)
class PairedTest:
    """A paired test of ``a`` against ``b``: ``n`` pairs, the mean of ``a - b``, the test
    statistic and its p-value (NaN when the test cannot run: fewer than 2 pairs, or no
    difference at all)."""

    n: int
    mean_difference: float
    statistic: float
    p: float
    method: str


def _pairs(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """(n,) differences ``a - b``; the two must be aligned (the same seeds, in order)."""
    first, second = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(
            f"paired samples need equal (n,) shapes, got {first.shape}, {second.shape}"
        )
    return first - second


def paired_t_greater(a: ArrayLike, b: ArrayLike) -> PairedTest:
    """One-sided paired t-test of mean(a - b) > 0. Chosen over Wilcoxon for the thesis's
    criterion: with 3 seeds the signed-rank test's smallest one-sided p is 1/8, so it could
    never find a point above the baseline; the t-test can, assuming normal differences."""
    from scipy.stats import t as student

    diff = _pairs(a, b)
    n = diff.shape[0]
    mean = float(diff.mean()) if n else math.nan
    if n < 2:
        return PairedTest(n, mean, math.nan, math.nan, "paired t (one-sided)")
    spread = float(diff.std(ddof=1))
    if spread == 0.0:
        # Every seed moves by the same amount: certain when it is positive, never otherwise.
        statistic = math.copysign(math.inf, mean) if mean != 0 else 0.0
        p = 0.0 if mean > 0 else 1.0
        return PairedTest(n, mean, statistic, p, "paired t (one-sided)")
    statistic = mean / (spread / math.sqrt(n))
    return PairedTest(
        n, mean, statistic, float(student.sf(statistic, n - 1)), "paired t (one-sided)"
    )


def wilcoxon_min_pairs(alpha: float = ALPHA) -> int:
    """The fewest pairs with which a two-sided exact Wilcoxon signed-rank test can reach
    ``p < alpha``: its smallest p is ``2 / 2^n`` (every pair on one side)."""
    return next(n for n in range(1, 64) if 2.0 / 2**n < alpha)


def wilcoxon_paired(a: ArrayLike, b: ArrayLike) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of ``a - b`` (scipy's: exact for small samples
    without ties, zero differences dropped)."""
    from scipy.stats import wilcoxon

    diff = _pairs(a, b)
    n = diff.shape[0]
    mean = float(diff.mean()) if n else math.nan
    if n < 2 or np.allclose(diff, 0.0):
        return PairedTest(n, mean, math.nan, math.nan, "Wilcoxon signed-rank (two-sided)")
    result = wilcoxon(diff)
    return PairedTest(
        n, mean, float(result.statistic), float(result.pvalue), "Wilcoxon signed-rank (two-sided)"
    )


def signed_rank_null(n: int) -> np.ndarray:
    """(n(n+1)/2 + 1,) the exact null distribution of the signed-rank sum T+ over n pairs
    without ties: entry t is P(T+ = t). Each rank 1..n joins T+ with probability 1/2."""
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=np.float64)
    counts[0] = 1.0
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return counts / 2.0**n


@dataclass(frozen=True)
class HodgesLehmann:
    """The Hodges-Lehmann estimate of the median paired difference (the median of the Walsh
    averages) and its confidence interval from the Walsh averages' order statistics, exact
    under the signed-rank test's assumptions (a symmetric distribution of differences).
    ``coverage`` is the interval's exact coverage: at least 1 - alpha when n allows it, else
    the largest n allows (the interval is then the Walsh averages' range)."""

    n: int
    estimate: float
    low: float
    high: float
    coverage: float


def hodges_lehmann(differences: ArrayLike, alpha: float = ALPHA) -> HodgesLehmann:
    """differences: (n,) paired differences. The interval is [W_(k), W_(M+1-k)] over the
    M = n(n+1)/2 sorted Walsh averages (d_i + d_j)/2, i <= j, with k the largest such that
    P(T+ <= k - 1) <= alpha/2 (its coverage, 1 - 2 P(T+ <= k - 1), is returned)."""
    diff = np.asarray(differences, dtype=np.float64)
    n = diff.shape[0]
    if n == 0:
        return HodgesLehmann(0, math.nan, math.nan, math.nan, math.nan)
    upper = np.triu_indices(n)
    walsh = np.sort((diff[:, None] + diff[None, :])[upper] / 2.0)
    below = np.cumsum(signed_rank_null(n))  # below[t] = P(T+ <= t)
    k = int(np.searchsorted(below, alpha / 2.0, side="right"))  # P(T+ <= k-1) <= alpha/2
    k = max(k, 1)  # too few pairs for 1 - alpha: the widest interval, with its own coverage
    coverage = 1.0 - 2.0 * float(below[k - 1])
    return HodgesLehmann(
        n, float(np.median(walsh)), float(walsh[k - 1]), float(walsh[walsh.shape[0] - k]), coverage
    )


def holm(p_values: ArrayLike) -> np.ndarray:
    """(m,) Holm-adjusted p-values of (m,) p-values (step-down, monotone, capped at 1); a NaN
    (a test that could not run) is not counted in m and stays NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    m = order.shape[0]
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (m - position) * float(p[index])))
        adjusted[index] = running
    return adjusted
