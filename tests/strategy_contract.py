"""The contract every query strategy keeps.

tests/test_contract.py runs it over every registered strategy, with its default parameters,
automatically: a new strategy in the registry is under contract with no line of test. A
strategy's own test module may subclass it for other parameter sets.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pytest

from alsys.strategies import (
    Pool,
    Selection,
    Strategy,
    get_inputs,
    make_strategy,
    validate_selection,
    with_n_classes,
)
from tests.conftest import blobs


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class StrategyContract:
    """Set ``name`` (and ``params``) in a subclass named Test*; every test below then runs."""

    name: ClassVar[str]
    params: ClassVar[dict[str, Any]] = {}
    n_classes: ClassVar[int] = 4

    def make_pool(self, seed: int = 0) -> Pool:
        """Blobs with embeddings, probabilities, MC-dropout and feature-dropout samples (every
        strategy's input), and per-row scores for a strategy that declares it reads them."""
        rng = np.random.default_rng(seed)
        x, _ = blobs(rng, n_per_blob=30, n_blobs=self.n_classes)
        logits = rng.normal(size=(x.shape[0], self.n_classes)) * 2
        mc = softmax(logits[None] + rng.normal(size=(20, *logits.shape)))
        dropped = softmax(logits[None] + 2 * rng.normal(size=(3, *logits.shape)))
        scores = rng.normal(size=x.shape[0]) if get_inputs(self.name).scores else None
        return Pool(
            embeddings=x, probs=softmax(logits), mc_probs=mc, dropout_probs=dropped, scores=scores
        )

    def strategy(self) -> Strategy:
        """The strategy with ``params``; a parameter it declares for the number of classes gets
        the pool's, as in a trial."""
        return make_strategy(self.name, **with_n_classes(self.name, self.params, self.n_classes))

    def select(
        self, pool: Pool, mask: np.ndarray, budget: int, rng: np.random.Generator
    ) -> Selection:
        """The strategy's selection; a strategy that reads the labels bought gets the blob ids
        of the labeled points (and -1 elsewhere), as the loop gives the true classes."""
        if get_inputs(self.name).labels:
            ids = np.repeat(np.arange(self.n_classes), pool.n // self.n_classes)
            pool = dataclasses.replace(pool, labels=np.where(mask, ids, -1))
        return self.strategy().select(pool, mask, budget, rng)

    def labeled(self, n: int, count: int, seed: int = 5) -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        mask[np.random.default_rng(seed).choice(n, count, replace=False)] = True
        return mask

    @pytest.mark.parametrize(("n_labeled", "budget"), [(0, 4), (7, 10), (30, 1)])
    def test_selection_is_unique_in_range_unlabeled_and_exactly_budget(
        self, n_labeled: int, budget: int
    ) -> None:
        pool = self.make_pool()
        mask = self.labeled(pool.n, n_labeled)
        selection = self.select(pool, mask, budget, np.random.default_rng(0))
        chosen = validate_selection(selection.indices, mask, budget)
        assert chosen.shape == (budget,)
        assert len(selection.details) == budget

    def test_same_seed_same_selection(self) -> None:
        pool = self.make_pool()
        mask = self.labeled(pool.n, 8)
        first = self.select(pool, mask, 12, np.random.default_rng(42))
        second = self.select(pool, mask, 12, np.random.default_rng(42))
        np.testing.assert_array_equal(first.indices, second.indices)
        assert first.details == second.details

    def test_empty_labeled_set_works(self) -> None:
        pool = self.make_pool()
        mask = np.zeros(pool.n, dtype=bool)
        selection = self.select(pool, mask, 6, np.random.default_rng(1))
        validate_selection(selection.indices, mask, 6)

    def test_budget_equal_to_unlabeled_count(self) -> None:
        pool = self.make_pool()
        mask = self.labeled(pool.n, 100)
        budget = int((~mask).sum())
        selection = self.select(pool, mask, budget, np.random.default_rng(2))
        chosen = validate_selection(selection.indices, mask, budget)
        np.testing.assert_array_equal(np.sort(chosen), np.flatnonzero(~mask))

    def test_inputs_are_not_mutated(self) -> None:
        pool = self.make_pool()
        mask = self.labeled(pool.n, 9)
        names = ("embeddings", "probs", "mc_probs", "dropout_probs")
        before = {name: np.copy(getattr(pool, name)) for name in names}
        mask_before = mask.copy()
        self.select(pool, mask, 10, np.random.default_rng(3))
        for name, array in before.items():
            np.testing.assert_array_equal(getattr(pool, name), array)
        np.testing.assert_array_equal(mask, mask_before)

    def test_budget_beyond_unlabeled_pool_is_refused(self) -> None:
        from alsys.errors import InputError

        pool = self.make_pool()
        mask = self.labeled(pool.n, 100)
        with pytest.raises(InputError, match="budget"):
            self.select(pool, mask, 21, np.random.default_rng(0))
