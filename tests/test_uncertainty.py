from __future__ import annotations

import math

import numpy as np
import pytest

from alsys.errors import InputError
from alsys.strategies import (
    Pool,
    bald_scores,
    entropy_scores,
    least_confidence_scores,
    make_strategy,
    margin_scores,
)
from tests.strategy_contract import softmax


def _probs(seed: int = 0, n: int = 50, classes: int = 5) -> np.ndarray:
    return softmax(np.random.default_rng(seed).normal(size=(n, classes)) * 3)


def test_scores_match_naive_loops() -> None:
    probs = _probs()
    for i, row in enumerate(probs):
        ordered = sorted(row, reverse=True)
        assert least_confidence_scores(probs)[i] == pytest.approx(ordered[0])
        assert margin_scores(probs)[i] == pytest.approx(ordered[0] - ordered[1])
        naive_entropy = -sum(p * math.log(p) for p in row if p > 0)
        assert entropy_scores(probs)[i] == pytest.approx(naive_entropy)


def test_bald_matches_naive_loop() -> None:
    rng = np.random.default_rng(3)
    mc = softmax(rng.normal(size=(7, 20, 4)) * 2)
    scores = bald_scores(mc)
    for i in range(20):
        mean = [sum(mc[t, i, c] for t in range(7)) / 7 for c in range(4)]
        h_mean = -sum(p * math.log(p) for p in mean)
        mean_h = sum(-sum(p * math.log(p) for p in mc[t, i]) for t in range(7)) / 7
        assert scores[i] == pytest.approx(h_mean - mean_h)
    assert (scores > -1e-12).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bald_by_blocks_equals_bald_over_the_whole_array(
    monkeypatch: pytest.MonkeyPatch, dtype: type
) -> None:
    """Blocks of a few points (the last one short) give bit for bit the scores of the formula
    over the whole array in float64."""
    import alsys.strategies.uncertainty as uncertainty

    rng = np.random.default_rng(5)
    mc = softmax(rng.normal(size=(6, 1003, 10)) * 2).astype(dtype)
    whole = np.asarray(mc, dtype=np.float64)
    expected = entropy_scores(whole.mean(axis=0)) - entropy_scores(whole).mean(axis=0)
    monkeypatch.setattr(uncertainty, "BALD_BLOCK_ENTRIES", 6 * 10 * 7)  # 7 points a block
    np.testing.assert_array_equal(bald_scores(mc), expected)


def test_bald_is_zero_when_all_passes_agree() -> None:
    probs = _probs()
    np.testing.assert_allclose(bald_scores(np.stack([probs] * 5)), 0, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("least_confidence", [2, 1]),  # lowest top probability first
        ("margin", [1, 2]),  # smallest P1 - P2 first
        ("entropy", [2, 1]),  # highest entropy first
    ],
)
def test_uncertainty_known_answers(name: str, expected: list[int]) -> None:
    probs = np.array(
        [
            [0.98, 0.01, 0.01],
            [0.50, 0.49, 0.01],
            [0.40, 0.30, 0.30],
            [0.90, 0.05, 0.05],
        ]
    )
    selection = make_strategy(name).select(
        Pool(probs=probs), np.zeros(4, bool), 2, np.random.default_rng(0)
    )
    assert selection.indices.tolist() == expected


def test_ties_are_broken_by_the_generator_not_by_index() -> None:
    probs = np.full((40, 2), 0.5)
    picks = {
        tuple(
            make_strategy("margin")
            .select(Pool(probs=probs), np.zeros(40, bool), 3, np.random.default_rng(seed))
            .indices
        )
        for seed in range(10)
    }
    assert len(picks) > 1
    assert (0, 1, 2) not in picks or len(picks) > 5


def test_bald_and_dbal_prefer_disagreement() -> None:
    agree = np.tile([[0.5, 0.5]], (10, 1))
    mc = np.stack([agree, agree])
    mc[0, 3] = [0.99, 0.01]
    mc[1, 3] = [0.01, 0.99]  # point 3: passes disagree, mean is 0.5/0.5
    bald = make_strategy("bald").select(
        Pool(mc_probs=mc), np.zeros(10, bool), 1, np.random.default_rng(0)
    )
    assert bald.indices.tolist() == [3]


@pytest.mark.parametrize("name", ["least_confidence", "margin", "entropy", "bald", "dbal"])
def test_cold_start_draws_at_random_and_says_so(name: str) -> None:
    pool = Pool(embeddings=np.ones((30, 3)))
    selection = make_strategy(name).select(pool, np.zeros(30, bool), 5, np.random.default_rng(0))
    assert selection.random_fallback
    assert "random" in selection.notes[0]


@pytest.mark.parametrize("name", ["least_confidence", "bald"])
def test_missing_model_output_after_cold_start_is_an_error(name: str) -> None:
    pool = Pool(embeddings=np.ones((30, 3)))
    mask = np.zeros(30, bool)
    mask[0] = True
    with pytest.raises(InputError, match="probs"):
        make_strategy(name).select(pool, mask, 5, np.random.default_rng(0))


def test_mc_strategies_refuse_single_probabilities() -> None:
    with pytest.raises(InputError, match=r"\(T_mc, n, classes\)"):
        make_strategy("bald").select(
            Pool(probs=_probs()), np.zeros(50, bool), 2, np.random.default_rng(0)
        )


def test_dbal_mean_in_float64_equals_the_mean_of_a_float64_copy() -> None:
    rng = np.random.default_rng(6)
    mc = softmax(rng.normal(size=(9, 777, 13)) * 2).astype(np.float32)
    copy_mean = entropy_scores(np.asarray(mc, dtype=np.float64).mean(axis=0))
    dbal = make_strategy("dbal")
    np.testing.assert_array_equal(dbal.priority_from_mc(mc), copy_mean)  # type: ignore[attr-defined]
