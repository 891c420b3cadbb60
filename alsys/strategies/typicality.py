"""Typicality (eq. 2.11) of a cluster's candidates, and their neighbour lists kept over a round.

Typicality(x) = 1 / (mean distance to its K nearest fellow candidates + 1e-5). Within a round a
cluster's candidates change only by the points picked from it (a point chosen earlier in the
round counts as labeled; the reference recomputes the kNN without them). So
:class:`CandidateNeighbours` searches each candidate's neighbours once, SPARE_NEIGHBOURS more
than K, and a later visit drops the picked points from those lists; only a row left with fewer
than K + 1 is searched again. The typicality is the one a new search would give.

An exact search of a cluster of m candidates costs m (m + 1) / 2 distances. ``knn="auto"`` (the
default) searches every cluster of a round exactly while those add up to at most EXACT_WORK
(every round of a CIFAR-sized pool); past that, the largest clusters are searched
among each candidate's region of a balanced partition of the cluster instead
(:func:`~alsys.strategies.neighbours.partitioned_knn`, m x PROBE_POINTS distances, linear in m),
until the exact rest fits, so a round's kNN work stays about
max(EXACT_WORK, n x PROBE_POINTS) whatever the clusters look like. The selection's notes say
when that happened. ``knn="exact"`` keeps the exact search at every size;
``knn="partitioned"`` searches every cluster of more than 2 x PROBE_POINTS candidates by
region, whatever the round's size (the fast choice for a selection on tens of thousands).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from alsys.errors import InputError
from alsys.strategies.base import FloatArray, IntArray, check_choice
from alsys.strategies.neighbours import knn_among, partitioned_knn, self_knn

F32 = npt.NDArray[np.float32]

# Added to the mean kNN distance before inverting (reference code).
TYPICALITY_EPS = 1e-5
DISTANCES = ("sqeuclidean", "euclidean")
KNN_MODES = ("auto", "exact", "partitioned")
# Neighbours kept beyond K + 1 when a cluster may be visited again, so that its later visits of
# the round rarely search again.
SPARE_NEIGHBOURS = 8
# knn="auto": distances the exact searches of one round may compute (m (m + 1) / 2 for a
# cluster of m candidates), and the candidates each point of a larger cluster is compared with.
# Partitioning a cluster pays once m > 2 x PROBE_POINTS (m^2 / 2 against m x PROBE_POINTS).
# 2^28 distances of 512 dimensions take about 5 s on a quiet 2-core machine (10 clusters of
# 50k x 512, 1.5e8 distances: 2.9 s): the selection's target. At 2^29 a Zipf-shaped pool's
# cluster of 23,879 points (2.9e8 distances) stayed exact and took 11 s.
EXACT_WORK = 2**28
PROBE_POINTS = 1024


def typicality(features: FloatArray, k_neighbors: int, distance: str = "sqeuclidean") -> FloatArray:
    """Typicality(x) = 1 / (mean distance to its K nearest neighbours + 1e-5) (eq. 2.11).

    The neighbours are taken among ``features`` themselves, the point excluded; exact.

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
    # Column 0 is the point itself (distance 0), as in the reference's k+1 search.
    return _from_distances(self_knn(x, k_neighbors + 1, with_indices=False)[0][:, 1:], distance)


def _from_distances(neighbours: F32, distance: str) -> FloatArray:
    """Typicality from each row's K nearest squared distances (the point itself left out)."""
    values = neighbours.astype(np.float64)
    if distance == "euclidean":
        values = np.sqrt(values)
    return 1.0 / (values.mean(axis=1) + TYPICALITY_EPS)  # type: ignore[no-any-return]


