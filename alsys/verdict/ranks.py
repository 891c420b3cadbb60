"""Ranking k configurations over N blocks (Demšar 2006, "Statistical comparisons of classifiers
over multiple data sets"): ranks within each block, the Friedman test, the Nemenyi post-hoc
test and its critical difference, and the critical-difference diagram. Pure functions, the
diagram aside (it writes its PNG).

``scores`` is always (N, k): block i's value of configuration j, higher is better (the area
under the learning curve). Rank 1 is the best; ties share their mean rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alsys.verdict.paired import ALPHA


def block_ranks(scores: np.ndarray) -> np.ndarray:
    """(N, k) ranks within each block: 1 for the highest score, ties at their mean rank."""
    from scipy.stats import rankdata

    return np.asarray(rankdata(-np.asarray(scores, dtype=np.float64), axis=1), dtype=np.float64)


@dataclass(frozen=True)
class Friedman:
    """Friedman's chi-square over ``blocks`` blocks and ``k`` configurations, tie-corrected,
    and its p-value (chi-square with k - 1 degrees of freedom; NaN when every block ties)."""

    statistic: float
    p: float
    blocks: int
    k: int


def friedman(scores: np.ndarray) -> Friedman:
    """chi^2 = (12 / (N k (k + 1)) sum_j R_j^2 - 3 N (k + 1)) / C, R_j the rank sums and
    C = 1 - sum(t^3 - t) / (N (k^3 - k)) over the tie groups t of every block."""
    from scipy.stats import chi2

    ranks = block_ranks(scores)
    blocks, k = ranks.shape
    sums = ranks.sum(axis=0)
    statistic = 12.0 / (blocks * k * (k + 1)) * float((sums**2).sum()) - 3.0 * blocks * (k + 1)
    ties = 0.0
    for row in np.asarray(scores, dtype=np.float64):
        _, counts = np.unique(row, return_counts=True)
        ties += float((counts**3 - counts).sum())
    correction = 1.0 - ties / (blocks * (k**3 - k))
    if correction <= 0:
        return Friedman(math.nan, math.nan, blocks, k)
    statistic /= correction
    return Friedman(statistic, float(chi2.sf(statistic, k - 1)), blocks, k)


@dataclass(frozen=True)
class CriticalDifference:
    """The Nemenyi post-hoc test: ``names`` with their ``mean_ranks`` (k,), the critical
    difference ``cd`` (two mean ranks at least cd apart differ at ``alpha``), the critical
    value ``q_alpha`` it uses, the pairwise p-values (k, k), and the ``cliques``: maximal runs
    of configurations, in rank order, that no test separates (indices into ``names``)."""

    names: tuple[str, ...]
    mean_ranks: tuple[float, ...]
    cd: float
    q_alpha: float
    blocks: int
    alpha: float
    p: tuple[tuple[float, ...], ...]
    cliques: tuple[tuple[int, ...], ...]


def nemenyi(scores: np.ndarray, names: tuple[str, ...], alpha: float = ALPHA) -> CriticalDifference:
    """CD = q_alpha sqrt(k (k + 1) / (6 N)), q_alpha the studentized range's 1 - alpha
    quantile for k groups and infinite degrees of freedom over sqrt(2); the p-value of a pair
    is the studentized range's tail at |R_i - R_j| sqrt(2) / sqrt(k (k + 1) / (6 N))."""
    from scipy.stats import studentized_range

    ranks = block_ranks(scores)
    blocks, k = ranks.shape
    mean = ranks.mean(axis=0)
    scale = math.sqrt(k * (k + 1) / (6.0 * blocks))
    q_alpha = float(studentized_range.ppf(1.0 - alpha, k, np.inf)) / math.sqrt(2.0)
    gaps = np.abs(mean[:, None] - mean[None, :]) / scale
    p = np.asarray(studentized_range.sf(gaps * math.sqrt(2.0), k, np.inf), dtype=np.float64)
    np.fill_diagonal(p, 1.0)
    cd = q_alpha * scale
    return CriticalDifference(
        names=tuple(names),
        mean_ranks=tuple(float(r) for r in mean),
        cd=cd,
        q_alpha=q_alpha,
        blocks=blocks,
        alpha=alpha,
        p=tuple(tuple(float(v) for v in row) for row in np.minimum(p, 1.0)),
        cliques=cliques(mean, cd),
    )


def cliques(mean_ranks: np.ndarray, cd: float) -> tuple[tuple[int, ...], ...]:
    """Maximal runs of configurations in rank order whose ranks span less than ``cd`` (no
    Nemenyi test separates any two of them); runs of one are left out."""
    order = np.argsort(mean_ranks, kind="stable")
    ranks = np.asarray(mean_ranks, dtype=np.float64)[order]
    found: list[tuple[int, ...]] = []
    last_end = -1
    for start in range(ranks.shape[0]):
        end = start
        while end + 1 < ranks.shape[0] and ranks[end + 1] - ranks[start] < cd:
            end += 1
        if end > start and end > last_end:  # not inside the previous run
            found.append(tuple(int(i) for i in order[start : end + 1]))
            last_end = end
    return tuple(found)


def cd_diagram(result: CriticalDifference, path: Path, title: str = "") -> Path:
    """The critical-difference diagram: the rank axis (1, the best, on the left), each
    configuration's mean rank, the CD as a bar, and a thick line under every clique."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(result.names)
    order = list(np.argsort(result.mean_ranks, kind="stable"))
    half = (k + 1) // 2
    step = 0.35
    fig, ax = plt.subplots(figsize=(8, 1.6 + step * half + 0.15 * len(result.cliques)))
    low, high = 1, max(k, 2)
    ax.hlines(0, low, high, color="black", lw=1)
    for tick in range(low, high + 1):
        ax.vlines(tick, 0, 0.08, color="black", lw=1)
        ax.text(tick, 0.12, str(tick), ha="center", va="bottom", fontsize=8)
    ax.hlines(0.55, low, low + result.cd, color="black", lw=2)
    ax.text(low + result.cd / 2, 0.62, f"CD = {result.cd:.2f}", ha="center", fontsize=8)
    for position, index in enumerate(order):
        rank = result.mean_ranks[index]
        left = position < half
        depth = -(position + 1 if left else k - position) * step - 0.15 * len(result.cliques)
        edge = low - 0.3 if left else high + 0.3
        ax.plot([rank, rank, edge], [0, depth, depth], color="black", lw=0.8)
        label = f"{result.names[index]} ({rank:.2f})"
        ax.text(edge, depth, label, ha="right" if left else "left", va="center", fontsize=8)
    for line, members in enumerate(result.cliques):
        ranks = [result.mean_ranks[i] for i in members]
        depth = -0.12 - 0.15 * line
        ax.hlines(depth, min(ranks) - 0.03, max(ranks) + 0.03, color="black", lw=3)
    ax.set_xlim(low - 3.2, high + 3.2)
    ax.set_ylim(-(half + 1) * step - 0.15 * len(result.cliques), 0.9)
    ax.axis("off")
    note = f"mean rank over {result.blocks} blocks; Nemenyi at alpha = {result.alpha:g}"
    ax.set_title(f"{title}\n{note}" if title else note, fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
