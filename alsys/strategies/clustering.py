"""The geometry the clustering strategies share: k-means, exact kNN, cluster order, round-robin.

faiss is the engine for k-means's Lloyd iterations and exact (flat) kNN, on the GPU when faiss
sees one; small problems stay in numpy (see _lloyd and self_knn_sqdist). :func:`kmeans` keeps
its inertia at or below the reference's scikit-learn k-means (restarts and Hartigan's moves).
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
from threadpoolctl import threadpool_limits

from alsys.errors import InputError
from alsys.strategies.base import (
    BoolArray,
    FloatArray,
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
# Up to this many clusters the reference ran scikit-learn's KMeans (k-means++ on every point,
# n_init=10 restarts before scikit-learn 1.4), and above it MiniBatchKMeans (n_init=3). kmeans()
# keeps that split: restarts below; one run above, where restarts would multiply the cost of the
# largest clusterings (500 clusters of 50k x 512) and one full-data Lloyd run already beats
# mini-batch inertia on large pools.
REFERENCE_KMEANS_MAX_CLUSTERS = 50
KMEANS_RESTARTS = 10  # scikit-learn KMeans's n_init, which the reference code ran
KMEANS_ITERS = 20  # Lloyd iterations at most per run; both engines stop earlier at a fixed point
# Above 50 clusters k-means++ seeds on a subsample of max(16384, 16 k) points, about the 15,000
# MiniBatchKMeans seeds on (3 x its batch of 5000): with 4096 points a k-means++ run missed one
# of 100 generated blobs in most seeds at k = 100 (inertia 2-5% above mini-batch). faiss's own
# random seeding is not used: it leaves blobs uncovered once k exceeds the number of modes.
KMEANS_PP_MIN_SAMPLE = 16384
KMEANS_PP_POINTS_PER_CLUSTER = 16
# Hartigan's moves (see _hartigan) follow every Lloyd run up to 50 clusters; above, only while the
# (n, k) distance matrix has at most this many entries. There they lower the inertia by 1-5%
# (a small pool is where mini-batch k-means, a full batch then, beats one Lloyd run); on 50k x 500
# they took 74 passes, 10x the Lloyd run, for 0.6%.
HARTIGAN_ABOVE_REFERENCE_MAX = 2**22
# A Hartigan pass screens points in float32 and tries, exactly, those whose move gains more than
# -slack x their leaving cost: far wider than float32 error. A pass moves at least one point and
# lowers the inertia, so the cap only bounds pathological cases.
HARTIGAN_SCREEN_SLACK = 1e-4
HARTIGAN_MAX_PASSES = 100
# Lloyd runs in numpy up to this many point-centre distances an iteration (see _lloyd).
SMALL_LLOYD_MAX = 2**20
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
    """A partition of the pool. assignment: (n,) ids in [0, k); centres: (k, d) float32.

    ``inertia`` (sum of squared distances to the centres) and ``method`` (how it was computed,
    for the selection's notes) are set by :func:`kmeans`; a precomputed assignment has no
    inertia.
    """

    assignment: IntArray
    centres: F32
    inertia: float | None = None
    method: str = ""

    @property
    def n_clusters(self) -> int:
        return int(self.centres.shape[0])

    def describe(self) -> str:
        """One line for the selection's notes: the algorithm, the number of clusters, inertia."""
        clusters = f"{self.n_clusters} cluster{'s' if self.n_clusters != 1 else ''}"
        if self.inertia is None:
            return f"clusters: {self.method or 'precomputed'}, {clusters}"
        return f"k-means: {self.method}, {clusters}, inertia {self.inertia:.6g}"


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


def _lloyd(x: F32, init: F32, n_iter: int, seed: int) -> tuple[IntArray, F32]:
    """Up to ``n_iter`` Lloyd iterations from ``init`` (k, d) over every point of ``x``,
    stopping earlier at a fixed point. Returns (assignment (n,), centres (k, d)).

    faiss runs them, except on the CPU for an (n, k) distance matrix of at most
    SMALL_LLOYD_MAX entries, where numpy does: there faiss's OpenMP barriers cost more than
    the arithmetic (half a second for 20 iterations on 600 x 12 on a loaded 2-core machine).
    """
    if not gpu_available() and x.shape[0] * init.shape[0] <= SMALL_LLOYD_MAX:
        return _lloyd_numpy(x, init, n_iter)
    km = faiss.Kmeans(
        x.shape[1],
        init.shape[0],
        niter=n_iter,
        seed=seed,
        max_points_per_centroid=x.shape[0],  # train on every point, no faiss subsampling
        min_points_per_centroid=1,
        gpu=gpu_available(),
        verbose=False,
    )
    km.train(x, init_centroids=init)
    centres = np.ascontiguousarray(km.centroids, dtype=np.float32)
    _, nearest = knn_sqdist(x, centres, 1)
    return nearest[:, 0].astype(np.int64), centres


def _lloyd_numpy(x: F32, init: F32, n_iter: int) -> tuple[IntArray, F32]:
    """Lloyd in numpy; an emptied cluster keeps its centre (Hartigan's moves refill it)."""
    centres = init.copy()
    assignment = _sqdist(x, centres).argmin(axis=1)
    for _ in range(n_iter):
        sums, counts = _cluster_sums(x, assignment, centres.shape[0])
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
        moved = _sqdist(x, centres).argmin(axis=1)
        if np.array_equal(moved, assignment):
            break
        assignment = moved
    return assignment.astype(np.int64), centres


def _cluster_sums(x: F32, assignment: IntArray, k: int) -> tuple[FloatArray, IntArray]:
    """Per cluster, the float64 sum of its rows of ``x`` (k, d) and its size (k,)."""
    counts = np.bincount(assignment, minlength=k)
    order = np.argsort(assignment, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    filled = counts > 0
    sums[filled] = np.add.reduceat(x[order], starts[filled], axis=0, dtype=np.float64)
    return sums, counts


def _sqdist(x: F32, centres: F32) -> F32:
    """(n, k) squared L2 distances from the rows of ``x`` to ``centres``, one numpy GEMM."""
    out: F32 = x @ centres.T
    out *= -2.0
    out += np.einsum("ij,ij->i", x, x)[:, None]
    out += np.einsum("ij,ij->i", centres, centres)[None, :]
    return np.maximum(out, 0.0, out=out)


def _hartigan(x: F32, assignment: IntArray, centres: F32) -> tuple[IntArray, F32]:
    """Hartigan's single-point moves from a Lloyd partition, until none lowers the inertia.

    Moving x from cluster p (n_p points) to q changes the inertia by
    n_q / (n_q + 1) ||x - c_q||^2 - n_p / (n_p - 1) ||x - c_p||^2 (Hartigan and Wong 1979).
    A Lloyd fixed point can still admit such moves near cluster boundaries, and a partition
    without any is a Lloyd fixed point too, so the result keeps every point with its nearest
    centre. Each pass screens all points with one float32 GEMM; the few near a boundary are then
    tried one by one against exact float64 centres, which are updated after every move. An
    empty cluster costs nothing to join, so it takes the point whose move gains most.

    Returns (assignment (n,), centres (k, d) float32, the means of their points).
    """
    n, k = x.shape[0], centres.shape[0]
    labels = assignment.astype(np.int64)
    sums, counts = _cluster_sums(x, labels, k)
    means = centres.astype(np.float64)
    filled = counts > 0
    means[filled] = sums[filled] / counts[filled, None]
    rows = np.arange(n)
    for _ in range(HARTIGAN_MAX_PASSES):
        dist = _sqdist(x, means.astype(np.float32))
        own = counts[labels]
        leave = np.where(own > 1, own / np.maximum(own - 1, 1), 0.0) * dist[rows, labels]
        join = dist * (counts / (counts + 1.0))[None, :]
        join[rows, labels] = np.inf
        gain = leave - join.min(axis=1)
        screened = np.flatnonzero(gain > -HARTIGAN_SCREEN_SLACK * leave)
        moved = 0
        for i in screened[np.argsort(-gain[screened], kind="stable")]:
            p = labels[i]
            if counts[p] < 2:
                continue
            diff = means - x[i]
            sq = np.einsum("ij,ij->i", diff, diff)
            cost = sq * (counts / (counts + 1.0))
            cost[p] = np.inf
            q = int(np.argmin(cost))
            if cost[q] >= sq[p] * counts[p] / (counts[p] - 1.0):
                continue
            sums[p] -= x[i]
            sums[q] += x[i]
            counts[p] -= 1
            counts[q] += 1
            means[p] = sums[p] / counts[p]
            means[q] = sums[q] / counts[q]
            labels[i] = q
            moved += 1
        if moved == 0:
            break
    return labels, means.astype(np.float32)


def inertia(x: F32, clustering: Clustering) -> float:
    """Sum of squared distances of each point to its cluster centre."""
    diff = x - clustering.centres[clustering.assignment]
    return float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))


