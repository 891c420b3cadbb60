from __future__ import annotations

import numpy as np
import pytest

from alsys.errors import InputError
from alsys.strategies import Pool, make_strategy, typicality
from tests.strategy_contract import StrategyContract


class TestTypiClustEuclideanContract(StrategyContract):
    name = "typiclust"
    params = {"distance": "euclidean"}


def star_blobs(n_blobs: int = 4, dim: int = 6) -> tuple[np.ndarray, list[int]]:
    """Each blob: a centre plus points at +-r along every axis, r in 1, 2, 3.

    The centre is each blob's densest (most typical) point by construction.
    """
    points, centres = [], []
    for b in range(n_blobs):
        centre = np.zeros(dim)
        centre[b % dim] = 100.0 * (b + 1)
        centres.append(len(points))
        points.append(centre)
        for r in (1.0, 2.0, 3.0):
            for axis in range(dim):
                for sign in (1, -1):
                    offset = np.zeros(dim)
                    offset[axis] = sign * r
                    points.append(centre + offset)
    return np.asarray(points, np.float32), centres


def naive_typicality(x: np.ndarray, k: int, squared: bool) -> np.ndarray:
    out = []
    for i in range(len(x)):
        d = sorted(
            float(np.sum((x[i] - x[j]) ** 2)) if squared else float(np.linalg.norm(x[i] - x[j]))
            for j in range(len(x))
            if j != i
        )
        out.append(1 / (np.mean(d[:k]) + 1e-5))
    return np.asarray(out)


@pytest.mark.parametrize("distance", ["sqeuclidean", "euclidean"])
def test_typicality_matches_naive_loop(distance: str, rng: np.random.Generator) -> None:
    x = rng.normal(size=(60, 7)).astype(np.float32)
    np.testing.assert_allclose(
        typicality(x, 5, distance), naive_typicality(x, 5, distance == "sqeuclidean"), rtol=1e-4
    )


def test_typiclust_picks_each_blobs_densest_point() -> None:
    x, centres = star_blobs()
    selection = make_strategy("typiclust", normalize=False).select(
        Pool(embeddings=x), np.zeros(len(x), bool), 4, np.random.default_rng(0)
    )
    assert sorted(selection.indices.tolist()) == centres
    assert all(d["typicality"] is not None for d in selection.details)


def test_typicality_is_computed_in_the_typicality_space() -> None:
    x, centres = star_blobs(n_blobs=1)
    # In the typicality space, point 5 sits in the middle of a tight crowd.
    typ = np.random.default_rng(0).normal(size=x.shape) * 10
    typ[5] = 0
    for j, row in enumerate(range(6, 12)):  # a small star around point 5
        typ[row] = 0
        typ[row, j // 2] = 0.01 * (1 if j % 2 else -1)
    pool = Pool(embeddings=x, typ_embeddings=typ)
    chosen = make_strategy("typiclust", normalize=False, k_neighbors=3).select(
        pool, np.zeros(len(x), bool), 1, np.random.default_rng(0)
    )
    assert chosen.indices.tolist() == [5]
    plain = make_strategy("typiclust", normalize=False, k_neighbors=3).select(
        Pool(embeddings=x), np.zeros(len(x), bool), 1, np.random.default_rng(0)
    )
    assert plain.indices.tolist() == [centres[0]]


def test_precomputed_clusters_are_used_for_typiclust_dc() -> None:
    x, centres = star_blobs(n_blobs=2)
    half = len(x) // 2
    clusters = np.repeat([4, 9], half)
    selection = make_strategy("typiclust", normalize=False).select(
        Pool(embeddings=x, clusters=clusters), np.zeros(len(x), bool), 2, np.random.default_rng(0)
    )
    assert sorted(selection.indices.tolist()) == centres


def test_round_robin_returns_to_clusters_when_budget_exceeds_them() -> None:
    x, _ = star_blobs(n_blobs=2)
    mask = np.zeros(len(x), bool)
    mask[:3] = True  # |L| + b = 3 + 5 clusters... capped by max_clusters=2
    selection = make_strategy("typiclust", normalize=False, max_clusters=2).select(
        Pool(embeddings=x), mask, 5, np.random.default_rng(0)
    )
    visits = [d["visit"] for d in selection.details]
    assert visits == [0, 0, 1, 1, 2]


def test_lone_candidates_and_tiny_pools_still_fill_the_budget() -> None:
    x = np.random.default_rng(0).normal(size=(7, 3))
    selection = make_strategy("typiclust").select(
        Pool(embeddings=x), np.zeros(7, bool), 7, np.random.default_rng(0)
    )
    assert sorted(selection.indices.tolist()) == list(range(7))


def test_zero_rows_cannot_be_normalised() -> None:
    x = np.ones((10, 3))
    x[4] = 0
    with pytest.raises(InputError, match="row 4"):
        make_strategy("typiclust").select(
            Pool(embeddings=x), np.zeros(10, bool), 2, np.random.default_rng(0)
        )


def test_notes_and_metrics_name_the_kmeans_and_its_inertia() -> None:
    x, _ = star_blobs()
    selection = make_strategy("typiclust", normalize=False).select(
        Pool(embeddings=x), np.zeros(len(x), bool), 4, np.random.default_rng(0)
    )
    inertia = selection.metrics["kmeans_inertia"]
    assert selection.metrics["n_clusters"] == 4 and inertia > 0
    assert selection.notes == (
        "k-means: 10 restarts x (k-means++, <= 20 Lloyd iterations), the best then Hartigan "
        "moves, "
        f"4 clusters, inertia {inertia:.6g}",
    )
    assert not selection.random_fallback
    assert selection.record is not None
    for index, visit in zip(selection.indices, selection.record["visits"], strict=True):
        assert visit["pick"] == index and visit["sup"] is None and visit["kept"] is None
        position = visit["candidates"].index(index)
        assert visit["typicality"][position] == max(visit["typicality"])


def test_precomputed_clusters_say_so_instead_of_an_inertia() -> None:
    x, _ = star_blobs(n_blobs=2)
    clusters = np.repeat([4, 9], len(x) // 2)
    selection = make_strategy("typiclust", normalize=False, kmeans_restarts=3).select(
        Pool(embeddings=x, clusters=clusters), np.zeros(len(x), bool), 2, np.random.default_rng(0)
    )
    assert selection.notes == ("clusters: precomputed (Pool.clusters), no k-means, 2 clusters",)
    # Each cluster's candidates searched once, exactly: the distinct entries of its Gram matrix.
    m = len(x) // 2
    assert selection.metrics == {
        "n_clusters": 2.0,
        "largest_cluster": float(m),
        "median_cluster": float(m),
        "typicality_knn_pairs": 2.0 * m * (m + 1) / 2,
        "typicality_partitioned_clusters": 0.0,
    }


def test_kmeans_restarts_is_checked() -> None:
    with pytest.raises(InputError, match=r"typiclust\.kmeans_restarts"):
        make_strategy("typiclust", kmeans_restarts=0)
