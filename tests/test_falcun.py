"""FALCUN: uncertainty and diversity in the probability space (Gilhuber et al. 2024), against
scikit-activeml 1.0.1's ``Falcun``, a naive transcription of its equations, and hand-built
cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from skactiveml.base import SkactivemlClassifier
from skactiveml.pool import Falcun

from alsys.errors import InputError
from alsys.strategies import Pool, make_strategy
from alsys.strategies.falcun import falcun_greedy
from tests.strategy_contract import StrategyContract, softmax
from tests.test_differential import labeled_mask, labels_for, skactiveml_stream


class TestFALCUNContract(StrategyContract):
    name = "falcun"


class FixedProbs(SkactivemlClassifier):
    """A 'classifier' whose probabilities for row i (X = [[i], ...]) are probs[i]."""

    def __init__(
        self, probs: np.ndarray | None = None, classes: Any = None, missing_label: Any = np.nan
    ) -> None:
        super().__init__(classes=classes, missing_label=missing_label)
        self.probs = probs

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FixedProbs:
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        assert self.probs is not None
        return self.probs[np.asarray(X)[:, 0].astype(int)]


def random_probs(seed: int, n: int = 200, classes: int = 5) -> np.ndarray:
    return softmax(np.random.default_rng(seed).normal(size=(n, classes)) * 2)


@pytest.mark.parametrize(("seed", "labeled", "budget"), [(0, 0, 15), (1, 20, 25), (2, 60, 10)])
@pytest.mark.parametrize("gamma", [10, 3])
def test_falcun_matches_skactiveml_falcun_draw_for_draw(
    seed: int, labeled: int, budget: int, gamma: int
) -> None:
    """Same uncertainty, same scaled diversity, same relevance, one uniform per draw from the
    same MT19937 stream: the batches are identical."""
    probs = random_probs(seed)
    mask = labeled_mask(probs.shape[0], labeled, seed)
    rows = np.arange(probs.shape[0], dtype=np.float64)[:, None]
    clf = FixedProbs(probs, classes=np.arange(2))
    theirs = Falcun(gamma=gamma, random_state=seed).query(
        rows, labels_for(mask), clf, fit_clf=False, batch_size=budget
    )
    ours = make_strategy("falcun", gamma=gamma).select(
        Pool(probs=probs), mask, budget, skactiveml_stream(seed, mask)
    )
    assert ours.indices.tolist() == list(theirs)


def naive_falcun(probs: np.ndarray, budget: int, rng: np.random.Generator, gamma: float) -> list:
    """Eqs. 1-6 as scikit-activeml runs them, one point at a time in plain Python."""
    m = probs.shape[0]
    u = [1.0 - abs(sorted(row)[-1] - sorted(row)[-2]) for row in probs]
    d = list(u)
    picks: list[int] = []
    for step in range(budget):
        if step:
            q = probs[picks[-1]]
            d = [min(d[i], float(sum(abs(probs[i] - q)))) for i in range(m)]
            low, high = min(d), max(d)
            d = [(v - low) / (high - low) if high > low else v - low for v in d]
        r = [0.0 if i in picks else (u[i] + d[i]) ** gamma for i in range(m)]
        if sum(r) == 0:
            r = [0.0 if i in picks else 1.0 for i in range(m)]
        cdf = np.cumsum(np.array(r) / sum(r))
        picks.append(int(np.searchsorted(cdf / cdf[-1], rng.random(), side="right")))
    return picks


@pytest.mark.parametrize("seed", range(4))
def test_fast_greedy_equals_the_naive_one(seed: int) -> None:
    probs = random_probs(seed, n=60, classes=3)
    fast, *_ = falcun_greedy(probs, 12, np.random.default_rng(seed), 10.0)
    assert fast.tolist() == naive_falcun(probs, 12, np.random.default_rng(seed), 10.0)


def test_hand_built_batch_uncertainty_then_diversity() -> None:
    """A = (.5, .5), B = (.6, .4), C = (.9, .1): u = 1, .8, .2. Step 1: r = (2u)^60, A by a
    factor 1.25^60. Step 2: L1 distances to A are .2 and .8, the running minimum with u gives
    .2 and .2, min-max scaled over A, B, C (A's is 0): 1 and 1, so r = 1.8^60 for B against
    1.2^60 for C. Then C alone."""
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [0.9, 0.1]])
    picks, u, d, chance = falcun_greedy(probs, 3, np.random.default_rng(0), 60.0)
    assert picks.tolist() == [0, 1, 2]
    np.testing.assert_allclose(u, [1.0, 0.8, 0.2])
    np.testing.assert_allclose(d, [1.0, 1.0, 1.0])
    first = 2.0**60 / (2.0**60 + 1.6**60 + 0.4**60)
    second = 1.8**60 / (1.8**60 + 1.2**60)
    np.testing.assert_allclose(chance, [first, second, 1.0])


def test_gamma_zero_draws_uniformly_and_every_point_ties() -> None:
    probs = random_probs(3, n=40)
    _, _, _, chance = falcun_greedy(probs, 5, np.random.default_rng(1), 0.0)
    np.testing.assert_allclose(chance, [1 / 40, 1 / 39, 1 / 38, 1 / 37, 1 / 36])


def test_cold_start_draws_at_random_and_later_rounds_need_probs() -> None:
    x = np.random.default_rng(0).normal(size=(30, 4))
    empty = np.zeros(30, bool)
    selection = make_strategy("falcun").select(
        Pool(embeddings=x), empty, 5, np.random.default_rng(0)
    )
    assert selection.random_fallback
    mask = empty.copy()
    mask[:3] = True
    with pytest.raises(InputError, match="probs"):
        make_strategy("falcun").select(Pool(embeddings=x), mask, 5, np.random.default_rng(0))


def test_picks_are_unlabeled_and_details_say_why() -> None:
    probs = random_probs(5, n=50)
    mask = labeled_mask(50, 10, 5)
    selection = make_strategy("falcun").select(Pool(probs=probs), mask, 8, np.random.default_rng(0))
    assert not mask[selection.indices].any()
    assert set(selection.details[0]) == {"reason", "uncertainty", "diversity", "draw_probability"}
    assert 0 < selection.metrics["draw_probability_mean"] <= 1


@pytest.mark.parametrize("gamma", [-1, "ten", float("inf")])
def test_bad_gamma_is_refused_in_one_line(gamma: Any) -> None:
    with pytest.raises(InputError, match=r"falcun\.gamma") as error:
        make_strategy("falcun", gamma=gamma)
    assert "\n" not in str(error.value)
