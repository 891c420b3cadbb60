"""What the large-pool paths keep: no whole copy of a memory-mapped pool, exact values on the
sampled k-means path's clusters, the documented pre-filters and limits."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from alsys.errors import InputError
from alsys.strategies import Pool, kmeans, make_strategy, typicality
from alsys.strategies.base import prepare_features
from alsys.strategies.kmeans import inertia


def normalised_pool(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim))
    x = centres[rng.integers(0, 8, n)] + rng.normal(size=(n, dim)) * 0.5
    out: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def test_prepare_features_returns_a_ready_array_itself_and_copies_others_once() -> None:
    x = normalised_pool(500, 16)
    assert prepare_features(x, "embeddings", normalize=True) is x
    raw = x * 3.0
    out = prepare_features(raw, "embeddings", normalize=True)
    expected = raw / np.linalg.norm(raw, axis=1)[:, None]
    np.testing.assert_array_equal(out, expected)  # the same float32 arithmetic as before
    assert out is not raw
    np.testing.assert_array_equal(raw, x * 3.0)  # the caller's array is untouched


def test_memory_mapped_pool_is_not_copied_by_a_selection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Passes over every point read blocks of rows; small blocks make a 10 MB pool "large".
    monkeypatch.setattr(sys.modules["alsys.strategies.kmeans_steps"], "ROW_BLOCK", 1024)
    monkeypatch.setattr(sys.modules["alsys.strategies.base"], "FEATURE_BLOCK", 1024)
    monkeypatch.setattr(sys.modules["alsys.strategies.neighbours"], "KNN_BLOCK_ELEMENTS", 2**18)
    monkeypatch.setattr(sys.modules["alsys.strategies.neighbours"], "KNN_MAX_BLOCK_ELEMENTS", 2**18)
    path = tmp_path / "pool.npy"
    np.save(path, normalised_pool(40_000, 256))
    mapped = np.load(path, mmap_mode="r")
    pool = Pool(embeddings=mapped)
    labeled = np.zeros(pool.n, dtype=bool)
    tracemalloc.start()
    try:
        selection = make_strategy("typiclust").select(pool, labeled, 5, np.random.default_rng(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert selection.indices.shape == (5,)
    # The pool is 41 MB; a whole copy (or a full-size temporary) would exceed this.
    assert peak < 0.75 * mapped.nbytes, peak


def test_sampled_kmeans_keeps_typicality_exact_on_its_clusters() -> None:
    x = normalised_pool(20_000, 16)
    clustering = kmeans(x, 60, np.random.default_rng(0))
    assert "sampled points" in clustering.method and "assignment pass" in clustering.method
    assert clustering.inertia == pytest.approx(inertia(x, clustering), rel=1e-6)
    members = np.flatnonzero(clustering.assignment == 0)[:300]
    ours = typicality(x[members], 20)
    diff = x[members][:, None, :] - x[members][None, :, :]
    sq = np.sort((diff.astype(np.float64) ** 2).sum(axis=2), axis=1)[:, 1:21]
    np.testing.assert_allclose(ours, 1.0 / (sq.mean(axis=1) + 1e-5), rtol=1e-4)


def test_max_clusters_bounds_the_clustering() -> None:
    x = normalised_pool(600, 8)
    selection = make_strategy("typiclust", max_clusters=3).select(
        Pool(embeddings=x), np.zeros(600, dtype=bool), 9, np.random.default_rng(0)
    )
    assert selection.metrics["n_clusters"] == 3.0
    with pytest.raises(InputError, match="max_clusters"):
        make_strategy("supclust", max_clusters=0)


def test_batchbald_default_prefilter_is_named_in_the_notes() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 1500, 3))
    mc = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    strategy = make_strategy("batchbald")
    assert strategy.max_candidates == 1000  # type: ignore[attr-defined]
    selection = strategy.select(
        Pool(mc_probs=mc), np.zeros(1500, dtype=bool), 3, np.random.default_rng(0)
    )
    assert any("pre-filter" in note and "max_candidates=1000" in note for note in selection.notes)
    unfiltered = make_strategy("batchbald", max_candidates=None).select(
        Pool(mc_probs=mc), np.zeros(1500, dtype=bool), 3, np.random.default_rng(0)
    )
    assert not unfiltered.notes


def test_probcover_refuses_a_pool_above_max_pool_in_one_line() -> None:
    x = normalised_pool(300, 8)
    strategy = make_strategy("probcover", delta=0.3, max_pool=200)
    with pytest.raises(InputError, match="subsample"):
        strategy.select(Pool(embeddings=x), np.zeros(300, dtype=bool), 5, np.random.default_rng(0))
