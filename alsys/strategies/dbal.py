"""DBAL (Gal, Islam and Ghahramani 2017): max entropy of the MC-dropout averaged prediction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsys.strategies.base import FloatArray
from alsys.strategies.uncertainty import MCDropoutStrategy, entropy_scores


@dataclass(frozen=True)
class DBAL(MCDropoutStrategy):
    """Largest H[mean_t p_t] first, with p_t the T_mc stochastic forward passes."""

    name = "dbal"

    def priority_from_mc(self, mc_probs: FloatArray) -> FloatArray:
        # The mean in float64 without a float64 copy of every pass (the same sums, in order).
        return entropy_scores(np.asarray(mc_probs).mean(axis=0, dtype=np.float64))
