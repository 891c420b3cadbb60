"""Every sweep's verdict on the claim it was run to test (its YAML's ``claim:``), with the
statistics behind it. One module per job:

- ``claims``: the claims, and the one check of the ``claim:`` field (light: no statistics);
- ``base``: what a verdict is (findings, notes, tables), its one input (the area under the
  learning curve per trial, :func:`seed_table`) and its files;
- ``paired``, ``anova``, ``ranks``: the statistics, pure functions on arrays;
- ``dims``, ``tuning``, ``ranking``: one claim each.

Every mean over rounds is ``alsys.stats.auc``. Every grouping is sorted, so a verdict does not
depend on the order its trials come in (the sweep's rows, the report's runs): ties rank alike
and the permutations are drawn for the same grids in the same order. The sweep's end
(``alsys.sweep.conclude``) prints a verdict and logs it to the parent run; ``alsys report``
opens with it. Neither Ray nor MLflow is imported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alsys.verdict.base import Finding, Table, Verdict, rounds_frame, seed_table, write_verdict
from alsys.verdict.claims import (
    CLAIM_TAG,
    CLAIMS,
    GRID_CLAIMS,
    SEARCH_CLAIMS,
    VERDICT_TAG,
    check_claim,
    check_grid_claim,
    verdict_seed,
)


def verdict_of(claim: str, seeds: Any, rng: np.random.Generator) -> Verdict:
    """The verdict on ``claim`` from the seed table ``seeds`` (:func:`seed_table`); ``rng``
    draws whatever the claim's tests draw (the permutations of d_typ_over_d_clst). Trials on
    several SimCLR trainings are paired on (training, seed) and the verdict is also judged on
    each training alone (:mod:`alsys.verdict.representation`)."""
    from alsys.verdict.representation import across_trainings, replicates

    def judge(table: Any) -> Verdict:
        return _judge(claim, replicates(table), rng)

    return across_trainings(judge(seeds), seeds, judge)


def _judge(claim: str, seeds: Any, rng: np.random.Generator) -> Verdict:
    if claim == "d_typ_over_d_clst":
        from alsys.verdict.dims import d_typ_over_d_clst

        return d_typ_over_d_clst(seeds, rng)
    if claim == "tuned_beats_default":
        from alsys.verdict.tuning import tuned_beats_default

        return tuned_beats_default(seeds)
    from alsys.verdict.ranking import ranking

    return ranking(seeds)


__all__ = [
    "CLAIMS",
    "CLAIM_TAG",
    "GRID_CLAIMS",
    "SEARCH_CLAIMS",
    "VERDICT_TAG",
    "Finding",
    "Table",
    "Verdict",
    "check_claim",
    "check_grid_claim",
    "rounds_frame",
    "seed_table",
    "verdict_of",
    "verdict_seed",
    "write_verdict",
]
