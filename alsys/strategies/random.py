"""Random: uniform sampling from the unlabeled pool (thesis 2.1.2), the cold-start baseline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsys.strategies.base import BoolArray, Pool, Selection, Strategy, random_selection


@dataclass(frozen=True)
class Random(Strategy):
    """Draws ``budget`` unlabeled points uniformly, without replacement."""

    name = "random"

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        return random_selection(labeled_mask, budget, rng)
