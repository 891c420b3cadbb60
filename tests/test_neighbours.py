"""The kNN engine of typicality: exact searches against brute force, the partitioned search's
fidelity, and the neighbour lists kept over a round's visits against searching anew each visit."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from alsys.strategies import Pool, make_strategy
from alsys.strategies.base import IntArray
from alsys.strategies.clustering import ClusterContext, ClusterStrategy, Pick
from alsys.strategies.neighbours import (
    balanced_leaves,
    knn_among,
    partitioned_knn,
    self_knn,
    top_columns,
    top_values,
)
from alsys.strategies.typicality import partition_plan, typicality
from tests.conftest import zipf_pool


def brute_sqdist(x: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """Every squared distance, in float64 from differences (no GEMM)."""
    base = x if base is None else base
    diff = x[:, None, :].astype(np.float64) - base[None, :, :].astype(np.float64)
    return (diff**2).sum(axis=-1)  # type: ignore[no-any-return]


def brute_typicality(x: np.ndarray, k: int) -> np.ndarray:
    """Eq. 2.11 with squared distances, from every distance: the k nearest others' mean."""
    nearest = np.sort(brute_sqdist(x), axis=1)[:, 1 : k + 1]
    return 1.0 / (nearest.mean(axis=1) + 1e-5)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("rows", "cols", "q"), [(40, 3000, 29), (7, 100, 21), (30, 500, 5), (10, 64, 64), (3, 9, 2)]
)
def test_top_columns_finds_each_rows_largest_entries(rows: int, cols: int, q: int) -> None:
    scores = _rows_to_select(rows, cols)
    values, where = top_columns(scores.copy(), q)
    expected = np.sort(scores, axis=1)[:, ::-1][:, :q]
    np.testing.assert_array_equal(np.sort(values, axis=1)[:, ::-1], expected)
    np.testing.assert_array_equal(np.take_along_axis(scores, where, axis=1), values)
    assert all(len(set(row.tolist())) == min(q, cols) for row in where)  # distinct columns


@pytest.mark.parametrize(
    ("rows", "cols", "q"),
    # Wider than WHOLE_ROW_VALUES (by column groups: a few columns outside every group too),
    # then as wide (np.partition over whole rows), narrower, and q = every column.
    [
        (40, 3000, 29),
        (7, 2051, 21),
        (30, 5000, 5),
        (6, 1500, 64),
        (5, 1024, 21),
        (7, 100, 21),
        (10, 64, 64),
        (3, 9, 2),
    ],
)
def test_top_values_are_each_rows_largest_entries(rows: int, cols: int, q: int) -> None:
    scores = _rows_to_select(rows, cols)
    expected = np.sort(scores, axis=1)[:, ::-1][:, :q]
    values = top_values(scores.copy(), q)
    np.testing.assert_array_equal(np.sort(values, axis=1)[:, ::-1], expected)


