"""DropQuery (Gupte, Aklilu, Nirschl and Yeung-Levy, TMLR 2024, "Revisiting Active Learning in
the Era of Vision Foundation Models"): uncertainty from predictions under feature dropout, then
diversity from k-means among the uncertain points.

1. The model's class y*(x) = argmax p(x), and its class under T passes of dropout on the
   head's input features (``Pool.dropout_probs``, computed by the caller's classifier: the
   strategy trains and runs no model).
2. The candidates are the unlabeled points whose class changes in more than half of the passes
   (the authors' ``mismatch > num_iter // 2``; scikit-activeml's ``disagree_rate > 0.5``, the
   same set). With fewer than ``b`` of them, the ``b`` unlabeled points of highest change rate
   (scikit-activeml's rule; ties by the rng; the authors' code has no such case).
3. k-means with ``b`` clusters on the candidates' features; for each centre in turn, the
   candidate nearest to it not already chosen (scikit-activeml's rule; the authors take each
   cluster's own member nearest its centre, which is the same point unless a centre's nearest
   candidate lies in another cluster).

Before any model (the cold start) DropQuery picks as the authors' initial pool does: k-means
with ``b`` clusters on the L2-normalised features, the point nearest each centre
(``centroid_init`` in github.com/sanketx/AL-foundation-models).

Defaults from the authors' code: dropout rate 0.75 (``classifier.params.dropout_p``,
ALFM/conf/al_train.yaml; their linear classifier applies it to its input features, scaling the
kept ones by 1 / (1 - p) as torch's Dropout does) and 3 passes (``num_iter``,
conf/query_strategy/dropout.yaml); scikit-activeml 1.0.1 defaults to 5 passes and zeroes the
dropped features without rescaling. Features are L2-normalised before k-means here (the
authors cluster their classifier's batch-normalised features after the cold start, and
scikit-activeml the features as given).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsys.errors import InputError
from alsys.strategies.base import (
    BoolArray,
    FloatArray,
    Inputs,
    IntArray,
    Pool,
    Selection,
    Strategy,
    check_flag,
    check_number,
    prepare_features,
    top_k_tiebreak,
)
from alsys.strategies.clustering import F32, kmeans
from alsys.strategies.kmeans_steps import sqdist


def change_rate(probs: FloatArray, dropout_probs: FloatArray) -> FloatArray:
    """(n,) the fraction of dropout passes (T, n, C) whose class differs from argmax probs."""
    y_star = np.asarray(probs).argmax(axis=1)
    flips = np.asarray(dropout_probs).argmax(axis=2) != y_star[None, :]
    return flips.mean(axis=0)  # type: ignore[no-any-return]


def nearest_to_centres(x: F32, centres: F32) -> tuple[IntArray, FloatArray]:
    """For each centre in turn, the row of ``x`` nearest to it among those not yet taken:
    (k,) rows and their squared distances."""
    distances = sqdist(x, centres)  # (m, k) float32
    taken = np.zeros(x.shape[0], dtype=bool)
    rows = np.empty(centres.shape[0], dtype=np.int64)
    for j in range(centres.shape[0]):
        column = np.where(taken, np.inf, distances[:, j])
        rows[j] = int(np.argmin(column))
        taken[rows[j]] = True
    return rows, distances[rows, np.arange(centres.shape[0])].astype(np.float64)


@dataclass(frozen=True)
class DropQuery(Strategy):
    """Attributes:
    dropout_rate: the chance that a feature is dropped in a pass (authors' 0.75).
    dropout_passes: T, the dropout passes (authors' 3; scikit-activeml's 5).
    normalize: L2-normalise the features before k-means.
    """

    name = "dropquery"
    inputs = Inputs(features=True, probs=True, feature_dropout=("dropout_rate", "dropout_passes"))

    dropout_rate: float = 0.75
    dropout_passes: int = 3
    normalize: bool = True

    def __post_init__(self) -> None:
        check_number(
            self.name,
            "dropout_rate",
            self.dropout_rate,
            low=0,
            high=1,
            low_open=True,
            high_open=True,
        )
        check_number(self.name, "dropout_passes", self.dropout_passes, low=1, integer=True)
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
        unlabeled = np.flatnonzero(~labeled_mask)
        probs = pool.class_probs()
        if probs is None or pool.dropout_probs is None:
            if labeled_mask.any():
                missing = "probs" if probs is None else "dropout_probs"
                raise InputError(
                    missing,
                    f"strategy {self.name} needs probs and dropout_probs (T, n, classes) from "
                    "a model trained on the labeled points",
                )
            return self._centres(x, unlabeled, budget, rng, None)
        rate = change_rate(probs, pool.dropout_probs)[unlabeled]
        inconsistent = np.flatnonzero(rate > 0.5)
        if inconsistent.shape[0] >= budget:
            candidates = unlabeled[inconsistent]
        else:
            candidates = unlabeled[np.sort(top_k_tiebreak(rate, budget, rng))]
        passes = np.asarray(pool.dropout_probs).shape[0]
        note = (
            f"dropquery: {inconsistent.shape[0]} of {unlabeled.shape[0]} unlabeled points "
            f"change class in more than half of {passes} dropout passes"
            + ("" if inconsistent.shape[0] >= budget else f"; the {budget} most changing taken")
        )
        selection = self._centres(x, candidates, budget, rng, note)
        full_rate = np.zeros(pool.n)
        full_rate[unlabeled] = rate
        details = tuple(
            {**why, "change_rate": float(full_rate[i])}
            for i, why in zip(selection.indices, selection.details, strict=True)
        )
        metrics = {
            **selection.metrics,
            "inconsistent": float(inconsistent.shape[0]),
            "inconsistent_share": float(inconsistent.shape[0] / unlabeled.shape[0]),
        }
        return Selection(selection.indices, details, selection.notes, metrics)

    def _centres(
        self,
        x: F32,
        candidates: IntArray,
        budget: int,
        rng: np.random.Generator,
        note: str | None,
    ) -> Selection:
        """k-means with ``budget`` clusters on the candidates; the candidate nearest each
        centre. ``note`` None: the cold start's initial pool."""
        xc = np.ascontiguousarray(x[candidates])
        clustering = kmeans(xc, budget, rng)
        rows, sq = nearest_to_centres(xc, clustering.centres)
        sizes = np.bincount(clustering.assignment, minlength=budget)
        reason = self.name if note is not None else f"{self.name} cold start: k-means centre"
        details = tuple(
            {"reason": reason, "cluster": j, "cluster_size": int(sizes[j]), "sq_distance": float(d)}
            for j, d in enumerate(sq)
        )
        first = note or (
            f"{self.name}: no model yet, so the initial pool: the points nearest the centres of "
            f"{budget} k-means clusters of the {candidates.shape[0]} unlabeled points"
        )
        notes = (first, clustering.describe())
        metrics = {"kmeans_inertia": float(clustering.inertia or 0.0)}
        return Selection(candidates[rows].astype(np.int64), details, notes, metrics)
