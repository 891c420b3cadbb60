"""ProbCover (Yehuda, Dekel, Hacohen and Weinshall 2022): greedy max coverage with delta-balls.

The graph has an edge x -> y iff ||x - y|| < delta, over every pool point, labeled ones included.
It is held sparse (CSR), so memory grows with the number of edges, never n x n, and is built in
batches that include the last partial one (the reference code drops it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np
from scipy import sparse

from alsys.errors import InputError
from alsys.strategies.base import (
    BoolArray,
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


def purity_delta(
    features: F32,
    pseudo_labels: IntArray,
    purity: float = 0.95,
    sample: IntArray | None = None,
) -> float:
    """The largest delta for which at least ``purity`` of the balls are pure.

    A ball B(x, delta) is pure when every point within delta of x shares x's pseudo-label, i.e.
    when delta <= r(x), the distance from x to the nearest point of another pseudo-label. The
    largest admissible delta is therefore an order statistic of r, computed exactly rather than
    on the paper's grid of deltas.

    Args:
        features: (n, d) float32.
        pseudo_labels: (n,) e.g. k-means with k = #classes; needs two labels or more.
        purity: the fraction alpha of pure balls; 0.95 in the paper.
        sample: the ball centres to evaluate (indices); ``None`` evaluates every point.
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
    ordered = np.sort(radius)
    n_pure = math.ceil(purity * ordered.shape[0] - 1e-9)
    return float(ordered[ordered.shape[0] - n_pure])


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
    covered = np.zeros(n, dtype=bool)
    covered[_gather(out_ptr, out_idx, np.flatnonzero(labeled_mask))] = True
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

    def choose_delta(self, x: F32, rng: np.random.Generator) -> float:
        if self.delta is not None:
            return float(self.delta)
        assert self.n_classes is not None
        if self.n_classes > x.shape[0]:
            raise InputError(f"{self.name}.n_classes", f"exceeds the pool size {x.shape[0]}")
        pseudo = kmeans(x, int(self.n_classes), rng).assignment
        sample = None
        if self.purity_sample is not None and self.purity_sample < x.shape[0]:
            sample = np.sort(rng.choice(x.shape[0], int(self.purity_sample), replace=False))
        return purity_delta(x, pseudo, self.purity, sample)

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        x = prepare_features(self._require_embeddings(pool), "embeddings", self.normalize)
        delta = self.choose_delta(x, rng)
        graph = coverage_graph(x, delta, self.max_edges, show_progress)
        chosen, gains = probcover_greedy(graph, labeled_mask, budget, rng, show_progress)
        details = tuple(
            {"reason": "probcover" if g else "all covered: random", "newly_covered": int(g)}
            for g in gains
        )
        return Selection(chosen, details, (f"delta={delta:.6g}, edges={graph.nnz}",))
