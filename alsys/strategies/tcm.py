"""TCM (Doucet, Estermann, Aczel and Wattenhofer 2024, "Bridging Diversity and Uncertainty in
Active Learning with Self-Supervised Pre-Training"): TypiClust while the labeled set is small,
then Margin.

TypiClust covers the data while there is no model worth asking (the cold start); Margin refines
the decision boundaries once there is. The paper's finding is that with a self-supervised
backbone the transition can come early.

The switch rule here: TypiClust while ``|L| < switch_per_class * n_classes``, Margin from then
on. With the default of 1 label per class and the thesis's budgets (b = #classes or
5 x #classes), the first round is TypiClust and every later round is Margin: TCM's recipe
with one TypiClust step. The paper ties the number of TypiClust steps to the step size; it was
not available offline when this was written, so the threshold is a parameter rather than the
paper's table: ``switch_per_class=2`` gives two TypiClust rounds at the tiny budget, for
example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsys.errors import InputError
from alsys.strategies.base import (
    BoolArray,
    Inputs,
    Pool,
    Selection,
    Strategy,
    check_number,
)
from alsys.strategies.margin import Margin
from alsys.strategies.typiclust import TypiClust


@dataclass(frozen=True)
class TCM(Strategy):
    """Attributes:
    switch_per_class: Margin once the labeled set holds this many labels per class on
        average; TypiClust before.
    n_classes: the number of classes; the dataset's in a trial. Left unset in
        ``alsys select``, it is read from the probabilities' width.
    max_clusters, k_neighbors: TypiClust's (500 and 20, reference code).
    """

    name = "tcm"
    inputs = Inputs(space=True, probs=True, n_classes="n_classes")

    switch_per_class: float = 1.0
    n_classes: int | None = None
    max_clusters: int = 500
    k_neighbors: int = 20

    def __post_init__(self) -> None:
        check_number(self.name, "switch_per_class", self.switch_per_class, low=0)
        if self.n_classes is not None:
            check_number(self.name, "n_classes", self.n_classes, low=2, integer=True)
        # TypiClust validates its own parameters, under its own name.
        self.typiclust()

    def typiclust(self) -> TypiClust:
        return TypiClust(max_clusters=self.max_clusters, k_neighbors=self.k_neighbors)

    def switch_at(self, pool: Pool) -> float | None:
        """The labeled-set size from which Margin runs; ``None`` while the classes are unknown."""
        n_classes = self.n_classes
        if n_classes is None and pool.probs is not None:
            n_classes = int(np.asarray(pool.probs).shape[1])
        return None if n_classes is None else self.switch_per_class * n_classes

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        n_labeled = int(labeled_mask.sum())
        switch = self.switch_at(pool)
        if switch is None and n_labeled > 0:
            raise InputError(
                "tcm.n_classes", "give n_classes (or probs) so TCM knows when to switch to Margin"
            )
        phase = "typiclust" if switch is None or n_labeled < switch else "margin"
        if phase == "typiclust":
            inner = self.typiclust().select(
                pool, labeled_mask, budget, rng, show_progress=show_progress
            )
        else:
            inner = Margin().select(pool, labeled_mask, budget, rng)
        if switch is None:
            note = f"tcm: nothing labeled, so this round runs {phase}"
        else:
            note = f"tcm: {n_labeled} labeled, Margin from {switch:g}: this round runs {phase}"
        details = tuple({**why, "phase": phase} for why in inner.details)
        metrics = {**inner.metrics, "tcm_margin": float(phase == "margin")}
        return Selection(inner.indices, details, (note, *inner.notes), metrics, inner.record)
