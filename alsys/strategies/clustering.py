"""The geometry the clustering strategies share: k-means, exact kNN, cluster order, round-robin.

faiss is the engine for k-means and exact (flat) kNN, on the GPU when faiss sees one.
TypiClust, SUPClust and its ablations differ only in how they pick a point inside a chosen
cluster; :class:`ClusterStrategy` holds everything else (reference code of Hacohen et al.):

1. cluster the pool into ``min(|L| + b, 500)`` clusters (or take a precomputed assignment);
2. order clusters by (labeled count ascending, size descending), ties by the rng, and drop
   those of size <= 5;
3. visit them round-robin, one pick per visit, until ``b`` points are chosen. A point chosen
   earlier in the round counts as labeled.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import faiss
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
    check_number,
    prepare_features,
    progress_bar,
)

F32 = npt.NDArray[np.float32]

# Added to the mean kNN distance before inverting (reference code).
TYPICALITY_EPS = 1e-5
DISTANCES = ("sqeuclidean", "euclidean")
# k-means++ seeding runs on every point up to this many clusters, as scikit-learn's KMeans does
# (the reference's choice up to 50 clusters), which keeps the inertia level with it. Above, it
# runs on a subsample of max(4096, 16 k) points, where mini-batch k-means is the reference and
# full Lloyd iterations already beat its inertia. faiss's own random seeding is not used: it
# leaves blobs uncovered once k exceeds the number of modes (3x the inertia in the tests).
KMEANS_PP_FULL_MAX_CLUSTERS = 50
KMEANS_PP_MIN_SAMPLE = 4096
KMEANS_PP_POINTS_PER_CLUSTER = 16
# Up to this many points, exact kNN inside a cluster is one numpy GEMM (see self_knn_sqdist).
SMALL_KNN_MAX = 2048


@cache
def gpu_available() -> bool:
    """Whether this faiss build sees a GPU (faiss-cpu always answers False)."""
    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    return bool(get_num_gpus and get_num_gpus() > 0)


@cache
def _gpu_resources() -> Any:
    return faiss.StandardGpuResources()


def knn_sqdist(queries: F32, base: F32, k: int) -> tuple[F32, IntArray]:
    """Exact k nearest neighbours by squared L2 (faiss flat search), nearest first.

    queries: (q, d) float32, base: (m, d) float32 -> distances (q, k), indices (q, k).
    """
    if gpu_available():
        distances, indices = faiss.knn_gpu(_gpu_resources(), queries, base, k)
    else:
        distances, indices = faiss.knn(queries, base, k)
    return np.maximum(distances, 0), indices


def self_knn_sqdist(x: F32, k: int) -> F32:
    """Squared L2 distances from each row of ``x`` (m, d) to its ``k`` nearest rows, itself
    included, ascending: (m, k).

    Small sets use one numpy GEMM: calling faiss (OpenMP) between numpy calls (OpenBLAS) makes
    the two thread pools wait on each other, ~10 ms a switch on 2 cores, which for 500 clusters
    of 100 points cost 30x the arithmetic. Large sets use faiss's blocked search.
    """
    if x.shape[0] > SMALL_KNN_MAX or gpu_available():
        return knn_sqdist(x, x, k)[0]
    sq = np.einsum("ij,ij->i", x, x)
    distances = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    nearest: F32 = np.sort(np.partition(distances, k - 1, axis=1)[:, :k], axis=1)
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


@dataclass(frozen=True)
class Clustering:
    """A partition of the pool. assignment: (n,) ids in [0, k); centres: (k, d) float32."""

    assignment: IntArray
    centres: F32

    @property
    def n_clusters(self) -> int:
        return int(self.centres.shape[0])


def _kmeans_pp(x: F32, k: int, rng: np.random.Generator) -> F32:
    """Greedy k-means++ seeding (Arthur and Vassilvitskii 2007; 2 + ln k trials per centre)."""
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    trials = 2 + int(math.log(k))
    centres = np.empty((k, x.shape[1]), dtype=np.float32)
    first = int(rng.integers(n))
    centres[0] = x[first]
    closest = np.maximum(sq + sq[first] - 2.0 * (x @ x[first]), 0.0)
    for c in range(1, k):
        total = closest.sum(dtype=np.float64)
        if total <= 0:  # fewer distinct points than clusters: any point will do
            centres[c:] = x[rng.integers(n, size=k - c)]
            break
        picks = np.searchsorted(np.cumsum(closest, dtype=np.float64), rng.random(trials) * total)
        picks = np.minimum(picks, n - 1)
        dist = np.maximum(sq[None, :] + sq[picks][:, None] - 2.0 * (x[picks] @ x.T), 0.0)
        np.minimum(closest[None, :], dist, out=dist)
        best = int(np.argmin(dist.sum(axis=1)))
        centres[c] = x[picks[best]]
        closest = dist[best]
    return centres


def kmeans(x: F32, n_clusters: int, rng: np.random.Generator, n_iter: int = 20) -> Clustering:
    """k-means on every point of ``x`` (n, d) float32, seeded only from ``rng``.

    k-means++ seeding (on a subsample above 50 clusters), then ``n_iter`` Lloyd iterations in
    faiss over all points.
    """
    n, d = x.shape
    if not 1 <= n_clusters <= n:
        raise InputError("n_clusters", f"must be in [1, {n}], got {n_clusters}")
    if n_clusters == 1:
        return Clustering(np.zeros(n, dtype=np.int64), x.mean(axis=0, keepdims=True))
    sample_size = max(KMEANS_PP_MIN_SAMPLE, KMEANS_PP_POINTS_PER_CLUSTER * n_clusters)
    if n_clusters <= KMEANS_PP_FULL_MAX_CLUSTERS or sample_size >= n:
        sample = x
    else:
        sample = x[np.sort(rng.choice(n, sample_size, replace=False))]
    init = _kmeans_pp(sample, n_clusters, rng)
    km = faiss.Kmeans(
        d,
        n_clusters,
        niter=n_iter,
        seed=int(rng.integers(2**31 - 1)),
        max_points_per_centroid=n,  # train on every point, no faiss subsampling
        min_points_per_centroid=1,
        gpu=gpu_available(),
        verbose=False,
    )
    km.train(x, init_centroids=init)
    centres = np.ascontiguousarray(km.centroids, dtype=np.float32)
    _, nearest = knn_sqdist(x, centres, 1)
    return Clustering(nearest[:, 0].astype(np.int64), centres)


def inertia(x: F32, clustering: Clustering) -> float:
    """Sum of squared distances of each point to its cluster centre."""
    diff = x - clustering.centres[clustering.assignment]
    return float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))


def clustering_from_assignment(x: F32, assignment: IntArray) -> Clustering:
    """A precomputed assignment (e.g. SCAN for TypiClust-DC), relabelled 0..k-1, with its means."""
    _, labels = np.unique(np.asarray(assignment), return_inverse=True)
    labels = labels.astype(np.int64)
    k = int(labels.max()) + 1
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, x)
    centres = (sums / np.bincount(labels, minlength=k)[:, None]).astype(np.float32)
    return Clustering(labels, centres)


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
    order = np.lexsort((rng.random(k), -sizes, labeled))
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

    @cached_property
    def centres64(self) -> FloatArray:
        """(k, d) the cluster centres in float64, converted once a round."""
        return self.clustering.centres.astype(np.float64)

    @cached_property
    def centre_distances(self) -> FloatArray:
        """(k, k) Euclidean distances between cluster centres, float64; computed once a round."""
        c = self.centres64
        sq = (c * c).sum(axis=1)
        distances: FloatArray = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * c @ c.T, 0.0))
        return distances


@dataclass(frozen=True)
class ClusterStrategy(Strategy):
    """Cluster, order, round-robin; subclasses say which candidate a visit picks.

    Attributes:
        max_clusters: at most this many clusters; 500 in the reference code.
        min_cluster_size: clusters of at most this size are skipped; 5 in the reference code.
        k_neighbors: K of the typicality, capped at half the candidates; 20 in the reference.
        distance: "sqeuclidean", the reference code's faiss IndexFlatL2 (the default, which
            produced the thesis's numbers), or "euclidean" as eq. 2.11 writes it.
        normalize: L2-normalise the embeddings first, as the reference code does.
        kmeans_iters: Lloyd iterations of faiss k-means.
    """

    needs = "embeddings"
    inputs = Inputs(space=True)

    max_clusters: int = 500
    min_cluster_size: int = 5
    k_neighbors: int = 20
    distance: str = "sqeuclidean"
    normalize: bool = True
    kmeans_iters: int = 20

    def __post_init__(self) -> None:
        check_number(self.name, "max_clusters", self.max_clusters, low=1, integer=True)
        check_number(self.name, "min_cluster_size", self.min_cluster_size, low=0, integer=True)
        check_number(self.name, "k_neighbors", self.k_neighbors, low=1, integer=True)
        check_number(self.name, "kmeans_iters", self.kmeans_iters, low=1, integer=True)
        check_choice(self.name, "distance", self.distance, DISTANCES)
        if not isinstance(self.normalize, bool):
            raise InputError(f"{self.name}.normalize", f"must be true or false: {self.normalize}")

    def cluster(
        self, x_clst: F32, pool: Pool, n_clusters: int, rng: np.random.Generator
    ) -> Clustering:
        if pool.clusters is not None:
            return clustering_from_assignment(x_clst, np.asarray(pool.clusters))
        return kmeans(x_clst, n_clusters, rng, self.kmeans_iters)

    def candidate_typicality(self, features: F32) -> FloatArray | None:
        """Typicality among a cluster's candidates; ``None`` for a lone candidate."""
        k = min(self.k_neighbors, features.shape[0] // 2)
        return None if k < 1 else typicality(features, k, self.distance)

    @abstractmethod
    def pick(
        self, cluster: int, candidates: IntArray, ctx: ClusterContext, rng: np.random.Generator
    ) -> tuple[int, dict[str, Any]]:
        """Chooses one of ``candidates`` (pool indices) of ``cluster``; returns it and why."""

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
        clustering = self.cluster(x_clst, pool, n_clusters, rng)
        assignment = clustering.assignment
        k = clustering.n_clusters
        ctx = ClusterContext(
            x_clst,
            x_typ,
            clustering,
            np.bincount(assignment, minlength=k),
            np.bincount(assignment[labeled_mask], minlength=k),
            None if pool.scores is None else np.asarray(pool.scores, dtype=np.float64),
        )
        by_cluster = np.argsort(assignment, kind="stable")
        bounds = np.searchsorted(assignment[by_cluster], np.arange(k + 1))
        members = [by_cluster[bounds[c] : bounds[c + 1]] for c in range(k)]
        available = ~labeled_mask
        chosen: list[int] = []
        details: list[dict[str, Any]] = []
        bar = progress_bar(budget, f"{self.name} picks", show_progress)
        for tier in cluster_order(assignment, labeled_mask, self.min_cluster_size, rng):
            visit = 0
            while len(chosen) < budget and any(available[members[c]].any() for c in tier):
                for c in tier:
                    if len(chosen) == budget:
                        break
                    candidates = members[c][available[members[c]]]
                    if candidates.shape[0] == 0:
                        continue
                    index, why = self.pick(int(c), candidates, ctx, rng)
                    available[index] = False
                    chosen.append(index)
                    details.append(
                        {
                            "cluster": int(c),
                            "cluster_size": int(ctx.sizes[c]),
                            "cluster_labeled": int(ctx.labeled_counts[c]),
                            "candidates": int(candidates.shape[0]),
                            "visit": visit,
                            **why,
                        }
                    )
                    bar.update(1)
                visit += 1
        bar.close()
        return Selection(np.asarray(chosen, dtype=np.int64), tuple(details))
