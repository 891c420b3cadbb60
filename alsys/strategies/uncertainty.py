"""Uncertainty scores (thesis eq. 2.5-2.8) and the top-b machinery the model-based strategies share.

Every score takes probabilities and returns one number per point. Conventions follow the thesis:
``least_confidence_scores`` is Q_LC = P1 and ``margin_scores`` is Q_M = P1 - P2 (both: smaller is
more uncertain); ``entropy_scores`` and ``bald_scores`` grow with uncertainty.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy

from alsys.errors import InputError
from alsys.strategies.base import (
    COLD_START_NOTE,
    BoolArray,
    FloatArray,
    Inputs,
    Pool,
    Selection,
    Strategy,
    random_selection,
    top_k_tiebreak,
)

# bald_scores works on blocks of points of at most this many MC probabilities (T x rows x C).
BALD_BLOCK_ENTRIES = 2**20


def least_confidence_scores(probs: FloatArray) -> FloatArray:
    """Q_LC = P1, the top class probability (eq. 2.5). probs: (n, C) -> (n,)."""
    return np.asarray(probs, dtype=np.float64).max(axis=-1)  # type: ignore[no-any-return]


def margin_scores(probs: FloatArray) -> FloatArray:
    """Q_M = P1 - P2, the gap between the two most probable classes (eq. 2.6). (n, C) -> (n,)."""
    top2 = np.partition(np.asarray(probs, dtype=np.float64), -2, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def entropy_scores(probs: FloatArray) -> FloatArray:
    """Q_E = -sum_c p_c log p_c in nats (eq. 2.7). probs: (..., C) -> (...)."""
    return -xlogy(probs, probs).sum(axis=-1)  # type: ignore[no-any-return]


def bald_scores(mc_probs: FloatArray) -> FloatArray:
    """Mutual information I(y; w) = H[mean_t p_t] - mean_t H[p_t] (eq. 2.8).

    mc_probs: (T_mc, n, C) MC-dropout samples -> (n,), >= 0 up to rounding.
    """
    mc = np.asarray(mc_probs)
    scores = np.empty(mc.shape[1])
    # Blocks of points: each value is computed as over the whole array (the same reductions in
    # the same order), without a float64 copy of it and its entropies (2 x 8 T n C bytes).
    rows = max(1, BALD_BLOCK_ENTRIES // max(1, mc.shape[0] * mc.shape[2]))
    for start in range(0, mc.shape[1], rows):
        block = np.asarray(mc[:, start : start + rows], dtype=np.float64)
        scores[start : start + rows] = entropy_scores(block.mean(axis=0)) - entropy_scores(
            block
        ).mean(axis=0)
    return scores


def cold_start_or_fail(name: str, field: str, labeled_mask: BoolArray) -> str:
    """A model-based strategy without model output may only draw at random before any label."""
    if labeled_mask.any():
        raise InputError(
            field, f"strategy {name} needs {field} from a model trained on the labeled points"
        )
    return f"{COLD_START_NOTE}: no model yet, so {name} drew its batch at random with the seed"


def mc_probs_or_none(name: str, pool: Pool) -> FloatArray | None:
    """The MC samples; ``None`` before any model output. Single probabilities are refused."""
    if pool.mc_probs is None:
        if pool.probs is not None:
            raise InputError(
                "mc_probs",
                f"strategy {name} needs MC-dropout samples of shape (T_mc, n, classes), "
                "not single probabilities (n, classes)",
            )
        return None
    return np.asarray(pool.mc_probs)


@dataclass(frozen=True)
class TopScoreStrategy(Strategy):
    """Takes the ``budget`` unlabeled points of highest priority; ties are ordered by the rng."""

    @abstractmethod
    def priorities(self, pool: Pool) -> FloatArray | None:
        """(n,) higher = chosen first; ``None`` when the model output this needs is absent."""

    @property
    def score_field(self) -> str:
        return "probs"

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        priority = self.priorities(pool)
        if priority is None:
            note = cold_start_or_fail(self.name, self.score_field, labeled_mask)
            return random_selection(labeled_mask, budget, rng, note)
        eligible = np.flatnonzero(~labeled_mask)
        chosen = eligible[top_k_tiebreak(priority[eligible], budget, rng)]
        details = tuple(
            {"reason": self.name, "score": float(self.report(priority[i]))} for i in chosen
        )
        return Selection(chosen.astype(np.int64), details)

    def report(self, priority: float) -> float:
        """The score to show a person, in the thesis's sign convention."""
        return priority


@dataclass(frozen=True)
class ProbabilityStrategy(TopScoreStrategy):
    """Scores class probabilities; MC samples are averaged when only those are given."""

    inputs = Inputs(probs=True)

    def priorities(self, pool: Pool) -> FloatArray | None:
        probs = pool.class_probs()
        return None if probs is None else self.priority_from_probs(probs)

    @abstractmethod
    def priority_from_probs(self, probs: FloatArray) -> FloatArray: ...


@dataclass(frozen=True)
class MCDropoutStrategy(TopScoreStrategy):
    """Scores MC-dropout samples (T_mc, n, classes)."""

    inputs = Inputs(mc_samples=True)

    @property
    def score_field(self) -> str:
        return "mc_probs"

    def priorities(self, pool: Pool) -> FloatArray | None:
        mc_probs = mc_probs_or_none(self.name, pool)
        return None if mc_probs is None else self.priority_from_mc(mc_probs)

    @abstractmethod
    def priority_from_mc(self, mc_probs: FloatArray) -> FloatArray: ...
