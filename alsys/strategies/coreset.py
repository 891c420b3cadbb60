"""Coreset (Sener and Savarese 2018): greedy k-center over the pool's features.

Features are the classifier's penultimate layer in FSL and the embeddings in SSL; the loop passes
the right ones as ``Pool.embeddings``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsys.strategies.base import (
    BoolArray,
    FloatArray,
    Inputs,
    IntArray,
    Pool,
    Selection,
    Strategy,
    argmax_tiebreak,
    check_flag,
    prepare_features,
    progress,
)
from alsys.strategies.clustering import F32, knn_sqdist


def kcenter_greedy(
    features: F32,
    labeled_mask: BoolArray,
    budget: int,
    rng: np.random.Generator,
    show_progress: bool = False,
) -> tuple[IntArray, FloatArray]:
    """Repeatedly takes the point farthest from the labeled-or-chosen set.

    Args:
        features: (n, d) float32.
        labeled_mask: (n,) the labeled set. When it is empty the first point is drawn with
            ``rng`` (the reference code hangs there).

    Returns:
        (chosen (budget,), Euclidean distance of each to the set at the time it was taken;
        ``inf`` for a first point drawn at random).
    """
    sq_norms = np.einsum("ij,ij->i", features, features, dtype=np.float64)
    if labeled_mask.any():
        min_sq = knn_sqdist(features, features[labeled_mask], 1)[0][:, 0].astype(np.float64)
    else:
        min_sq = np.full(features.shape[0], np.inf)
    eligible = ~labeled_mask
    chosen = np.empty(budget, dtype=np.int64)
    distances = np.empty(budget)
    for step in progress(range(budget), total=budget, desc="coreset", enabled=show_progress):
        if np.isinf(min_sq[eligible]).all():
            current = int(rng.choice(np.flatnonzero(eligible)))
        else:
            current = argmax_tiebreak(np.where(eligible, min_sq, -np.inf), rng)
        chosen[step] = current
        distances[step] = np.sqrt(min_sq[current])
        eligible[current] = False
        to_current = sq_norms + sq_norms[current] - 2.0 * (features @ features[current])
        np.minimum(min_sq, np.maximum(to_current, 0.0), out=min_sq)
    return chosen, distances


@dataclass(frozen=True)
class Coreset(Strategy):
    """Attributes:
    normalize: L2-normalise the features first. Off by default, as in the reference code,
        whose penultimate features are raw; SSL embeddings arrive normalised from the loop.
    """

    name = "coreset"
    inputs = Inputs(features=True)

    normalize: bool = False

    def __post_init__(self) -> None:
        check_flag(self.name, "normalize", self.normalize)

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        x = prepare_features(self._require_embeddings(pool), "embeddings", self.normalize)
        chosen, distances = kcenter_greedy(x, labeled_mask, budget, rng, show_progress)
        details = tuple(
            {"reason": "coreset", "distance": float(d) if np.isfinite(d) else None}
            for d in distances
        )
        notes = () if labeled_mask.any() else ("empty labeled set: first point drawn at random",)
        return Selection(chosen, details, notes)
