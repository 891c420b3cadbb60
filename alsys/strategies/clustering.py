"""What the clustering strategies share: cluster order, round-robin, typicality over visits.

k-means and faiss's exact kNN live in :mod:`alsys.strategies.kmeans` and
:mod:`alsys.strategies.kmeans_steps` (re-exported here); typicality and the neighbour lists it
keeps over a round's visits in :mod:`alsys.strategies.typicality`.
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

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
from alsys.strategies.typicality import (
    DISTANCES,
    KNN_MODES,
    RoundNeighbours,
    partition_plan,
    typicality,
)

F32 = npt.NDArray[np.float32]


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


def first_visits(
    order: tuple[IntArray, IntArray],
    members: Sequence[IntArray],
    available: BoolArray,
    budget: int,
) -> dict[int, int]:
    """The clusters a round visits for the first time, with their candidates then: the first
    ``budget`` clusters of the eligible tier that have a candidate (the small tier only matters
    once the eligible one has run out of candidates, and its clusters are small)."""
    visited: dict[int, int] = {}
    for c in order[0]:
        if len(visited) == budget:
            break
        m = int(available[members[c]].sum())
        if m:
            visited[int(c)] = m
    return visited


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
    # Each visited cluster's neighbour lists, kept while the cluster may be visited again.
    neighbours: RoundNeighbours = field(default_factory=RoundNeighbours)
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


# Powers of ten that are exact doubles (10^22 is the largest).
_EXACT_POWERS_OF_TEN = np.array([float(10**i) for i in range(23)])


def rounded(values: FloatArray | None) -> list[float] | None:
    """``values`` to RECORD_DIGITS significant digits, as Python floats: each equal to
    ``float(f"{v:.6g}")``, a cold-start round's million values at about a tenth of its cost.

    A value is its decimal mantissa m (an integer of RECORD_DIGITS digits, rounded from
    v x 10^p) over 10^p: both exact doubles, so one correctly rounded division gives the double
    nearest the decimal, as parsing its text does. Where the scaled value lies within 1e-6 of a
    rounding tie (its float64 product may round either way), or p needs a power of ten that is
    not an exact double, or v is 0 or not finite, the text is formatted and parsed as before.
    """
    if values is None:
        return None
    v = np.asarray(values, dtype=np.float64).ravel()
    out = v.copy()
    magnitude = np.abs(v)
    fast = np.isfinite(v) & (magnitude > 0)
    exponent = np.zeros(v.shape, dtype=np.int64)
    exponent[fast] = np.floor(np.log10(magnitude[fast])).astype(np.int64)
    power = RECORD_DIGITS - 1 - exponent  # v x 10^power has RECORD_DIGITS integer digits
    fast &= np.abs(power) < _EXACT_POWERS_OF_TEN.shape[0]
    scale = _EXACT_POWERS_OF_TEN[np.minimum(np.abs(power), _EXACT_POWERS_OF_TEN.shape[0] - 1)]
    up = power >= 0
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.where(up, v * scale, v / scale)
        mantissa = np.rint(scaled)
        tie = np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5) < 1e-6
    low, high = 10.0 ** (RECORD_DIGITS - 1), 10.0**RECORD_DIGITS
    fast &= ~tie & (np.abs(mantissa) >= low) & (np.abs(mantissa) < high)
    out[fast] = np.where(up[fast], mantissa[fast] / scale[fast], mantissa[fast] * scale[fast])
    for i in np.flatnonzero(~fast).tolist():
        out[i] = float(f"{v[i]:.{RECORD_DIGITS}g}")
    result: list[float] = out.tolist()
    return result


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
            "typicality": rounded(self.typicality),
            "sup": rounded(self.sup),
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
        knn: how the typicality's neighbours are searched (:mod:`alsys.strategies.typicality`):
            "auto" (exact while a round's exact searches stay within 2^28 distances, every
            round of a CIFAR-sized pool; past that, the largest clusters by region of a
            balanced partition), "exact" at every size as the reference, or "partitioned"
            (every cluster of more than 2,048 candidates by region).
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
    # "auto": exact where affordable, bounded work past that (docs/scale.md, "Large pools").
    knn: str = "auto"
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
        check_choice(self.name, "knn", self.knn, KNN_MODES)
        check_flag(self.name, "normalize", self.normalize)

    def cluster(
        self, x_clst: F32, pool: Pool, n_clusters: int, rng: np.random.Generator
    ) -> Clustering:
        if pool.clusters is not None:
            return clustering_from_assignment(x_clst, np.asarray(pool.clusters))
        return kmeans(x_clst, n_clusters, rng, self.kmeans_iters, self.kmeans_restarts)

    def candidate_typicality(
        self, cluster: int, candidates: IntArray, ctx: ClusterContext
    ) -> FloatArray | None:
        """(m,) typicality among a cluster's ``candidates`` (pool rows, ascending) in the
        typicality space; ``None`` for a lone candidate. The cluster's neighbour lists are
        searched at its first visit of the round and reused at the next (see
        :class:`~alsys.strategies.typicality.CandidateNeighbours`)."""
        k = min(self.k_neighbors, candidates.shape[0] // 2)
        if k < 1:
            return None
        return ctx.neighbours.typicality(cluster, ctx.x_typ, candidates, k, self.distance)

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
        order = self.visit_order(ctx, pool, labeled_mask, rng)
        ctx.neighbours.partition = partition_plan(
            first_visits(order, members, available, budget), self.knn
        )
        chosen: list[int] = []
        details: list[dict[str, Any]] = []
        visits: list[dict[str, Any]] = []
        bar = progress_bar(budget, f"{self.name}: typicality and picks", show_progress)
        for tier in order:
            visit = 0
            # A cluster is visited again only when one pass over the tier cannot fill the
            # budget; then its neighbour lists are kept for the next visit.
            open_clusters = sum(bool(available[members[c]].any()) for c in tier)
            ctx.neighbours.keep = budget - len(chosen) > open_clusters
            ctx.neighbours.lists.clear()
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
        ctx.neighbours.lists.clear()
        metrics, notes = _summary(ctx, clustering)
        record = {"clustering": clustering.describe(), "n_clusters": k, "visits": visits}
        return Selection(
            np.asarray(chosen, dtype=np.int64), tuple(details), tuple(notes), metrics, record
        )


def _summary(ctx: ClusterContext, clustering: Clustering) -> tuple[dict[str, float], list[str]]:
    """A selection's metrics and notes: the clustering (its size, spread, inertia and how it
    ran) and, where it was counted, the typicality kNN's work and partitioned clusters."""
    k = clustering.n_clusters
    metrics = {
        "n_clusters": float(k),
        # How lopsided the clustering is: the cost of its largest cluster's kNN, and how
        # unevenly the picks spread over the pool.
        "largest_cluster": float(ctx.sizes.max()),
        "median_cluster": float(np.median(ctx.sizes)),
    }
    if clustering.inertia is not None:
        metrics["kmeans_inertia"] = clustering.inertia
    notes = [clustering.describe()]
    if ctx.neighbours.largest:
        metrics["typicality_knn_pairs"] = float(ctx.neighbours.pairs)
        metrics["typicality_partitioned_clusters"] = float(len(ctx.neighbours.partition))
        searched = ctx.neighbours.describe()
        if searched is not None:
            notes.append(searched)
    return metrics, notes


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
