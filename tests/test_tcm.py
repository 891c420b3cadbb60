"""TCM: TypiClust while the labeled set is small, then Margin (Doucet et al. 2024)."""

from __future__ import annotations

import numpy as np
import pytest

from alsys.errors import InputError
from alsys.strategies import Pool, make_strategy
from tests.conftest import blobs
from tests.strategy_contract import softmax


def pool_with_probs(seed: int = 0) -> Pool:
    rng = np.random.default_rng(seed)
    x, _ = blobs(rng, n_per_blob=40, n_blobs=4)
    return Pool(embeddings=x, probs=softmax(rng.normal(size=(x.shape[0], 4)) * 2))


def mask_of(n: int, count: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(9).choice(n, count, replace=False)] = True
    return mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_below_the_switch_it_is_typiclust_pick_for_pick(seed: int) -> None:
    pool = pool_with_probs(seed)
    for n_labeled in (0, 3):
        mask = mask_of(pool.n, n_labeled)
        tcm = make_strategy("tcm", n_classes=4).select(pool, mask, 6, np.random.default_rng(seed))
        typ = make_strategy("typiclust").select(pool, mask, 6, np.random.default_rng(seed))
        np.testing.assert_array_equal(tcm.indices, typ.indices)
        assert {why["phase"] for why in tcm.details} == {"typiclust"}
        assert tcm.metrics["tcm_margin"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_from_the_switch_on_it_is_margin_pick_for_pick(seed: int) -> None:
    pool = pool_with_probs(seed)
    mask = mask_of(pool.n, 4)
    tcm = make_strategy("tcm", n_classes=4).select(pool, mask, 6, np.random.default_rng(seed))
    margin = make_strategy("margin").select(pool, mask, 6, np.random.default_rng(seed))
    np.testing.assert_array_equal(tcm.indices, margin.indices)
    assert {why["phase"] for why in tcm.details} == {"margin"}
    assert "this round runs margin" in tcm.notes[0]


def test_switch_per_class_moves_the_switch_and_probs_give_the_class_count() -> None:
    pool = pool_with_probs()
    mask = mask_of(pool.n, 7)
    late = make_strategy("tcm", switch_per_class=2).select(pool, mask, 5, np.random.default_rng(0))
    early = make_strategy("tcm").select(pool, mask, 5, np.random.default_rng(0))
    assert late.details[0]["phase"] == "typiclust"  # 7 < 2 x 4 classes (read from probs)
    assert early.details[0]["phase"] == "margin"  # 7 >= 1 x 4


def test_without_classes_or_probs_after_the_cold_start_it_says_what_to_give() -> None:
    pool = Pool(embeddings=pool_with_probs().embeddings)
    with pytest.raises(InputError, match=r"tcm\.n_classes"):
        make_strategy("tcm").select(pool, mask_of(pool.n, 4), 3, np.random.default_rng(0))
    with pytest.raises(InputError, match="switch_per_class"):
        make_strategy("tcm", switch_per_class=-1)
    with pytest.raises(InputError, match="max_clusters"):
        make_strategy("tcm", max_clusters=0)
