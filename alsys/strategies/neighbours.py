"""Nearest neighbours among one cluster's points, for typicality: exact, or by regions of a
balanced partition where an exact self-join would cost too much.

Both searches return, for each of m points, its q nearest among the same points (itself
included), nearest first: squared L2 distances (m, q) float32 and positions (m, q) int64. The
distances are float32 ||a||^2 + ||b||^2 - 2 a.b, as faiss's flat search computes them, from numpy
GEMMs; each candidate b of a row a is ranked by its closeness a.b - ||b||^2 / 2 (largest first),
exactly -1/2 of ||b||^2 - 2 a.b rounded, so the kept distances are the formula's.

On the CPU faiss is not used here: calling it (OpenMP) between numpy calls (OpenBLAS) makes the
two thread pools wait on each other, ~10 ms a switch on 2 cores (for 500 clusters of 100 points,
30x the arithmetic). On a GPU faiss searches, exactly, at every size.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from alsys.strategies.base import IntArray
from alsys.strategies.kmeans_steps import gpu_available, knn_sqdist
from alsys.strategies.parallel import imap_blocks, map_blocks

F32 = npt.NDArray[np.float32]

# Temporaries of the exact search: blocks of x @ x.T of at most this many float32 entries (4 MiB),
# but of at least KNN_MIN_ROWS rows while a block stays within KNN_MAX_BLOCK_ELEMENTS (32 MiB):
# a large cluster's blocks of a few rows each cost more in merging each row's kept lists than
# in arithmetic (a 16,384-point cluster, 512 dimensions: 64-row blocks 1.7-3.0 s, 256-row
# blocks 1.5-1.9 s, without and with the lists' columns; a 5,000-point one is unchanged).
KNN_BLOCK_ELEMENTS = 2**20
KNN_MIN_ROWS = 256
KNN_MAX_BLOCK_ELEMENTS = 2**23
# self_knn uses the Gram matrix's symmetry from this many dimensions on (see self_knn).
SYMMETRIC_MIN_DIM = 256
# top_columns: columns per group at most.
MAX_GROUP = 32
# top_values: rows of at most this many columns are partitioned whole. numpy 2.4's np.partition
# took 1.5-2.3 ns an entry on float32 rows of 64-512 columns and 4-5.5 from 513 on (2-core x86
# machine, q = 21 and 29); the groups 4-8 ns below 512 columns, 3.6-7 at 600-768 and 1.8-3 from
# 1,024 on (benchmarks/top_selection.py: "narrow" rows are self_knn's transposed blocks).
WHOLE_ROW_VALUES = 1024
# The partitioned search: leaves of a balanced partition hold at most LEAF_SIZE points, and each
# point searches the leaves of the probe_points / LEAF_SIZE centres nearest it.
LEAF_SIZE = 256
POWER_ITERATIONS = 6  # for each split's principal direction
SPLIT_SAMPLE = 1024  # points of a set that estimate its principal direction
SPLIT_BLOCK = 2048  # rows gathered at a time for the projections


def top_columns(scores: F32, q: int) -> tuple[F32, IntArray]:
    """The ``q`` largest entries of each row of ``scores`` (r, c) and their columns, unsorted.

    A wide row is not selected whole: its columns are taken in groups of g (a power of two near
    sqrt(c / q)), the q groups of largest maximum are kept (the q largest entries lie in groups
    whose maxima are at least the q-th largest; with ties, enough entries of that value do), and
    the q largest of their q g entries are selected. argpartition over whole rows of a few
    thousand columns cost 12 ns an entry here; the groups' maxima 0.6, and the two narrow
    selections about 2 more.
    """
    cols = _group_columns(scores, q)
    if cols is None:
        return _select_whole(scores, q)
    values, where = _select_whole(np.take_along_axis(scores, cols, axis=1), q)
    return values, np.take_along_axis(cols, where, axis=1)


def top_values(scores: F32, q: int) -> F32:
    """The ``q`` largest entries of each row of ``scores`` (r, c), unsorted, without their
    columns. Rows of up to WHOLE_ROW_VALUES columns are partitioned whole (np.partition);
    wider ones by the groups of :func:`top_columns`, then np.partition over the kept entries:
    about 2-3x faster than whole rows there (``benchmarks/top_selection.py``). ``scores`` may be
    overwritten."""
    width = scores.shape[1]
    if q >= width:
        return scores
    cols = None if width <= WHOLE_ROW_VALUES else _group_columns(scores, q)
    kept = scores if cols is None else np.take_along_axis(scores, cols, axis=1)
    kept.partition(kept.shape[1] - q, axis=1)
    return kept[:, kept.shape[1] - q :]


def _group_columns(scores: F32, q: int) -> IntArray | None:
    """The columns of each row's q groups of largest maximum (:func:`top_columns`), or ``None``
    where grouping does not pay (the row is then selected whole)."""
    r, c = scores.shape
    if q >= c:
        return None
    group = 1 << int(math.log2(max(1.0, math.sqrt(c / q))))
    group = min(group, MAX_GROUP)
    n_groups = c // group
    if group < 2 or n_groups <= q:
        return None
    grouped = scores[:, : n_groups * group].reshape(r, n_groups, group)
    maxima = grouped[:, :, 0].copy()
    for j in range(1, group):
        np.maximum(maxima, grouped[:, :, j], out=maxima)
    best_groups = np.argpartition(maxima, n_groups - q, axis=1)[:, n_groups - q :]
    cols = (best_groups[:, :, None] * group + np.arange(group)).reshape(r, q * group)
    if n_groups * group < c:  # the last few columns, outside every group, always compete
        tail = np.broadcast_to(np.arange(n_groups * group, c), (r, c - n_groups * group))
        cols = np.concatenate([cols, tail], axis=1)
    return cols


def _select_whole(scores: F32, q: int) -> tuple[F32, IntArray]:
    c = scores.shape[1]
    if q >= c:
        return scores.copy(), np.broadcast_to(np.arange(c), scores.shape).copy()
    cols = np.argpartition(scores, c - q, axis=1)[:, c - q :]
    return np.take_along_axis(scores, cols, axis=1), cols


Found = tuple[F32, "IntArray | None"]  # each row's kept closeness scores and their columns


def _best(scores: F32, q: int, with_columns: bool) -> Found:
    """The ``q`` largest of each row (unsorted), with their columns if asked (the values alone
    cost less to select: :func:`top_values`)."""
    if with_columns:
        return top_columns(scores, q)
    return top_values(scores, q), None


def _merge(kept: Found, new: Found, q: int) -> Found:
    """The ``q`` largest of two candidate lists per row."""
    values = np.concatenate([kept[0], new[0]], axis=1)
    if kept[1] is None or new[1] is None:
        return _best(values, q, False)
    best, where = top_columns(values, q)
    return best, np.take_along_axis(np.concatenate([kept[1], new[1]], axis=1), where, axis=1)


def _finish(found: Found, sq: F32) -> tuple[F32, IntArray | None]:
    """Squared distances ||a||^2 - 2 s from the kept closeness scores s of each row, ascending
    (clipped at 0), with their columns (if kept) in the same order."""
    closeness, cols = found
    if cols is None:
        nearest: F32 = np.sort(closeness, axis=1)[:, ::-1] * np.float32(-2.0)
    else:
        order = np.argsort(closeness, axis=1)[:, ::-1]
        nearest = np.take_along_axis(closeness, order, axis=1) * np.float32(-2.0)
        cols = np.take_along_axis(cols, order, axis=1)
    nearest += sq[:, None]
    return np.maximum(nearest, 0.0, out=nearest), cols


def self_knn(x: F32, q: int, with_indices: bool = True) -> tuple[F32, IntArray | None]:
    """The ``q`` nearest rows of ``x`` (m, d) to each row, itself included, exactly: their
    squared distances and, ``with_indices``, their positions (else ``None``).

    A small set's x @ x.T at once (numpy runs it as a symmetric rank-k update). A larger one
    in row blocks: from SYMMETRIC_MIN_DIM dimensions on, only the Gram matrix's upper block
    triangle is computed (half the flops of a search), each block serving its own rows and,
    transposed, the later rows, each row keeping its q best so far; below, the transposition
    costs more than the flops it saves (3.5 ns an entry against 2 for the GEMM at d = 128, 2
    cores), and each block of rows is searched against every row.
    """
    m = x.shape[0]
    q = min(q, m)
    if gpu_available():
        on_gpu = knn_sqdist(x, x, q)
        return on_gpu[0], on_gpu[1].astype(np.int64) if with_indices else None
    sq = np.einsum("ij,ij->i", x, x)
    half = sq * np.float32(0.5)
    if m * m <= KNN_BLOCK_ELEMENTS:
        scores = x @ x.T
        scores -= half[None, :]
        return _finish(_best(scores, q, with_indices), sq)
    if x.shape[1] < SYMMETRIC_MIN_DIM:
        among = knn_among(x, x, q, with_indices)
        return among[0], among[1] if with_indices else None
    rows = block_rows(m)
    kept: Found = (np.full((m, q), -np.inf, dtype=np.float32), None)
    if with_indices:
        kept = (kept[0], np.zeros((m, q), dtype=np.int64))
    distances = np.empty((m, q), dtype=np.float32)
    indices: IntArray | None = np.empty((m, q), dtype=np.int64) if with_indices else None

    def scored(start: int) -> tuple[int, int, Found, Found | None]:
        """A block's candidates: its rows' best among the rows from ``start`` on ("wide"), and
        the later rows' best among the block's ("narrow", None for the last block)."""
        stop = min(start + rows, m)
        gram = x[start:stop] @ x[start:].T  # (r, m - start)
        narrow = None
        if stop < m:
            # Rows >= stop against rows [start, stop): a.b - ||a||^2 / 2, a in the block,
            # written transposed in the same pass.
            later = np.empty((m - stop, stop - start), dtype=np.float32)
            np.subtract(gram[:, stop - start :], half[start:stop, None], out=later.T)
            narrow = _shift(_best(later, q, with_indices), start)
        gram -= half[None, start:]
        return start, stop, _shift(_best(gram, q, with_indices), start), narrow

    # The blocks' GEMMs and selections run in threads; their merges here, in order, so the kept
    # lists (ties included) are the same whatever the threads.
    for start, stop, wide, narrow in imap_blocks(scored, range(0, m, rows)):
        if narrow is not None:
            _store(kept, _merge(_rows(kept, stop, m), narrow, q), stop, m)
        found = _finish(_merge(_rows(kept, start, stop), wide, q), sq[start:stop])
        distances[start:stop] = found[0]
        if indices is not None and found[1] is not None:
            indices[start:stop] = found[1]
    return distances, indices


def block_rows(columns: int) -> int:
    """Rows per block of an exact search against ``columns`` points (KNN_BLOCK_ELEMENTS)."""
    least = min(KNN_MIN_ROWS, KNN_MAX_BLOCK_ELEMENTS // columns)
    return max(1, KNN_BLOCK_ELEMENTS // columns, least)


def _rows(found: Found, start: int, stop: int) -> Found:
    return found[0][start:stop], None if found[1] is None else found[1][start:stop]


def _shift(found: Found, offset: int) -> Found:
    return found[0], None if found[1] is None else found[1] + offset


def _store(into: Found, found: Found, start: int, stop: int) -> None:
    into[0][start:stop] = found[0]
    if into[1] is not None and found[1] is not None:
        into[1][start:stop] = found[1]


def knn_among(queries: F32, base: F32, q: int, with_indices: bool = True) -> tuple[F32, IntArray]:
    """The ``q`` nearest rows of ``base`` to each row of ``queries``, exactly: blocks of query
    rows against every base row (no symmetry to use). Without ``with_indices`` the positions
    returned are empty (0 columns)."""
    q = min(q, base.shape[0])
    half_base = np.einsum("ij,ij->i", base, base) * np.float32(0.5)
    sq_queries = np.einsum("ij,ij->i", queries, queries)
    rows = block_rows(base.shape[0])
    distances = np.empty((queries.shape[0], q), dtype=np.float32)
    indices = np.empty((queries.shape[0], q if with_indices else 0), dtype=np.int64)

    def search(start: int) -> None:
        stop = start + rows
        scores = queries[start:stop] @ base.T
        scores -= half_base[None, :]
        found, cols = _finish(_best(scores, q, with_indices), sq_queries[start:stop])
        distances[start:stop] = found
        if cols is not None:
            indices[start:stop] = cols

    # Blocks of query rows are independent: one per thread, each with its own GEMM.
    map_blocks(search, range(0, queries.shape[0], rows))
    return distances, indices


def balanced_leaves(x: F32, leaf_size: int) -> list[IntArray]:
    """Positions of ``x`` split into leaves of at most ``leaf_size`` (and more than half of it,
    for more than ``leaf_size`` points): each split is at the median along the set's principal
    direction, so the partition is balanced whatever the cluster looks like (one giant group,
    many small ones, none). Deterministic, and no temporary the size of the set: the direction
    comes from evenly spaced SPLIT_SAMPLE of its points, and the projections from blocks."""
    leaves: list[IntArray] = []
    pending = [np.arange(x.shape[0])]
    while pending:
        rows = pending.pop()
        if rows.shape[0] <= leaf_size:
            leaves.append(rows)
            continue
        direction = _principal_direction(x[rows[:: max(1, rows.shape[0] // SPLIT_SAMPLE)]])
        projection = np.concatenate(
            [x[rows[s : s + SPLIT_BLOCK]] @ direction for s in range(0, rows.shape[0], SPLIT_BLOCK)]
        )
        middle = rows.shape[0] // 2
        split = np.argpartition(projection, middle)
        pending += [rows[split[middle:]], rows[split[:middle]]]
    return leaves


def _principal_direction(points: F32) -> F32:
    """The principal direction (unit, (d,)) of ``points`` (a copy, centred in place), by power
    iteration from the point farthest from their mean."""
    mean = points.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = points
    centred -= mean
    direction: F32 = centred[int(np.argmax(np.einsum("ij,ij->i", centred, centred)))]
    for _ in range(POWER_ITERATIONS):
        direction = centred.T @ (centred @ direction)
        norm = float(np.linalg.norm(direction))
        if norm == 0.0:  # every point the same: any split is as good
            break
        direction /= np.float32(norm)
    return direction


def partitioned_knn(x: F32, q: int, probe_points: int) -> tuple[F32, npt.NDArray[np.int32], int]:
    """The ``q`` nearest of each row of ``x`` among the points of the leaves it probes: the
    leaves of :func:`balanced_leaves` whose centres are nearest the row (its own leaf always
    among them), probe_points / LEAF_SIZE of them, as an inverted-file index searches. Cost
    about m x probe_points x 2d, linear in m; the search is exact within the probed leaves, so
    a row's list misses a true neighbour only where that neighbour lies in a leaf it did not
    probe, and its distances are never below the true ones. The third value counts the
    distances computed.
    """
    m = x.shape[0]
    q = min(q, m)
    leaves = balanced_leaves(x, LEAF_SIZE)
    n_probe = min(len(leaves), max(1, round(probe_points / LEAF_SIZE)))
    leaf_of = np.empty(m, dtype=np.int64)
    for j, leaf in enumerate(leaves):
        leaf_of[leaf] = j
    centres = np.stack([x[leaf].mean(axis=0, dtype=np.float64) for leaf in leaves])
    probes = _nearest_leaves(x, centres.astype(np.float32), leaf_of, n_probe)  # (m, n_probe)
    sq = np.einsum("ij,ij->i", x, x)
    half = sq * np.float32(0.5)
    found = np.full((m, n_probe, q), -np.inf, dtype=np.float32)
    found_cols = np.zeros((m, n_probe, q), dtype=np.int32)
    entries = np.argsort(probes.ravel(), kind="stable")  # (row, slot) pairs grouped by leaf
    bounds = np.searchsorted(probes.ravel()[entries], np.arange(len(leaves) + 1))
    pairs = 0
    for j, leaf in enumerate(leaves):
        visitors = entries[bounds[j] : bounds[j + 1]]
        rows, slots = visitors // n_probe, visitors % n_probe
        scores = x[rows] @ x[leaf].T
        scores -= half[None, leaf]
        width = min(q, leaf.shape[0])
        values, where = top_columns(scores, width)
        found[rows, slots, :width] = values
        found_cols[rows, slots, :width] = leaf[where]
        pairs += rows.shape[0] * leaf.shape[0]
    best, where = top_columns(found.reshape(m, n_probe * q), q)
    cols = np.take_along_axis(found_cols.reshape(m, n_probe * q), where, axis=1)
    distances, order = _finish((best, cols), sq)
    assert order is not None
    return distances, order.astype(np.int32), pairs


def _nearest_leaves(x: F32, centres: F32, leaf_of: IntArray, n_probe: int) -> IntArray:
    """(m, n_probe) for each row of ``x``, its own leaf and the leaves of the n_probe - 1 other
    nearest centres (the largest 2 x.c - ||c||^2, blocks of rows)."""
    centre_sq = np.einsum("ij,ij->i", centres, centres)
    probes = np.empty((x.shape[0], n_probe), dtype=np.int64)
    rows = max(1, KNN_BLOCK_ELEMENTS // centres.shape[0])
    for start in range(0, x.shape[0], rows):
        scores = x[start : start + rows] @ centres.T
        scores *= np.float32(2.0)
        scores -= centre_sq[None, :]
        own = leaf_of[start : start + rows]
        scores[np.arange(own.shape[0]), own] = np.inf
        probes[start : start + rows] = top_columns(scores, n_probe)[1]
    return probes