def _rows_to_select(rows: int, cols: int) -> np.ndarray:
    rng = np.random.default_rng(rows + cols)
    scores = rng.standard_normal((rows, cols)).astype(np.float32)
    scores[:, ::8] += 0.5  # some groups hold far more of a row's best entries than others
    scores[0, :] = 1.0  # a row of ties
    scores[1, cols // 2 :] = scores[1, : cols - cols // 2]  # every value twice (duplicate points)
    scores[2, -3:] += 5.0  # a row's largest entries in its last columns (outside every group)
    return scores


@pytest.mark.parametrize("m", [200, 1500])  # one GEMM, and row blocks with transposed parts
@pytest.mark.parametrize("with_indices", [True, False])
def test_self_knn_is_exact(m: int, with_indices: bool) -> None:
    rng = np.random.default_rng(m)
    x = rng.standard_normal((m, 24)).astype(np.float32)
    x[5] = x[6]  # a duplicate: two points at distance 0
    distances, indices = self_knn(x, 21, with_indices)
    full = brute_sqdist(x)
    np.testing.assert_allclose(distances, np.sort(full, axis=1)[:, :21], atol=2e-4)
    if with_indices:
        assert indices is not None
        np.testing.assert_allclose(np.take_along_axis(full, indices, axis=1), distances, atol=2e-4)
    else:
        assert indices is None


def test_knn_among_is_exact() -> None:
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((70, 16)).astype(np.float32)
    base = rng.standard_normal((900, 16)).astype(np.float32)
    distances, indices = knn_among(queries, base, 12)
    full = brute_sqdist(queries, base)
    np.testing.assert_allclose(distances, np.sort(full, axis=1)[:, :12], atol=2e-4)
    np.testing.assert_allclose(np.take_along_axis(full, indices, axis=1), distances, atol=2e-4)


def test_balanced_leaves_cover_every_point_once_in_bounded_leaves() -> None:
    rng = np.random.default_rng(0)
    # One giant group and many small ones: the lopsided shape a k-means cluster can take.
    x = np.concatenate(
        [rng.normal(size=(3000, 8)) * 0.1, rng.normal(size=(900, 8)) * 0.1 + 5]
    ).astype(np.float32)
    leaves = balanced_leaves(x, 256)
    together = np.sort(np.concatenate(leaves))
    np.testing.assert_array_equal(together, np.arange(x.shape[0]))
    sizes = [leaf.shape[0] for leaf in leaves]
    assert max(sizes) <= 256 and min(sizes) > 128


def test_partitioned_knn_finds_most_true_neighbours_on_grouped_data() -> None:
    """Within a cluster made of several groups (as k-means leaves with fewer clusters than
    groups), the leaves nearest a point hold nearly all of its true neighbours."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(12, 32))
    ids = rng.integers(0, 12, 6000)
    x = (centres[ids] + rng.normal(size=(6000, 32)) * 0.3).astype(np.float32)
    distances, indices, pairs = partitioned_knn(x, 21, 1024)
    exact_distances, exact_indices = self_knn(x, 21)
    assert exact_indices is not None
    recall = np.mean(
        [len(set(a) & set(b)) / 21 for a, b in zip(indices, exact_indices, strict=True)]
    )
    assert recall > 0.99, recall
    # Never nearer than the truth; the mean kNN distance (typicality's) within a percent.
    assert np.all(distances[:, -1] >= exact_distances[:, -1] - 1e-4)
    ratio = distances[:, 1:].mean(axis=1) / exact_distances[:, 1:].mean(axis=1)
    assert np.median(ratio) < 1.0001 and ratio.max() < 1.01
    assert 6000 * 1024 / 2 <= pairs <= 6000 * 1024  # linear in m, not 6000^2


def test_partition_plan_keeps_affordable_rounds_exact() -> None:
    # A CIFAR-sized cold start (10 clusters of 5,000) is exact; an ImageNet-sized one is not.
    assert partition_plan(dict.fromkeys(range(10), 5000), "auto") == set()
    plan = partition_plan(dict.fromkeys(range(500), 2560), "auto")
    assert len(plan) == 500 - 2**28 // (2560 * 2561 // 2)  # the exact rest: 2^28 distances
    assert partition_plan(dict.fromkeys(range(500), 2560), "exact") == set()
    # "partitioned": every cluster where a partition pays, whatever the round's size.
    assert partition_plan({0: 5000, 1: 5000, 2: 2000}, "partitioned") == {0, 1}
    # The largest go first, and clusters too small for a partition to pay never do.
    lopsided = {0: 60_000, 1: 1500, **{c: 800 for c in range(2, 400)}}
    assert partition_plan(lopsided, "auto") == {0}


@dataclass(frozen=True)
class EveryVisitAnew(ClusterStrategy):
    """A test strategy: TypiClust (or SUPClust) whose every visit searches its neighbours anew
    and computes SUP anew, as the reference code does, instead of reusing the round's lists."""

    name = "every_visit_anew"
    of: str = "typiclust"

    def pick(
        self, cluster: int, candidates: IntArray, ctx: ClusterContext, rng: np.random.Generator
    ) -> Pick:
        ctx.neighbours.lists.clear()
        ctx.derived.pop("sup32", None)
        strategy: Any = make_strategy(self.of, knn=self.knn, max_clusters=self.max_clusters)
        return strategy.pick(cluster, candidates, ctx, rng)  # type: ignore[no-any-return]


def revisiting_pool(seed: int) -> np.ndarray:
    """Six overlapping blobs of 80-400 points: with at most 6 clusters and a budget of 40, each
    cluster is visited several times in a round."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(80, 400, 6)
    centres = rng.normal(size=(6, 16)) * 2
    ids = np.repeat(np.arange(6), sizes)
    return (centres[ids] + rng.normal(size=(ids.size, 16))).astype(np.float32)


@pytest.mark.parametrize("name", ["typiclust", "supclust"])
@pytest.mark.parametrize("seed", range(4))
def test_lists_kept_over_visits_give_the_picks_of_searching_anew(name: str, seed: int) -> None:
    x = revisiting_pool(seed)
    labeled = np.zeros(x.shape[0], dtype=bool)
    labeled[np.random.default_rng(seed).choice(x.shape[0], 10, replace=False)] = True
    kept = make_strategy(name, max_clusters=6).select(
        Pool(embeddings=x), labeled, 40, np.random.default_rng(seed)
    )
    anew = EveryVisitAnew(of=name, max_clusters=6).select(
        Pool(embeddings=x), labeled, 40, np.random.default_rng(seed)
    )
    np.testing.assert_array_equal(kept.indices, anew.indices)
    assert kept.record is not None and anew.record is not None
    for ours, theirs in zip(kept.record["visits"], anew.record["visits"], strict=True):
        np.testing.assert_allclose(ours["typicality"], theirs["typicality"], rtol=1e-6)
    # The kept lists searched each cluster once (plus the rows that ran short), not each visit.
    assert kept.metrics["typicality_knn_pairs"] < anew.metrics["typicality_knn_pairs"] / 3


def test_kept_lists_typicality_matches_a_naive_search_on_the_remaining_candidates() -> None:
    x = revisiting_pool(9)
    selection = make_strategy("typiclust", max_clusters=6).select(
        Pool(embeddings=x), np.zeros(x.shape[0], dtype=bool), 40, np.random.default_rng(0)
    )
    assert selection.record is not None
    normalised = x / np.linalg.norm(x, axis=1, keepdims=True)
    for visit in selection.record["visits"][6:]:  # later visits: some candidates picked already
        candidates = np.asarray(visit["candidates"])
        k = min(20, candidates.shape[0] // 2)
        expected = brute_typicality(normalised[candidates], k)
        np.testing.assert_allclose(visit["typicality"], expected, rtol=1e-5)


def test_zipf_pool_keeps_the_knn_work_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the exact budget scaled down to this pool (as EXACT_WORK is to an ImageNet-sized
    one), a round's kNN work stays within n x 2 x PROBE_POINTS plus the exact budget, where an
    exact search of its few giant clusters costs several times that."""
    typicality_module = sys.modules["alsys.strategies.typicality"]
    monkeypatch.setattr(typicality_module, "EXACT_WORK", 200_000)
    monkeypatch.setattr(typicality_module, "PROBE_POINTS", 128)
    monkeypatch.setattr(sys.modules["alsys.strategies.neighbours"], "LEAF_SIZE", 32)
    x = zipf_pool()
    labeled = np.zeros(x.shape[0], dtype=bool)
    for budget in (3, 6):
        counted = {}
        for knn in ("auto", "exact"):
            selection = make_strategy("typiclust", knn=knn).select(
                Pool(embeddings=x), labeled, budget, np.random.default_rng(0)
            )
            counted[knn] = selection.metrics["typicality_knn_pairs"]
            if knn == "auto":
                assert selection.metrics["typicality_partitioned_clusters"] >= 1
                assert any("balanced partition" in note for note in selection.notes)
        assert counted["auto"] <= 200_000 + x.shape[0] * 2 * 128
        assert counted["exact"] > 3 * counted["auto"]


@pytest.mark.slow
def test_partitioned_typicality_picks_stay_among_the_most_typical(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pick of a partitioned search differs from the exact pick in some clusters (a point's
    region can miss a few true neighbours, which moves near-ties); it stays among the most
    typical 2 % of its cluster by the exact measure."""
    monkeypatch.setattr(sys.modules["alsys.strategies.typicality"], "EXACT_WORK", 0)
    monkeypatch.setattr(sys.modules["alsys.strategies.typicality"], "PROBE_POINTS", 256)
    monkeypatch.setattr(sys.modules["alsys.strategies.neighbours"], "LEAF_SIZE", 64)
    x = zipf_pool(8000, seed=3)
    labeled = np.zeros(x.shape[0], dtype=bool)
    same, percentiles = 0, []
    for seed in range(4):
        auto = make_strategy("typiclust", knn="auto").select(
            Pool(embeddings=x), labeled, 8, np.random.default_rng(seed)
        )
        exact = make_strategy("typiclust", knn="exact").select(
            Pool(embeddings=x), labeled, 8, np.random.default_rng(seed)
        )
        assert exact.record is not None and auto.record is not None
        for ours, truth in zip(auto.record["visits"], exact.record["visits"], strict=True):
            assert ours["candidates"] == truth["candidates"]  # the same clusters, same order
            typ = np.asarray(truth["typicality"])
            same += ours["pick"] == truth["pick"]
            rank = typ[truth["candidates"].index(ours["pick"])]
            percentiles.append(float((typ > rank).mean()))
    # Measured: 24 of 32 picks the same, the others within the top 0.8 % but one, at 1.7 %.
    # (With every k-means restart iterating to the end, before RESTART_KEEP, the clusters
    # differed: 23 of 32 the same, the others within the top 0.5 %.)
    assert max(percentiles) < 0.02, percentiles
    assert same >= 20


def test_typicality_function_stays_exact() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1100, 12)).astype(np.float32)  # row blocks: 1100^2 > 2^20
    np.testing.assert_allclose(typicality(x, 20), brute_typicality(x, 20), rtol=1e-5)
