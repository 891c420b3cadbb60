"""BADGE (Ash, Zhang, Krishnamurthy, Langford and Agarwal 2020): k-means++ seeding over gradient
embeddings.

The gradient embedding of x is the gradient of the cross-entropy loss at the model's own
prediction with respect to the last linear layer, g(x) = (p - onehot(argmax p)) (x) f(x): the
outer product of a = p - onehot (C values) and the penultimate features f (d values), C*d values
in all. Its norm grows with uncertainty; k-means++ seeding spreads the batch out.

g is never built: the squared distance factorises,
``||g_i - g_j||^2 = ||a_i||^2 ||f_i||^2 + ||a_j||^2 ||f_j||^2 - 2 (a_i . a_j)(f_i . f_j)``,
so a seeding step costs O(n (C + d)) and the memory is O(n (C + d)), never O(n C d). The latest
original code (JordanAsh/badge, ``query_strategies/badge_sampling.py``) uses the same identity
(the speed-up of Zhang et al., arXiv:2306.09910, appendix D).

Seeding, as the original code and scikit-activeml 1.0.1 (``skactiveml.pool.Badge``) both do:

1. the first centre is the unlabeled point of largest gradient norm (``init_centers``:
   ``argmax`` of the norm; scikit-activeml: ``argmax`` of the squared norm, the same point);
2. each next centre is drawn with probability D(x)^2 / sum D^2 (D^2 sampling), D(x) the
   distance from g(x) to the nearest centre chosen so far.

The labeled set plays no part: both compute gradient embeddings of the unlabeled points only and
seed among them, so labeled points are neither candidates nor centres (the paper's Algorithm 1
does the same). The two differ in one thing, offered as :attr:`BADGE.seeding`: scikit-activeml
keeps the first step's D^2 = ||g||^2 (the distance to the origin) as the running minimum it
updates, so the zero gradient acts as one more centre and D(x) never exceeds ||g(x)||.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from alsys.errors import InputError
from alsys.strategies.base import (
    BoolArray,
    FloatArray,
    Inputs,
    IntArray,
    Pool,
    Selection,
    Strategy,
    argmax_tiebreak,
    check_choice,
    check_flag,
    progress,
    random_selection,
)
from alsys.strategies.uncertainty import cold_start_or_fail

SEEDINGS = ("badge", "skactiveml")
# A factorised squared distance below this fraction of ||g_i||^2 + ||g_j||^2 is rounding noise
# (the identity cancels to ~1e-16 of that sum) and counts as 0: a point that coincides with a
# centre is never drawn because of it.
CANCELLATION = 1e-12


def gradient_factors(features: FloatArray, probs: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The two factors of the gradient embeddings, float64: a = p - onehot(argmax p) (n, C)
    and f (n, d). g_i = outer(a_i, f_i); ``argmax`` takes the first of tied classes."""
    p = np.array(probs, dtype=np.float64)
    p[np.arange(p.shape[0]), p.argmax(axis=1)] -= 1.0
    return p, np.asarray(features, dtype=np.float64)


def gradient_embeddings(features: FloatArray, probs: FloatArray) -> FloatArray:
    """The explicit (n, C*d) gradient embeddings, class-major as in the original code. For small
    pools and checks only: BADGE itself never builds them."""
    a, f = gradient_factors(features, probs)
    return (a[:, :, None] * f[:, None, :]).reshape(a.shape[0], -1)


def gradient_sq_distances(a: FloatArray, f: FloatArray, centre: int) -> FloatArray:
    """||g_i - g_centre||^2 for every row i, factorised, in O(n (C + d)): (n,) float64, >= 0."""
    g_sq = np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", f, f)
    return _sq_distances_to(a, f, g_sq, centre)


def _sq_distances_to(a: FloatArray, f: FloatArray, g_sq: FloatArray, centre: int) -> FloatArray:
    cross = (a @ a[centre]) * (f @ f[centre])
    sq: FloatArray = g_sq + g_sq[centre] - 2.0 * cross
    sq[sq <= CANCELLATION * (g_sq + g_sq[centre])] = 0.0
    return sq


def draw_proportional(weights: FloatArray, rng: np.random.Generator) -> int:
    """One index drawn with probability weights / weights.sum() (weights >= 0, sum > 0).

    One uniform from ``rng`` against the normalised cumulative sum, as ``RandomState.choice``
    with ``p=`` does, so with the same MT19937 stream the draw is the same as scikit-activeml's.
    """
    cdf = np.cumsum(weights / weights.sum())
    cdf /= cdf[-1]
    return int(np.searchsorted(cdf, rng.random(), side="right"))


