"""OOD-LLR (thesis 3.2.3): TypiClust's clusters, but each pick by the HVAE's LLR^{>2} score.

Clusters, their order and the round-robin are TypiClust's. In a visited cluster the candidate of
lowest score is chosen (the most in-distribution point), or with ``invert`` the highest.

The clustering space is the trial's ``space``: ``hvae:z2:mean`` gives the thesis's "ood-hr
(clst: z2)", ``simclr`` its "ood-rp (clst: N-D)". The scores arrive as ``Pool.scores``; a trial
fills them with LLR^{>k} of the HVAE named by ``model`` (``hvae`` on the images, ``hvae-emb`` on
the SimCLR embeddings), ``k`` = 2 by default as in the thesis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsys.errors import InputError
from alsys.strategies.base import Inputs, IntArray, argmax_tiebreak, check_choice, check_number
from alsys.strategies.clustering import ClusterContext, ClusterStrategy, Pick

LLR_MODELS = ("hvae", "hvae-emb")


@dataclass(frozen=True)
class OODLLR(ClusterStrategy):
    """In each visited cluster, the candidate of lowest (``invert``: highest) score."""

    name = "ood_llr"
    inputs = Inputs(space=True, scores=("model", "k"), name_params=("model", "k", "invert"))

    invert: bool = False
    k: int = 2
    model: str = "hvae"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.invert, bool):
            raise InputError(f"{self.name}.invert", f"must be true or false: {self.invert!r}")
        check_number(self.name, "k", self.k, low=1, high=2, integer=True)
        check_choice(self.name, "model", self.model, LLR_MODELS)

    def pick(
        self, cluster: int, candidates: IntArray, ctx: ClusterContext, rng: np.random.Generator
    ) -> Pick:
        if ctx.scores is None:
            raise InputError("scores", f"strategy {self.name} needs per-point LLR scores")
        values = ctx.scores[candidates]
        best = argmax_tiebreak(values if self.invert else -values, rng)
        return Pick(int(candidates[best]), {f"llr{self.k}": float(values[best])})
