"""The verdict of a sweep that compares strategies (thesis Fig. 5.10, the ablation): how they
rank, and which differences are more than noise, as the low-budget benchmarks report it.

- Per cell (dataset/budget/setting), each configuration's mean rank across seeds (ranked
  within each seed).
- The Friedman test across cells, each cell a block holding each configuration's mean over
  seeds (Demšar 2006: the cells are the independent "data sets"); a sweep of one cell has its
  seeds as the blocks instead, and says so.
- The Nemenyi post-hoc test, its critical difference, and the critical-difference diagram.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alsys.strategies import SUPCLUST, TYPICLUST
from alsys.verdict.base import CELL, Finding, Table, Verdict, p_text
from alsys.verdict.claims import CLAIMS
from alsys.verdict.paired import ALPHA
from alsys.verdict.ranks import CriticalDifference, Friedman, block_ranks, friedman, nemenyi

CLAIM = "ranking"
SUBJECT = "all strategies"


def blocks_of(seeds: Any) -> tuple[Any, str]:
    """The Friedman blocks: (N, k) frame of scores (blocks x configurations) and what a block
    is. Cells where every configuration ran, each configuration's mean over seeds; with one
    such cell, its seeds where every configuration ran."""
    means = seeds.groupby([*CELL, "configuration"]).auc.mean().unstack("configuration")
    complete = means.dropna()
    if len(complete) >= 2 or means.empty:
        return complete, "cells (dataset/budget/setting), each configuration's mean over seeds"
    cell = complete.index[0] if len(complete) else means.index[0]
    here = seeds.groupby(list(CELL)).get_group(cell)
    per_seed = here.pivot_table(index="seed", columns="configuration", values="auc").dropna()
    return per_seed, f"seeds of the one cell {'/'.join(map(str, cell))}"


def cell_ranks(seeds: Any) -> list[tuple[Any, ...]]:
    """Per cell and configuration: the mean rank across seeds (ranked within each seed, over
    the seeds where every configuration of the cell ran), the mean auc, the seeds."""
    rows = []
    for cell, block in seeds.groupby(list(CELL)):
        table = block.pivot_table(index="seed", columns="configuration", values="auc").dropna()
        if table.empty:
            continue
        ranks = block_ranks(table.to_numpy()).mean(axis=0)
        means = table.mean(axis=0)
        for name, rank in zip(table.columns, ranks, strict=True):
            rows.append(
                ("/".join(map(str, cell)), name, float(rank), float(means[name]), len(table))
            )
    return rows


def _separations(cd: CriticalDifference, best: int) -> str:
    """Which configurations the best one is ahead of, and which it is level with."""
    ahead = [cd.names[j] for j in range(len(cd.names)) if j != best and cd.p[best][j] < cd.alpha]
    level = [cd.names[j] for j in range(len(cd.names)) if j != best and cd.p[best][j] >= cd.alpha]
    parts = []
    if ahead:
        parts.append(f"ahead of {', '.join(ahead)}")
    if level:
        parts.append(f"level with {', '.join(level)}")
    return " and ".join(parts)


def _thesis(cd: CriticalDifference) -> str:
    """SUPClust against TypiClust (the thesis's claim in Fig. 5.10), when both ran."""
    if SUPCLUST not in cd.names or TYPICLUST not in cd.names:
        return ""
    s, t = cd.names.index(SUPCLUST), cd.names.index(TYPICLUST)
    gap = cd.mean_ranks[s] - cd.mean_ranks[t]
    if cd.p[s][t] >= cd.alpha:
        judged = "level"
    else:
        judged = "SUPClust ahead" if gap < 0 else "SUPClust behind"
    return (
        f" The thesis's SUPClust has mean rank {cd.mean_ranks[s]:.2f} and TypiClust "
        f"{cd.mean_ranks[t]:.2f}: {judged} (Nemenyi {p_text(cd.p[s][t])})."
    )


def _sentence(test: Friedman, cd: CriticalDifference, basis: str) -> tuple[str, str]:
    order = np.argsort(cd.mean_ranks, kind="stable")
    top = ", ".join(f"{cd.names[i]} ({cd.mean_ranks[i]:.2f})" for i in order[:3])
    head = f"over {test.blocks} blocks ({basis}), the {test.k} configurations' ranks"
    if not test.p < ALPHA:
        return "no difference shown", (
            f"{head} do not differ beyond the noise (Friedman {p_text(test.p)}), so no pair is "
            f"separated; best mean ranks: {top}.{_thesis(cd)}"
        )
    best = int(order[0])
    return "ranked", (
        f"{head} differ (Friedman χ² = {test.statistic:.3g}, {p_text(test.p)}). Best mean "
        f"ranks: {top}. Nemenyi (CD = {cd.cd:.2f} ranks at alpha = {cd.alpha}): {cd.names[best]} "
        f"is {_separations(cd, best)}.{_thesis(cd)}"
    )


def ranking(seeds: Any, alpha: float = ALPHA) -> Verdict:
    """seeds: the seed table (:func:`alsys.verdict.base.seed_table`)."""
    scores, basis = blocks_of(seeds)
    per_cell = Table(
        "cell_ranks",
        "Mean rank across seeds per cell",
        ("cell", "configuration", "mean_rank", "mean_auc", "seeds"),
        tuple(cell_ranks(seeds)),
        printed=False,
    )
    if scores.shape[0] < 2 or scores.shape[1] < 2:
        finding = Finding(
            SUBJECT,
            "not enough blocks",
            f"not enough to rank them: {scores.shape[0]} block(s) of {scores.shape[1]} "
            f"configuration(s) ({basis}); ranking needs two blocks of two.",
        )
        return Verdict(CLAIM, CLAIMS[CLAIM], (finding,), (), (per_cell,))
    names = tuple(str(c) for c in scores.columns)
    values = scores.to_numpy(dtype=np.float64)
    test, cd = friedman(values), nemenyi(values, names, alpha)
    outcome, sentence = _sentence(test, cd, basis)
    order = np.argsort(cd.mean_ranks, kind="stable")
    means = values.mean(axis=0)
    ranks = Table(
        "ranks",
        "Mean rank (1 = best) over the blocks",
        ("configuration", "mean_rank", "mean_auc"),
        tuple((names[i], cd.mean_ranks[i], float(means[i])) for i in order),
    )
    pairs = Table(
        "nemenyi",
        "Nemenyi post-hoc test, every pair",
        ("a", "b", "rank_gap", "p", "differ"),
        tuple(
            (
                names[i],
                names[j],
                abs(cd.mean_ranks[i] - cd.mean_ranks[j]),
                cd.p[i][j],
                cd.p[i][j] < alpha,
            )
            for x, i in enumerate(order)
            for j in order[x + 1 :]
        ),
        printed=False,
    )
    note = (
        f"Friedman's test (tie-corrected) then Nemenyi's: two mean ranks differ when they are "
        f"at least CD = q_alpha sqrt(k(k+1)/(6N)) apart (q_alpha = {cd.q_alpha:.3f} for "
        f"k = {test.k}, N = {test.blocks}); the diagram joins configurations no test separates."
    )
    return Verdict(
        CLAIM,
        CLAIMS[CLAIM],
        (Finding(SUBJECT, outcome, sentence),),
        (note,),
        (ranks, per_cell, pairs),
        cd,
    )
