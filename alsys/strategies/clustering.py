"""What the clustering strategies share: typicality, cluster order, round-robin.

k-means and faiss's exact kNN live in :mod:`alsys.strategies.kmeans` and
:mod:`alsys.strategies.kmeans_steps` (re-exported here); the
typicality's kNN inside a cluster is numpy GEMMs on the CPU (see self_knn_sqdist).
TypiClust, SUPClust and its ablations differ only in how they pick a point inside a chosen
cluster; :class:`ClusterStrategy` holds everything else (reference code of Hacohen et al.):

1. cluster the pool into ``min(|L| + b, 500)`` clusters (or take a precomputed assignment);
2. order clusters by (labeled count ascending, size descending), ties by the rng, and drop
   those of size <= 5;
3. visit them round-robin, one pick per visit, until ``b`` points are chosen. A point chosen
   earlier in the round counts as labeled.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from alsys.errors import InputError
from alsys.strategies.base import (
    BoolArray,
    FloatArray,
    Inputs,
    IntArray,
    Pool,
    Selection,
    Strategy,
    check_choice,
    check_flag,
    check_number,
    prepare_features,
    progress_bar,
)
from alsys.strategies.kmeans import (
    KMEANS_ITERS,
    KMEANS_RESTARTS,
    Clustering,
    clustering_from_assignment,
    inertia,
    kmeans,
)
from alsys.strategies.kmeans_steps import gpu_available, knn_sqdist

F32 = npt.NDArray[np.float32]

# Added to the mean kNN distance before inverting (reference code).
TYPICALITY_EPS = 1e-5
DISTANCES = ("sqeuclidean", "euclidean")
# self_knn_sqdist's temporaries: blocks of x @ x.T of at most this many float32 entries (4 MiB).
KNN_BLOCK_ELEMENTS = 2**20


def self_knn_sqdist(x: F32, k: int) -> F32:
    """Squared L2 distances from each row of ``x`` (m, d) to its ``k`` nearest rows, itself
    included, ascending: (m, k).

    Exact: float32 ||a||^2 + ||b||^2 - 2 a.b, as faiss's flat search computes it, from numpy
    GEMMs. Each row's candidates are ranked by a.b - ||b||^2 / 2, largest first: one pass over
    the Gram matrix, and exactly -1/2 of ||b||^2 - 2 a.b rounded (scaling by 2 is exact), so
    the k kept give the same distances, ||a||^2 - 2 (a.b - ||b||^2 / 2), as the formula. The
    Gram matrix is symmetric, so only its upper block triangle is computed (half the flops of a
    search): a small set's x @ x.T at once (numpy runs it as a symmetric rank-k update), a
    larger one as row blocks against the rows from there on, each block serving its own rows
    and, transposed, the later rows (see _blocked_self_knn).

    On the CPU faiss is not used: calling it (OpenMP) between numpy calls (OpenBLAS) makes the
    two thread pools wait on each other, ~10 ms a switch on 2 cores (for 500 clusters of 100
    points, 30x the arithmetic), and clusters of 5,000 points took 4x longer in faiss after
    numpy's k-means than here. On a GPU faiss searches.
    """
    if gpu_available():
        return knn_sqdist(x, x, k)[0]
    m = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    half = sq * np.float32(0.5)
    if m * m > KNN_BLOCK_ELEMENTS:
        return _blocked_self_knn(x, sq, half, k)
    scores = x @ x.T
    scores -= half[None, :]
    return _finish(_largest(scores, k), sq)


def _largest(scores: F32, k: int) -> F32:
    """The ``k`` largest of each row of ``scores`` (which it reorders in place), unsorted."""
    width = scores.shape[1]
    if k < width:
        scores.partition(width - k, axis=1)
        return scores[:, width - k :]
    return scores


def _finish(closeness: F32, sq: F32) -> F32:
    """Squared distances ||a||^2 - 2 s from the k kept closeness scores s = a.b - ||b||^2 / 2
    of each row, ascending, clipped at 0."""
    nearest: F32 = np.sort(closeness, axis=1)[:, ::-1] * np.float32(-2.0)
    nearest += sq[:, None]
    return np.maximum(nearest, 0.0, out=nearest)


def _blocked_self_knn(x: F32, sq: F32, half: F32, k: int) -> F32:
    """self_knn_sqdist in row blocks: block [s, e) times rows [s, m) gives rows [s, e) their
    candidates among rows >= s, and rows >= e theirs among rows [s, e); each row keeps its k
    best so far, so a row's k nearest are complete once its own block is done."""
    m = x.shape[0]
    rows = max(1, KNN_BLOCK_ELEMENTS // m)
    kept = np.full((m, k), -np.inf, dtype=np.float32)  # best closeness from earlier blocks
    nearest = np.empty((m, k), dtype=np.float32)
    for start in range(0, m, rows):
        stop = min(start + rows, m)
        gram = x[start:stop] @ x[start:].T  # (r, m - start)
        if stop < m:
            # Rows >= stop against rows [start, stop): a.b - ||a||^2 / 2, a in the block,
            # written transposed in the same pass.
            later = np.empty((m - stop, stop - start), dtype=np.float32)
            np.subtract(gram[:, stop - start :], half[start:stop, None], out=later.T)
            merged = np.concatenate([kept[stop:], _largest(later, k)], axis=1)
            kept[stop:] = _largest(merged, k)
        gram -= half[None, start:]
        merged = np.concatenate([kept[start:stop], _largest(gram, k)], axis=1)
        nearest[start:stop] = _finish(_largest(merged, k), sq[start:stop])
    return nearest


def typicality(features: FloatArray, k_neighbors: int, distance: str = "sqeuclidean") -> FloatArray:
    """Typicality(x) = 1 / (mean distance to its K nearest neighbours + 1e-5) (eq. 2.11).

    The neighbours are taken among ``features`` themselves, the point excluded.

    Args:
        features: (m, d) the candidates of one cluster.
        k_neighbors: K, 1 <= K <= m - 1.
        distance: "sqeuclidean" (the reference code's faiss IndexFlatL2) or "euclidean"
            (the thesis's eq. 2.11).

    Returns:
        (m,) typicality, float64.
    """
    check_choice("typicality", "distance", distance, DISTANCES)
    x = np.ascontiguousarray(features, dtype=np.float32)
    m = x.shape[0]
    if not 1 <= k_neighbors <= m - 1:
        raise InputError("k_neighbors", f"must be in [1, {m - 1}] for {m} points")
    sq = self_knn_sqdist(x, k_neighbors + 1)
    # Column 0 is the point itself (distance 0), as in the reference's k+1 search.
    neighbours = sq[:, 1:].astype(np.float64)
    if distance == "euclidean":
        neighbours = np.sqrt(neighbours)
    return 1.0 / (neighbours.mean(axis=1) + TYPICALITY_EPS)  # type: ignore[no-any-return]


def cluster_order(
    assignment: IntArray, labeled_mask: BoolArray, min_cluster_size: int, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """Clusters in visiting order: (labeled count ascending, size descending, rng for ties).

    Returns ``(eligible, small)``: clusters larger than ``min_cluster_size`` (the reference's
    only ones), then the small ones in the same order, used only once every eligible cluster
    has run out of candidates (the reference fails there instead).
    """
    k = int(assignment.max()) + 1
    sizes = np.bincount(assignment, minlength=k)
    labeled = np.bincount(assignment[labeled_mask], minlength=k)
    return tiers(np.lexsort((rng.random(k), -sizes, labeled)), sizes, min_cluster_size)


def tiers(order: IntArray, sizes: IntArray, min_cluster_size: int) -> tuple[IntArray, IntArray]:
    """``order`` (every cluster id, in visiting order) split into ``(eligible, small)``: the
    non-empty clusters larger than ``min_cluster_size``, then the other non-empty ones."""
    order = order[sizes[order] > 0]
    big = sizes[order] > min_cluster_size
    return order[big], order[~big]


@dataclass(frozen=True)
class ClusterContext:
    """What a pick inside one cluster may use."""

    x_clst: F32  # (n, d_clst) clustering space
    x_typ: F32  # (n, d_typ) typicality space
    clustering: Clustering
    sizes: IntArray  # (k,)
    labeled_counts: IntArray  # (k,) before this round
    scores: FloatArray | None = None  # (n,) Pool.scores, for strategies that rank by a score
    labels: IntArray | None = None  # (n,) Pool.labels: classes of the labeled points, else -1
    # What a strategy derives once a round for its order and picks (e.g. supclust_la's guess
    # of each cluster's class); filled by the strategy itself.
    derived: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def centres64(self) -> FloatArray:
        """(k, d) the cluster centres in float64, converted once a round."""
        return self.clustering.centres.astype(np.float64)

    @cached_property
    def centres32(self) -> F32:
        """(k, d) the cluster centres, float32 and C-contiguous, for GEMMs against points."""
        return np.ascontiguousarray(self.clustering.centres, dtype=np.float32)

    @cached_property
    def centre_sqnorms(self) -> FloatArray:
        """(k,) squared norms of the centres, float64."""
        c = self.centres64
        norms: FloatArray = np.einsum("ij,ij->i", c, c)
        return norms

    @cached_property
    def centre_distances(self) -> FloatArray:
        """(k, k) Euclidean distances between cluster centres, float64; computed once a round."""
        c = self.centres64
        sq = (c * c).sum(axis=1)
        distances: FloatArray = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * c @ c.T, 0.0))
        return distances