def _with_inertia(x: F32, assignment: IntArray, centres: F32, method: str) -> Clustering:
    plain = Clustering(assignment, centres)
    return Clustering(assignment, centres, inertia(x, plain), method)


def kmeans(
    x: F32,
    n_clusters: int,
    rng: np.random.Generator,
    n_iter: int = KMEANS_ITERS,
    restarts: int = KMEANS_RESTARTS,
) -> Clustering:
    """k-means on every point of ``x`` (n, d) float32, seeded only from ``rng``.

    Up to 50 clusters, where the reference ran scikit-learn's KMeans (n_init=10): ``restarts``
    runs of k-means++ on every point, at most ``n_iter`` Lloyd iterations, then Hartigan's
    single-point moves (:func:`_hartigan`); the lowest inertia is kept. Above, where it ran
    MiniBatchKMeans (n_init=3): one run, k-means++ on a subsample, at most ``n_iter`` Lloyd
    iterations over every point, and Hartigan's moves where they are cheap
    (HARTIGAN_ABOVE_REFERENCE_MAX); ``restarts`` is not used there.

    The result carries its inertia and a description of the run (:meth:`Clustering.describe`).
    """
    n = x.shape[0]
    if not 1 <= n_clusters <= n:
        raise InputError("n_clusters", f"must be in [1, {n}], got {n_clusters}")
    check_number("kmeans", "n_iter", n_iter, low=1, integer=True)
    check_number("kmeans", "restarts", restarts, low=1, integer=True)
    if gpu_available() or n * n_clusters > SMALL_LLOYD_MAX:
        return _kmeans(x, n_clusters, rng, n_iter, restarts)
    # Small problems run hundreds of small GEMMs. OpenBLAS splits each over every core and then
    # waits for all: on a busy 2-core machine that wait was 15 ms a GEMM, 20x the whole
    # clustering. scikit-learn's KMeans holds BLAS to one thread the same way.
    with threadpool_limits(1, user_api="blas"):
        return _kmeans(x, n_clusters, rng, n_iter, restarts)


