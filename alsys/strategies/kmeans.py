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
# k-means++ seeding lets BLAS use every thread once a step multiplies at least this many trial
# centres (restarts seeded together); below, one thread (see _kmeans_pp).
PP_THREADED_TRIALS = 16
# The restarts' Lloyd runs share one numpy GEMM an iteration while it has at most this many
# entries (n x k x restarts float32: 128 MiB); beyond, faiss runs them one by one.
BATCHED_LLOYD_MAX = 2**25
# Large pools are clustered on a subsample, then every point is assigned once (see _kmeans).
# Up to 50 clusters the restarts (k-means++, Lloyd, Hartigan) run together on as many points as
# the batched GEMM allows, BATCHED_LLOYD_MAX / (k x restarts) (every point of a 50k pool up to
# k=67), at least RESTART_SAMPLE_MIN; on a sample, the best is finished by Lloyd and Hartigan
# over every point. Above 50 clusters, one run's Lloyd iterations see max(16384, 32 k) points,
# then one pass assigns every point and takes the means.
# Measured on the 50k x 512 mixture of benchmarks/scale.py, 2 cores (inertia, mean of seeds):
# k=50, seeds 0-7: every point 26265 in ~2.8 s; a sample of 256 k points, as before, 26366
# (worse in every seed); scikit-learn 1.9 KMeans(n_init=10) 26245 (seeds 0-2), 15 s.
# k=10, seeds 0-2: sklearn 44746, a 4096-point sample 44753. k=500: 6178 in ~2.5 s
# (MiniBatchKMeans n_init=3 6203, 22 s; every point in Lloyd: 6172, 7-16 s).
RESTART_SAMPLE_MIN = 4096
LLOYD_SAMPLE_MIN = 16384
LLOYD_SAMPLE_PER_CLUSTER = 32
# Up to 50 clusters, this many of the best sampled restarts are finished over every point.
FINISHED_RUNS = 1
# Hartigan's moves over every point up to 50 clusters, while (n, k) has at most this many entries.
HARTIGAN_FULL_MAX = 2**24
# Rows per block when a pass over every point must not copy the pool (memory-mapped input).
ROW_BLOCK = 16_384


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


def _kmeans_pp(
    x: F32, k: int, rng: np.random.Generator, runs: int = 1, transpose: bool = True
) -> F32:
    """Greedy k-means++ seeding (Arthur and Vassilvitskii 2007; 2 + ln k trials per centre),
    ``runs`` independent seedings at once: (runs, k, d).

    The runs advance in lockstep, so each step reads every point once for all their trial
    centres in one GEMM, compute-bound rather than memory-bound (k=50, 10 restarts: 2.7 s one
    after another on 12,800 x 512, loaded machine; 1.1 s together on 50,000 x 512, 2 quiet
    cores). ``transpose``: work on a transposed copy of ``x`` (faster for a few trials);
    without it ``x`` is only read, block by block (a memory-mapped pool is not copied).
    """
    trials = 2 + int(math.log(k))
    # A single run's step reads every point for a few trial centres: a skinny GEMM bound by
    # memory, faster on one BLAS thread than two on a loaded 2-core machine (measured).
    threads = 1 if runs * trials < PP_THREADED_TRIALS else None
    with threadpool_limits(threads, user_api="blas"):
        xt = np.ascontiguousarray(x.T) if transpose else None
        return _kmeans_pp_seeds(x, xt, k, rng, runs, trials)


