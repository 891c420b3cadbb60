"""The k-means iterations: k-means++ seeding, Lloyd's iterations and Hartigan's moves, and
exact (flat) kNN.

faiss is the engine for Lloyd iterations and exact kNN, on the GPU when faiss sees one; small
problems stay in numpy (see lloyd). :mod:`alsys.strategies.kmeans` runs them as the reference
ran k-means (restarts, samples of large pools, the final assignment).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from alsys.strategies.base import FloatArray, IntArray
from alsys.strategies.parallel import map_blocks

F32 = npt.NDArray[np.float32]

# A Hartigan pass screens points in float32 and tries, exactly, those whose move gains more than
# -slack x their leaving cost: far wider than float32 error. The moves end at a pass that moves
# no point, or after the cap, or, on more than HARTIGAN_TOL_POINTS points, at a pass that lowers
# the inertia by less than HARTIGAN_TOL of it. Without the tolerance, on a pool with no structure
# (points even on the sphere, 50k x 512, k = 50) they ran into the 100-pass cap, moving 45 % of
# the points for 0.1 % of inertia, most of it in the first passes: 22 s of a 33 s clustering
# (profiled on a loaded machine). A tolerance of 1e-5 stopped them after 18 passes, 0.02 %
# above the cap's inertia; 1e-4 after a few, with the whole clustering 6.8 s -> 4.0 s and its
# inertia 0.02 % below scikit-learn's KMeans(n_init=10) there (0.07 % below with 1e-5); at
# k = 10 0.011 % above it (0.005 %), and on zipf and mix1000 the same inertia (seeds 0-1).
# On a smaller pool a pass costs milliseconds and the moves run to a fixed point (digits'
# clusterings are unchanged by it).
HARTIGAN_SCREEN_SLACK = 1e-4
HARTIGAN_TOL = 1e-4
HARTIGAN_TOL_POINTS = 2**14
HARTIGAN_MAX_PASSES = 100
# Lloyd runs in numpy up to this many point-centre distances an iteration (see lloyd).
SMALL_LLOYD_MAX = 2**20
# k-means++ seeding lets BLAS use every thread once a step multiplies at least this many trial
# centres (restarts seeded together) or computes this many products (n x trials x d); below,
# one thread (see kmeans_pp). One run of 500 centres on 16,384 x 512 (8 trials a step) took
# 5.1 s on one thread and 2.8 s on two, quiet 2-core machine.
PP_THREADED_TRIALS = 16
PP_THREADED_WORK = 2**24
# A single large seeding (see kmeans_pp_pruned) computes a step's distances only for the points
# that a trial centre may come nearer than their current centre, while those are at most this
# share of the points; above it (no structure, or more groups than centres) it reads every point.
PP_PRUNED_SHARE = 0.25
# The pruning's margin, times the largest norm: ten times the float32 error of a distance.
PP_PRUNE_MARGIN = 1e-2
# After a step that could skip too little, the next steps read every point without testing:
# 1, 3, 7, ... up to this many (a pool without structure tests about 20 of 499 steps).
PP_PRUNE_MAX_WAIT = 32
# Rows per block when a pass over every point must not copy the pool (memory-mapped input).
ROW_BLOCK = 16_384
# Rows per block of nearest_runs' GEMMs and argmins, which run in threads
# (alsys.strategies.parallel).
NEAREST_BLOCK = 4096


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


def kmeans_pp(
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
    # A single run's step on a small pool reads every point for a few trial centres: a skinny
    # GEMM bound by memory, faster on one BLAS thread than two on a loaded 2-core machine
    # (measured); on a large pool two threads win (PP_THREADED_WORK).
    small = runs * trials < PP_THREADED_TRIALS and x.size * trials < PP_THREADED_WORK
    threads = 1 if small else None
    with threadpool_limits(threads, user_api="blas"):
        if runs == 1 and not small and not transpose:
            return kmeans_pp_pruned(x, k, rng, trials)
        xt = np.ascontiguousarray(x.T) if transpose else None
        return kmeans_pp_seeds(x, xt, k, rng, runs, trials)


def kmeans_pp_seeds(
    x: F32, xt: F32 | None, k: int, rng: np.random.Generator, runs: int, trials: int
) -> F32:
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    centres = np.empty((runs, k, x.shape[1]), dtype=np.float32)
    first = rng.integers(n, size=runs)
    centres[:, 0] = x[first]
    closest = np.maximum(sq[None, :] + sq[first][:, None] - 2.0 * dots(x, xt, first), 0.0)
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
        dist = dots(x, xt, picks)
        dist *= -2.0
        dist += sq[None, :]
        dist += sq[picks][:, None]
        dist = np.maximum(dist, 0.0, out=dist).reshape(runs, trials, n)
        np.minimum(closest[:, None, :], dist, out=dist)
        best = np.argmin(dist.sum(axis=2, dtype=np.float64), axis=1)  # (runs,)
        centres[:, c] = x[picks.reshape(runs, trials)[every, best]]
        closest = dist[every, best]
    return centres


def kmeans_pp_pruned(x: F32, k: int, rng: np.random.Generator, trials: int) -> F32:
    """One greedy k-means++ seeding, (1, k, d), as :func:`kmeans_pp_seeds` draws it (the same
    draws from ``rng``), reading at each step only the points a trial centre may come nearer.

    A point x whose nearest centre so far is o cannot come nearer a trial p when
    ||o - p|| >= 2 ||x - o|| (then ||x - p|| >= ||o - p|| - ||x - o|| >= ||x - o||), so its
    distance to p need not be computed: it stays as it is. The test keeps a margin of
    PP_PRUNE_MARGIN x the largest norm, ten times the float32 error of a distance, so a skipped
    point is one whose computed distance would not have been below its current one: the seeds
    are those of reading every point (up to the last bit of the distances computed, which BLAS
    may round differently for a few rows than for a block). On grouped pools most points are
    skipped once there is a centre per group; where a step needs more than PP_PRUNED_SHARE of
    the points (no structure, more groups than centres) it reads every point, as before, and
    tests again only after 1, 3, 7, ... steps (at most PP_PRUNE_MAX_WAIT).
    """
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    margin = PP_PRUNE_MARGIN * float(np.sqrt(sq.max()))
    centres = np.empty((1, k, x.shape[1]), dtype=np.float32)
    centre_sq = np.empty(k, dtype=np.float32)
    first = rng.integers(n, size=1)
    centres[:, 0] = x[first]
    centre_sq[0] = sq[first[0]]
    closest = np.maximum(sq + sq[first[0]] - 2.0 * dots(x, None, first)[0], 0.0)
    owner = np.zeros(n, dtype=np.int64)  # the centre each point is nearest so far
    retry, wait = 1, 0  # the next step that tests what it may skip, and the steps to wait
    for c in range(1, k):
        cumulative = np.cumsum(closest, dtype=np.float64)
        draws = rng.random((1, trials)) * cumulative[-1]
        if cumulative[-1] > 0:
            picks = np.searchsorted(cumulative, draws[0])
        else:  # fewer distinct points than clusters: any point will do
            picks = rng.integers(n, size=trials)
        picks = np.minimum(picks, n - 1)
        trial = x[picks]
        rows = None
        if c >= retry:
            # Each centre's distance to its nearest trial, against twice each point's distance.
            reach = centre_sq[:c, None] + sq[picks][None, :] - 2.0 * (centres[0, :c] @ trial.T)
            nearest_trial = np.sqrt(np.maximum(reach, 0.0)).min(axis=1)
            rows = np.flatnonzero(nearest_trial[owner] < 2.0 * np.sqrt(closest) + margin)
            if rows.shape[0] > PP_PRUNED_SHARE * n:  # little to skip: try again later
                rows, wait = None, min(2 * wait + 1, PP_PRUNE_MAX_WAIT)
                retry = c + wait
            else:
                wait = 0
        if rows is None:
            dist = dots(x, None, picks)
            dist *= -2.0
            dist += sq[None, :]
            dist += sq[picks][:, None]
            np.maximum(dist, 0.0, out=dist)
            np.minimum(closest[None, :], dist, out=dist)
        else:
            dist = np.broadcast_to(closest, (trials, n)).copy()
            near = (x[rows] @ trial.T).T
            near *= -2.0
            near += sq[rows][None, :]
            near += sq[picks][:, None]
            np.maximum(near, 0.0, out=near)
            dist[:, rows] = np.minimum(dist[:, rows], near)
        best = int(np.argmin(dist.sum(axis=1, dtype=np.float64)))
        centres[0, c] = x[picks[best]]
        centre_sq[c] = sq[picks[best]]
        owner[dist[best] < closest] = c
        closest = dist[best]
    return centres


def dots(x: F32, xt: F32 | None, rows: IntArray) -> F32:
    """(len(rows), n) the dot products of the given rows of ``x`` with every row, C-ordered."""
    if xt is not None:
        out: F32 = x[rows] @ xt
        return out
    picked = x[rows]
    out = np.empty((rows.shape[0], x.shape[0]), dtype=np.float32)
    for start in range(0, x.shape[0], ROW_BLOCK):  # reads x in place, block by block
        out[:, start : start + ROW_BLOCK] = (x[start : start + ROW_BLOCK] @ picked.T).T
    return out


def lloyd(x: F32, init: F32, n_iter: int, seed: int, tol: float = 0.0) -> tuple[IntArray, F32]:
    """Up to ``n_iter`` Lloyd iterations from ``init`` (k, d) over every point of ``x``,
    stopping earlier at a fixed point, or with ``tol`` > 0 on the CPU at an iteration that
    lowers the inertia by less than ``tol`` of it. Returns (assignment (n,), centres (k, d)).

    faiss runs them, except on the CPU for an (n, k) distance matrix of at most
    SMALL_LLOYD_MAX entries, or with a tolerance, where numpy does: there faiss's OpenMP
    barriers cost more than the arithmetic (half a second for 20 iterations on 600 x 12 on a
    loaded 2-core machine); with a tolerance numpy's iterations keep the cluster sums it
    needs (20 iterations of 500 centres over 50k x 512 took 3.7 s, faiss's 3.8 s).
    """
    if not gpu_available() and (tol > 0 or x.shape[0] * init.shape[0] <= SMALL_LLOYD_MAX):
        return lloyd_numpy(x, init, n_iter, tol)
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


def lloyd_numpy(x: F32, init: F32, n_iter: int, tol: float = 0.0) -> tuple[IntArray, F32]:
    """Lloyd in numpy; an emptied cluster keeps its centre (Hartigan's moves refill it)."""
    assignment, centres, _, _ = lloyd_numpy_runs(x, init[None], n_iter, tol=tol)[0]
    return assignment, centres


def lloyd_numpy_runs(
    x: F32,
    inits: F32,
    n_iter: int,
    keep: tuple[int, int] | None = None,
    tol: float = 0.0,
    squares: float | None = None,
) -> list[tuple[IntArray, F32, FloatArray, IntArray]]:
    """Lloyd in numpy for several runs at once from ``inits`` (runs, k, d), each as
    :func:`lloyd_numpy` alone would run it (up to float rounding of the centres). Per run:
    (assignment (n,), centres (k, d), the float64 sums (k, d) and sizes (k,) of its clusters).

    An iteration assigns every point for every unfinished run in one GEMM against all their
    centres (one read of ``x``, not one per run), and moves only the sums of the points that
    changed cluster: after the first iterations few do, so the cost is about the GEMMs.

    ``keep`` = (after, runs): after that many iterations only that many runs, those of lowest
    inertia then, iterate on; the others are returned as they stand. ``tol``: a run whose
    iteration lowers its inertia (about its clusters' means) by less than ``tol`` of it stops
    there, as at the ``n_iter`` cap. ``squares``: :func:`sum_of_squares` of ``x``, where the
    caller has it (``keep`` and ``tol`` need it).
    """
    runs, k, d = inits.shape
    centres = inits.astype(np.float32, copy=True)
    sums = np.zeros((runs, k, d), dtype=np.float64)
    counts = np.zeros((runs, k), dtype=np.int64)
    labels = nearest_runs(x, centres)
    # Each run's sums on its own thread (alsys.strategies.parallel), as each would alone.
    for r, (run_sums, run_counts) in enumerate(
        map_blocks(lambda run: cluster_sums(x, labels[run], k), range(runs))
    ):
        sums[r], counts[r] = run_sums, run_counts
    active = np.arange(runs)
    if squares is None:
        squares = sum_of_squares(x) if keep is not None or tol > 0 else 0.0
    last = np.full(runs, np.inf)
    for iteration in range(n_iter):
        for r in active.tolist():
            filled = counts[r] > 0
            centres[r, filled] = sums[r, filled] / counts[r, filled, None]
        if keep is not None and iteration == keep[0] and active.shape[0] > keep[1]:
            scores = [inertia_from_sums(squares, sums[r], counts[r]) for r in active.tolist()]
            active = np.sort(active[np.argsort(scores, kind="stable")[: keep[1]]])
        moved = nearest_runs(x, centres[active])
        still = []
        for position, r in enumerate(active.tolist()):
            changed = np.flatnonzero(moved[position] != labels[r])
            if changed.shape[0] == 0:
                continue
            for start in range(0, changed.shape[0], ROW_BLOCK):  # bounded row copies
                part = changed[start : start + ROW_BLOCK]
                rows = x[part]
                old, new = labels[r, part], moved[position, part]
                sums[r] += block_sums(rows, new, k) - block_sums(rows, old, k)
                counts[r] += np.bincount(new, minlength=k) - np.bincount(old, minlength=k)
            labels[r, changed] = moved[position, changed]
            if tol > 0:
                now, last[r] = last[r], inertia_from_sums(squares, sums[r], counts[r])
                if now - last[r] < tol * now:
                    continue
            still.append(r)
        active = np.asarray(still, dtype=np.int64)
        if active.shape[0] == 0:
            break
    return [(labels[r].astype(np.int64), centres[r], sums[r], counts[r]) for r in range(runs)]


def nearest_runs(x: F32, centres: F32) -> IntArray:
    """(runs, n) the nearest of each run's centres (runs, k, d) to every row of ``x``: one GEMM.

    argmin_c ||x - c||^2 = argmin_c ||c||^2 - 2 x.c (||x||^2 is the row's constant).
    """
    runs, k, d = centres.shape
    flat = centres.reshape(runs * k, d)
    flat_sq = np.einsum("ij,ij->i", flat, flat)
    labels = np.empty((runs, x.shape[0]), dtype=np.int64)

    def assign(start: int) -> None:
        scores = x[start : start + NEAREST_BLOCK] @ flat.T
        scores *= -2.0
        scores += flat_sq[None, :]
        labels[:, start : start + NEAREST_BLOCK] = scores.reshape(-1, runs, k).argmin(axis=2).T

    map_blocks(assign, range(0, x.shape[0], NEAREST_BLOCK))  # the blocks in threads
    return labels


def cluster_sums(x: F32, assignment: IntArray, k: int) -> tuple[FloatArray, IntArray]:
    """Per cluster, the float64 sum of its rows of ``x`` (k, d) and its size (k,).

    Reads ``x`` ROW_BLOCK rows at a time: a memory-mapped pool is never gathered whole.
    """
    counts = np.bincount(assignment, minlength=k)
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    for start in range(0, x.shape[0], ROW_BLOCK):
        add_block_sums(x[start : start + ROW_BLOCK], assignment[start : start + ROW_BLOCK], sums)
    return sums, counts


def add_block_sums(rows: F32, labels: IntArray, sums: FloatArray) -> None:
    """Adds to ``sums`` (k, d) float64 the sum of the ``rows`` of each cluster in ``labels``.

    One float64-accumulating sum per cluster over its rows, gathered in label order: 5-10x
    faster than np.add.reduceat over a float64 copy (which reduceat needs), same values.
    """
    order = np.argsort(labels, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(labels, minlength=sums.shape[0]))))
    grouped = rows[order]
    for c in np.flatnonzero(bounds[1:] > bounds[:-1]):
        sums[c] += grouped[bounds[c] : bounds[c + 1]].sum(axis=0, dtype=np.float64)


