"""MaxHerding (Bae, Noh and Sutherland, ECCV 2024): greedy generalised coverage.

The generalised coverage of the labeled set ``L`` and the picks ``S`` is

    C(S) = (1/n) sum_x w(x) max_{s in L u S} k(x, s),   k(x, y) = exp(-||x - y||^2 / (2 bw^2)),

over every pool point x (labeled ones included, w = 1; UHerding weights it by uncertainty, see
:mod:`alsys.strategies.uherding`). The greedy adds the unlabeled point of largest gain
``(1/n) sum_x w(x) max(k(x, s) - c(x), 0)``, ``c(x)`` the current max, until ``b`` are chosen.
C is monotone submodular, so gains only shrink as picks are added and the greedy runs lazily
(a max-heap of stale gains; only the top is re-evaluated). Gains within a relative
``TIE_RTOL`` of the best count as tied and the rng picks among them, so float rounding (e.g.
between duplicate points) never decides a pick.

Defaults, from the official code (github.com/BorealisAI/uherding, commit 75299cd):

- kernel: ``RBFKernel``, exp(-(||x - y|| / h)^2) (deep-al/pycls/al/herding.py line 66), on
  L2-normalised features (herding.py line 135), with h = ``delta`` = 1.0
  (deep-al/tools/scripts/run_budget.sh line 15, which the herding methods do not override;
  train_al.py's ``--delta`` default 0.6 is "relevant only for ProbCover"). In the convention
  above that is ``bandwidth`` = h / sqrt(2) = 0.7071.
- the coverage counts the labeled points and starts from ``max_{l in L} k(x, l)`` (herding.py
  lines 230-233), 0 everywhere when L is empty.

Deviations: the official code draws a random subset of at most 35,000 unlabeled points
(``compute_cand_size``, pycls/utils/io.py line 81) and works on L plus that subset with a
dense kernel on the GPU; here every pool point counts, and the kernel is never a dense n x n
matrix on a large pool:

- ``neighbours=None`` (the default) chooses: the exact kernel (dense, float64, built in
  blocks) while #points x #candidates <= ``AUTO_EXACT_ENTRIES`` (4,096 points, 134 MB), else
  the kNN-truncated kernel with K = ``DEFAULT_NEIGHBOURS`` (100);
- ``neighbours=K`` truncates the gains: each point x counts towards the gain of its K nearest
  unlabeled candidates only (exact faiss flat search, n K entries). The coverage c(x) itself
  stays exact: after each pick the points whose c(x) is below k(x, their K-th candidate) get
  the pick's exact kernel value (the others cannot gain from a point outside their list).
  So a gain misses only the far terms max(k(x, s) - c(x), 0) of points not yet covered up to
  their K-th candidate, and ``coverage_before``/``coverage_after`` are exact.
  K >= #candidates is the exact kernel.

Measured truncation error (tests/test_herding.py: test_truncation_error_is_small, and the
slow test_truncation_error_grid): the exact coverage of the K=100 greedy's picks over the
exact greedy's, on 4,000 x 512 pools built as benchmarks/selection.py builds its 50,000-point
one (10 or 100 Gaussian blobs, L2-normalised; 2 seeds each): b >= 30 or 100 labeled points:
>= 0.9997; cold start, b = 10: >= 0.9945; b = 3: >= 0.9746 (10 blobs of 400 points; the
picks that cover the far field best are not among the locally densest). Random picks reach
0.85-0.95 of the exact greedy's coverage in those cases.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from alsys.errors import InputError
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
    check_number,
    prepare_features,
    progress,
)
from alsys.strategies.clustering import F32, knn_sqdist

# exp(-(d / h)^2) with the official h = 1.0 (see the module docstring) is bandwidth h / sqrt(2).
DEFAULT_BANDWIDTH = math.sqrt(0.5)
# neighbours=None: the exact kernel up to this many (point, candidate) pairs, float64 (134 MB).
AUTO_EXACT_ENTRIES = 4096 * 4096
# The exact kernel is refused above this many pairs (512 MB); a truncated one is suggested.
DENSE_MAX_ENTRIES = 2**26
# neighbours=None above AUTO_EXACT_ENTRIES: each point keeps its K nearest candidates.
DEFAULT_NEIGHBOURS = 100
# Rows per block while building the exact kernel and evaluating gains.
KERNEL_BLOCK = 512
# Gains within this relative distance of the best are ties, broken by the rng.
TIE_RTOL = 1e-9
# A lazy step re-evaluates stale gains in batches growing from 1 up to this many.
MAX_EVAL_BATCH = 256
# Candidates per batch of the first gains (bounds the gathered n K entries' memory).
FIRST_GAINS_CHUNK = 8192


def rbf(sqdist: FloatArray, bandwidth: float) -> FloatArray:
    """k = exp(-d^2 / (2 bandwidth^2)) from squared distances, float64."""
    out: FloatArray = np.exp(-np.maximum(sqdist, 0.0).astype(np.float64) / (2.0 * bandwidth**2))
    return out


def max_kernel(features: F32, sources: IntArray, bandwidth: float) -> FloatArray:
    """(n,) max_{s in sources} k(x, s) for every row x, exactly: k falls with the distance, so
    it is the kernel at the nearest source (faiss flat search). 0 without sources; 1 at them."""
    n = features.shape[0]
    if sources.shape[0] == 0:
        return np.zeros(n)
    sq, _ = knn_sqdist(features, np.ascontiguousarray(features[sources]), 1)
    out = rbf(sq[:, 0], bandwidth)
    out[sources] = 1.0
    return out


def kernel_coverage(
    features: F32, sources: IntArray, bandwidth: float, weights: FloatArray | None = None
) -> float:
    """Generalised coverage (1/n) sum_x w(x) max_{s in sources} k(x, s), exactly.

    Args:
        features: (n, d) float32, L2-normalised as the strategies use them.
        sources: indices of the covering points (the labeled set and the picks).
        weights: (n,) w(x); ``None`` is 1 (MaxHerding), uncertainty for UHerding.
    """
    covered = max_kernel(features, sources, bandwidth)
    if weights is not None:
        covered = covered * weights
    return float(covered.mean())


@dataclass(frozen=True)
class HerdingResult:
    """What :func:`herding_greedy` found. Coverages are exact under either kernel.

    Attributes:
        chosen: (budget,) pool rows in the order picked.
        gains: (budget,) how much each pick raised the (weighted) coverage.
        coverage: (budget,) the (weighted) coverage after each pick.
        coverage_before: the (weighted) coverage by the labeled set alone.
        covered: (n,) max_{s in L u S} k(x, s) at the end.
        neighbours: K of the truncated kernel; ``None`` for the exact one.
        truncation_bound: mean over the points of k(x, its K-th nearest candidate): a gain
            leaves out kernel values no larger than this; 0 when exact.
        unweighted: the plain coverage (w = 1) before and after the picks; with ``weights``
            unset it is (``coverage_before``, ``coverage[-1]``).
    """

    chosen: IntArray
    gains: FloatArray
    coverage: FloatArray
    coverage_before: float
    covered: FloatArray
    neighbours: int | None
    truncation_bound: float
    unweighted: tuple[float, float]


def resolve_neighbours(neighbours: int | None, n: int, n_candidates: int) -> int | None:
    """The K the greedy runs with: ``None`` means the exact kernel (see the module docstring)."""
    if neighbours is None:
        exact = n * n_candidates <= AUTO_EXACT_ENTRIES
        return None if exact else min(DEFAULT_NEIGHBOURS, n_candidates)
    if neighbours >= n_candidates:
        if n * n_candidates > DENSE_MAX_ENTRIES:
            raise InputError(
                "neighbours",
                f"{neighbours} >= the {n_candidates} candidates asks for the exact kernel, "
                f"{n} x {n_candidates} pairs (over {DENSE_MAX_ENTRIES}); give a smaller K",
            )
        return None
    return int(neighbours)


class _DenseKernel:
    """The exact kernel: ``values[j, x] = k(candidate j, x)``, float64."""

    def __init__(self, x: F32, candidates: IntArray, labeled: IntArray, bandwidth: float):
        x64 = x.astype(np.float64)
        sq = np.einsum("ij,ij->i", x64, x64)
        n = x.shape[0]

        def rows(idx: IntArray) -> FloatArray:
            d2 = sq[idx, None] + sq[None, :] - 2.0 * (x64[idx] @ x64.T)
            d2[np.arange(idx.shape[0]), idx] = 0.0  # a point's distance to itself
            return rbf(d2, bandwidth)

        self.values = np.empty((candidates.shape[0], n))
        for start in range(0, candidates.shape[0], KERNEL_BLOCK):
            block = candidates[start : start + KERNEL_BLOCK]
            self.values[start : start + KERNEL_BLOCK] = rows(block)
        self.start: FloatArray = np.zeros(n)
        for start in range(0, labeled.shape[0], KERNEL_BLOCK):
            block = rows(labeled[start : start + KERNEL_BLOCK]).max(axis=0)
            np.maximum(self.start, block, out=self.start)

    def gains(self, js: IntArray, covered: FloatArray, weights: FloatArray | None) -> FloatArray:
        out = np.empty(js.shape[0])
        for start in range(0, js.shape[0], KERNEL_BLOCK):
            part = np.maximum(self.values[js[start : start + KERNEL_BLOCK]] - covered, 0.0)
            if weights is not None:
                part *= weights
            out[start : start + KERNEL_BLOCK] = part.sum(axis=1)
        return out

    def update(self, j: int, covered: FloatArray) -> None:
        np.maximum(covered, self.values[j], out=covered)


class _TruncatedKernel:
    """Each point's K nearest candidates, held per candidate (CSC): the points it may cover."""

    def __init__(self, x: F32, candidates: IntArray, k: int, bandwidth: float):
        n, m = x.shape[0], candidates.shape[0]
        self.x, self.candidates, self.bandwidth = x, candidates, bandwidth
        self.sq = np.einsum("ij,ij->i", x, x)
        sq, nearest = knn_sqdist(x, np.ascontiguousarray(x[candidates]), k)
        sq = sq.astype(np.float64)
        # k(x, s) <= kth[x] for every candidate s outside x's list (farther than its K-th).
        self.kth = rbf(sq[:, -1], bandwidth)
        # A candidate always covers itself (a duplicate point may have pushed it out).
        position = np.full(n, -1, dtype=np.int64)
        position[candidates] = np.arange(m)
        own = position >= 0
        missing = own & ~(nearest == position[:, None]).any(axis=1)
        nearest[missing, -1] = position[missing]
        sq[nearest == position[:, None]] = 0.0
        self.truncation_bound = float(self.kth.mean())
        kernel = sparse.csr_matrix(
            (rbf(sq, bandwidth).ravel(), nearest.ravel(), np.arange(0, n * k + 1, k)),
            shape=(n, m),
        ).tocsc()
        self.indptr = kernel.indptr.astype(np.int64)
        self.rows = kernel.indices
        self.values = kernel.data.astype(np.float64)

    def gains(self, js: IntArray, covered: FloatArray, weights: FloatArray | None) -> FloatArray:
        starts, ends = self.indptr[js], self.indptr[js + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        rows = self.rows[offsets]
        part = np.maximum(self.values[offsets] - covered[rows], 0.0)
        if weights is not None:
            part *= weights[rows]
        # In order within each candidate: its sum does not depend on the batch it is in.
        segment = np.repeat(np.arange(js.shape[0]), lengths)
        return np.bincount(segment, weights=part, minlength=js.shape[0]).astype(np.float64)

    def update(self, j: int, covered: FloatArray) -> None:
        """Exact: max(c(x), k(x, s)) for every point x, not only the K nearest. The points
        that keep s in their lists get it from there; of the others only those covered below
        kth can gain, so only their kernel values are computed."""
        span = slice(self.indptr[j], self.indptr[j + 1])
        near = self.rows[span]
        covered[near] = np.maximum(covered[near], self.values[span])
        s = self.candidates[j]
        under = np.flatnonzero(covered < self.kth)
        if under.shape[0] > covered.shape[0] // 2:
            to_s = self.x @ self.x[s]
            np.maximum(covered, rbf(self.sq + self.sq[s] - 2.0 * to_s, self.bandwidth), out=covered)
        elif under.shape[0]:
            to_s = self.x[under] @ self.x[s]
            kernel = rbf(self.sq[under] + self.sq[s] - 2.0 * to_s, self.bandwidth)
            covered[under] = np.maximum(covered[under], kernel)


def herding_greedy(
    features: F32,
    labeled_mask: BoolArray,
    budget: int,
    rng: np.random.Generator,
    bandwidth: float = DEFAULT_BANDWIDTH,
    neighbours: int | None = None,
    weights: FloatArray | None = None,
    show_progress: bool = False,
) -> HerdingResult:
    """Greedy maximisation of the (weighted) generalised coverage, lazily.

    Args:
        features: (n, d) float32, L2-normalised for the paper's kernel.
        labeled_mask: (n,) the labeled set, which covers from the start and is never picked.
        budget: picks to make, at most the number of unlabeled points.
        rng: breaks ties (gains within ``TIE_RTOL`` of the best), e.g. once all is covered.
        bandwidth: of k(x, y) = exp(-||x - y||^2 / (2 bandwidth^2)).
        neighbours: ``None`` for the automatic rule, else K of the truncated kernel
            (see :func:`resolve_neighbours`).
        weights: (n,) non-negative w(x) of each covered point; ``None`` for 1.

    Returns:
        :class:`HerdingResult`.
    """
    n = features.shape[0]
    candidates = np.flatnonzero(~labeled_mask)
    labeled = np.flatnonzero(labeled_mask)
    m = candidates.shape[0]
    k = resolve_neighbours(neighbours, n, m)
    kernel: _DenseKernel | _TruncatedKernel
    if k is None:
        kernel = _DenseKernel(features, candidates, labeled, bandwidth)
        covered, bound = kernel.start, 0.0
    else:
        kernel = _TruncatedKernel(features, candidates, k, bandwidth)
        covered, bound = max_kernel(features, labeled, bandwidth), kernel.truncation_bound
    covered[labeled] = 1.0

    def coverage() -> float:
        return float((covered if weights is None else covered * weights).mean())

    coverage_before, unweighted_before = coverage(), float(covered.mean())
    stamp = np.zeros(m, dtype=np.int64)  # the step at which each heap value was computed
    # The first gains in chunks: a truncated kernel gathers K entries per candidate.
    first = np.zeros(m)
    for start in range(0, m, FIRST_GAINS_CHUNK):
        chunk = np.arange(start, min(start + FIRST_GAINS_CHUNK, m))
        first[chunk] = kernel.gains(chunk, covered, weights)
    heap = [(-float(g), j) for j, g in enumerate(first)]
    heapq.heapify(heap)
    chosen = np.empty(budget, dtype=np.int64)
    after = np.empty(budget)
    for step in progress(range(budget), total=budget, desc="herding", enabled=show_progress):
        j = _lazy_pick(heap, stamp, step, kernel, covered, weights, rng)
        kernel.update(j, covered)
        covered[candidates[j]] = 1.0
        chosen[step] = candidates[j]
        after[step] = coverage()
    return HerdingResult(
        chosen=chosen,
        gains=np.diff(after, prepend=coverage_before),
        coverage=after,
        coverage_before=coverage_before,
        covered=covered,
        neighbours=k,
        truncation_bound=bound,
        unweighted=(unweighted_before, float(covered.mean())),
    )


def _lazy_pick(
    heap: list[tuple[float, int]],
    stamp: IntArray,
    step: int,
    kernel: _DenseKernel | _TruncatedKernel,
    covered: FloatArray,
    weights: FloatArray | None,
    rng: np.random.Generator,
) -> int:
    """Pops the candidate of largest gain; every entry whose stale gain could still reach the
    best (within TIE_RTOL) is re-evaluated, in growing batches, so ties are all found."""
    popped: list[tuple[float, int]] = []  # (fresh gain, candidate), all evaluated at ``step``
    best = -math.inf
    batch = 1
    while heap:
        floor = best - TIE_RTOL * abs(best) if best > -math.inf else -math.inf
        if -heap[0][0] < floor:
            break
        if best == 0.0 and heap[0][0] == 0.0:
            # Every remaining bound is 0, so every remaining gain is 0: all tie.
            popped.extend((0.0, j) for _, j in heap)
            heap.clear()
            break
        taken: list[tuple[float, int]] = []
        while heap and len(taken) < batch and -heap[0][0] >= floor:
            taken.append(heapq.heappop(heap))
        stale = np.array([j for _, j in taken if stamp[j] != step], dtype=np.int64)
        values = kernel.gains(stale, covered, weights)
        fresh = dict(zip(stale.tolist(), values.tolist(), strict=True))
        for value, j in taken:
            gain = fresh.get(j, -value)
            stamp[j] = step
            popped.append((gain, j))
            best = max(best, gain)
        batch = min(2 * batch, MAX_EVAL_BATCH)
    floor = best - TIE_RTOL * abs(best)
    ties = sorted(j for gain, j in popped if gain >= floor)
    pick = ties[argmax_tiebreak(np.ones(len(ties)), rng)]
    for gain, j in popped:
        if j != pick:
            heapq.heappush(heap, (-gain, j))
    return pick


def check_neighbours(owner: str, neighbours: int | None) -> None:
    if neighbours is not None:
        check_number(owner, "neighbours", neighbours, low=1, integer=True)


def coverage_notes(name: str, result: HerdingResult, n_labeled: int) -> str:
    """One line: the kernel used and the plain coverage before and after the picks."""
    if result.neighbours is None:
        how = "exact kernel"
    else:
        how = (
            f"kNN-truncated kernel (each point keeps its {result.neighbours} nearest "
            f"candidates; mean kernel at the K-th {result.truncation_bound:.3g})"
        )
    return (
        f"{name}: {how}; the labeled set ({n_labeled} points) covered "
        f"{result.unweighted[0]:.4g} before this round's {result.chosen.shape[0]} picks, "
        f"{result.unweighted[1]:.4g} after"
    )


@dataclass(frozen=True)
class MaxHerding(Strategy):
    """Attributes:
    bandwidth: of the Gaussian kernel exp(-||x - y||^2 / (2 bandwidth^2)) on normalised
        embeddings; 1/sqrt(2) is the official code's h = 1.0 (see the module docstring).
    neighbours: ``None`` chooses (exact kernel up to 4,096 points, else K=100); K keeps each
        point's K nearest candidates (K >= #candidates: exact).
    normalize: L2-normalise the embeddings first, as the official code does.
    """

    name = "maxherding"
    inputs = Inputs(space=True)

    bandwidth: float = DEFAULT_BANDWIDTH
    neighbours: int | None = None
    normalize: bool = True

    def __post_init__(self) -> None:
        check_number(self.name, "bandwidth", self.bandwidth, low=0, low_open=True)
        check_neighbours(self.name, self.neighbours)
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
        bandwidth = float(self.bandwidth)
        result = herding_greedy(
            x, labeled_mask, budget, rng, bandwidth, self.neighbours, None, show_progress
        )
        details = tuple(
            {"reason": self.name, "coverage_gain": float(g), "coverage": float(c)}
            for g, c in zip(result.gains, result.coverage, strict=True)
        )
        metrics = herding_metrics(result, bandwidth, x.shape[0] - int(labeled_mask.sum()))
        notes = (coverage_notes(self.name, result, int(labeled_mask.sum())),)
        return Selection(result.chosen, details, notes, metrics)


def herding_metrics(result: HerdingResult, bandwidth: float, n_candidates: int) -> dict[str, float]:
    """The plain coverage before and after, the kernel's bandwidth, K (#candidates when
    exact) and, truncated, the mean kernel value at the K-th nearest candidate."""
    metrics = {
        "coverage_before": result.unweighted[0],
        "coverage_after": result.unweighted[1],
        "bandwidth": bandwidth,
        "neighbours": float(n_candidates if result.neighbours is None else result.neighbours),
    }
    if result.neighbours is not None:
        metrics["truncation_bound"] = result.truncation_bound
    return metrics