def _kmeans_pp_seeds(
    x: F32, xt: F32 | None, k: int, rng: np.random.Generator, runs: int, trials: int
) -> F32:
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    centres = np.empty((runs, k, x.shape[1]), dtype=np.float32)
    first = rng.integers(n, size=runs)
    centres[:, 0] = x[first]
    closest = np.maximum(sq[None, :] + sq[first][:, None] - 2.0 * _dots(x, xt, first), 0.0)
    every = np.arange(runs)
    for c in range(1, k):
        cumulative = np.cumsum(closest, axis=1, dtype=np.float64)  # (runs, n)
        totals = cumulative[:, -1]
        draws = rng.random((runs, trials)) * totals[:, None]
        picks = np.empty((runs, trials), dtype=np.int64)
        for r in range(runs):
            if totals[r] > 0:
                picks[r] = np.searchsorted(cumulative[r], draws[r])
            else:  # fewer distinct points than clusters: any point will do
                picks[r] = rng.integers(n, size=trials)
        picks = np.minimum(picks, n - 1).reshape(-1)
        dist = _dots(x, xt, picks)
        dist *= -2.0
        dist += sq[None, :]
        dist += sq[picks][:, None]
        dist = np.maximum(dist, 0.0, out=dist).reshape(runs, trials, n)
        np.minimum(closest[:, None, :], dist, out=dist)
        best = np.argmin(dist.sum(axis=2, dtype=np.float64), axis=1)  # (runs,)
        centres[:, c] = x[picks.reshape(runs, trials)[every, best]]
        closest = dist[every, best]
    return centres


def _dots(x: F32, xt: F32 | None, rows: IntArray) -> F32:
    """(len(rows), n) the dot products of the given rows of ``x`` with every row, C-ordered."""
    if xt is not None:
        out: F32 = x[rows] @ xt
        return out
    picked = x[rows]
    out = np.empty((rows.shape[0], x.shape[0]), dtype=np.float32)
    for start in range(0, x.shape[0], ROW_BLOCK):  # reads x in place, block by block
        out[:, start : start + ROW_BLOCK] = (x[start : start + ROW_BLOCK] @ picked.T).T
    return out


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
    assignment, centres, _, _ = _lloyd_numpy_runs(x, init[None], n_iter)[0]
    return assignment, centres


def _lloyd_numpy_runs(
    x: F32, inits: F32, n_iter: int
) -> list[tuple[IntArray, F32, FloatArray, IntArray]]:
    """Lloyd in numpy for several runs at once from ``inits`` (runs, k, d), each as
    :func:`_lloyd_numpy` alone would run it (up to float rounding of the centres). Per run:
    (assignment (n,), centres (k, d), the float64 sums (k, d) and sizes (k,) of its clusters).

    An iteration assigns every point for every unfinished run in one GEMM against all their
    centres (one read of ``x``, not one per run), and moves only the sums of the points that
    changed cluster: after the first iterations few do, so the cost is about the GEMMs.
    """
    runs, k, d = inits.shape
    centres = inits.astype(np.float32, copy=True)
    sums = np.zeros((runs, k, d), dtype=np.float64)
    counts = np.zeros((runs, k), dtype=np.int64)
    labels = _nearest_runs(x, centres)
    for r in range(runs):
        sums[r], counts[r] = _cluster_sums(x, labels[r], k)
    active = np.arange(runs)
    for _ in range(n_iter):
        for r in active.tolist():
            filled = counts[r] > 0
            centres[r, filled] = sums[r, filled] / counts[r, filled, None]
        moved = _nearest_runs(x, centres[active])
        still = []
        for position, r in enumerate(active.tolist()):
            changed = np.flatnonzero(moved[position] != labels[r])
            if changed.shape[0] == 0:
                continue
            for start in range(0, changed.shape[0], ROW_BLOCK):  # bounded row copies
                part = changed[start : start + ROW_BLOCK]
                rows = x[part]
                old, new = labels[r, part], moved[position, part]
                sums[r] += _block_sums(rows, new, k) - _block_sums(rows, old, k)
                counts[r] += np.bincount(new, minlength=k) - np.bincount(old, minlength=k)
            labels[r, changed] = moved[position, changed]
            still.append(r)
        active = np.asarray(still, dtype=np.int64)
        if active.shape[0] == 0:
            break
    return [(labels[r].astype(np.int64), centres[r], sums[r], counts[r]) for r in range(runs)]