def kmeanspp_seeding(
    a: FloatArray,
    f: FloatArray,
    budget: int,
    rng: np.random.Generator,
    origin: bool = False,
    show_progress: bool = False,
) -> tuple[IntArray, FloatArray, int]:
    """k-means++ seeding over the gradient embeddings outer(a_i, f_i) of the candidates.

    Args:
        a: (m, C) p - onehot of the candidates, float64.
        f: (m, d) their features, float64.
        budget: how many to choose, <= m.
        rng: the D^2 draws and the tie-breaks of the first centre.
        origin: count the zero gradient as a centre (scikit-activeml's D^2).

    Returns:
        (positions (budget,) in the order chosen; D^2 of each at the time it was chosen, NaN
        for the first centre; how many were drawn uniformly because every remaining candidate
        had D = 0).
    """
    g_sq = np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", f, f)
    min_sq = g_sq.copy() if origin else np.full(g_sq.shape[0], np.inf)
    available = np.ones(g_sq.shape[0], dtype=bool)
    chosen = np.empty(budget, dtype=np.int64)
    at_pick = np.full(budget, np.nan)
    uniform = 0
    for step in progress(range(budget), total=budget, desc="badge", enabled=show_progress):
        if step == 0 and g_sq.max() > 0:
            current = argmax_tiebreak(g_sq, rng)
        else:
            weights = np.where(available, min_sq, 0.0) if step else np.zeros_like(g_sq)
            if not weights.sum() > 0:  # every gradient is zero, or on a centre: uniform
                weights = available.astype(np.float64)
                uniform += 1
            current = draw_proportional(weights, rng)
            at_pick[step] = min_sq[current] if step else np.nan
        chosen[step] = current
        available[current] = False
        if step == budget - 1:
            break
        np.minimum(min_sq, _sq_distances_to(a, f, g_sq, current), out=min_sq)
        min_sq[current] = 0.0
    return chosen, at_pick, uniform


@dataclass(frozen=True)
class BADGE(Strategy):
    """Batch active learning by diverse gradient embeddings.

    Reads the features (``Pool.embeddings``: the classifier's penultimate layer in FSL, the SSL
    embeddings in SSL) and the class probabilities (``Pool.probs``; the mean of
    ``Pool.mc_probs`` when only MC samples are given). Before any model (no probabilities and
    nothing labeled) it draws at random and says so. Labeled points are ignored, as in the
    original code (see the module docstring).

    Each pick's details hold its gradient norm ||g(x)|| and ``distance``, the D it was drawn
    with (``None`` for the first centre, taken by its norm).

    Memory: two float64 copies, 8 n (C + d) bytes (about 245 MB for 50,000 x 512 features and
    100 classes); time: O(b n (C + d)).

    Attributes:
        seeding: "badge" (default): D is the distance to the nearest chosen centre, as in the
            original code's ``init_centers`` (JordanAsh/badge) and the paper. "skactiveml": D
            is also capped by the distance to the zero gradient, ||g(x)||, as
            scikit-activeml 1.0.1's ``Badge`` computes it. Both take the largest gradient norm
            first and draw the rest by D^2.
        normalize: L2-normalise the features first. Off, as in the original code, whose
            penultimate features are raw (as :class:`~alsys.strategies.coreset.Coreset`).
    """

    name = "badge"
    inputs = Inputs(features=True, probs=True)

    seeding: str = "badge"
    normalize: bool = False

    def __post_init__(self) -> None:
        check_choice(self.name, "seeding", self.seeding, SEEDINGS)
        check_flag(self.name, "normalize", self.normalize)

    def _features(self, pool: Pool, rows: IntArray) -> FloatArray:
        x = np.asarray(self._require_embeddings(pool))[rows].astype(np.float64)
        if self.normalize:
            norms = np.linalg.norm(x, axis=1)
            if (norms == 0).any():
                row = int(rows[np.flatnonzero(norms == 0)[0]])
                raise InputError("embeddings", f"row {row} has zero norm and cannot be normalised")
            x /= norms[:, None]
        return x

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        probs = pool.class_probs(np.float64)
        if probs is None:
            note = cold_start_or_fail(self.name, "probs", labeled_mask)
            return random_selection(labeled_mask, budget, rng, note)
        candidates = np.flatnonzero(~labeled_mask)
        a, f = gradient_factors(self._features(pool, candidates), probs[candidates])
        positions, at_pick, uniform = kmeanspp_seeding(
            a, f, budget, rng, self.seeding == "skactiveml", show_progress
        )
        norms = np.linalg.norm(a[positions], axis=1) * np.linalg.norm(f[positions], axis=1)
        details: tuple[dict[str, Any], ...] = tuple(
            {
                "reason": "badge",
                "gradient_norm": float(norm),
                "distance": None if np.isnan(sq) else float(np.sqrt(sq)),
            }
            for norm, sq in zip(norms, at_pick, strict=True)
        )
        notes: tuple[str, ...] = ()
        if uniform:
            notes = (
                f"{uniform} of {budget} picks drawn uniformly: every remaining gradient "
                "embedding was zero or on a chosen centre (D = 0 for all)",
            )
        return Selection(candidates[positions].astype(np.int64), details, notes)