def block_sums(rows: F32, labels: IntArray, k: int) -> FloatArray:
    """(k, d) float64: the sum of the ``rows`` of each cluster in ``labels``."""
    sums = np.zeros((k, rows.shape[1]), dtype=np.float64)
    add_block_sums(rows, labels, sums)
    return sums


def sqdist(x: F32, centres: F32) -> F32:
    """(n, k) squared L2 distances from the rows of ``x`` to ``centres``, one numpy GEMM."""
    out: F32 = x @ centres.T
    out *= -2.0
    out += np.einsum("ij,ij->i", x, x)[:, None]
    out += np.einsum("ij,ij->i", centres, centres)[None, :]
    return np.maximum(out, 0.0, out=out)


def hartigan_moves(
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
    without any is a Lloyd fixed point too, so where the moves run to the end the result keeps
    every point with its nearest centre. Each pass screens all points with one float32 GEMM; the
    few near a boundary are then tried one by one against exact float64 centres, which are
    updated after every move. An empty cluster costs nothing to join, so it takes the point
    whose move gains most. On more than HARTIGAN_TOL_POINTS points, a pass that lowers the
    inertia by less than HARTIGAN_TOL of it is the last (a pool with no structure otherwise
    crawls on for 100 passes).

    ``start``: the float64 sums and sizes of the clusters of ``assignment`` where the caller
    has them (Lloyd's); ``squares``: sum ||x||^2 where known.

    Returns (assignment (n,), centres (k, d) float32, the means of their points, and the
    inertia, sum ||x||^2 - sum_c ||S_c||^2 / n_c from the float64 sums the moves keep).
    """
    n, k = x.shape[0], centres.shape[0]
    labels = assignment.astype(np.int64)
    if start is None:
        sums, counts = cluster_sums(x, labels, k)
    else:
        sums, counts = start[0].copy(), start[1].copy()
    means = centres.astype(np.float64)
    filled = counts > 0
    means[filled] = sums[filled] / counts[filled, None]
    rows = np.arange(n)
    if squares is None:
        squares = sum_of_squares(x)
    total = inertia_from_sums(squares, sums, counts)
    tol = HARTIGAN_TOL if n > HARTIGAN_TOL_POINTS else 0.0
    for _ in range(HARTIGAN_MAX_PASSES):
        dist = sqdist(x, means.astype(np.float32))
        own = counts[labels]
        leave = np.where(own > 1, own / np.maximum(own - 1, 1), 0.0) * dist[rows, labels]
        join = dist * (counts / (counts + 1.0))[None, :]
        join[rows, labels] = np.inf
        gain = leave - join.min(axis=1)
        screened = np.flatnonzero(gain > -HARTIGAN_SCREEN_SLACK * leave)
        moved, gained = 0, 0.0
        for i in screened[np.argsort(-gain[screened], kind="stable")]:
            p = labels[i]
            if counts[p] < 2:
                continue
            diff = means - x[i]
            sq = np.einsum("ij,ij->i", diff, diff)
            cost = sq * (counts / (counts + 1.0))
            cost[p] = np.inf
            q = int(np.argmin(cost))
            leaving = sq[p] * counts[p] / (counts[p] - 1.0)
            if cost[q] >= leaving:
                continue
            gained += float(leaving - cost[q])
            sums[p] -= x[i]
            sums[q] += x[i]
            counts[p] -= 1
            counts[q] += 1
            means[p] = sums[p] / counts[p]
            means[q] = sums[q] / counts[q]
            labels[i] = q
            moved += 1
        if moved == 0 or gained < tol * total:
            break
        total -= gained
    return labels, means.astype(np.float32), max(inertia_from_sums(squares, sums, counts), 0.0)


def inertia_from_sums(squares: float, sums: FloatArray, counts: IntArray) -> float:
    """The inertia of a partition from sum ||x||^2 and its clusters' float64 sums (k, d) and
    sizes (k,): sum ||x||^2 - sum_c ||S_c||^2 / n_c, empty clusters left out."""
    filled = counts > 0
    return squares - float((sums[filled] ** 2).sum(axis=1) @ (1.0 / counts[filled]))


def sum_of_squares(x: F32) -> float:
    """sum ||x||^2 over the rows of ``x``, float64, ROW_BLOCK rows at a time."""
    return sum(
        float(np.einsum("ij,ij->", x[s : s + ROW_BLOCK], x[s : s + ROW_BLOCK], dtype=np.float64))
        for s in range(0, x.shape[0], ROW_BLOCK)
    )
