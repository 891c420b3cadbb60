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
    check_flag,
    check_number,
    prepare_features,
    progress,
)
from alsys.strategies.clustering import F32, kmeans, knn_sqdist

# Pools above this are refused by default (ProbCover.max_pool): the graph's range search is
# n^2 d, ~10 s at 50k x 512 on 2 cores, so ~4 min at 250k and hours at 1.28M.
MAX_POOL = 250_000
# Rows per block of the graph's range search (see coverage_graph), at most this many ...
GRAPH_BATCH = 2048
# ... and at most this many float32 entries in a block of distances (32 MiB), whatever n is.
GRAPH_BLOCK_ELEMENTS = 2**23
# Query-point distances per block in purity_radii (float32 entries: 32 MiB).
PURITY_BLOCK_ELEMENTS = 2**23
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

    An exact range search in numpy: squared distances ||x||^2 + ||y||^2 - 2 x.y in float32 (as
    faiss's flat index computes them), a block of rows at a time against the rows from there
    on, so each pair is computed once and both its edges come from it (half the flops of a
    search of every row against every row, and a symmetric graph). Memory: one block of at most
    GRAPH_BLOCK_ELEMENTS distances, and the edges (row and column, 4 bytes each, until the
    CSR of 5 bytes an edge is built).
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    radius = float(delta) ** 2  # compared strictly, as faiss does: dist < radius
    sources: list[npt.NDArray[np.int32]] = []
    targets: list[npt.NDArray[np.int32]] = []
    n_edges = n  # the self-loops
    rows = max(1, min(GRAPH_BATCH, GRAPH_BLOCK_ELEMENTS // max(n, 1)))
    starts = range(0, n, rows)
    for start in progress(starts, total=len(starts), desc="probcover graph", enabled=show_progress):
        stop = min(start + rows, n)
        distances = x[start:stop] @ x[start:].T  # rows [start, stop) x rows [start, n)
        distances *= -2.0
        distances += sq[None, start:]
        distances += sq[start:stop, None]
        near = distances < radius
        # Within the block itself, each pair once (above the diagonal); self-loops come after.
        near[:, : stop - start] &= np.triu(np.ones((stop - start,) * 2, dtype=bool), 1)
        source, target = np.nonzero(near)
        sources.append((source + start).astype(np.int32))
        targets.append((target + start).astype(np.int32))
        n_edges += 2 * source.shape[0]
        if max_edges is not None and n_edges > max_edges:
            raise InputError(
                "probcover.delta",
                f"delta={delta:g} links more than {max_edges} pairs; choose a smaller delta",
            )
    diagonal = np.arange(n, dtype=np.int32)
    upper_rows = np.concatenate(sources) if sources else np.zeros(0, dtype=np.int32)
    upper_columns = np.concatenate(targets) if targets else np.zeros(0, dtype=np.int32)
    sources.clear()
    targets.clear()
    row = np.concatenate([upper_rows, upper_columns, diagonal])
    column = np.concatenate([upper_columns, upper_rows, diagonal])
    del upper_rows, upper_columns
    data = np.ones(row.shape[0], dtype=bool)
    graph = sparse.coo_matrix((data, (row, column)), shape=(n, n)).tocsr()
    graph.sort_indices()
    return graph


def purity_radii(
    features: F32, pseudo_labels: IntArray, sample: IntArray | None = None
) -> npt.NDArray[np.float64]:
    """r(x): the distance from each ball centre x to the nearest point of another pseudo-label.

    B(x, delta) (points at distance < delta) is pure iff delta <= r(x).

    Exact, as one blocked search: the centres, grouped by label, against every point, with the
    points of the centre's own label masked out (float32 ||x||^2 + ||y||^2 - 2 x.y, as faiss
    computes it). Each block holds at most PURITY_BLOCK_ELEMENTS distances; the pool is read
    in place, never copied per label.

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
    x = np.ascontiguousarray(features, dtype=np.float32)
    n = x.shape[0]
    centres = np.arange(n) if sample is None else np.asarray(sample)
    sq = np.einsum("ij,ij->i", x, x)
    by_label = np.argsort(labels, kind="stable")
    label_values, label_starts = np.unique(labels[by_label], return_index=True)
    label_bounds = np.append(label_starts, n)
    order = np.argsort(labels[centres], kind="stable")  # positions in centres, by label
    radius = np.empty(centres.shape[0])
    rows = max(1, PURITY_BLOCK_ELEMENTS // n)
    for start in range(0, order.shape[0], rows):
        positions = order[start : start + rows]
        queries = centres[positions]
        distances = x[queries] @ x.T
        distances *= -2.0
        distances += sq[None, :]
        query_labels = labels[queries]
        cuts = np.flatnonzero(np.diff(query_labels)) + 1
        for first, last in zip(
            np.concatenate(([0], cuts)), np.concatenate((cuts, [queries.shape[0]])), strict=True
        ):
            which = int(np.searchsorted(label_values, query_labels[first]))
            members = by_label[label_bounds[which] : label_bounds[which + 1]]
            distances[first:last, members] = np.inf
        nearest = distances.min(axis=1) + sq[queries]
        radius[positions] = np.sqrt(np.maximum(nearest, 0.0))
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
    max_pool: refuse pools larger than this (an InputError that says what to do instead):
        the graph's exact range search costs n^2 d, about 10 s at 50k x 512 on 2 cores, so
        hours at ImageNet's 1.28M. 250,000 keeps a round within about 10 minutes; ``None``
        lifts the limit.
    """

    name = "probcover"
    inputs = Inputs(space=True, n_classes="n_classes", n_classes_unless="delta")

    delta: float | None = None
    n_classes: int | None = None
    purity: float = 0.95
    purity_sample: int | None = 10_000
    normalize: bool = True
    max_edges: int = 200_000_000
    max_pool: int | None = MAX_POOL

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
        if self.max_pool is not None:
            check_number(self.name, "max_pool", self.max_pool, low=1, integer=True)
        check_flag(self.name, "normalize", self.normalize)

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
        if self.max_pool is not None and pool.n > self.max_pool:
            raise InputError(
                f"{self.name}.max_pool",
                f"a pool of {pool.n} points is above {self.max_pool}: the coverage graph costs "
                "n^2 d (hours here); select on a random subsample of the pool (keep the labeled "
                "rows), or pass max_pool=none to wait for it",
            )
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
