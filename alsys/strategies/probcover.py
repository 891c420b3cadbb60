"""ProbCover (Yehuda, Dekel, Hacohen and Weinshall 2022): greedy max coverage with delta-balls.

The graph has an edge x -> y iff ||x - y|| < delta, over every pool point, labeled ones included.
It is held sparse (CSR), so memory grows with the number of edges, never n x n, and is built in
batches that include the last partial one (the reference code drops it).

Every selection reports its delta, how it was chosen, the ball sizes and the coverage before and
after its picks, and warns (:class:`DegenerateDeltaWarning`) when the balls are nearly empty: then
the greedy cover is a near-arbitrary choice of points, however good the rule that chose delta.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt
from scipy import sparse

from alsys.errors import InputError
from alsys.strategies.base import (
    BoolArray,
    Inputs,
    IntArray,
    Pool,
    Selection,
    Strategy,
    argmax_tiebreak,
    check_number,
    prepare_features,
    progress,
)
from alsys.strategies.clustering import F32, kmeans, knn_sqdist

# Query rows per faiss range search while building the graph.
GRAPH_BATCH = 2048
# Below this mean number of other points per ball, a ball is about one point and coverage is
# no better than picking points at random (digits' SimCLR embedding, purity rule: 0.9).
DEGENERATE_BALL_MEAN = 2.0
# The degenerate warning suggests the radius at which the median ball holds this many other
# points: well clear of the degenerate range, and still local on a pool of a thousand points.
SUGGESTED_BALL = 10
# Ball centres (evenly spaced rows, no randomness) behind that suggestion.
SUGGESTION_CENTRES = 10_000


class DegenerateDeltaWarning(UserWarning):
    """ProbCover's delta leaves fewer than ``DEGENERATE_BALL_MEAN`` other points in a ball on
    average, so its coverage is not informative."""


def coverage_graph(
    features: F32, delta: float, max_edges: int | None = None, show_progress: bool = False
) -> sparse.csr_matrix:
    """The delta-ball graph as a sparse (n, n) boolean matrix: [x, y] iff ||x - y|| < delta.

    Self-loops are included (every point covers itself). Raises if the graph would hold more
    than ``max_edges`` edges.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    n, d = x.shape
    index = faiss.IndexFlatL2(d)
    index.add(x)
    radius = float(delta) ** 2  # faiss compares squared L2, strictly: dist < radius
    indptr = [np.zeros(1, dtype=np.int64)]
    columns: list[IntArray] = []
    n_edges = 0
    starts = range(0, n, GRAPH_BATCH)
    for start in progress(starts, total=len(starts), desc="probcover graph", enabled=show_progress):
        lims, _, neighbours = index.range_search(x[start : start + GRAPH_BATCH], radius)
        indptr.append(lims[1:].astype(np.int64) + n_edges)
        columns.append(neighbours.astype(np.int32))
        n_edges += int(lims[-1])
        if max_edges is not None and n_edges > max_edges:
            raise InputError(
                "probcover.delta",
                f"delta={delta:g} links more than {max_edges} pairs; choose a smaller delta",
            )
    indices = np.concatenate(columns) if columns else np.zeros(0, dtype=np.int32)
    data = np.ones(indices.shape[0], dtype=bool)
    graph = sparse.csr_matrix((data, indices, np.concatenate(indptr)), shape=(n, n))
    graph.sort_indices()
    return graph


def purity_radii(
    features: F32, pseudo_labels: IntArray, sample: IntArray | None = None
) -> npt.NDArray[np.float64]:
    """r(x): the distance from each ball centre x to the nearest point of another pseudo-label.

    B(x, delta) (points at distance < delta) is pure iff delta <= r(x).

    Args:
        features: (n, d) float32.
        pseudo_labels: (n,) e.g. k-means with k = #classes; needs two labels or more.
        sample: the ball centres (indices); ``None`` takes every point.

    Returns:
        (centres,) float64.
    """
    labels = np.asarray(pseudo_labels)
    if np.unique(labels).shape[0] < 2:
        raise InputError("pseudo_labels", "the purity rule needs at least two pseudo-labels")
    centres = np.arange(labels.shape[0]) if sample is None else np.asarray(sample)
    radius = np.empty(centres.shape[0])
    for label in np.unique(labels[centres]):
        here = labels[centres] == label
        others = np.ascontiguousarray(features[labels != label])
        sq, _ = knn_sqdist(np.ascontiguousarray(features[centres[here]]), others, 1)
        radius[here] = np.sqrt(sq[:, 0])
    return radius


