from __future__ import annotations

import numpy as np

from alsys.strategies import Pool, make_strategy


def test_random_is_uniform_over_the_unlabeled_pool() -> None:
    pool = Pool(embeddings=np.ones((10, 2)))
    mask = np.zeros(10, dtype=bool)
    mask[:5] = True
    counts = np.zeros(10)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        counts[make_strategy("random").select(pool, mask, 1, rng).indices] += 1
    assert counts[:5].sum() == 0
    assert np.all(np.abs(counts[5:] / 2000 - 0.2) < 0.04)
