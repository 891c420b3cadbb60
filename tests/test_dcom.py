"""DCoM (Mishal and Weinshall 2024): per-point radii by ball purity, the competence w(coverage),
and the greedy that mixes Margin with ProbCover's density. Tested from the paper's description
and the defaults of the authors' code, against a naive transcription, and at its two limits:
ProbCover at the cold start, Margin once the pool is covered."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from alsys.errors import InputError
from alsys.strategies import Pool, make_strategy
from alsys.strategies.base import argmax_tiebreak
from alsys.strategies.dcom import (
    ball_radii,
    competence,
    min_max,
    purity_threshold,
)
from tests.conftest import blobs
from tests.strategy_contract import StrategyContract, softmax


class TestDCoMContract(StrategyContract):
    name = "dcom"
    params = {"n_classes": 4}


class TestDCoMGivenDeltaContract(StrategyContract):
    name = "dcom"
    params = {"initial_delta": 0.3}


def test_competence_is_the_reference_logistic() -> None:
    """w(c) = (1 + e^{-k(1-a)}) / (1 + e^{-k(c-a)}), k = 50, a = 0.8: w(1) = 1, w(a) is half of
    w's numerator, and w is negligible at low coverage."""
    assert competence(1.0) == 1.0
    assert competence(0.8) == pytest.approx((1 + math.exp(-10)) / 2)
    assert competence(0.0) == pytest.approx((1 + math.exp(-10)) / (1 + math.exp(40)))
    assert competence(0.5) < 1e-6 < competence(0.7) < competence(0.9) < 1.0
    assert competence(0.6, k=10, a=0.5) == pytest.approx((1 + math.exp(-5)) / (1 + math.exp(-1)))