def purity_delta(
    features: F32,
    pseudo_labels: IntArray,
    purity: float = 0.95,
    sample: IntArray | None = None,
) -> float:
    """The largest delta for which at least ``purity`` of the balls are pure.

    A ball is pure for delta <= r(x) (:func:`purity_radii`), so the fraction of pure balls is
    the fraction of r >= delta, and the largest admissible delta is an order statistic of r,
    computed exactly rather than on the paper's grid of deltas.

    Args:
        features: (n, d) float32.
        pseudo_labels: (n,) e.g. k-means with k = #classes; needs two labels or more.
        purity: the fraction alpha of pure balls; 0.95 in the paper.
        sample: the ball centres to evaluate (indices); ``None`` evaluates every point.
    """
    return delta_from_radii(purity_radii(features, pseudo_labels, sample), purity)


def delta_from_radii(radii: npt.NDArray[np.float64], purity: float) -> float:
    """The largest delta with at least ``purity`` of the r(x) >= delta (pure balls)."""
    ordered = np.sort(radii)
    n_pure = math.ceil(purity * ordered.shape[0] - 1e-9)
    return float(ordered[ordered.shape[0] - n_pure])


def ball_sizes(graph: sparse.csr_matrix) -> IntArray:
    """(n,) the number of OTHER points within delta of each point (its self-loop not counted)."""
    self_loops = graph.diagonal().astype(np.int64)
    return np.diff(graph.indptr).astype(np.int64) - self_loops  # type: ignore[no-any-return]


def covered_by(graph: sparse.csr_matrix, sources: BoolArray) -> BoolArray:
    """(n,) the points with an edge from a source (a source covers itself)."""
    covered = np.zeros(graph.shape[0], dtype=bool)
    covered[_gather(graph.indptr.astype(np.int64), graph.indices, np.flatnonzero(sources))] = True
    return covered


def radius_for_ball(features: F32, size: int, max_centres: int = SUGGESTION_CENTRES) -> float:
    """The median, over evenly spaced centres, of the distance to the ``size``-th nearest other
    point: about the delta at which a ball holds ``size`` other points."""
    n = features.shape[0]
    size = min(size, n - 1)
    centres = np.unique(np.linspace(0, n - 1, min(n, max_centres)).astype(np.int64))
    queries = np.ascontiguousarray(features[centres])
    sq, _ = knn_sqdist(queries, np.ascontiguousarray(features), size + 1)  # itself first
    return float(np.median(np.sqrt(sq[:, size])))


def _gather(indptr: IntArray, indices: IntArray, rows: IntArray) -> IntArray:
    """The concatenated entries of the given rows of a CSR structure."""
    starts, ends = indptr[rows], indptr[rows + 1]
    lengths = ends - starts
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return indices[offsets + np.arange(lengths.sum())]  # type: ignore[no-any-return]


