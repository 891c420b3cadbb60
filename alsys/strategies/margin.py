"""Margin (Scheffer et al. 2001): the points with the smallest gap between the top two classes."""

from __future__ import annotations

from dataclasses import dataclass

from alsys.strategies.base import FloatArray
from alsys.strategies.uncertainty import ProbabilityStrategy, margin_scores


@dataclass(frozen=True)
class Margin(ProbabilityStrategy):
    """Smallest Q_M = P1 - P2 first (eq. 2.6). The reported score is P1 - P2."""

    name = "margin"

    def priority_from_probs(self, probs: FloatArray) -> FloatArray:
        return -margin_scores(probs)

    def report(self, priority: float) -> float:
        return -priority
