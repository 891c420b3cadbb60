"""Least confidence (Lewis 1995): the points whose top class probability P1 is lowest."""

from __future__ import annotations

from dataclasses import dataclass

from alsys.strategies.base import FloatArray
from alsys.strategies.uncertainty import ProbabilityStrategy, least_confidence_scores


@dataclass(frozen=True)
class LeastConfidence(ProbabilityStrategy):
    """Smallest Q_LC = P1 first (eq. 2.5). The reported score is P1."""

    name = "least_confidence"

    def priority_from_probs(self, probs: FloatArray) -> FloatArray:
        return -least_confidence_scores(probs)

    def report(self, priority: float) -> float:
        return -priority
