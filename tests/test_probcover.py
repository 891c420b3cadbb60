from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from alsys.errors import InputError
from alsys.strategies import Pool, coverage_graph, make_strategy, purity_delta
from alsys.strategies.base import argmax_tiebreak, prepare_features
from alsys.strategies.clustering import kmeans
from alsys.strategies.probcover import (
    GRAPH_BATCH,
    DegenerateDeltaWarning,
    ProbCover,
    probcover_greedy,
)
from tests.conftest import blobs
from tests.strategy_contract import StrategyContract


class TestProbCoverFixedDeltaContract(StrategyContract):
    name = "probcover"
    params = {"delta": 0.3}


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


def naive_purity_delta(
    x: np.ndarray, labels: np.ndarray, alpha: float, centres: np.ndarray | None = None
) -> tuple[float, float]:
    """The paper's rule by its definition: over a grid of candidate deltas (every pairwise
    distance, where the fraction of pure balls can change), the largest delta at which at least
    alpha of the balls B(c, delta) = {y : ||c - y|| < delta} hold only c's pseudo-label.

    Returns (delta, the fraction of pure balls there)."""
    distances = cdist(x.astype(np.float64), x.astype(np.float64))
    centres = np.arange(x.shape[0]) if centres is None else centres
    grid = np.unique(distances[np.triu_indices(x.shape[0], 1)])
    best, best_fraction = -1.0, -1.0
    for delta in grid:
        pure = 0
        for c in centres:
            ball = np.flatnonzero(distances[c] < delta)
            pure += all(labels[y] == labels[c] for y in ball)
        fraction = pure / len(centres)
        if fraction >= alpha and delta > best:
            best, best_fraction = float(delta), fraction
    return best, best_fraction


def unit_points(seed: int, n: int = 48, d: int = 4) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.8, 0.95])
def test_purity_rule_matches_the_brute_force_grid_on_the_same_kmeans(
    seed: int, alpha: float
) -> None:
    x = unit_points(seed)
    pseudo = kmeans(x, 4, np.random.default_rng(seed)).assignment
    expected, _ = naive_purity_delta(x, pseudo, alpha)
    assert purity_delta(x, pseudo, alpha) == pytest.approx(expected, abs=1e-6)
    centres = np.sort(np.random.default_rng(seed + 10).choice(48, 30, replace=False))
    expected_sampled, _ = naive_purity_delta(x, pseudo, alpha, centres)
    assert purity_delta(x, pseudo, alpha, centres) == pytest.approx(expected_sampled, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 3])
def test_strategy_delta_and_its_purity_match_the_brute_force_grid(seed: int) -> None:
    """The strategy's own path: k-means with k = n_classes from the rng, then the rule."""
    x = unit_points(seed)
    strategy = ProbCover(n_classes=4, purity=0.9, purity_sample=None, normalize=False)
    choice = strategy.choose_delta(x, np.random.default_rng(seed))
    pseudo = kmeans(x, 4, np.random.default_rng(seed)).assignment  # the same draws
    expected, fraction = naive_purity_delta(x, pseudo, 0.9)
    assert choice.rule == "purity"
    assert choice.delta == pytest.approx(expected, abs=1e-6)
    assert choice.pure_fraction == pytest.approx(fraction)
    assert choice.n_centres == 48


def test_diagnostics_match_dense_counts_before_and_after_the_picks(
    rng: np.random.Generator,
) -> None:
    x = rng.normal(size=(150, 4)).astype(np.float32)
    delta = 1.2
    distances = cdist(x.astype(np.float64), x.astype(np.float64))
    assert not (np.abs(distances - delta) < 1e-5).any()  # no pair that float32 could flip
    labeled = np.zeros(150, bool)
    labeled[[4, 60, 99, 140]] = True
    strategy = make_strategy("probcover", delta=delta, normalize=False)
    selection = strategy.select(Pool(embeddings=x), labeled, 8, np.random.default_rng(2))
    within = distances < delta
    balls = within.sum(axis=1) - 1  # other points: the centre itself is not counted
    after = labeled.copy()
    after[selection.indices] = True
    assert selection.metrics == pytest.approx(
        {
            "delta": delta,
            "ball_mean": balls.mean(),
            "ball_median": np.median(balls),
            "coverage_before": within[labeled].any(axis=0).mean(),
            "coverage_after": within[after].any(axis=0).mean(),
        }
    )
    assert selection.metrics["coverage_after"] > selection.metrics["coverage_before"] > 0
    assert any("given explicitly" in note for note in selection.notes)


