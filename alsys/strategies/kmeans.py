"""k-means as the reference ran it: k-means++ restarts, Lloyd, Hartigan moves.

The iterations themselves (and faiss's exact kNN) are in :mod:`alsys.strategies.kmeans_steps`;
this module decides how many runs, on which points, and assigns every point at the end.
:func:`kmeans` keeps its inertia at or below the reference's scikit-learn k-means (restarts and
Hartigan's moves up to 50 clusters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from alsys.errors import InputError
from alsys.strategies import kmeans_steps as steps
from alsys.strategies.base import (
    IntArray,
    check_number,
)
from alsys.strategies.kmeans_steps import (
    HARTIGAN_TOL_POINTS,
    add_block_sums,
    gpu_available,
    hartigan_moves,
    inertia_from_sums,
    kmeans_pp,
    knn_sqdist,
    lloyd,
    lloyd_numpy_runs,
    sum_of_squares,
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
# Hartigan's moves (see hartigan_moves) follow every Lloyd run up to 50 clusters; above, only
# while the (n, k) distance matrix has at most this many entries. There they lower the inertia by
# 1-5% (a small pool is where mini-batch k-means, a full batch then, beats one Lloyd run); on
# 50k x 500 they took 74 passes, 10x the Lloyd run, for 0.6%.
HARTIGAN_ABOVE_REFERENCE_MAX = 2**22
# The restarts' Lloyd runs share one numpy GEMM an iteration while it has at most this many
# entries (n x k x restarts float32: 128 MiB); beyond, faiss runs them one by one.
BATCHED_LLOYD_MAX = 2**25
# Large pools are clustered on a subsample, then every point is assigned (see _kmeans).
# Up to 50 clusters the restarts (k-means++, Lloyd) run together on max(RESTART_SAMPLE_MIN,
# RESTART_POINTS_PER_CLUSTER k) points (and at most what the batched GEMM allows,
# BATCHED_LLOYD_MAX / (k x restarts)); Hartigan's moves polish the POLISHED_RUNS of lowest
# inertia, and on a sample the best is finished by Lloyd and Hartigan over every point
# (benchmarks/kmeans_quality.py measures the inertia against KMeans(n_init=10)).
# Above 50 clusters, one run's Lloyd iterations see max(LLOYD_SAMPLE_MIN,
# LLOYD_SAMPLE_PER_CLUSTER k) points, then one pass assigns every point and takes the means.
# With 32 points a cluster, a centre's mean was too noisy on pools of more groups than
# clusters: one centre of small norm drew the points of every group left without a centre of
# its own. On 1.28M x 512 of 10,000 groups, k = 500 (benchmarks/shapes.py, loaded machine):
# 32 a cluster, the largest cluster 103x the median, inertia 1195139 in 53 s; with a second
# pass over every point 60x, 1190162, 83 s; 128 a cluster 3.1x, 1185169, 69 s; 256 1.8x,
# 1184653, 80 s.
RESTART_SAMPLE_MIN = 4096
RESTART_POINTS_PER_CLUSTER = 512
POLISHED_RUNS = 1
# On a sample, after RESTART_KEEP[0] Lloyd iterations only the RESTART_KEEP[1] restarts of lowest
# inertia iterate on. On 50k x 512 (k = 10 and 50; sphere, zipf, mix100, mix1000; seeds 0-1) the
# clustering's inertia stayed within 0.01 % of letting all 10 go on (equal on zipf and mix100),
# and the restarts' Lloyd runs, where they do not settle within a few iterations (sphere, zipf,
# mix1000), took 1.0-1.6 s less at k = 50. Pools the restarts see whole (digits) run them all.
RESTART_KEEP = (3, 3)
LLOYD_SAMPLE_MIN = 16384
LLOYD_SAMPLE_PER_CLUSTER = 128
# Above 50 clusters, on pools of more than HARTIGAN_TOL_POINTS points (CPU), Lloyd's iterations
# end at one that lowers the inertia by less than this share of it, before the n_iter cap. On
# 50k x 512 at k = 500 (seeds 0-1) the clustering took 4.0 s against 6.5-6.7 s with all 20
# (faiss) on the pool with no structure, 3.7 s against 6.0-6.7 s on zipf and 2.0 s against
# 3.6-4.1 s on mix100, for an inertia 0.01-0.03 % higher; mix1000 settles before the cap
# either way (3.3-3.6 s, the same inertia up to 0.0004 %).
LLOYD_TOL = 1e-4
# Up to 50 clusters, this many of the best sampled restarts are finished over every point.
FINISHED_RUNS = 1
# Hartigan's moves over every point up to 50 clusters, while (n, k) has at most this many entries.
HARTIGAN_FULL_MAX = 2**24


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


def inertia(x: F32, clustering: Clustering) -> float:
    """Sum of squared distances of each point to its cluster centre (steps.ROW_BLOCK rows at a time,
    so a memory-mapped pool is not copied)."""
    total = 0.0
    for start in range(0, x.shape[0], steps.ROW_BLOCK):
        stop = start + steps.ROW_BLOCK
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
    runs of k-means++ and at most ``n_iter`` Lloyd iterations, then Hartigan's single-point
    moves (:func:`~alsys.strategies.kmeans_steps.hartigan_moves`) on the run of lowest inertia.
    Above, where it ran MiniBatchKMeans (n_init=3): one run, k-means++ on a subsample, at most
    ``n_iter`` Lloyd iterations, and Hartigan's moves where they are cheap
    (HARTIGAN_ABOVE_REFERENCE_MAX); ``restarts`` is not used there.

    Large pools are sampled: the restarts see max(4096, 512 k) points (after RESTART_KEEP[0]
    iterations only the RESTART_KEEP[1] best go on; the best then finished over every point),
    and above 50 clusters Lloyd sees max(LLOYD_SAMPLE_MIN, 128 k) points, stopping at an
    iteration that gains less than LLOYD_TOL of the inertia, before one assignment pass over
    every point.

    The result carries its inertia and a description of the run (:meth:`Clustering.describe`).
    """
    n = x.shape[0]
    if not 1 <= n_clusters <= n:
        raise InputError("n_clusters", f"must be in [1, {n}], got {n_clusters}")
    check_number("kmeans", "n_iter", n_iter, low=1, integer=True)
    check_number("kmeans", "restarts", restarts, low=1, integer=True)
    if gpu_available() or n * n_clusters > steps.SMALL_LLOYD_MAX:
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
        return _restarts(x, n_clusters, rng, n_iter, restarts)
    size = max(LLOYD_SAMPLE_MIN, LLOYD_SAMPLE_PER_CLUSTER * n_clusters)
    fit_on, sampled = _sample(x, size, rng)
    pp_size = max(KMEANS_PP_MIN_SAMPLE, KMEANS_PP_POINTS_PER_CLUSTER * n_clusters)
    pp_on, pp_sampled = _sample(fit_on, pp_size, rng)
    steps = [f"k-means++ on {pp_size} sampled points" if pp_sampled else "k-means++"]
    # On pp_on in place: with 8 trials a step, reading it by row blocks beat a transposed copy
    # (2.75 s against 3.13 s for 500 centres on 16,384 x 512, two threads).
    init = kmeans_pp(pp_on, n_clusters, rng, transpose=False)[0]
    tol = LLOYD_TOL if n > HARTIGAN_TOL_POINTS else 0.0
    assignment, centres = lloyd(fit_on, init, n_iter, int(rng.integers(2**31 - 1)), tol)
    steps.append(
        f"<= {n_iter} Lloyd iterations"
        + (f" (to a {tol:g} inertia tolerance)" if tol > 0 and not gpu_available() else "")
        + (f" on {size} sampled points" if sampled else "")
    )
    if sampled:
        assignment, centres, total = _assign_and_average(x, centres)
        steps.append(f"one assignment pass over all {n} points, centres their means")
        return Clustering(assignment, centres, total, f"1 run ({', '.join(steps)})")
    if n * n_clusters <= HARTIGAN_ABOVE_REFERENCE_MAX:
        assignment, centres, total = hartigan_moves(x, assignment, centres)
        steps.append("Hartigan moves")
        return Clustering(assignment, centres, total, f"1 run ({', '.join(steps)})")
    return _with_inertia(x, assignment, centres, f"1 run ({', '.join(steps)})")


