"""DCoM (Mishal and Weinshall 2024, "DCoM: Active Learning for All Learners"): ProbCover's
coverage and Margin, mixed by a logistic function of how much of the pool the labeled set
already covers.

Each labeled point l holds a ball of its own radius delta_l. Each round:

1. **Radii.** delta_l is the radius at which the ball around l stays pure enough: the fraction
   of pool points within delta_l whose class under the current model (argmax p) is l's label
   must reach 0.2 c + 0.4, c the coverage below. Binary search on [0, ``max_delta``] until the
   interval is at most ``delta_resolution`` wide; the radius is its midpoint.
2. **Coverage and competence.** c = the share of the pool within delta_l of some labeled l;
   the competence is w(c) = (1 + e^{-k (1 - a)}) / (1 + e^{-k (c - a)}), so w(1) = 1 and w is
   about 0 below a (k = 50, a = 0.8).
3. **Greedy.** The delta_avg-ball graph (delta_avg: the mean radius) over every pool point
   without the edges into covered points, as ProbCover's; b times, the unlabeled point of
   highest w mm(u) + (1 - w) mm(density) is taken, density = its edges left, u = the
   uncertainty 1 - (p1 - p2) (0 on labeled and chosen points), mm a min-max scaling over the
   pool; the points it reaches become covered. Ties are broken by the rng.

At the cold start (nothing labeled) there is no model and no radius yet: every ball has the
initial radius and DCoM is ProbCover at that delta, pick for pick. The initial radius is
``initial_delta``, or (default) ProbCover's purity rule with ``n_classes`` k-means
pseudo-labels: the reference's usage line passes its dataset's ProbCover delta (CIFAR-10:
0.75).

Written from the paper's description, with the defaults and the details of the authors' code
(avihu111/TypiClust, deep-al/pycls/al/DCoM.py and tools/train_al.py): max_delta 1.1 and
resolution 0.05 (pycls/core/config.py), k = 50 and a = 0.8 (train_al.py's --k_logistic,
--a_logistic), threshold 0.2 c + 0.4 (``calc_threshold``), margins min-max scaled over the
pool. Where alsys differs:

- A strategy is a function of this round's inputs, so every labeled point's radius is found
  again each round with the current model; the authors find each radius once, with the model
  of the round after it was bought, and keep it, and their threshold's c is the coverage by
  the radii found so far (the newest points' at the average radius). Here c is the coverage
  by the radii found at the lowest threshold, 0.4 (c = 0), and the radii are then found again
  at 0.2 c + 0.4. The initial radius serves the cold start only.
- The authors round w to 3 decimals and radii to 2, break ties by the highest row, and can
  pick a labeled point when every score is 0; here nothing is rounded, the rng breaks ties and
  only unlabeled points are picked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
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
from alsys.strategies.clustering import F32
from alsys.strategies.probcover import ProbCover, coverage_graph
from alsys.strategies.uncertainty import margin_scores

MAX_DELTA = 1.1  # reference config: ACTIVE_LEARNING.MAX_DELTA
DELTA_RESOLUTION = 0.05  # reference config: ACTIVE_LEARNING.DELTA_RESOLUTION
K_LOGISTIC = 50.0  # reference train_al.py --k_logistic
A_LOGISTIC = 0.8  # reference train_al.py --a_logistic
# Distances from labeled points per block (float32 entries: 16 MiB), whatever n is.
RADIUS_BLOCK_ELEMENTS = 2**22


def competence(coverage: float, k: float = K_LOGISTIC, a: float = A_LOGISTIC) -> float:
    """w(c) = (1 + e^{-k (1 - a)}) / (1 + e^{-k (c - a)}): about 0 at low coverage, 1 at c = 1."""
    return (1.0 + math.exp(-k * (1.0 - a))) / (1.0 + math.exp(-k * (coverage - a)))


def purity_threshold(coverage: float) -> float:
    """The ball purity a radius must keep: 0.2 c + 0.4 (reference ``calc_threshold``)."""
    return 0.2 * coverage + 0.4


def min_max(values: FloatArray) -> FloatArray:
    """(v - min) / (max - min); all zeros when v is constant (as scikit-learn's MinMaxScaler)."""
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.zeros_like(values, dtype=np.float64)
    return (values - low) / (high - low)


def _distance_blocks(x: F32, rows: IntArray) -> Iterator[tuple[slice, F32]]:
    """(a block of positions in ``rows``, those rows' Euclidean distances to every point), one
    bounded block at a time; each row's distance to itself is exactly 0."""
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    step = max(1, RADIUS_BLOCK_ELEMENTS // n)
    for start in range(0, rows.shape[0], step):
        part = rows[start : start + step]
        d2 = x[part] @ x.T
        d2 *= -2.0
        d2 += sq[None, :]
        d2 += sq[part, None]
        d2[np.arange(part.shape[0]), part] = 0.0
        yield slice(start, start + part.shape[0]), np.sqrt(np.maximum(d2, 0.0, out=d2))


def ball_radii(
    x: F32,
    labeled: IntArray,
    labels: IntArray,
    pseudo_labels: IntArray,
    threshold: float,
    max_delta: float = MAX_DELTA,
    resolution: float = DELTA_RESOLUTION,
) -> tuple[FloatArray, BoolArray]:
    """Each labeled point's radius by binary search, and the pool points its ball covers.

    Args:
        x: (n, d) float32 pool features.
        labeled: (m,) the labeled rows; ``labels`` (m,) their classes.
        pseudo_labels: (n,) every point's class under the model.
        threshold: the purity to keep: the share of the ball (the point itself included)
            whose pseudo-label is the labeled point's class.

    Returns:
        (radii (m,), covered (n,): within radii[j] of labeled[j] for some j, strictly).
    """
    radii = np.empty(labeled.shape[0])
    covered = np.zeros(x.shape[0], dtype=bool)
    for block, distances in _distance_blocks(x, labeled):
        same = pseudo_labels[None, :] == labels[block, None]
        low = np.zeros(distances.shape[0])
        high = np.full(distances.shape[0], float(max_delta))
        while high[0] - low[0] > resolution:
            mid = (low + high) / 2
            inside = distances < mid[:, None]
            purity = (inside & same).sum(axis=1) / np.maximum(inside.sum(axis=1), 1)
            pure = purity >= threshold
            low = np.where(pure, mid, low)
            high = np.where(pure, high, mid)
        radii[block] = (low + high) / 2
        covered |= (distances < radii[block, None]).any(axis=0)
    return radii, covered


def uncertainty_weights(probs: FloatArray, labeled_mask: BoolArray) -> FloatArray:
    """The reference's margin term: min-max scaled -(p1 - p2) over the pool, 0 when labeled."""
    scaled = min_max(-margin_scores(probs))
    scaled[labeled_mask] = 0.0
    return scaled


def candidate_graph(
    x: F32,
    delta: float,
    rows: IntArray,
    columns: IntArray,
    max_edges: int | None = None,
    show_progress: bool = False,
) -> sparse.csr_matrix:
    """(rows, columns) boolean: [i, j] iff ||x[rows[i]] - x[columns[j]]|| < delta: the edges
    from the candidates into the points not yet covered, the only ones the greedy counts.

    While they are most of the pool, ProbCover's symmetric graph (half the distances) is built
    and cut down; else a blocked search of the rows against the columns (float32
    ||a||^2 + ||b||^2 - 2 a.b, as coverage_graph), which costs less as the coverage grows.
    """
    n = x.shape[0]
    if rows.shape[0] * columns.shape[0] > n * n // 2:
        full = coverage_graph(x, delta, max_edges, show_progress)
        return full[rows][:, columns].tocsr()
    if columns.shape[0] == 0 or rows.shape[0] == 0:
        return sparse.csr_matrix((rows.shape[0], columns.shape[0]), dtype=bool)
    xc = np.ascontiguousarray(x[columns])
    sq_rows = np.einsum("ij,ij->i", x[rows], x[rows])
    sq_cols = np.einsum("ij,ij->i", xc, xc)
    radius = np.float32(delta) ** 2
    step = max(1, RADIUS_BLOCK_ELEMENTS // columns.shape[0])
    parts: list[sparse.csr_matrix] = []
    edges = 0
    for start in range(0, rows.shape[0], step):
        block = x[rows[start : start + step]] @ xc.T
        block *= -2.0
        block += sq_cols[None, :]
        block += sq_rows[start : start + step, None]
        parts.append(sparse.csr_matrix(block < radius))
        edges += parts[-1].nnz
        if max_edges is not None and edges > max_edges:
            raise InputError(
                "dcom.delta",
                f"delta_avg={delta:g} links more than {max_edges} pairs; lower max_delta",
            )
    return sparse.vstack(parts, format="csr")


def _entries(indptr: IntArray, indices: IntArray, which: IntArray) -> IntArray:
    """The concatenated entries of the given rows (CSR) or columns (CSC)."""
    starts, lengths = indptr[which], indptr[which + 1] - indptr[which]
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return indices[offsets + np.arange(int(lengths.sum()))]


def dcom_greedy(
    graph: sparse.csr_matrix,
    rows: IntArray,
    columns: IntArray,
    labeled_mask: BoolArray,
    uncertainty: FloatArray,
    weight: float,
    budget: int,
    rng: np.random.Generator,
    show_progress: bool = False,
) -> tuple[IntArray, IntArray, FloatArray]:
    """The greedy of step 3.

    Args:
        graph: (rows, columns) from :func:`candidate_graph`: the edges of the candidate
            ``rows`` (the unlabeled points) into the ``columns`` (the points not yet covered).
        labeled_mask: (n,); ``uncertainty`` (n,) the scaled margin term, 0 when labeled.

    Returns:
        (chosen (budget,), the points each newly covered, each pick's score).
    """
    n = labeled_mask.shape[0]
    indptr, indices = graph.indptr.astype(np.int64), graph.indices.astype(np.int64)
    by_column = graph.tocsc()
    col_ptr, col_rows = by_column.indptr.astype(np.int64), by_column.indices.astype(np.int64)
    degree = np.zeros(n, dtype=np.int64)
    degree[rows] = np.diff(indptr)  # labeled points keep 0: their edges are not counted
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(rows.shape[0])
    open_columns = np.ones(columns.shape[0], dtype=bool)
    u = uncertainty.astype(np.float64)
    eligible = ~labeled_mask
    chosen = np.empty(budget, dtype=np.int64)
    gains = np.empty(budget, dtype=np.int64)
    scores = np.empty(budget)
    for step in progress(range(budget), total=budget, desc="dcom", enabled=show_progress):
        score = weight * min_max(u) + (1.0 - weight) * min_max(degree.astype(np.float64))
        pick = argmax_tiebreak(np.where(eligible, score, -1.0), rng)
        i = position[pick]
        reach = indices[indptr[i] : indptr[i + 1]]
        newly = reach[open_columns[reach]]
        open_columns[newly] = False
        # Every edge into a newly covered point is gone: its source loses one.
        degree[rows] -= np.bincount(_entries(col_ptr, col_rows, newly), minlength=rows.shape[0])
        u[pick] = 0.0
        eligible[pick] = False
        chosen[step], gains[step], scores[step] = pick, newly.shape[0], score[pick]
    return chosen, gains, scores


@dataclass(frozen=True)
class DCoM(Strategy):
    """Attributes:
    initial_delta: the balls' radius before any label (the cold start). ``None`` applies
        ProbCover's purity rule with ``n_classes``.
    n_classes: k of the purity rule's k-means pseudo-labels (the dataset's in a trial).
    max_delta, delta_resolution: the binary search's range and stop (reference: 1.1, 0.05).
    k_logistic, a_logistic: the competence's steepness and centre (reference: 50, 0.8).
    normalize: L2-normalise the embeddings first, as the reference code does.
    max_edges: refuse a delta_avg whose graph exceeds this many edges (ProbCover's).
    """

    name = "dcom"
    inputs = Inputs(
        space=True, probs=True, labels=True, n_classes="n_classes", n_classes_unless="initial_delta"
    )

    initial_delta: float | None = None
    n_classes: int | None = None
    max_delta: float = MAX_DELTA
    delta_resolution: float = DELTA_RESOLUTION
    k_logistic: float = K_LOGISTIC
    a_logistic: float = A_LOGISTIC
    normalize: bool = True
    max_edges: int = 200_000_000

    def __post_init__(self) -> None:
        if self.initial_delta is None and self.n_classes is None:
            raise InputError(
                self.name, "give initial_delta=<radius>, or n_classes=<k> for the purity rule"
            )
        if self.initial_delta is not None:
            check_number(self.name, "initial_delta", self.initial_delta, low=0, low_open=True)
        if self.n_classes is not None:
            check_number(self.name, "n_classes", self.n_classes, low=2, integer=True)
        check_number(self.name, "max_delta", self.max_delta, low=0, low_open=True)
        check_number(self.name, "delta_resolution", self.delta_resolution, low=0, low_open=True)
        check_number(self.name, "k_logistic", self.k_logistic, low=0, low_open=True)
        check_number(self.name, "a_logistic", self.a_logistic, low=0, high=1)
        check_flag(self.name, "normalize", self.normalize)
        check_number(self.name, "max_edges", self.max_edges, low=1, integer=True)

    def _initial(self, x: F32, rng: np.random.Generator) -> tuple[float, str]:
        if self.initial_delta is not None:
            return float(self.initial_delta), f"initial delta {self.initial_delta:g} given"
        choice = ProbCover(n_classes=self.n_classes, max_pool=None).choose_delta(x, rng)
        return choice.delta, f"initial {choice.describe()}"

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        x = prepare_features(self._require_embeddings(pool), "embeddings", self.normalize)
        labeled = np.flatnonzero(labeled_mask)
        probs = pool.class_probs()
        if labeled.shape[0] == 0:
            delta, how = self._initial(x, rng)
            coverage, weight = 0.0, 0.0
            covered = np.zeros(pool.n, dtype=bool)
            uncertainty: FloatArray = np.zeros(pool.n)
            notes = [how, f"dcom: nothing labeled, so ProbCover at delta={delta:.4g}"]
        else:
            if probs is None or pool.labels is None:
                missing = "probs" if probs is None else "labels"
                raise InputError(
                    missing,
                    f"strategy {self.name} needs probs from a model trained on the labeled "
                    "points and the labels bought",
                )
            args = (
                x,
                labeled,
                np.asarray(pool.labels)[labeled],
                np.asarray(probs).argmax(axis=1),
            )
            limits = (float(self.max_delta), float(self.delta_resolution))
            _, loose = ball_radii(*args, purity_threshold(0.0), *limits)
            threshold = purity_threshold(float(loose.mean()))
            radii, covered = ball_radii(*args, threshold, *limits)
            delta, coverage = float(radii.mean()), float(covered.mean())
            weight = competence(coverage, float(self.k_logistic), float(self.a_logistic))
            uncertainty = uncertainty_weights(probs, labeled_mask)
            notes = [
                f"dcom: radii of the {labeled.shape[0]} labeled balls at purity >= "
                f"{threshold:.3g} (0.2 c + 0.4, c = {loose.mean():.1%} covered at purity 0.4): "
                f"mean {delta:.4g}, range {radii.min():.4g}-{radii.max():.4g}; they cover "
                f"{coverage:.1%} of the pool, so the competence is {weight:.3g} "
                "(0: coverage only, 1: margin only)"
            ]
        rows = np.flatnonzero(~labeled_mask)
        # With w = 1 the density has no weight: no graph is needed (nor is one when all is
        # covered, which makes w = 1).
        columns = np.flatnonzero(~covered) if weight < 1.0 else np.zeros(0, dtype=np.int64)
        graph = candidate_graph(x, delta, rows, columns, self.max_edges, show_progress)
        chosen, gains, scores = dcom_greedy(
            graph, rows, columns, labeled_mask, uncertainty, weight, budget, rng, show_progress
        )
        details = tuple(
            {"reason": self.name, "newly_covered": int(g), "score": float(s)}
            for g, s in zip(gains, scores, strict=True)
        )
        metrics = {
            "delta": delta,
            "coverage_before": coverage,
            "competence": weight,
            "edges": float(graph.nnz),
        }
        return Selection(chosen, details, tuple(notes), metrics)
