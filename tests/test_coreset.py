from __future__ import annotations

import numpy as np

from alsys.strategies import Pool, kcenter_greedy, make_strategy


def naive_kcenter(x: np.ndarray, labeled: list[int], budget: int) -> list[int]:
    chosen: list[int] = []
    for _ in range(budget):
        centres = labeled + chosen
        best, best_distance = -1, -1.0
        for i in range(len(x)):
            if i in centres:
                continue
            distance = min(float(np.linalg.norm(x[i] - x[c])) for c in centres)
            if distance > best_distance:
                best, best_distance = i, distance
        chosen.append(best)
    return chosen


def test_kcenter_matches_naive_loop(rng: np.random.Generator) -> None:
    x = rng.normal(size=(80, 5)).astype(np.float32)
    mask = np.zeros(80, bool)
    mask[[3, 17]] = True
    chosen, distances = kcenter_greedy(x, mask, 6, np.random.default_rng(0))
    assert chosen.tolist() == naive_kcenter(x, [3, 17], 6)
    assert np.all(np.diff(distances) <= 1e-6)  # the covering radius never grows


def test_empty_labeled_set_starts_at_random_and_records_it() -> None:
    x = np.random.default_rng(0).normal(size=(50, 3))
    picks = {
        int(
            make_strategy("coreset")
            .select(Pool(embeddings=x), np.zeros(50, bool), 2, np.random.default_rng(s))
            .indices[0]
        )
        for s in range(8)
    }
    assert len(picks) > 1
    selection = make_strategy("coreset").select(
        Pool(embeddings=x), np.zeros(50, bool), 2, np.random.default_rng(0)
    )
    assert "random" in selection.notes[0]


def test_corners_of_a_square_are_covered_first() -> None:
    square = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5], [5, 4], [4, 5]], float)
    mask = np.zeros(7, bool)
    mask[4] = True  # the centre is labeled
    chosen = make_strategy("coreset").select(
        Pool(embeddings=square), mask, 4, np.random.default_rng(0)
    )
    assert set(chosen.indices.tolist()) == {0, 1, 2, 3}