def _restarts(
    x: F32, n_clusters: int, rng: np.random.Generator, n_iter: int, restarts: int
) -> Clustering:
    """Up to 50 clusters: the restarts on a sample (or every point), Hartigan's moves on the
    best, and on a sample the best finished over every point."""
    n = x.shape[0]
    size = min(
        max(RESTART_SAMPLE_MIN, RESTART_POINTS_PER_CLUSTER * n_clusters),
        BATCHED_LLOYD_MAX // (n_clusters * restarts),
    )
    fit_on, sampled = _sample(x, size, rng)
    # All seeds, then all Lloyd runs, then all refinements: numpy (OpenBLAS) and faiss
    # (OpenMP) take turns twice, not twice per restart (see self_knn_sqdist).
    inits = kmeans_pp(fit_on, n_clusters, rng, restarts, transpose=sampled)
    seeds = rng.integers(2**31 - 1, size=restarts)
    runs: list[tuple[IntArray, F32, Any, Any]]
    squares = sum_of_squares(fit_on)
    if not gpu_available() and fit_on.shape[0] * n_clusters * restarts <= BATCHED_LLOYD_MAX:
        keep = RESTART_KEEP if sampled else None
        runs = lloyd_numpy_runs(fit_on, inits, n_iter, keep, squares=squares)
    else:
        runs = [
            (*lloyd(fit_on, i, n_iter, int(s)), None, None)
            for i, s in zip(inits, seeds, strict=True)
        ]
    # Hartigan's moves (a Python loop over the points near a boundary, the costliest step)
    # polish the POLISHED_RUNS runs of lowest Lloyd inertia, not every restart.
    lloyd_scores = [
        _lloyd_inertia(fit_on, a, c, sums, counts, squares) for a, c, sums, counts in runs
    ]
    polished = np.argsort(lloyd_scores, kind="stable")[:POLISHED_RUNS]
    moved = [
        hartigan_moves(fit_on, a, c, None if sums is None else (sums, counts), squares)
        for a, c, sums, counts in (runs[int(r)] for r in polished)
    ]
    refined = [(a, c) for a, c, _ in moved]
    scores = [total for _, _, total in moved]
    best = int(np.argmin(scores))
    runs_text = f"{restarts} restarts" if restarts > 1 else "1 run"
    polished_text = ""
    if len(moved) < restarts:
        polished_text = ", the best" + (f" {len(moved)}" if len(moved) > 1 else "")
    method = (
        f"{runs_text} x (k-means++, <= {n_iter} Lloyd iterations){polished_text} "
        "then Hartigan moves"
    )
    if not sampled:
        return Clustering(*refined[best], scores[best], method)
    # The best sampled runs, each finished over every point; the lowest inertia is kept.
    finished = []
    for run in np.argsort(scores, kind="stable")[:FINISHED_RUNS]:
        seed = int(rng.integers(2**31 - 1))
        assignment, centres = lloyd(x, refined[run][1], n_iter, seed)
        if n * n_clusters <= HARTIGAN_FULL_MAX:
            # The moves' inertia comes from the float64 sums they keep (no pass over x).
            finished.append(Clustering(*hartigan_moves(x, assignment, centres)))
        else:
            finished.append(_with_inertia(x, assignment, centres, ""))
    top = min(finished, key=lambda c: c.inertia or 0.0)
    polish = " and Hartigan moves" if n * n_clusters <= HARTIGAN_FULL_MAX else ""
    method = (
        f"{method} on {size} sampled points, the best {len(finished)} then <= {n_iter} "
        f"Lloyd iterations{polish} over all {n} points"
    )
    return Clustering(top.assignment, top.centres, top.inertia, method)