def _nearest_runs(x: F32, centres: F32) -> IntArray:
    """(runs, n) the nearest of each run's centres (runs, k, d) to every row of ``x``: one GEMM.

    argmin_c ||x - c||^2 = argmin_c ||c||^2 - 2 x.c (||x||^2 is the row's constant).
    """
    runs, k, d = centres.shape
    flat = centres.reshape(runs * k, d)
    flat_sq = np.einsum("ij,ij->i", flat, flat)
    labels = np.empty((runs, x.shape[0]), dtype=np.int64)
    for start in range(0, x.shape[0], ROW_BLOCK):
        scores = x[start : start + ROW_BLOCK] @ flat.T
        scores *= -2.0
        scores += flat_sq[None, :]
        labels[:, start : start + ROW_BLOCK] = scores.reshape(-1, runs, k).argmin(axis=2).T
    return labels


def _cluster_sums(x: F32, assignment: IntArray, k: int) -> tuple[FloatArray, IntArray]:
    """Per cluster, the float64 sum of its rows of ``x`` (k, d) and its size (k,).

    Reads ``x`` ROW_BLOCK rows at a time: a memory-mapped pool is never gathered whole.
    """
    counts = np.bincount(assignment, minlength=k)
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    for start in range(0, x.shape[0], ROW_BLOCK):
        _add_block_sums(x[start : start + ROW_BLOCK], assignment[start : start + ROW_BLOCK], sums)
    return sums, counts


def _add_block_sums(rows: F32, labels: IntArray, sums: FloatArray) -> None:
    """Adds to ``sums`` (k, d) float64 the sum of the ``rows`` of each cluster in ``labels``.

    One float64-accumulating sum per cluster over its rows, gathered in label order: 5-10x
    faster than np.add.reduceat over a float64 copy (which reduceat needs), same values.
    """
    order = np.argsort(labels, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(labels, minlength=sums.shape[0]))))
    grouped = rows[order]
    for c in np.flatnonzero(bounds[1:] > bounds[:-1]):
        sums[c] += grouped[bounds[c] : bounds[c + 1]].sum(axis=0, dtype=np.float64)


def _block_sums(rows: F32, labels: IntArray, k: int) -> FloatArray:
    """(k, d) float64: the sum of the ``rows`` of each cluster in ``labels``."""
    sums = np.zeros((k, rows.shape[1]), dtype=np.float64)
    _add_block_sums(rows, labels, sums)
    return sums


def _sqdist(x: F32, centres: F32) -> F32:
    """(n, k) squared L2 distances from the rows of ``x`` to ``centres``, one numpy GEMM."""
    out: F32 = x @ centres.T
    out *= -2.0
    out += np.einsum("ij,ij->i", x, x)[:, None]
    out += np.einsum("ij,ij->i", centres, centres)[None, :]
    return np.maximum(out, 0.0, out=out)


def _hartigan(x: F32, assignment: IntArray, centres: F32) -> tuple[IntArray, F32]:
    """Hartigan's moves (see _hartigan_moves): (assignment (n,), centres (k, d) float32)."""
    labels, means, _ = _hartigan_moves(x, assignment, centres)
    return labels, means


def _hartigan_moves(
    x: F32,
    assignment: IntArray,
    centres: F32,
    start: tuple[FloatArray, IntArray] | None = None,
    squares: float | None = None,
) -> tuple[IntArray, F32, float]:
    """Hartigan's single-point moves from a Lloyd partition, until none lowers the inertia.

    Moving x from cluster p (n_p points) to q changes the inertia by
    n_q / (n_q + 1) ||x - c_q||^2 - n_p / (n_p - 1) ||x - c_p||^2 (Hartigan and Wong 1979).
    A Lloyd fixed point can still admit such moves near cluster boundaries, and a partition
    without any is a Lloyd fixed point too, so the result keeps every point with its nearest
    centre. Each pass screens all points with one float32 GEMM; the few near a boundary are then
    tried one by one against exact float64 centres, which are updated after every move. An
    empty cluster costs nothing to join, so it takes the point whose move gains most.

    ``start``: the float64 sums and sizes of the clusters of ``assignment`` where the caller
    has them (Lloyd's); ``squares``: sum ||x||^2 where known.

    Returns (assignment (n,), centres (k, d) float32, the means of their points, and the
    inertia, sum ||x||^2 - sum_c ||S_c||^2 / n_c from the float64 sums the moves keep).
    """
    n, k = x.shape[0], centres.shape[0]
    labels = assignment.astype(np.int64)
    if start is None:
        sums, counts = _cluster_sums(x, labels, k)
    else:
        sums, counts = start[0].copy(), start[1].copy()
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
    if squares is None:
        squares = _squares(x)
    filled = counts > 0
    total = squares - float((sums[filled] ** 2).sum(axis=1) @ (1.0 / counts[filled]))
    return labels, means.astype(np.float32), max(total, 0.0)


