"""BatchBALD (Kirsch, van Amersfoort and Gal 2019): greedy joint mutual information (eq. 2.10).

The batch A is grown one point at a time, each time adding the candidate x that maximises
I(y_A, y_x; w) = H(y_A, y_x) - sum_{i in A+x} E_w H(y_i | w). The joint entropy is computed
exactly over all class configurations of the batch while there are few enough of them, and
estimated from M sampled configurations (importance weighted, as in Kirsch et al.) beyond that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsys.strategies.base import (
    BoolArray,
    FloatArray,
    Inputs,
    IntArray,
    Pool,
    Selection,
    Strategy,
    argmax_tiebreak,
    check_number,
    progress,
    random_selection,
    top_k_tiebreak,
)
from alsys.strategies.parallel import map_blocks
from alsys.strategies.uncertainty import (
    bald_scores,
    cold_start_or_fail,
    entropy_scores,
    mc_probs_or_none,
)

# Sampled-configuration budget of Kirsch et al.: M = 40,000 / #classes.
SAMPLES_PER_CLASS_BUDGET = 40_000
# BatchBALD's default pre-filter: the top 1,000 unlabeled points by BALD (see BatchBALD).
DEFAULT_MAX_CANDIDATES = 1_000
# Candidates per GEMM in the joint-entropy step; bounds the (configs, chunk, C) temporary.
_TEMP_ELEMENTS = 4_000_000


def joint_entropy_with_candidates(
    joint: FloatArray, cand_probs: FloatArray, sampled: bool
) -> FloatArray:
    """H(y_A, y_x) for every candidate x.

    Args:
        joint: (T, F) p(configuration f of y_A | w_t). Exact mode: all C^|A| configurations,
            each row sums to 1. Sampled mode: F configurations drawn from p(y_A).
        cand_probs: (T, m, C) p(y_x | w_t) per candidate.
        sampled: whether ``joint`` holds sampled configurations.

    Returns:
        (m,) joint entropies in nats.
    """
    n_mc, m, n_classes = cand_probs.shape
    n_configs = joint.shape[1]
    # Importance weights 1/p(y_A) of sampled configurations; an exact enumeration weighs each 1.
    weights = 1.0 / joint.mean(axis=0) if sampled else np.ones(n_configs)
    chunk = max(1, _TEMP_ELEMENTS // max(1, n_configs * n_classes))

    def entropies(start: int) -> FloatArray:
        block = cand_probs[:, start : start + chunk, :]
        width = block.shape[1]
        # p(y_A = f, y_x = c) = mean_t p(f | w_t) p(c | w_t), as one GEMM.
        marg = (joint.T @ block.reshape(n_mc, width * n_classes)) / n_mc
        # p log p with 0 log 0 = 0: a log of at least the smallest normal float is finite, and
        # multiplied by p = 0 gives 0 (np.log and a multiply, in place of scipy's xlogy).
        plogp = np.maximum(marg, np.finfo(np.float64).tiny)
        np.log(plogp, out=plogp)
        plogp *= marg
        # sum_f w_f sum_c p log p: the configurations' weighted sum as one GEMV, then the
        # classes' (summing the short class axis first took 2.2x as long: 0.35 s against
        # 0.16 s for 1,000 candidates x 4,000 configurations x 10 classes).
        weighted = weights @ plogp
        return -weighted.reshape(width, n_classes).sum(axis=1)  # type: ignore[no-any-return]

    # The blocks of candidates are independent and memory-bound: one per thread.
    out = np.concatenate(map_blocks(entropies, range(0, m, chunk)))
    if sampled:
        out /= n_configs
    return out


def _sample_categorical(probs: FloatArray, rng: np.random.Generator) -> IntArray:
    """One draw per row of (S, K) non-negative weights."""
    cum = np.cumsum(probs, axis=1)
    u = np.asarray(rng.random(len(probs)))[:, None] * cum[:, -1:]
    labels: IntArray = np.minimum((cum < u).sum(axis=1), probs.shape[1] - 1)
    return labels


def batchbald_greedy(
    mc_probs: FloatArray,
    budget: int,
    rng: np.random.Generator,
    num_samples: int,
    show_progress: bool = False,
) -> tuple[IntArray, FloatArray]:
    """Greedy BatchBALD over the candidates in ``mc_probs``.

    Args:
        mc_probs: (T, m, C) MC-dropout samples of the candidates.
        budget: batch size b <= m.
        rng: draws the sampled configurations and breaks ties.
        num_samples: M, the number of sampled configurations once exact enumeration
            (C^|A| configurations) would exceed it.

    Returns:
        (positions (b,), joint mutual information of the batch after each addition (b,)).
    """
    probs = np.asarray(mc_probs, dtype=np.float64)
    n_mc, _, n_classes = probs.shape
    conditional = entropy_scores(probs).mean(axis=0)  # (m,) E_w H(y_x | w)
    joint = np.ones((n_mc, 1))
    sampled_models: IntArray | None = None  # the MC sample behind each sampled configuration
    # Sampled mode keeps each configuration's column of ``joint`` at mean 1 over the MC samples
    # (a product of b probabilities underflows to 0 within ~100 picks of 100 classes, and 0/0
    # then poisons every score); the log of the factors taken out is added back to the joint
    # entropy, which it shifts by their mean (the importance ratios do not change).
    log_scale: FloatArray | None = None
    chosen: list[int] = []
    gains: list[float] = []
    conditional_sum = 0.0
    for _ in progress(range(budget), total=budget, desc="batchbald", enabled=show_progress):
        if sampled_models is None and joint.shape[1] * n_classes > num_samples:
            # Switch to sampling: draw M configurations from the exact p(y_A).
            sampled_models = rng.integers(n_mc, size=num_samples)
            configs = _sample_categorical(joint[sampled_models], rng)
            joint = joint[:, configs]
            log_scale = np.zeros(joint.shape[1])
        if log_scale is not None:
            scale = joint.mean(axis=0)
            joint = joint / scale
            log_scale += np.log(scale)
        scores = joint_entropy_with_candidates(joint, probs, sampled_models is not None)
        if log_scale is not None:
            scores -= log_scale.mean()
        scores -= conditional_sum + conditional
        scores[chosen] = -np.inf
        pick = argmax_tiebreak(scores, rng)
        chosen.append(pick)
        gains.append(float(scores[pick]))
        conditional_sum += float(conditional[pick])
        if sampled_models is None:
            joint = (joint[:, :, None] * probs[:, pick, None, :]).reshape(n_mc, -1)
        else:
            labels = _sample_categorical(probs[sampled_models, pick, :], rng)
            joint = joint * probs[:, pick, labels]
    return np.asarray(chosen, dtype=np.int64), np.asarray(gains)


@dataclass(frozen=True)
class BatchBALD(Strategy):
    """Greedy batch acquisition by joint mutual information.

    Attributes:
        num_samples: M sampled configurations; ``None`` means 40,000 // #classes (Kirsch et al.).
        max_candidates: the pre-filter: only the top-N unlabeled points by BALD (at least the
            budget) enter the greedy loop, whose every step costs M x N x #classes. The default,
            1,000, keeps a round of b = 50 on a 50k pool with 100 classes near 30 s on 2 cores
            (benchmarks/scale.py); ``None`` keeps every unlabeled point. A selection that
            pre-filtered says so in its notes.
    """

    name = "batchbald"
    inputs = Inputs(mc_samples=True)

    num_samples: int | None = None
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES

    def __post_init__(self) -> None:
        if self.num_samples is not None:
            check_number(self.name, "num_samples", self.num_samples, low=1, integer=True)
        if self.max_candidates is not None:
            check_number(self.name, "max_candidates", self.max_candidates, low=1, integer=True)

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        mc = mc_probs_or_none(self.name, pool)
        if mc is None:
            note = cold_start_or_fail(self.name, "mc_probs", labeled_mask)
            return random_selection(labeled_mask, budget, rng, note)
        candidates = np.flatnonzero(~labeled_mask)
        notes: tuple[str, ...] = ()
        if self.max_candidates is not None and candidates.shape[0] > self.max_candidates:
            keep = max(self.max_candidates, budget)
            unlabeled = candidates.shape[0]
            # Every point's BALD, then the unlabeled ones': no copy of their MC samples.
            bald = bald_scores(mc)[candidates]
            candidates = np.sort(candidates[top_k_tiebreak(bald, keep, rng)])
            if keep < unlabeled:
                notes = (
                    f"pre-filter: the {keep} of {unlabeled} unlabeled points with the highest "
                    f"BALD entered the greedy loop (max_candidates={self.max_candidates})",
                )
        num_samples = self.num_samples or max(1, SAMPLES_PER_CLASS_BUDGET // mc.shape[2])
        positions, gains = batchbald_greedy(
            mc[:, candidates, :], budget, rng, int(num_samples), show_progress
        )
        chosen = candidates[positions]
        details = tuple(
            {"reason": "batchbald", "score": float(g), "batch_size": i + 1}
            for i, g in enumerate(gains)
        )
        return Selection(chosen.astype(np.int64), details, notes)
