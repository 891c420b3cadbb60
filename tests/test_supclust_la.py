"""Label-aware SUPClust: clusters that look like the classes bought least are visited first."""

from __future__ import annotations

import numpy as np
import pytest

from alsys.errors import InputError
from alsys.strategies import Pool, make_strategy
from alsys.strategies.supclust_la import cluster_classes


def imbalanced(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three separated blobs of 240, 60 and 30 points: a head class and two tail classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8)) * 10
    ids = np.repeat(np.arange(3), [240, 60, 30])
    return (centres[ids] + rng.normal(size=(ids.size, 8))).astype(np.float32), ids


def bought(ids: np.ndarray, per_class: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(ids.size, dtype=bool)
    for c, count in enumerate(per_class):
        mask[rng.choice(np.flatnonzero(ids == c), count, replace=False)] = True
    return mask


@pytest.mark.parametrize("seed", range(4))
def test_cold_start_is_supclust_pick_for_pick(seed: int) -> None:
    x, _ = imbalanced(seed)
    mask = np.zeros(x.shape[0], dtype=bool)
    la = make_strategy("supclust_la").select(Pool(embeddings=x), mask, 5, np.random.default_rng(7))
    sup = make_strategy("supclust").select(Pool(embeddings=x), mask, 5, np.random.default_rng(7))
    np.testing.assert_array_equal(la.indices, sup.indices)
    assert la.details == sup.details


def test_with_the_head_class_bought_most_it_buys_the_tail_classes() -> None:
    plain_head_picks = 0
    for seed in range(6):
        x, ids = imbalanced(seed)
        mask = bought(ids, (6, 1, 1), seed)
        pool = Pool(embeddings=x, labels=np.where(mask, ids, -1))
        la = make_strategy("supclust_la").select(pool, mask, 2, np.random.default_rng(seed))
        plain = make_strategy("supclust").select(pool, mask, 2, np.random.default_rng(seed))
        assert sorted(ids[la.indices].tolist()) == [1, 2]
        assert {why["class_labeled"] for why in la.details} == {1}
        assert sorted(why["looks_like"] for why in la.details) == [1, 2]
        plain_head_picks += int((ids[plain.indices] == 0).sum())
    assert plain_head_picks >= 4  # SUPClust visits the head class's big clusters first


def test_cluster_classes_is_the_majority_of_nearest_labels() -> None:
    x = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]], dtype=np.float32)
    assignment = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([3, -1, -1, -1, 1, -1])
    mask = labels >= 0
    looks_like, count = cluster_classes(x, assignment, labels, mask, 4)
    np.testing.assert_array_equal(looks_like, [3, 1, 1, -1])  # 9.0 is nearer 5.1 than 0.0
    np.testing.assert_array_equal(count, [1, 1, 1, 0])


def test_labels_are_required_after_the_cold_start_and_only_for_labeled_rows() -> None:
    x, ids = imbalanced(0)
    mask = bought(ids, (2, 1, 1), 0)
    with pytest.raises(InputError, match="classes of the labeled points"):
        make_strategy("supclust_la").select(Pool(embeddings=x), mask, 2, np.random.default_rng(0))
    leaked = Pool(embeddings=x, labels=ids)  # every class, unlabeled rows included
    with pytest.raises(InputError, match="exactly for the labeled points"):
        make_strategy("supclust_la").select(leaked, mask, 2, np.random.default_rng(0))
