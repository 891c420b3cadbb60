"""FALCUN (Gilhuber, Beer, Ma and Seidl, ECML PKDD 2024, "FALCUN: A Simple and Efficient Deep
Active Learning Strategy"): uncertainty and diversity mixed in the class-probability space.

Over the unlabeled points (the candidates), with p(x) the model's class probabilities:

- uncertainty u(x) = 1 - (p1 - p2), the margin's complement (eq. 1);
- diversity d(x): before the first pick d = u (eq. 3); after each pick q,
  d <- min(d, ||p(x) - p(q)||_1) (eqs. 2, 4), then min-max scaled over the candidates;
- relevance r(x) = (u(x) + d(x))^gamma (eq. 5); the next pick is drawn with probability
  r / sum r among the candidates not yet picked (eq. 6), uniformly if every r is 0.

As scikit-activeml 1.0.1's ``Falcun`` (the peer the project tests against): gamma = 10, the
running minimum taken against the previous step's scaled d, every draw one uniform of the rng
against the normalised cumulative r (:func:`alsys.strategies.badge.draw_proportional`). The
authors' code (github.com/sobermeier/falcun, ``custom_dist="distance_unc_norm"``) keeps d
unscaled and scales it only inside r, over the points not yet picked; its first step is r =
(scaled u + u)^gamma where scikit-activeml's is (2u)^gamma. The labeled points play no part in
either (the diversity is among this batch's picks).

At the cold start there is no model: the batch is drawn at random with the rng, as every
model-based strategy here does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsys.strategies.badge import draw_proportional
from alsys.strategies.base import (
    BoolArray,
    FloatArray,
    Inputs,
    IntArray,
    Pool,
    Selection,
    Strategy,
    check_number,
    progress,
    random_selection,
)
from alsys.strategies.uncertainty import cold_start_or_fail, margin_scores

# Candidates per block of the L1 distances to the last pick (bounds the (block, C) temporary).
L1_BLOCK = 8192


def falcun_greedy(
    probs: FloatArray,
    budget: int,
    rng: np.random.Generator,
    gamma: float = 10.0,
    show_progress: bool = False,
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
    """FALCUN's batch among the rows of ``probs`` (m, C), the candidates.

    Returns:
        (picks (budget,) candidate positions in draw order, the uncertainty u, the scaled
        diversity d and the draw probability r / sum r of each pick at its step).
    """
    p = np.asarray(probs, dtype=np.float64)
    m = p.shape[0]
    uncertainty = 1.0 - np.abs(margin_scores(p))
    diversity = uncertainty.copy()
    picked = np.zeros(m, dtype=bool)
    picks = np.empty(budget, dtype=np.int64)
    shown = np.empty((3, budget))
    for step in progress(range(budget), total=budget, desc="falcun", enabled=show_progress):
        if step > 0:
            last = p[picks[step - 1]]
            for start in range(0, m, L1_BLOCK):
                block = slice(start, start + L1_BLOCK)
                np.minimum(
                    diversity[block], np.abs(p[block] - last).sum(axis=1), out=diversity[block]
                )
            low = diversity.min()
            spread = diversity.max() - low
            diversity -= low
            if spread > 0:
                diversity /= spread
        relevance = (uncertainty + diversity) ** gamma
        relevance[picked] = 0.0
        if relevance.sum() == 0:
            relevance = (~picked).astype(np.float64)
        pick = draw_proportional(relevance, rng)
        picks[step] = pick
        shown[:, step] = uncertainty[pick], diversity[pick], relevance[pick] / relevance.sum()
        picked[pick] = True
    return picks, shown[0], shown[1], shown[2]


@dataclass(frozen=True)
class FALCUN(Strategy):
    """Attributes:
    gamma: the exponent of the relevance (u + d)^gamma; 0 is uniform sampling, large values
        approach taking the most relevant point. 10, the paper's and scikit-activeml's default.
    """

    name = "falcun"
    inputs = Inputs(probs=True)

    gamma: float = 10.0

    def __post_init__(self) -> None:
        check_number(self.name, "gamma", self.gamma, low=0)

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        probs = pool.class_probs()
        if probs is None:
            note = cold_start_or_fail(self.name, "probs", labeled_mask)
            return random_selection(labeled_mask, budget, rng, note)
        candidates = np.flatnonzero(~labeled_mask)
        picks, uncertainty, diversity, chance = falcun_greedy(
            probs[candidates], budget, rng, float(self.gamma), show_progress
        )
        details = tuple(
            {
                "reason": self.name,
                "uncertainty": float(u),
                "diversity": float(d),
                "draw_probability": float(c),
            }
            for u, d, c in zip(uncertainty, diversity, chance, strict=True)
        )
        metrics = {
            "uncertainty_mean": float(np.mean(uncertainty)),
            "draw_probability_mean": float(np.mean(chance)),
        }
        return Selection(candidates[picks].astype(np.int64), details, (), metrics)