def test_purity_rule_reports_its_delta_and_purity(rng: np.random.Generator) -> None:
    x, _ = blobs(rng)
    selection = make_strategy("probcover", n_classes=4, purity=0.9).select(
        Pool(embeddings=x), np.zeros(120, bool), 4, np.random.default_rng(7)
    )
    unit = prepare_features(x, "embeddings", normalize=True)  # as the strategy sees them
    choice = ProbCover(n_classes=4, purity=0.9).choose_delta(unit, np.random.default_rng(7))
    assert selection.metrics["delta"] == choice.delta
    assert selection.metrics["delta_purity"] == choice.pure_fraction >= 0.9
    assert selection.metrics["coverage_before"] == 0
    assert "purity rule: k-means with k=4" in selection.notes[0]
    assert "alpha=0.9" in selection.notes[0]


def test_a_degenerate_delta_warns_once_per_selection_and_notes_it() -> None:
    x = np.arange(20, dtype=np.float64)[:, None]  # one apart: a ball of radius 0.5 is a point
    strategy = make_strategy("probcover", delta=0.5, normalize=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        selection = strategy.select(
            Pool(embeddings=x), np.zeros(20, bool), 5, np.random.default_rng(0)
        )
    degenerate = [w for w in caught if issubclass(w.category, DegenerateDeltaWarning)]
    assert len(degenerate) == 1
    message = str(degenerate[0].message)
    assert message in selection.notes
    assert "delta=0.5 gives balls of 0 other points on average" in message
    assert "pass delta explicitly" in message.lower()
    assert selection.metrics["ball_mean"] == selection.metrics["ball_median"] == 0


def test_balls_of_two_other_points_on_average_are_not_degenerate() -> None:
    x = np.array([[0.0], [0.1], [0.2], [0.15], [5.0], [9.0]])  # balls: 3, 3, 3, 3, 0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDeltaWarning)
        selection = make_strategy("probcover", delta=0.5, normalize=False).select(
            Pool(embeddings=x), np.zeros(6, bool), 2, np.random.default_rng(0)
        )
    assert selection.metrics["ball_mean"] == 2.0
    assert selection.metrics["ball_median"] == 3.0
    assert not any("degenerate" in note for note in selection.notes)


def test_select_command_prints_the_metrics_and_warns_once_on_stderr(tmp_path: Path) -> None:
    alsys = shutil.which("alsys", path=str(Path(sys.executable).parent))
    assert alsys, "the alsys console script is not installed next to this interpreter"
    x = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)
    np.save(tmp_path / "pool.npy", x)
    (tmp_path / "labeled.txt").write_text("3 17\n")
    result = subprocess.run(
        [
            alsys,
            "select",
            "--embeddings",
            str(tmp_path / "pool.npy"),
            "--labeled",
            str(tmp_path / "labeled.txt"),
            "--budget",
            "4",
            "--strategy",
            "probcover",
            "--param",
            "delta=0.05",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["metrics"]["delta"] == pytest.approx(0.05)
    assert report["metrics"]["ball_mean"] == 0
    assert report["metrics"]["coverage_before"] == pytest.approx(2 / 200)
    assert report["metrics"]["coverage_after"] == pytest.approx(6 / 200)
    assert result.stderr.count("DegenerateDeltaWarning") == 1
    assert sum("degenerate" in note for note in report["notes"]) == 1
