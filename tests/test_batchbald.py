from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from alsys.strategies import Pool, bald_scores, make_strategy
from alsys.strategies.batchbald import (
    _sample_categorical,
    batchbald_greedy,
    joint_entropy_with_candidates,
)
from tests.strategy_contract import softmax


def joint_mutual_information(mc: np.ndarray, batch: list[int]) -> float:
    """I(y_batch; w) by enumerating every class configuration of the batch."""
    n_mc, _, n_classes = mc.shape
    joint_entropy = 0.0
    for config in itertools.product(range(n_classes), repeat=len(batch)):
        p = np.mean(
            [
                math.prod(mc[t, i, c] for i, c in zip(batch, config, strict=True))
                for t in range(n_mc)
            ]
        )
        joint_entropy -= p * math.log(p)
    conditional = sum(
        -np.mean(
            [
                sum(mc[t, i, c] * math.log(mc[t, i, c]) for c in range(n_classes))
                for t in range(n_mc)
            ]
        )
        for i in batch
    )
    return joint_entropy - conditional


def _mc(seed: int, n: int = 12, classes: int = 3, passes: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return softmax(rng.normal(size=(passes, n, classes)) * 2)


def test_exact_scores_equal_brute_force_joint_information() -> None:
    mc = _mc(0)
    chosen, gains = batchbald_greedy(mc, 3, np.random.default_rng(0), num_samples=10_000)
    for size in range(1, 4):
        assert gains[size - 1] == pytest.approx(joint_mutual_information(mc, list(chosen[:size])))


def test_greedy_choice_is_the_best_extension_by_brute_force() -> None:
    mc = _mc(1)
    chosen, _ = batchbald_greedy(mc, 2, np.random.default_rng(0), num_samples=10_000)
    best_second = max(
        (i for i in range(12) if i != chosen[0]),
        key=lambda i: joint_mutual_information(mc, [int(chosen[0]), i]),
    )
    assert chosen[1] == best_second


def test_first_pick_is_bald_argmax() -> None:
    mc = _mc(2)
    chosen, _ = batchbald_greedy(mc, 1, np.random.default_rng(0), num_samples=100)
    assert chosen[0] == int(np.argmax(bald_scores(mc)))


def test_sampled_joint_entropy_estimator_matches_exact_enumeration() -> None:
    mc = _mc(3, n=10, classes=3, passes=8)
    batch = [0, 1, 2]
    exact_joint = np.ones((8, 1))
    for i in batch:
        exact_joint = (exact_joint[:, :, None] * mc[:, i, None, :]).reshape(8, -1)
    exact = joint_entropy_with_candidates(exact_joint, mc, sampled=False)
    rng = np.random.default_rng(0)
    models = rng.integers(8, size=50_000)
    configs = _sample_categorical(exact_joint[models], rng)
    estimate = joint_entropy_with_candidates(exact_joint[:, configs], mc, sampled=True)
    np.testing.assert_allclose(estimate, exact, atol=0.03)


def test_greedy_switches_to_sampling_and_stays_close_to_the_truth() -> None:
    mc = _mc(5, n=10, classes=3, passes=8)
    # M=30: exact for the first 3 picks (27 configurations), sampled after.
    chosen, gains = batchbald_greedy(mc, 5, np.random.default_rng(0), num_samples=30)
    assert len(set(chosen.tolist())) == 5
    truth = joint_mutual_information(mc, list(chosen))
    assert gains[-1] == pytest.approx(truth, abs=0.3)
    assert gains[2] == pytest.approx(joint_mutual_information(mc, list(chosen[:3])))


def test_batchbald_avoids_copies_that_bald_would_take() -> None:
    rng = np.random.default_rng(4)
    passes = 10
    strong = np.where(np.arange(passes)[:, None] % 2 == 0, [0.99, 0.01], [0.01, 0.99])
    weak = rng.uniform(0.1, 0.9, size=(passes, 5))
    others = np.stack([weak, 1 - weak], axis=-1)  # (T, 5, 2): BALD ~0.1, less than a copy
    mc = np.concatenate([np.stack([strong] * 3, axis=1), others], axis=1)  # rows 0-2 are copies
    mask = np.zeros(mc.shape[1], bool)
    bald = make_strategy("bald").select(Pool(mc_probs=mc), mask, 2, np.random.default_rng(0))
    assert set(bald.indices) <= {0, 1, 2}
    batch = make_strategy("batchbald").select(Pool(mc_probs=mc), mask, 2, np.random.default_rng(0))
    assert batch.indices[0] in {0, 1, 2}
    assert batch.indices[1] not in {0, 1, 2}


def test_long_sampled_batches_do_not_underflow() -> None:
    """A product of 250 probabilities of about 1/100 underflows float64: the sampled joint is
    kept rescaled, so every gain stays finite (a NaN score once made the pick fail)."""
    rng = np.random.default_rng(0)
    mc = rng.dirichlet(np.ones(100), size=(4, 300))  # (T, m, C): flat, as at a cold start
    chosen, gains = batchbald_greedy(mc, 250, np.random.default_rng(1), num_samples=100)
    assert len(set(chosen.tolist())) == 250
    assert np.isfinite(gains).all()
