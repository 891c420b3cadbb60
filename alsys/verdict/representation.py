"""The representation as a factor of a verdict.

A sweep with an ``embed_seeds`` axis runs each configuration on several SimCLR trainings, each
with the same selection seeds. Its verdict then:

- pairs trials on their replicate, the (training, seed) pair (:func:`replicates`): two trials
  of one replicate share both the embedding and the initial draw;
- is also judged once per training (:func:`across_trainings`), and says for which subjects the
  answer is the same on every training, which is what holds on a newcomer's machine, whose
  store holds a training of its own;
- splits each configuration's spread into the representation's part (between trainings) and
  the selection's (between seeds within a training), as ``benchmarks/replication.py`` does
  (:func:`alsys.verdict.anova.variance_split`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from alsys.verdict.anova import variance_split
from alsys.verdict.base import CELL, Table, Verdict

Judge = Callable[[Any], Verdict]


def trainings_of(seeds: Any) -> list[int]:
    """The SimCLR trainings (``embed_seed``) the seed table's trials read, sorted (none named:
    the one training, 0)."""
    if "embed_seed" not in seeds or not len(seeds):
        return [0]
    return sorted(int(t) for t in seeds.embed_seed.unique())


def replicates(seeds: Any) -> Any:
    """The seed table with ``seed`` as the replicate every verdict pairs on: the seed itself
    with one training, else ``e<training>/s<seed>``."""
    if len(trainings_of(seeds)) < 2:
        return seeds
    pairs = zip(seeds.embed_seed, seeds.seed, strict=True)
    return seeds.assign(seed=[f"e{int(training)}/s{seed}" for training, seed in pairs])


def across_trainings(verdict: Verdict, seeds: Any, judge: Judge) -> Verdict:
    """``verdict`` (judged on every replicate) with the representation as a factor: the same
    judge on each training alone, which subjects keep their outcome on all of them, and the
    spread of each configuration split into representation and selection. With one training,
    ``verdict`` unchanged."""
    trainings = trainings_of(seeds)
    if len(trainings) < 2:
        return verdict
    each = {t: judge(seeds[seeds.embed_seed == t]) for t in trainings}
    outcomes = {t: {f.subject: f.outcome for f in v.findings} for t, v in each.items()}
    rows, held = [], []
    for finding in verdict.findings:
        per = [outcomes[t].get(finding.subject, "-") for t in trainings]
        same = all(o == finding.outcome for o in per)
        held.append(same)
        rows.append((finding.subject, finding.outcome, *per, same))
    columns = ("subject", "all trainings", *(f"training {t}" for t in trainings), "holds on each")
    per_training = Table(
        "per_training",
        f"The verdict on each SimCLR training alone ({len(trainings)} trainings)",
        columns,
        tuple(rows),
    )
    split = _split_table(seeds, trainings)
    shares = [row[-1] for row in split.rows if row[-1] == row[-1]]
    note = (
        f"Each replicate is a (SimCLR training, seed) pair: {len(trainings)} trainings "
        f"(embed_seeds {', '.join(map(str, trainings))}). The outcome is the same on every "
        f"training alone for {sum(held)} of {len(held)} subjects"
    )
    if shares:
        note += (
            f"; the representation accounts for a median {100 * float(np.median(shares)):.0f} % "
            f"of a configuration's spread (range {100 * min(shares):.0f}-"
            f"{100 * max(shares):.0f} %, over {len(shares)} configurations)."
        )
    else:
        note += "; the spread could not be split (it needs 2 seeds on every training)."
    return replace(
        verdict,
        notes=(*verdict.notes, note),
        tables=(*verdict.tables, per_training, split),
    )


def _split_table(seeds: Any, trainings: list[int]) -> Table:
    """Per configuration and cell, its AUC's spread split (the seeds every training ran)."""
    import pandas as pd

    rows = []
    keys = ["label", "d_clst", "d_typ", *CELL]
    for (label, d_clst, d_typ, *cell), group in seeds.groupby(keys, dropna=False):
        dims = not pd.isna(d_clst)  # a strategy without D_clst/D_typ holds NA there
        configuration = f"{label} {d_clst}/{d_typ}" if dims else str(label)
        grid = group.pivot_table(index="embed_seed", columns="seed", values="auc")
        grid = grid.reindex(trainings).dropna(axis=1)
        values = grid.to_numpy(dtype=np.float64)
        found = variance_split(values)
        rows.append(
            (
                configuration,
                "/".join(map(str, cell)),
                found.trainings,
                found.seeds,
                found.representation,
                found.selection,
                found.share,
            )
        )
    columns = ("configuration", "cell", "trainings", "seeds", "var_repr", "var_sel", "repr_share")
    return Table(
        "representation",
        "The spread of each configuration's AUC: representation vs selection",
        columns,
        tuple(rows),
    )
