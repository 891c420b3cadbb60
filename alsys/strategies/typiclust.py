"""TypiClust (Hacohen, Dekel and Weinshall 2022): the most typical point of each cluster.

Typicality is computed in the typicality space (D_typ) and the clustering in the clustering
space (D_clst); with one embedding for both this is plain TypiClust. TypiClust-DC is TypiClust
with a precomputed (deep-clustering, e.g. SCAN) assignment passed as ``Pool.clusters``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsys.strategies.base import Inputs, IntArray, argmax_tiebreak
from alsys.strategies.clustering import ClusterContext, ClusterStrategy, Pick, typicality

__all__ = ["TypiClust", "typicality"]


@dataclass(frozen=True)
class TypiClust(ClusterStrategy):
    """In each visited cluster, the candidate of highest typicality (ties by the rng)."""

    name = "typiclust"
    inputs = Inputs(space=True, dims=True)

    def pick(
        self, cluster: int, candidates: IntArray, ctx: ClusterContext, rng: np.random.Generator
    ) -> Pick:
        typ = self.candidate_typicality(cluster, candidates, ctx)
        if typ is None:
            return Pick(int(candidates[0]), {"typicality": None})
        best = argmax_tiebreak(typ, rng)
        return Pick(int(candidates[best]), {"typicality": float(typ[best])}, typicality=typ)