def probcover_greedy(
    graph: sparse.csr_matrix,
    labeled_mask: BoolArray,
    budget: int,
    rng: np.random.Generator,
    show_progress: bool = False,
) -> tuple[IntArray, IntArray]:
    """Greedy max coverage: take the point with most edges into uncovered points, repeat.

    Points with an edge from a labeled point start covered. Once everything is covered, the
    rest of the budget is drawn at random with ``rng`` (the reference code picks index 0).

    Returns:
        (chosen (budget,), number of points each newly covered; 0 marks a random pick).
    """
    n = graph.shape[0]
    out_ptr, out_idx = graph.indptr.astype(np.int64), graph.indices
    inbound = graph.tocsc()
    in_ptr, in_idx = inbound.indptr.astype(np.int64), inbound.indices
    covered = covered_by(graph, labeled_mask)
    degree = np.asarray(graph.astype(np.int64) @ (~covered).astype(np.int64)).ravel()
    eligible = ~labeled_mask
    chosen = np.empty(budget, dtype=np.int64)
    gains = np.empty(budget, dtype=np.int64)
    for step in progress(range(budget), total=budget, desc="probcover", enabled=show_progress):
        scores = np.where(eligible, degree, -1)
        if scores.max() <= 0:
            current = int(rng.choice(np.flatnonzero(eligible)))
        else:
            current = argmax_tiebreak(scores, rng)
        neighbours = out_idx[out_ptr[current] : out_ptr[current + 1]]
        newly = neighbours[~covered[neighbours]]
        covered[newly] = True
        # Edges into newly covered points are removed: their sources lose one degree each.
        degree -= np.bincount(_gather(in_ptr, in_idx, newly), minlength=n)
        eligible[current] = False
        chosen[step] = current
        gains[step] = newly.shape[0]
    return chosen, gains


@dataclass(frozen=True)
class DeltaChoice:
    """How a selection's delta came about.

    Attributes:
        delta: the radius.
        rule: "given" (fixed by the caller) or "purity" (the purity rule).
        n_classes: k of the rule's k-means pseudo-labels.
        purity: the rule's alpha, the fraction of pure balls asked for.
        pure_fraction: the fraction of the evaluated balls pure at ``delta`` (>= ``purity``).
        n_centres: how many balls the rule evaluated.
    """

    delta: float
    rule: str
    n_classes: int | None = None
    purity: float | None = None
    pure_fraction: float | None = None
    n_centres: int | None = None

    def describe(self) -> str:
        """E.g. "delta=0.5 given explicitly"."""
        if self.rule == "given":
            return f"delta={self.delta:.6g} given explicitly"
        return (
            f"delta={self.delta:.6g} from the purity rule: k-means with k={self.n_classes} "
            f"pseudo-labels, the largest delta at which at least alpha={self.purity:g} of "
            f"{self.n_centres} balls are pure ({self.pure_fraction:.1%} are)"
        )


def degenerate_message(choice: DeltaChoice, ball_mean: float, features: F32) -> str:
    """The one line a degenerate delta warns with: the figures, and what to do instead."""
    why = (
        "the embedding does not cluster by class at this radius"
        if choice.rule == "purity"
        else "the given delta is small for this embedding"
    )
    size = min(SUGGESTED_BALL, features.shape[0] - 1)
    suggestion = (
        f" (about {radius_for_ball(features, size):.3g} puts ~{size} other points in the median "
        "ball)"
        if size > 0
        else ""
    )
    return (
        f"ProbCover: delta={choice.delta:.3g} gives balls of {ball_mean:.3g} other points on "
        f"average (degenerate, < {DEGENERATE_BALL_MEAN:g}); {why}, so the cover is close to "
        f"arbitrary. Pass delta explicitly{suggestion}, select in another space (e.g. pixels or "
        "pca:<D>), or choose another strategy"
    )