def _kmeans(
    x: F32, n_clusters: int, rng: np.random.Generator, n_iter: int, restarts: int
) -> Clustering:
    n = x.shape[0]
    if n_clusters == 1:
        centre = x.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
        return _with_inertia(x, np.zeros(n, dtype=np.int64), centre, "one cluster, the mean")
    if n_clusters <= REFERENCE_KMEANS_MAX_CLUSTERS:
        # All seeds, then all Lloyd runs, then all refinements: numpy (OpenBLAS) and faiss
        # (OpenMP) take turns twice, not twice per restart (see self_knn_sqdist).
        inits = [_kmeans_pp(x, n_clusters, rng) for _ in range(restarts)]
        seeds = rng.integers(2**31 - 1, size=restarts)
        runs = [_lloyd(x, init, n_iter, int(s)) for init, s in zip(inits, seeds, strict=True)]
        refined = [_hartigan(x, assignment, centres) for assignment, centres in runs]
        scores = [inertia(x, Clustering(*run)) for run in refined]
        best = int(np.argmin(scores))
        runs_text = f"{restarts} restarts" if restarts > 1 else "1 run"
        method = f"{runs_text} x (k-means++, <= {n_iter} Lloyd iterations, Hartigan moves)"
        return Clustering(*refined[best], scores[best], method)
    sample_size = max(KMEANS_PP_MIN_SAMPLE, KMEANS_PP_POINTS_PER_CLUSTER * n_clusters)
    if sample_size >= n:
        sample, steps = x, ["k-means++"]
    else:
        sample = x[np.sort(rng.choice(n, sample_size, replace=False))]
        steps = [f"k-means++ on {sample_size} sampled points"]
    init = _kmeans_pp(sample, n_clusters, rng)
    assignment, centres = _lloyd(x, init, n_iter, int(rng.integers(2**31 - 1)))
    steps.append(f"<= {n_iter} Lloyd iterations")
    if n * n_clusters <= HARTIGAN_ABOVE_REFERENCE_MAX:
        assignment, centres = _hartigan(x, assignment, centres)
        steps.append("Hartigan moves")
    return _with_inertia(x, assignment, centres, f"1 run ({', '.join(steps)})")


def clustering_from_assignment(x: F32, assignment: IntArray) -> Clustering:
    """A precomputed assignment (e.g. SCAN for TypiClust-DC), relabelled 0..k-1, with its means."""
    _, labels = np.unique(np.asarray(assignment), return_inverse=True)
    labels = labels.astype(np.int64)
    k = int(labels.max()) + 1
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, x)
    centres = (sums / np.bincount(labels, minlength=k)[:, None]).astype(np.float32)
    return Clustering(labels, centres, method="precomputed (Pool.clusters), no k-means")


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

    needs = "embeddings"

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
        if not isinstance(self.normalize, bool):
            raise InputError(f"{self.name}.normalize", f"must be true or false: {self.normalize}")

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
        visits: list[dict[str, Any]] = []
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
