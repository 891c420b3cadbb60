from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from alsys.errors import InputError
from alsys.strategies import Pool, coverage_graph, make_strategy, purity_delta
from alsys.strategies.base import argmax_tiebreak
from alsys.strategies.probcover import GRAPH_BATCH, probcover_greedy
from tests.strategy_contract import StrategyContract


class TestProbCoverFixedDeltaContract(StrategyContract):
    name = "probcover"
    params = {"delta": 0.3}


class TestProbCoverPurityRuleContract(StrategyContract):
    name = "probcover"
    params = {"n_classes": 4}


def naive_greedy(x: np.ndarray, delta: float, labeled: np.ndarray, budget: int, rng) -> list[int]:
    """The reference algorithm on a dense adjacency matrix."""
    adjacency = cdist(x, x) < delta
    covered = adjacency[labeled].any(axis=0)
    adjacency[:, covered] = False
    chosen = []
    for _ in range(budget):
        degree = adjacency.sum(axis=1)
        current = argmax_tiebreak(degree.astype(float), rng)
        chosen.append(current)
        adjacency[:, adjacency[current].copy()] = False
    return chosen


def test_graph_matches_dense_distances_including_the_last_partial_batch() -> None:
    rng = np.random.default_rng(0)
    n = GRAPH_BATCH + 37
    x = rng.normal(size=(n, 3)).astype(np.float32)
    graph = coverage_graph(x, 0.4)
    dense = cdist(x.astype(np.float64), x.astype(np.float64)) < 0.4
    boundary = np.abs(cdist(x, x) - 0.4) < 1e-5  # float32 rounding may flip exact ties
    assert ((graph.toarray() != dense) & ~boundary).sum() == 0
    assert graph[n - 1].nnz > 0  # the last partial batch is in


def test_greedy_matches_dense_reference(rng: np.random.Generator) -> None:
    x = rng.normal(size=(300, 4)).astype(np.float32)
    labeled = np.zeros(300, bool)
    labeled[[5, 50, 120]] = True
    graph = coverage_graph(x, 0.8)
    chosen, gains = probcover_greedy(graph, labeled, 15, np.random.default_rng(9))
    assert chosen.tolist() == naive_greedy(x, 0.8, labeled, 15, np.random.default_rng(9))
    assert (gains > 0).all()


def test_dense_group_is_covered_first_then_random_once_all_covered() -> None:
    x = np.array([[0.0], [0.1], [0.2], [0.15], [5.0], [9.0]])
    selection = make_strategy("probcover", delta=0.5, normalize=False).select(
        Pool(embeddings=x), np.zeros(6, bool), 4, np.random.default_rng(0)
    )
    assert selection.indices[0] in {0, 1, 2, 3}
    assert set(selection.indices[1:3].tolist()) == {4, 5}
    assert selection.details[3]["newly_covered"] == 0


def test_purity_rule_gives_the_largest_delta_with_enough_pure_balls(
    rng: np.random.Generator,
) -> None:
    x = rng.normal(size=(200, 3)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(int)
    delta = purity_delta(x, labels, purity=0.9)
    distances = cdist(x, x)
    other = labels[:, None] != labels[None, :]

    def pure_fraction(d: float) -> float:
        return float(np.mean(~((distances < d) & other).any(axis=1)))

    assert pure_fraction(delta) >= 0.9
    assert pure_fraction(delta * 1.0001) < 0.9


def test_probcover_needs_delta_or_n_classes() -> None:
    with pytest.raises(InputError, match="delta"):
        make_strategy("probcover")


def test_a_delta_that_links_too_much_is_refused() -> None:
    x = np.random.default_rng(0).normal(size=(100, 3))
    with pytest.raises(InputError, match="smaller delta"):
        make_strategy("probcover", delta=10.0, max_edges=500).select(
            Pool(embeddings=x), np.zeros(100, bool), 2, np.random.default_rng(0)
        )
