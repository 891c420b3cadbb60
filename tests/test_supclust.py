from __future__ import annotations

import json
import math

import numpy as np
import pytest

from alsys.errors import InputError
from alsys.strategies import Pool, cluster_weights, make_strategy, sup_scores
from alsys.strategies.clustering import typicality


def naive_sup(points: np.ndarray, centres: np.ndarray, i: int, t: float) -> list[float]:
    others = [j for j in range(len(centres)) if j != i]
    logits = [-math.dist(centres[i], centres[j]) / t for j in others]
    z = sum(math.exp(v) for v in logits)
    weights = [math.exp(v) / z for v in logits]
    return [
        1 / sum(w * math.dist(x, centres[j]) for w, j in zip(weights, others, strict=True))
        for x in points
    ]


@pytest.mark.parametrize("temperature", [0.05, 1.0, 20.0])
def test_sup_scores_match_naive_loop(temperature: float, rng: np.random.Generator) -> None:
    centres = rng.normal(size=(6, 4))
    points = rng.normal(size=(25, 4))
    np.testing.assert_allclose(
        sup_scores(points, centres, 2, temperature),
        naive_sup(points, centres, 2, temperature),
        rtol=1e-10,
    )
    weights = cluster_weights(centres, 2, temperature)
    assert weights.shape == (5,)
    assert weights.sum() == pytest.approx(1.0)


def line_clusters() -> tuple[np.ndarray, dict[float, int]]:
    """Three clusters on the x axis: around 0, 10 and 40, each a segment of 41 points."""
    offsets = np.linspace(-2, 2, 41)
    xs = np.concatenate([c + offsets for c in (0.0, 10.0, 40.0)])
    points = np.stack([xs, np.zeros_like(xs)], axis=1)
    return points, {round(float(v), 6): i for i, v in enumerate(xs)}


def test_supclust_picks_the_points_facing_the_nearest_cluster() -> None:
    points, index_of = line_clusters()
    for name, params in (("supclust", {"typ_ratio": 1.0}), ("supclust_no_typicality", {})):
        strategy = make_strategy(name, normalize=False, temperature=0.1, **params)
        selection = strategy.select(
            Pool(embeddings=points), np.zeros(len(points), bool), 3, np.random.default_rng(0)
        )
        # Cluster 0 faces cluster 10 (x=2); cluster 10 faces 0 (x=8); cluster 40 faces 10 (x=38).
        assert sorted(selection.indices.tolist()) == sorted(
            index_of[v] for v in (2.0, 8.0, 38.0)
        ), name


def test_typ_ratio_filters_to_the_most_typical_before_sup() -> None:
    points, _ = line_clusters()
    strategy = make_strategy("supclust", normalize=False, temperature=0.1, typ_ratio=0.1)
    selection = strategy.select(
        Pool(embeddings=points), np.zeros(len(points), bool), 3, np.random.default_rng(0)
    )
    for index, why in zip(selection.indices, selection.details, strict=True):
        members = np.flatnonzero(np.abs(points[:, 0] - points[index, 0]) <= 4.1)
        typ = typicality(points[members].astype(np.float32), 20)
        kept = members[np.argsort(-typ)[: math.floor(0.1 * len(members))]]
        assert why["kept_by_typicality"] == len(kept) == 4
        assert index in kept


def test_no_sup_ablation_draws_among_the_typical_with_the_seed() -> None:
    points, _ = line_clusters()
    picks = set()
    for seed in range(12):
        selection = make_strategy("supclust_no_sup", normalize=False).select(
            Pool(embeddings=points), np.zeros(len(points), bool), 1, np.random.default_rng(seed)
        )
        picks.add(int(selection.indices[0]))
    assert len(picks) > 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"typ_ratio": 0}, "typ_ratio"),
        ({"typ_ratio": 1.5}, "typ_ratio"),
        ({"k_neighbors": 0}, "k_neighbors"),
        ({"distance": "cosine"}, "distance"),
    ],
)
def test_bad_hyperparameters_name_the_field(params: dict[str, float], field: str) -> None:
    with pytest.raises(InputError, match=f"supclust.{field}"):
        make_strategy("supclust", **params)


def test_the_record_shows_each_visit_its_kept_set_and_pick() -> None:
    points, _ = line_clusters()
    selection = make_strategy("supclust", normalize=False, temperature=0.1).select(
        Pool(embeddings=points), np.zeros(len(points), bool), 5, np.random.default_rng(0)
    )
    assert selection.record is not None
    visits = selection.record["visits"]
    assert len(visits) == 5
    for index, why, visit in zip(selection.indices, selection.details, visits, strict=True):
        assert visit["pick"] == index and visit["cluster"] == why["cluster"]
        assert visit["pick"] in visit["kept"] and set(visit["kept"]) <= set(visit["candidates"])
        assert len(visit["kept"]) == why["kept_by_typicality"]
        assert len(visit["typicality"]) == len(visit["sup"]) == len(visit["candidates"])
        position = visit["candidates"].index(index)
        assert visit["typicality"][position] == pytest.approx(why["typicality"], rel=1e-5)
        assert visit["sup"][position] == pytest.approx(why["sup"], rel=1e-5)
        # The kept set is the most typical candidates, and the pick the highest SUP among them.
        kept = [visit["candidates"].index(i) for i in visit["kept"]]
        rest = [p for p in range(len(visit["candidates"])) if p not in kept]
        assert min(visit["typicality"][p] for p in kept) >= max(
            visit["typicality"][p] for p in rest
        )
        assert visit["sup"][position] == max(visit["sup"][p] for p in kept)
    json.dumps(selection.record, allow_nan=False)  # JSON-ready as it is


def test_the_ablations_record_only_what_they_compute() -> None:
    points, _ = line_clusters()
    mask = np.zeros(len(points), bool)
    no_sup = make_strategy("supclust_no_sup", normalize=False).select(
        Pool(embeddings=points), mask, 3, np.random.default_rng(0)
    )
    no_typ = make_strategy("supclust_no_typicality", normalize=False).select(
        Pool(embeddings=points), mask, 3, np.random.default_rng(0)
    )
    assert no_sup.record is not None and no_typ.record is not None
    for visit in no_sup.record["visits"]:
        assert visit["sup"] is None and visit["pick"] in visit["kept"]
    for visit in no_typ.record["visits"]:
        assert visit["typicality"] is None and visit["kept"] is None
        assert len(visit["sup"]) == len(visit["candidates"])
