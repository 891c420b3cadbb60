"""BALD (Houlsby et al. 2011) with MC dropout: top-b by mutual information (eq. 2.8-2.9)."""

from __future__ import annotations

from dataclasses import dataclass

from alsys.strategies.base import FloatArray
from alsys.strategies.uncertainty import MCDropoutStrategy, bald_scores


@dataclass(frozen=True)
class BALD(MCDropoutStrategy):
    """Largest I(y; w | x) = H[mean p] - mean H[p] first.

    In the SSL setting the linear head needs dropout, else every MC pass is the same and the
    score is 0 everywhere (the reference code's head has none).
    """

    name = "bald"

    def priority_from_mc(self, mc_probs: FloatArray) -> FloatArray:
        return bald_scores(mc_probs)