# Significant digits of the floats in Selection.record: the plots need no more, and a cold-start
# round records every point of the pool once.
RECORD_DIGITS = 6


def _rounded(values: FloatArray | None) -> list[float] | None:
    if values is None:
        return None
    return [float(f"{v:.{RECORD_DIGITS}g}") for v in np.asarray(values, dtype=np.float64).tolist()]


@dataclass(frozen=True)
class Pick:
    """One visit's choice and what it was chosen from.

    Attributes:
        index: the chosen pool row.
        why: its JSON-ready explanation, merged into the selection's details.
        typicality: (m,) the typicality of each of the visit's candidates, ``None`` when the
            strategy computed none.
        sup: (m,) the SUP of each candidate, ``None`` when not computed.
        kept: the pool rows the typicality filter kept (SUPClust), ``None`` without a filter.
    """

    index: int
    why: dict[str, Any]
    typicality: FloatArray | None = None
    sup: FloatArray | None = None
    kept: IntArray | None = None

    def record(self, cluster: int, visit: int, candidates: IntArray) -> dict[str, Any]:
        """The visit as ``Selection.record`` keeps it: lists aligned with ``candidates``."""
        return {
            "cluster": cluster,
            "visit": visit,
            "candidates": candidates.tolist(),
            "typicality": _rounded(self.typicality),
            "sup": _rounded(self.sup),
            "kept": None if self.kept is None else self.kept.tolist(),
            "pick": self.index,
        }


