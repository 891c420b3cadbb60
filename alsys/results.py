"""What a trial produces: one result per round, and the state a checkpoint keeps.

Plain data (numpy only), so trackers and checkpoints read them without importing the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RoundResult:
    """One round of a trial, as the loop measured it after training on the labels bought.

    Attributes:
        round: 1-based index of the round.
        n_labeled: labels bought so far, this round's included.
        accuracy, balanced_accuracy: on the test split; balanced accuracy is the mean of the
            per-class recalls over the classes present in the test split (eq. 5.3), the
            headline metric of every table and figure.
        per_class_recall: (classes,) TP_c / (TP_c + FN_c); NaN for a class absent from the
            test split.
        class_histogram: (classes,) labels bought per class so far.
        selected, selected_labels: this round's picks (pool rows, in the order chosen) and
            their true classes, revealed after the selection.
        selection_seconds, training_seconds: wall time of the selection and of the training.
        random_fallback: the strategy drew at random (a model-based one before any model).
        notes, strategy_metrics, record: the selection's notes, scalar diagnostics and record
            of what it saw (:class:`alsys.strategies.Selection`).
    """

    round: int
    n_labeled: int
    accuracy: float
    balanced_accuracy: float
    per_class_recall: list[float]
    class_histogram: list[int]
    selected: list[int]
    selected_labels: list[int]
    selection_seconds: float
    training_seconds: float
    random_fallback: bool
    notes: list[str] = field(default_factory=list)
    strategy_metrics: dict[str, float] = field(default_factory=dict)  # Selection.metrics
    record: dict[str, Any] | None = None  # Selection.record: what the strategy saw
    stopping: dict[str, float] = field(default_factory=dict)  # alsys.stopping's signal

    def summary(self) -> dict[str, float]:
        """The round's scalar metrics, one key each whatever the number of classes."""
        return {
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "n_labeled": float(self.n_labeled),
            "selection_seconds": self.selection_seconds,
            "training_seconds": self.training_seconds,
            "random_fallback": float(self.random_fallback),
        }

    def metrics(self) -> dict[str, float]:
        """Scalar metrics for trackers: the summary, per-class values under their own keys, and
        the selection's diagnostics as ``strategy.<name>``, the stopping signal as
        ``stop.<name>``."""
        out = self.summary()
        out.update({f"strategy.{k}": float(v) for k, v in self.strategy_metrics.items()})
        out.update({f"stop.{k}": float(v) for k, v in self.stopping.items()})
        out.update({f"recall_class_{c}": r for c, r in enumerate(self.per_class_recall)})
        out.update({f"labeled_class_{c}": float(h) for c, h in enumerate(self.class_histogram)})
        return out


@dataclass
class TrialState:
    """What a checkpoint needs: the labels bought so far and the results of finished rounds.

    ``bought_round[i]`` is the round (1-based) in which pool row i was labeled, -1 while it is
    not, so the labeled set after any round r is ``bought_round in [1, r]`` (a resumed trial
    and a replayed round read it so). ``rounds`` holds one :class:`RoundResult` per finished
    round, in order; the loop appends to both.
    """

    bought_round: np.ndarray  # (n,) round in which each label was bought, -1 if unlabeled
    rounds: list[RoundResult] = field(default_factory=list)

    @property
    def labeled_mask(self) -> np.ndarray:
        mask: np.ndarray = self.bought_round >= 0
        return mask