@dataclass(frozen=True)
class ProbCover(Strategy):
    """Attributes:
    delta: fixed ball radius (Euclidean, on normalised embeddings). ``None`` applies the purity
        rule, which needs ``n_classes``.
    n_classes: k of the k-means pseudo-labels for the purity rule (#classes in the paper).
    purity: alpha of the purity rule; 0.95 in the paper.
    purity_sample: ball centres evaluated by the rule, drawn with the rng; ``None`` = all.
        10,000 keeps the rule at O(10^4 n d) on large pools.
    normalize: L2-normalise the embeddings first, as the reference code does.
    max_edges: refuse a delta whose graph exceeds this many edges (about 5 bytes each).
    """

    name = "probcover"
    needs = "embeddings"
    inputs = Inputs(space=True, n_classes="n_classes", n_classes_unless="delta")

    delta: float | None = None
    n_classes: int | None = None
    purity: float = 0.95
    purity_sample: int | None = 10_000
    normalize: bool = True
    max_edges: int = 200_000_000

    def __post_init__(self) -> None:
        if self.delta is None and self.n_classes is None:
            raise InputError(
                self.name,
                "give delta=<radius> for a fixed radius, or n_classes=<k> for the purity rule",
            )
        if self.delta is not None:
            check_number(self.name, "delta", self.delta, low=0, low_open=True)
        if self.n_classes is not None:
            check_number(self.name, "n_classes", self.n_classes, low=2, integer=True)
        check_number(self.name, "purity", self.purity, low=0, high=1, low_open=True)
        if self.purity_sample is not None:
            check_number(self.name, "purity_sample", self.purity_sample, low=1, integer=True)
        check_number(self.name, "max_edges", self.max_edges, low=1, integer=True)
        if not isinstance(self.normalize, bool):
            raise InputError(f"{self.name}.normalize", f"must be true or false: {self.normalize}")

    def choose_delta(self, x: F32, rng: np.random.Generator) -> DeltaChoice:
        if self.delta is not None:
            return DeltaChoice(float(self.delta), "given")
        assert self.n_classes is not None
        if self.n_classes > x.shape[0]:
            raise InputError(f"{self.name}.n_classes", f"exceeds the pool size {x.shape[0]}")
        pseudo = kmeans(x, int(self.n_classes), rng).assignment
        sample = None
        if self.purity_sample is not None and self.purity_sample < x.shape[0]:
            sample = np.sort(rng.choice(x.shape[0], int(self.purity_sample), replace=False))
        radii = purity_radii(x, pseudo, sample)
        delta = delta_from_radii(radii, self.purity)  # purity_delta, keeping the radii
        return DeltaChoice(
            delta,
            "purity",
            n_classes=int(self.n_classes),
            purity=self.purity,
            pure_fraction=float(np.mean(radii >= delta)),
            n_centres=int(radii.shape[0]),
        )

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        x = prepare_features(self._require_embeddings(pool), "embeddings", self.normalize)
        choice = self.choose_delta(x, rng)
        delta = choice.delta
        graph = coverage_graph(x, delta, self.max_edges, show_progress)
        chosen, gains = probcover_greedy(graph, labeled_mask, budget, rng, show_progress)
        details = tuple(
            {"reason": "probcover" if g else "all covered: random", "newly_covered": int(g)}
            for g in gains
        )
        n = x.shape[0]
        balls = ball_sizes(graph)
        picked = labeled_mask.copy()
        picked[chosen] = True
        metrics = {
            "delta": delta,
            "ball_mean": float(balls.mean()),
            "ball_median": float(np.median(balls)),
            "coverage_before": float(covered_by(graph, labeled_mask).mean()),
            "coverage_after": float(covered_by(graph, picked).mean()),
        }
        if choice.pure_fraction is not None:
            metrics["delta_purity"] = choice.pure_fraction
        notes = [
            f"{choice.describe()}; {graph.nnz} edges",
            f"balls hold {metrics['ball_mean']:.3g} other points on average "
            f"(median {metrics['ball_median']:.3g}) over the {n} pool points; the labeled set "
            f"({int(labeled_mask.sum())} points) covered {metrics['coverage_before']:.1%} of the "
            f"pool before this round's {budget} picks, {metrics['coverage_after']:.1%} after",
        ]
        if metrics["ball_mean"] < DEGENERATE_BALL_MEAN:
            # The warning's suggestion reads the features again; only a degenerate delta pays.
            message = degenerate_message(choice, metrics["ball_mean"], x)
            warnings.warn(message, DegenerateDeltaWarning, stacklevel=3)  # select()'s caller
            notes.append(message)
        return Selection(chosen, details, tuple(notes), metrics)