@dataclass(frozen=True)
class ClusterStrategy(Strategy):
    """Cluster, order, round-robin; subclasses say which candidate a visit picks.

    The selection's notes name the clustering (its k-means, clusters and inertia), its metrics
    hold ``n_clusters`` and ``kmeans_inertia``, and its record every visit: the cluster, its
    candidates, their typicality and SUP where computed, the typicality filter's kept set and
    the pick (:meth:`Pick.record`).

    Attributes:
        max_clusters: at most this many clusters; 500 in the reference code.
        min_cluster_size: clusters of at most this size are skipped; 5 in the reference code.
        k_neighbors: K of the typicality, capped at half the candidates; 20 in the reference.
        distance: "sqeuclidean", the reference code's faiss IndexFlatL2 (the default, which
            produced the thesis's numbers), or "euclidean" as eq. 2.11 writes it.
        normalize: L2-normalise the embeddings first, as the reference code does.
        kmeans_iters: Lloyd iterations at most per k-means run; it stops earlier at a fixed
            point.
        kmeans_restarts: k-means runs from new k-means++ seeds, the lowest inertia kept, up to
            50 clusters; one run above (see :func:`kmeans`).
    """

    inputs = Inputs(space=True)

    max_clusters: int = 500
    min_cluster_size: int = 5
    k_neighbors: int = 20
    distance: str = "sqeuclidean"
    normalize: bool = True
    kmeans_iters: int = KMEANS_ITERS
    # scikit-learn KMeans's n_init=10, which the reference code ran up to 50 clusters. On 40
    # separated blobs one k-means++ run merged two and split another in 6 of 10 seeds, the best
    # of 10 in none (tests/test_clustering.py).
    kmeans_restarts: int = KMEANS_RESTARTS

    def __post_init__(self) -> None:
        check_number(self.name, "max_clusters", self.max_clusters, low=1, integer=True)
        check_number(self.name, "min_cluster_size", self.min_cluster_size, low=0, integer=True)
        check_number(self.name, "k_neighbors", self.k_neighbors, low=1, integer=True)
        check_number(self.name, "kmeans_iters", self.kmeans_iters, low=1, integer=True)
        check_number(self.name, "kmeans_restarts", self.kmeans_restarts, low=1, integer=True)
        check_choice(self.name, "distance", self.distance, DISTANCES)
        check_flag(self.name, "normalize", self.normalize)

    def cluster(
        self, x_clst: F32, pool: Pool, n_clusters: int, rng: np.random.Generator
    ) -> Clustering:
        if pool.clusters is not None:
            return clustering_from_assignment(x_clst, np.asarray(pool.clusters))
        return kmeans(x_clst, n_clusters, rng, self.kmeans_iters, self.kmeans_restarts)

    def candidate_typicality(self, features: F32) -> FloatArray | None:
        """Typicality among a cluster's candidates; ``None`` for a lone candidate."""
        k = min(self.k_neighbors, features.shape[0] // 2)
        return None if k < 1 else typicality(features, k, self.distance)

    def visit_order(
        self,
        ctx: ClusterContext,
        pool: Pool,
        labeled_mask: BoolArray,
        rng: np.random.Generator,
    ) -> tuple[IntArray, IntArray]:
        """The clusters in visiting order, as :func:`cluster_order` returns them; a strategy
        that knows more (the classes already bought) may order them otherwise."""
        return cluster_order(ctx.clustering.assignment, labeled_mask, self.min_cluster_size, rng)

    @abstractmethod
    def pick(
        self, cluster: int, candidates: IntArray, ctx: ClusterContext, rng: np.random.Generator
    ) -> Pick:
        """Chooses one of ``candidates`` (pool indices) of ``cluster``: it, why, and from what."""

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        x_clst = prepare_features(self._require_embeddings(pool), "embeddings", self.normalize)
        x_typ = x_clst
        if pool.typ_embeddings is not None:
            x_typ = prepare_features(pool.typ_embeddings, "typ_embeddings", self.normalize)
        n_clusters = min(int(labeled_mask.sum()) + budget, self.max_clusters)
        # One bar per stage: the clustering, then the visits (typicality or score, and the pick).
        with progress_bar(1, f"k-means, {n_clusters} clusters", show_progress) as stage:
            clustering = self.cluster(x_clst, pool, n_clusters, rng)
            stage.update(1)
        assignment = clustering.assignment
        k = clustering.n_clusters
        ctx = ClusterContext(
            x_clst,
            x_typ,
            clustering,
            np.bincount(assignment, minlength=k),
            np.bincount(assignment[labeled_mask], minlength=k),
            None if pool.scores is None else np.asarray(pool.scores, dtype=np.float64),
            None if pool.labels is None else np.asarray(pool.labels, dtype=np.int64),
        )
        by_cluster = np.argsort(assignment, kind="stable")
        bounds = np.searchsorted(assignment[by_cluster], np.arange(k + 1))
        members = [by_cluster[bounds[c] : bounds[c + 1]] for c in range(k)]
        available = ~labeled_mask
        chosen: list[int] = []
        details: list[dict[str, Any]] = []
        visits: list[dict[str, Any]] = []
        bar = progress_bar(budget, f"{self.name}: typicality and picks", show_progress)
        for tier in self.visit_order(ctx, pool, labeled_mask, rng):
            visit = 0
            while len(chosen) < budget and any(available[members[c]].any() for c in tier):
                for c in tier:
                    if len(chosen) == budget:
                        break
                    candidates = members[c][available[members[c]]]
                    if candidates.shape[0] == 0:
                        continue
                    pick = self.pick(int(c), candidates, ctx, rng)
                    available[pick.index] = False
                    chosen.append(pick.index)
                    details.append(
                        {
                            "cluster": int(c),
                            "cluster_size": int(ctx.sizes[c]),
                            "cluster_labeled": int(ctx.labeled_counts[c]),
                            "candidates": int(candidates.shape[0]),
                            "visit": visit,
                            **pick.why,
                        }
                    )
                    visits.append(pick.record(int(c), visit, candidates))
                    bar.update(1)
                visit += 1
        bar.close()
        metrics = {"n_clusters": float(k)}
        if clustering.inertia is not None:
            metrics["kmeans_inertia"] = clustering.inertia
        record = {"clustering": clustering.describe(), "n_clusters": k, "visits": visits}
        return Selection(
            np.asarray(chosen, dtype=np.int64),
            tuple(details),
            (clustering.describe(),),
            metrics,
            record,
        )


__all__ = [
    "ClusterContext",
    "ClusterStrategy",
    "Clustering",
    "Pick",
    "clustering_from_assignment",
    "gpu_available",
    "inertia",
    "kmeans",
    "knn_sqdist",
    "typicality",
]