def test_purity_threshold_and_min_max() -> None:
    assert purity_threshold(0.0) == 0.4 and purity_threshold(1.0) == pytest.approx(0.6)
    np.testing.assert_allclose(min_max(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(min_max(np.array([3.0, 3.0])), [0.0, 0.0])


def sphere_pool(seed: int, n: int = 90, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Points on the unit sphere in 4-D (float32-exact float64) and a class for each: the
    largest of its first ``classes`` coordinates, so classes are regions with borders."""
    x = np.random.default_rng(seed).normal(size=(n, 4))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)
    return x, x[:, :classes].argmax(axis=1)


def naive_radius(distances: np.ndarray, label: int, pseudo: np.ndarray, threshold: float) -> float:
    low, high = 0.0, 1.1
    while high - low > 0.05:
        mid = (low + high) / 2
        ball = distances < mid
        purity = float(np.mean(pseudo[ball] == label))
        low, high = (mid, high) if purity >= threshold else (low, mid)
    return (low + high) / 2


def pairwise(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 0.0))


@pytest.mark.parametrize("seed", range(4))
def test_radii_equal_the_naive_binary_search(seed: int) -> None:
    x, ids = sphere_pool(seed)
    rng = np.random.default_rng(seed)
    labeled = np.sort(rng.choice(x.shape[0], 12, replace=False))
    pseudo = np.where(rng.random(x.shape[0]) < 0.8, ids, rng.integers(0, 3, x.shape[0]))
    threshold = purity_threshold(0.3)
    radii, covered = ball_radii(x.astype(np.float32), labeled, ids[labeled], pseudo, threshold)
    d = pairwise(x)
    expected = [naive_radius(d[row], ids[row], pseudo, threshold) for row in labeled]
    np.testing.assert_allclose(radii, expected)
    naive_covered = (d[labeled] < np.array(expected)[:, None]).any(axis=0)
    np.testing.assert_array_equal(covered, naive_covered)
    assert len(set(np.round(radii, 6))) > 1  # the radii really differ from point to point


def naive_dcom(
    x: np.ndarray,
    mask: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    budget: int,
    rng: np.random.Generator,
) -> list[int]:
    """The paper's steps, written out with dense distances and recomputed from scratch."""
    d = pairwise(x)
    labeled = np.flatnonzero(mask)
    pseudo = probs.argmax(axis=1)
    loose = [naive_radius(d[row], labels[row], pseudo, 0.4) for row in labeled]
    before = float((d[labeled] < np.array(loose)[:, None]).any(axis=0).mean())
    radii = np.array(
        [naive_radius(d[row], labels[row], pseudo, purity_threshold(before)) for row in labeled]
    )
    covered = (d[labeled] < radii[:, None]).any(axis=0)
    weight = competence(float(covered.mean()))
    top2 = np.sort(probs, axis=1)[:, -2:]
    u = min_max(-(top2[:, 1] - top2[:, 0]))
    u[mask] = 0.0
    ball = d < radii.mean()
    picks: list[int] = []
    for _ in range(budget):
        density = (ball & ~covered[None, :]).sum(axis=1).astype(float)
        density[mask] = 0.0
        score = weight * min_max(u) + (1 - weight) * min_max(density)
        eligible = ~mask & ~np.isin(np.arange(x.shape[0]), picks)
        pick = argmax_tiebreak(np.where(eligible, score, -1.0), rng)
        covered |= ball[pick]
        u[pick] = 0.0
        picks.append(pick)
    return picks


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_labeled", [6, 30])
def test_selection_equals_the_naive_transcription(seed: int, n_labeled: int) -> None:
    x, ids = sphere_pool(seed)
    rng = np.random.default_rng(seed)
    mask = np.zeros(x.shape[0], bool)
    mask[rng.choice(x.shape[0], n_labeled, replace=False)] = True
    probs = softmax(rng.normal(size=(x.shape[0], 3)) + 3 * np.eye(3)[ids])
    labels = np.where(mask, ids, -1)
    pool = Pool(embeddings=x, probs=probs, labels=labels)
    ours = make_strategy("dcom", initial_delta=0.5).select(pool, mask, 8, np.random.default_rng(7))
    expected = naive_dcom(x, mask, ids, probs, 8, np.random.default_rng(7))
    assert ours.indices.tolist() == expected


@pytest.mark.filterwarnings("ignore::alsys.strategies.probcover.DegenerateDeltaWarning")
@pytest.mark.parametrize("params", [{"initial_delta": 0.4}, {"n_classes": 3}])
def test_cold_start_is_probcover_pick_for_pick(params: dict[str, Any]) -> None:
    """Nothing labeled: no radius, no model, competence 0, so every pick is ProbCover's at the
    initial delta (given, or ProbCover's own purity rule)."""
    x, _ = sphere_pool(5, n=150)
    empty = np.zeros(150, bool)
    ours = make_strategy("dcom", **params).select(
        Pool(embeddings=x), empty, 10, np.random.default_rng(3)
    )
    probcover = {"delta": params["initial_delta"]} if "initial_delta" in params else params
    theirs = make_strategy("probcover", **probcover).select(
        Pool(embeddings=x), empty, 10, np.random.default_rng(3)
    )
    assert ours.indices.tolist() == theirs.indices.tolist()
    assert ours.metrics["delta"] == theirs.metrics["delta"]
    assert ours.metrics["competence"] == 0.0
    assert [d["newly_covered"] for d in ours.details] == [
        d["newly_covered"] for d in theirs.details
    ]


def test_a_covered_pool_makes_it_margin() -> None:
    """Far apart blobs, a model that predicts every point's blob and one label per blob: each
    ball stays pure out to where it covers its whole blob, the coverage is 1, so w = 1 and the
    picks are Margin's, smallest P1 - P2 first."""
    rng = np.random.default_rng(0)
    x, ids = blobs(rng, n_per_blob=30, n_blobs=4, dim=16)
    confidence = rng.uniform(0.3, 3.0, size=120)
    probs = softmax(confidence[:, None] * np.eye(4)[ids])
    mask = np.zeros(120, bool)
    mask[[0, 30, 60, 90]] = True
    pool = Pool(embeddings=x, probs=probs, labels=np.where(mask, ids, -1))
    ours = make_strategy("dcom", initial_delta=0.3).select(pool, mask, 12, np.random.default_rng(0))
    assert ours.metrics["coverage_before"] == 1.0 and ours.metrics["competence"] == 1.0
    margin = make_strategy("margin").select(pool, mask, 12, np.random.default_rng(0))
    assert ours.indices.tolist() == margin.indices.tolist()


def test_uncertainty_of_labeled_points_and_explanations() -> None:
    x, ids = sphere_pool(1)
    mask = np.zeros(90, bool)
    mask[:9] = True
    probs = softmax(np.random.default_rng(1).normal(size=(90, 3)))
    pool = Pool(embeddings=x, probs=probs, labels=np.where(mask, ids, -1))
    selection = make_strategy("dcom", initial_delta=0.5).select(
        pool, mask, 5, np.random.default_rng(0)
    )
    assert set(selection.details[0]) == {"reason", "newly_covered", "score"}
    assert set(selection.metrics) == {"delta", "coverage_before", "competence", "edges"}
    assert 0 < selection.metrics["delta"] <= 1.1
    assert "radii of the 9 labeled balls" in selection.notes[0]


def test_after_the_cold_start_it_needs_the_model_and_the_labels() -> None:
    x, _ = sphere_pool(2)
    mask = np.zeros(90, bool)
    mask[:5] = True
    strategy = make_strategy("dcom", initial_delta=0.5)
    with pytest.raises(InputError, match="probs"):
        strategy.select(Pool(embeddings=x), mask, 3, np.random.default_rng(0))
    probs = softmax(np.zeros((90, 3)))
    with pytest.raises(InputError, match="labels"):
        strategy.select(Pool(embeddings=x, probs=probs), mask, 3, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "dcom"),
        ({"initial_delta": 0}, r"dcom\.initial_delta"),
        ({"n_classes": 1}, r"dcom\.n_classes"),
        ({"initial_delta": 0.5, "max_delta": -1}, r"dcom\.max_delta"),
        ({"initial_delta": 0.5, "delta_resolution": 0}, r"dcom\.delta_resolution"),
        ({"initial_delta": 0.5, "k_logistic": 0}, r"dcom\.k_logistic"),
        ({"initial_delta": 0.5, "a_logistic": 1.5}, r"dcom\.a_logistic"),
        ({"initial_delta": 0.5, "normalize": 1}, r"dcom\.normalize"),
    ],
)
def test_bad_parameters_are_refused_in_one_line(params: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError, match=field) as error:
        make_strategy("dcom", **params)
    assert "\n" not in str(error.value)
