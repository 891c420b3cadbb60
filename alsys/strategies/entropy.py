"""Entropy (Shannon 1948; Settles 2009): the points whose predictive entropy is largest."""

from __future__ import annotations

from dataclasses import dataclass

from alsys.strategies.base import FloatArray
from alsys.strategies.uncertainty import ProbabilityStrategy, entropy_scores


@dataclass(frozen=True)
class Entropy(ProbabilityStrategy):
    """Largest Q_E = -sum p log p first (eq. 2.7)."""

    name = "entropy"

    def priority_from_probs(self, probs: FloatArray) -> FloatArray:
        return entropy_scores(probs)