def _squares(x: F32) -> float:
    """sum ||x||^2 over the rows of ``x``, float64, ROW_BLOCK rows at a time."""
    return sum(
        float(np.einsum("ij,ij->", x[s : s + ROW_BLOCK], x[s : s + ROW_BLOCK], dtype=np.float64))
        for s in range(0, x.shape[0], ROW_BLOCK)
    )


def inertia(x: F32, clustering: Clustering) -> float:
    """Sum of squared distances of each point to its cluster centre (ROW_BLOCK rows at a time,
    so a memory-mapped pool is not copied)."""
    total = 0.0
    for start in range(0, x.shape[0], ROW_BLOCK):
        stop = start + ROW_BLOCK
        diff = x[start:stop] - clustering.centres[clustering.assignment[start:stop]]
        total += float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
    return total


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

    Large pools are sampled: the restarts see at most BATCHED_LLOYD_MAX / (k x restarts)
    points (the best then finished over every point), and above 50 clusters Lloyd sees
    max(LLOYD_SAMPLE_MIN, 32 k) points before one assignment pass over every point.

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
        size = max(RESTART_SAMPLE_MIN, BATCHED_LLOYD_MAX // (n_clusters * restarts))
        fit_on, sampled = _sample(x, size, rng)
        # All seeds, then all Lloyd runs, then all refinements: numpy (OpenBLAS) and faiss
        # (OpenMP) take turns twice, not twice per restart (see self_knn_sqdist).
        inits = _kmeans_pp(fit_on, n_clusters, rng, restarts, transpose=sampled)
        seeds = rng.integers(2**31 - 1, size=restarts)
        runs: list[tuple[IntArray, F32, Any, Any]]
        if not gpu_available() and fit_on.shape[0] * n_clusters * restarts <= BATCHED_LLOYD_MAX:
            runs = _lloyd_numpy_runs(fit_on, inits, n_iter)
        else:
            runs = [
                (*_lloyd(fit_on, i, n_iter, int(s)), None, None)
                for i, s in zip(inits, seeds, strict=True)
            ]
        squares = _squares(fit_on)
        moved = [
            _hartigan_moves(fit_on, a, c, None if sums is None else (sums, counts), squares)
            for a, c, sums, counts in runs
        ]
        refined = [(a, c) for a, c, _ in moved]
        scores = [total for _, _, total in moved]
        best = int(np.argmin(scores))
        runs_text = f"{restarts} restarts" if restarts > 1 else "1 run"
        method = f"{runs_text} x (k-means++, <= {n_iter} Lloyd iterations, Hartigan moves)"
        if not sampled:
            return Clustering(*refined[best], scores[best], method)
        # The best sampled runs, each finished over every point; the lowest inertia is kept.
        finished = []
        for run in np.argsort(scores, kind="stable")[:FINISHED_RUNS]:
            seed = int(rng.integers(2**31 - 1))
            assignment, centres = _lloyd(x, refined[run][1], n_iter, seed)
            if n * n_clusters <= HARTIGAN_FULL_MAX:
                assignment, centres = _hartigan(x, assignment, centres)
            finished.append(_with_inertia(x, assignment, centres, ""))
        top = min(finished, key=lambda c: c.inertia or 0.0)
        polish = " and Hartigan moves" if n * n_clusters <= HARTIGAN_FULL_MAX else ""
        method = (
            f"{method} on {size} sampled points, the best {len(finished)} then <= {n_iter} "
            f"Lloyd iterations{polish} over all {n} points"
        )
        return Clustering(top.assignment, top.centres, top.inertia, method)
    size = max(LLOYD_SAMPLE_MIN, LLOYD_SAMPLE_PER_CLUSTER * n_clusters)
    fit_on, sampled = _sample(x, size, rng)
    pp_size = max(KMEANS_PP_MIN_SAMPLE, KMEANS_PP_POINTS_PER_CLUSTER * n_clusters)
    pp_on, pp_sampled = _sample(fit_on, pp_size, rng)
    steps = [f"k-means++ on {pp_size} sampled points" if pp_sampled else "k-means++"]
    init = _kmeans_pp(pp_on, n_clusters, rng, transpose=pp_sampled or n <= pp_size)[0]
    assignment, centres = _lloyd(fit_on, init, n_iter, int(rng.integers(2**31 - 1)))
    steps.append(
        f"<= {n_iter} Lloyd iterations" + (f" on {size} sampled points" if sampled else "")
    )
    if sampled:
        assignment, centres, total = _assign_and_average(x, centres)
        steps.append(f"one assignment pass over all {n} points, centres their means")
        return Clustering(assignment, centres, total, f"1 run ({', '.join(steps)})")
    if n * n_clusters <= HARTIGAN_ABOVE_REFERENCE_MAX:
        assignment, centres = _hartigan(x, assignment, centres)
        steps.append("Hartigan moves")
    return _with_inertia(x, assignment, centres, f"1 run ({', '.join(steps)})")


def _sample(x: F32, size: int, rng: np.random.Generator) -> tuple[F32, bool]:
    """``size`` rows of ``x`` drawn with ``rng`` (in pool order), or ``x`` itself if smaller."""
    n = x.shape[0]
    if size >= n:
        return x, False
    return x[np.sort(rng.choice(n, size, replace=False))], True


def _assign_and_average(x: F32, centres: F32) -> tuple[IntArray, F32, float]:
    """One pass over every point: its nearest centre, then each cluster's mean as its centre
    (an emptied cluster keeps its centre) and the inertia about those means.

    The inertia comes from the same pass: sum ||x||^2 - sum_c ||S_c||^2 / n_c, in float64.
    """
    k = centres.shape[0]
    assignment = np.empty(x.shape[0], dtype=np.int64)
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    squares = 0.0
    for start in range(0, x.shape[0], ROW_BLOCK):
        block = np.ascontiguousarray(x[start : start + ROW_BLOCK])
        labels = knn_sqdist(block, centres, 1)[1][:, 0].astype(np.int64)
        assignment[start : start + block.shape[0]] = labels
        squares += float(np.einsum("ij,ij->", block, block, dtype=np.float64))
        _add_block_sums(block, labels, sums)
    counts = np.bincount(assignment, minlength=k)
    filled = counts > 0
    means = centres.astype(np.float64)
    means[filled] = sums[filled] / counts[filled, None]
    total = squares - float((sums[filled] ** 2).sum(axis=1) @ (1.0 / counts[filled]))
    return assignment, means.astype(np.float32), max(total, 0.0)


def clustering_from_assignment(x: F32, assignment: IntArray) -> Clustering:
    """A precomputed assignment (e.g. SCAN for TypiClust-DC), relabelled 0..k-1, with its means."""
    _, labels = np.unique(np.asarray(assignment), return_inverse=True)
    labels = labels.astype(np.int64)
    k = int(labels.max()) + 1
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, x)
    centres = (sums / np.bincount(labels, minlength=k)[:, None]).astype(np.float32)
    return Clustering(labels, centres, method="precomputed (Pool.clusters), no k-means")