def _lloyd_inertia(
    x: F32, assignment: IntArray, centres: F32, sums: Any, counts: Any, squares: float
) -> float:
    """A Lloyd run's inertia: from its float64 cluster sums and sizes where it kept them
    (sum ||x||^2 - sum_c ||S_c||^2 / n_c), else computed."""
    if sums is None:
        return inertia(x, Clustering(assignment, centres))
    return inertia_from_sums(squares, sums, counts)


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
    for start in range(0, x.shape[0], steps.ROW_BLOCK):
        block = np.ascontiguousarray(x[start : start + steps.ROW_BLOCK])
        labels = knn_sqdist(block, centres, 1)[1][:, 0].astype(np.int64)
        assignment[start : start + block.shape[0]] = labels
        squares += float(np.einsum("ij,ij->", block, block, dtype=np.float64))
        add_block_sums(block, labels, sums)
    counts = np.bincount(assignment, minlength=k)
    filled = counts > 0
    means = centres.astype(np.float64)
    means[filled] = sums[filled] / counts[filled, None]
    return assignment, means.astype(np.float32), max(inertia_from_sums(squares, sums, counts), 0.0)


def clustering_from_assignment(x: F32, assignment: IntArray) -> Clustering:
    """A precomputed assignment (e.g. SCAN for TypiClust-DC), relabelled 0..k-1, with its means."""
    _, labels = np.unique(np.asarray(assignment), return_inverse=True)
    labels = labels.astype(np.int64)
    k = int(labels.max()) + 1
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, x)
    centres = (sums / np.bincount(labels, minlength=k)[:, None]).astype(np.float32)
    return Clustering(labels, centres, method="precomputed (Pool.clusters), no k-means")