@dataclass
class CandidateNeighbours:
    """A cluster's first-visit candidates and each one's nearest among them, nearest first.

    Attributes:
        rows: (m0,) the candidates' pool rows, ascending.
        distances: (m0, q) squared distances; q = K + 1 + spare (at most m0).
        nearest: (m0, q) int32 positions in ``rows`` (m0 marks an empty slot), or ``None`` when
            the lists serve one visit only (an exact search then keeps the distances alone).
        pairs: distances computed for the lists, their searches again included.
    """

    rows: IntArray
    distances: F32
    nearest: npt.NDArray[np.int32] | None
    pairs: int
    alive: npt.NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        # One slot past the end stands for "no neighbour" and is never alive.
        self.alive = np.zeros(self.rows.shape[0] + 1, dtype=bool)

    @classmethod
    def search(
        cls, x_typ: F32, rows: IntArray, k: int, partition: bool, spare: int | None
    ) -> CandidateNeighbours:
        """The lists of ``rows`` (ascending pool rows) for up to ``k`` neighbours a visit, with
        ``spare`` more for later visits (``None``: one visit only); by region if ``partition``,
        else exactly."""
        m = rows.shape[0]
        q = min(k + 1 + (spare or 0), m)
        x = np.ascontiguousarray(x_typ[rows], dtype=np.float32)
        if partition:
            distances, nearest, pairs = partitioned_knn(x, q, PROBE_POINTS)
            return cls(rows, distances, nearest, pairs)
        distances, found = self_knn(x, q, with_indices=spare is not None)
        positions = None if found is None else found.astype(np.int32)
        return cls(rows, distances, positions, exact_work(m))

    def typicality(self, x_typ: F32, candidates: IntArray, k: int, distance: str) -> FloatArray:
        """(m,) typicality of ``candidates`` (a subset of ``rows``, ascending) among themselves,
        from the kept lists; rows left with fewer than ``k`` + 1 live entries are searched anew
        (exactly, among the candidates) and their lists replaced."""
        if self.nearest is None:  # one visit: the candidates are the rows, every entry alive
            if candidates.shape != self.rows.shape:
                raise ValueError("lists kept for one visit serve that visit only")
            return _from_distances(self.distances[:, 1 : k + 1], distance)
        where = np.searchsorted(self.rows, candidates)
        if not np.array_equal(self.rows[np.minimum(where, self.rows.shape[0] - 1)], candidates):
            raise ValueError("candidates must be among the cluster's first-visit rows")
        self.alive[:] = False
        self.alive[where] = True
        live = self.alive[self.nearest[where]]  # (m, q)
        short = np.flatnonzero(live.sum(axis=1) < k + 1)
        if short.shape[0]:
            self._search_again(x_typ, candidates, where, short)
            live = self.alive[self.nearest[where]]
        # The first k + 1 live entries of each list, in order; the first is the point itself.
        slots = np.argsort(~live, axis=1, kind="stable")[:, 1 : k + 1]
        chosen = np.take_along_axis(self.distances[where], slots, axis=1)
        return _from_distances(chosen, distance)

    def _search_again(
        self, x_typ: F32, candidates: IntArray, where: IntArray, short: IntArray
    ) -> None:
        assert self.nearest is not None
        x = np.ascontiguousarray(x_typ[candidates], dtype=np.float32)
        q = self.nearest.shape[1]
        distances, found = knn_among(x[short], x, q)
        self.pairs += short.shape[0] * candidates.shape[0]
        width = found.shape[1]
        self.distances[where[short], :width] = distances
        self.distances[where[short], width:] = np.inf
        self.nearest[where[short], :width] = where[found]
        self.nearest[where[short], width:] = self.rows.shape[0]


def partition_plan(sizes: dict[int, int], knn: str) -> set[int]:
    """The clusters (of ``sizes``: candidates at each cluster's first visit this round) that
    ``knn`` searches by region: none for "exact"; for "auto", the largest ones, while the exact
    searches of all would compute more than EXACT_WORK distances and partitioning still pays;
    for "partitioned", every one where it pays (more than 2 x PROBE_POINTS candidates)."""
    check_choice("typicality", "knn", knn, KNN_MODES)
    partitioned: set[int] = set()
    if knn == "exact":
        return partitioned
    work = sum(exact_work(m) for m in sizes.values())
    for cluster, m in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        if m <= 2 * PROBE_POINTS or (knn == "auto" and work <= EXACT_WORK):
            break
        partitioned.add(cluster)
        work -= exact_work(m)
    return partitioned


def exact_work(m: int) -> int:
    """Distances an exact search of m candidates computes: the Gram matrix's distinct entries."""
    return m * (m + 1) // 2


@dataclass
class RoundNeighbours:
    """The neighbour lists of a round's clusters, and what their searches cost.

    Attributes:
        partition: the clusters searched by region (:func:`partition_plan`).
        keep: keep a cluster's lists after its visit (set when a cluster may be visited again
            this round; otherwise each list is dropped once used, so memory stays one cluster's).
        pairs: distances computed by every search of the round (the kNN's work).
        largest: the most candidates one search covered.
    """

    partition: set[int] = field(default_factory=set)
    keep: bool = False
    lists: dict[int, CandidateNeighbours] = field(default_factory=dict)
    pairs: int = 0
    largest: int = 0

    def typicality(
        self, cluster: int, x_typ: F32, candidates: IntArray, k: int, distance: str
    ) -> FloatArray:
        """(m,) typicality of ``candidates`` of ``cluster`` with K = ``k``, from its lists."""
        lists = self.lists.get(cluster)
        before = 0
        if lists is None:
            spare = SPARE_NEIGHBOURS if self.keep else None
            lists = CandidateNeighbours.search(
                x_typ, candidates, k, cluster in self.partition, spare
            )
            self.largest = max(self.largest, candidates.shape[0])
            if self.keep:
                self.lists[cluster] = lists
        else:
            before = lists.pairs
        typ = lists.typicality(x_typ, candidates, k, distance)
        self.pairs += lists.pairs - before
        return typ

    def describe(self) -> str | None:
        """One line for the selection's notes where a search was not exact, else ``None``."""
        if not self.partition:
            return None
        return (
            f"typicality: kNN among the {PROBE_POINTS} points of each candidate's region of a "
            f"balanced partition in {len(self.partition)} clusters of more than "
            f"{2 * PROBE_POINTS} candidates, exact in the others; knn=exact searches them all "
            "exactly"
        )
