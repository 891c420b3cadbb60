"""k-means as the reference ran it (k-means++ restarts, Lloyd, Hartigan moves), and exact kNN.

faiss is the engine for Lloyd iterations and exact (flat) kNN, on the GPU when faiss sees one;
small problems stay in numpy (see _lloyd). :func:`kmeans` keeps its inertia at or below the
reference's scikit-learn k-means (restarts and Hartigan's moves up to 50 clusters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from alsys.errors import InputError
from alsys.strategies.base import (
    FloatArray,
    IntArray,
    check_number,
)

F32 = npt.NDArray[np.float32]

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
