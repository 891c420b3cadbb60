"""UHerding (Bae, Oliveira and Sutherland, ICLR 2025): MaxHerding's coverage weighted by the
classifier's uncertainty.

Uncertainty coverage, greedily maximised by :func:`alsys.strategies.maxherding.herding_greedy`:

    UC(S) = (1/n) sum_x u(x) max_{s in L u S} k(x, s),

u(x) the uncertainty of the model's temperature-scaled probabilities on x, 0 on the labeled
points. As in the official code (github.com/BorealisAI/uherding, commit 75299cd,
deep-al/pycls/al/uherding.py), whose usage line in README.md runs
``-a uherding_margin -s true -p true``:

- ``uncertainty="margin"``: u = 1 - (p1 - p2) (uherding.py line 337; "entropy", line 331, and
  "confidence", 1 - p1, line 342, are the alternatives); u = 0 on labeled points (line 350).
  Entropy here is the exact -sum p log p; the official adds 1e-8 inside the log.
- ``temperature``: the probabilities are softmax(logits / T) (line 326), here
  softmax(log p / T), the same thing. The official run with ``-s true`` sets T before each
  round by training a copy of the model on 70% of the labeled set and taking, on the other
  30%, the T of least ECE on the grid 1.0, 1.1, ..., 19.9 (tools/train_al.py lines 267-286,
  pycls/calibration/temperature_scaling.py line 17; ECE with #classes equal-width bins,
  calibration/metrics.py line 39). ``temperature="fit"`` (the default) does the same without
  training anything itself: :meth:`UHerding.heldout_split` draws the 70/30 split of the
  labeled rows from a child of the round's generator (the official split is the last 30% of
  the labeled list, in the order bought), the caller (the loop, ``alsys select``) trains the
  model on the 70% and gives its probabilities on the 30% (``Pool.heldout_probs``), and
  :func:`ece_temperature` picks T. Below ``fit_min_per_class`` labels per class on average
  (default 2: 6 held-out points for 10 classes) T stays 1 and the notes say why; so does it
  when no held-out probabilities come (an ``--embeddings`` pool with the user's own --probs).
  A number fixes T (1.0 is the official code without ``-s``, train_al.py line 682).
- ``adaptive_bandwidth=True`` (``-p true``): h = the smallest distance between two labeled
  points (uherding.py lines 197-206), i.e. ``bandwidth`` = h / sqrt(2) in MaxHerding's
  convention; ``bandwidth`` (MaxHerding's default) applies while fewer than two distinct
  points are labeled.
- no labeled points: u = 1 everywhere (uherding.py lines 311-313), which is MaxHerding; the
  official code does this whatever the model, and so does this strategy, probs or not.

With uniform probabilities u is constant on the unlabeled points (the labeled ones add no gain
either way), so UHerding picks what MaxHerding picks at the same bandwidth.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

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
    check_choice,
    check_flag,
    check_number,
    prepare_features,
)
from alsys.strategies.clustering import F32, knn_sqdist
from alsys.strategies.maxherding import (
    DEFAULT_BANDWIDTH,
    check_neighbours,
    coverage_notes,
    herding_greedy,
    herding_metrics,
)
from alsys.strategies.uncertainty import entropy_scores, least_confidence_scores, margin_scores

UNCERTAINTIES = ("margin", "entropy", "confidence")
# The official temperature grid (temperature_scaling.py line 17).
TEMPERATURES = tuple(float(t) for t in np.arange(1.0, 20, 0.1))
# The official calibration split: 30% of the labeled set held out (train_al.py line 271).
HELDOUT_SHARE = 0.3
FIT = "fit"
# Labeled points closer than this (squared, float32 faiss distances) count as one point when
# the bandwidth adapts; duplicates would otherwise make it 0.
DUPLICATE_SQDIST = 1e-6
# Neighbours searched per labeled point for the closest distinct one.
ADAPT_NEIGHBOURS = 8
NO_MODEL_NOTE = "no model yet: uherding ran as maxherding"


def scale_temperature(probs: FloatArray, temperature: float) -> FloatArray:
    """softmax(log p / T): the probabilities of logits divided by T. (n, C) -> (n, C)."""
    p = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return p / p.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]
    with np.errstate(divide="ignore"):
        z = np.log(p) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def herding_uncertainty(
    probs: FloatArray, measure: str = "margin", temperature: float = 1.0
) -> FloatArray:
    """u(x) of the official code from class probabilities (n, C) -> (n,), after scaling by T:
    margin 1 - (p1 - p2), entropy -sum p log p, confidence 1 - p1."""
    check_choice("herding_uncertainty", "measure", measure, UNCERTAINTIES)
    p = scale_temperature(probs, temperature)
    if measure == "margin":
        return 1.0 - margin_scores(p)
    if measure == "entropy":
        return entropy_scores(p)
    return 1.0 - least_confidence_scores(p)


def expected_calibration_error(probs: FloatArray, labels: IntArray, n_bins: int) -> float:
    """ECE over ``n_bins`` equal-width confidence bins (lower, upper], as the official ECELoss."""
    p = np.asarray(probs, dtype=np.float64)
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lower, upper in itertools.pairwise(edges):
        in_bin = (confidence > lower) & (confidence <= upper)
        if in_bin.any():
            gap = abs(confidence[in_bin].mean() - correct[in_bin].mean())
            ece += gap * in_bin.mean()
    return float(ece)


def ece_temperature(
    probs: FloatArray,
    labels: IntArray,
    temperatures: tuple[float, ...] = TEMPERATURES,
    n_bins: int | None = None,
) -> float:
    """The official temperature: the first T of ``temperatures`` with the least ECE of
    softmax(log p / T) on held-out points with known ``labels``; ``n_bins`` = #classes."""
    bins = int(np.asarray(probs).shape[1]) if n_bins is None else n_bins
    errors = [
        expected_calibration_error(scale_temperature(probs, t), labels, bins) for t in temperatures
    ]
    return temperatures[int(np.argmin(errors))]


def labeled_min_distance(features: F32, labeled: IntArray) -> float | None:
    """The smallest distance between two distinct labeled points (the official adaptive h);
    ``None`` when fewer than two distinct points are labeled."""
    if labeled.shape[0] < 2:
        return None
    xl = np.ascontiguousarray(features[labeled])
    sq, _ = knn_sqdist(xl, xl, min(ADAPT_NEIGHBOURS, labeled.shape[0]))
    distinct = sq[sq > DUPLICATE_SQDIST]
    return float(np.sqrt(distinct.min())) if distinct.size else None


@dataclass(frozen=True)
class UHerding(Strategy):
    """Attributes:
    uncertainty: "margin" (official usage), "entropy" or "confidence".
    temperature: T of softmax(log p / T): "fit" (default; the official ``-s true``) takes the
        T of least ECE on a held-out 30% of the labels (see the module docstring), a number
        fixes it (1.0 leaves the probabilities as they are).
    fit_min_per_class: "fit" calibrates from this many labels per class on average; below,
        T = 1.
    adaptive_bandwidth: bandwidth = (smallest distance between two labeled points) / sqrt(2),
        the official ``-p true``; otherwise ``bandwidth``.
    bandwidth: the Gaussian kernel's, as MaxHerding's (default 1/sqrt(2), the official h = 1).
    neighbours: as MaxHerding's: ``None`` chooses, K truncates the kernel.
    normalize: L2-normalise the embeddings first, as the official code does.
    """

    name = "uherding"
    inputs = Inputs(space=True, probs=True, labels=True, heldout=True)

    uncertainty: str = "margin"
    temperature: float | str = FIT
    fit_min_per_class: float = 2.0
    adaptive_bandwidth: bool = True
    bandwidth: float = DEFAULT_BANDWIDTH
    neighbours: int | None = None
    normalize: bool = True

    def __post_init__(self) -> None:
        check_choice(self.name, "uncertainty", self.uncertainty, UNCERTAINTIES)
        if self.temperature != FIT:
            if isinstance(self.temperature, str):
                raise InputError(
                    f"{self.name}.temperature",
                    f"must be {FIT!r} or a number > 0, got {self.temperature!r}",
                )
            check_number(self.name, "temperature", self.temperature, low=0, low_open=True)
        check_number(self.name, "fit_min_per_class", self.fit_min_per_class, low=0)
        check_flag(self.name, "adaptive_bandwidth", self.adaptive_bandwidth)
        check_number(self.name, "bandwidth", self.bandwidth, low=0, low_open=True)
        check_neighbours(self.name, self.neighbours)
        check_flag(self.name, "normalize", self.normalize)

    def _fits(self, n_labeled: int, n_classes: int) -> bool:
        return self.temperature == FIT and n_labeled >= self.fit_min_per_class * n_classes

    def heldout_split(
        self, labeled_mask: BoolArray, n_classes: int, rng: np.random.Generator
    ) -> tuple[IntArray, IntArray] | None:
        """The official 70/30 calibration split of the labeled rows, drawn with ``rng``;
        ``None`` unless ``temperature="fit"`` and there are enough labels."""
        labeled = np.flatnonzero(labeled_mask)
        held = int(labeled.shape[0] * HELDOUT_SHARE)
        if not self._fits(labeled.shape[0], n_classes) or held < 1:
            return None
        order = rng.permutation(labeled)
        return np.sort(order[held:]), np.sort(order[:held])

    def fitted_temperature(self, pool: Pool, labeled_mask: BoolArray) -> tuple[float, str]:
        """T for this round and the note that says where it came from."""
        if self.temperature != FIT:
            return float(self.temperature), f"temperature {float(self.temperature):g} given"
        n_labeled = int(labeled_mask.sum())
        n_classes = int(np.asarray(pool.class_probs()).shape[1])
        if not self._fits(n_labeled, n_classes):
            return 1.0, (
                f"temperature 1: {n_labeled} labels, fewer than {self.fit_min_per_class:g} per "
                f"class ({n_classes} classes) to fit it on"
            )
        if pool.heldout_rows is None or pool.heldout_probs is None or pool.labels is None:
            return 1.0, "temperature 1: no held-out probabilities (and labels) to fit it on"
        rows = np.asarray(pool.heldout_rows)
        if not labeled_mask[rows].all():
            raise InputError("heldout_rows", "the held-out rows must be labeled points")
        fitted = ece_temperature(pool.heldout_probs, np.asarray(pool.labels)[rows])
        return fitted, (
            f"temperature {fitted:.3g} fitted: the least ECE on the grid 1.0-19.9 over "
            f"{rows.shape[0]} held-out labels, for a model trained on the other "
            f"{n_labeled - rows.shape[0]}"
        )

    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection:
        x = prepare_features(self._require_embeddings(pool), "embeddings", self.normalize)
        labeled = np.flatnonzero(labeled_mask)
        probs = pool.class_probs()
        notes: list[str] = []
        weights: FloatArray | None = None
        temperature = 1.0
        if labeled.shape[0] == 0:
            notes.append(
                NO_MODEL_NOTE
                if probs is None
                else f"{NO_MODEL_NOTE} (no labeled points: uncertainty 1 everywhere, as the "
                "official code, so the given probs were not used)"
            )
        elif probs is None:
            raise InputError(
                "probs",
                f"strategy {self.name} needs probs from a model trained on the labeled points",
            )
        else:
            temperature, how = self.fitted_temperature(pool, labeled_mask)
            notes.append(f"uherding: {how}")
            weights = herding_uncertainty(probs, self.uncertainty, temperature)
            weights[labeled] = 0.0
        bandwidth = float(self.bandwidth)
        if self.adaptive_bandwidth:
            closest = labeled_min_distance(x, labeled)
            if closest is not None:
                bandwidth = closest / math.sqrt(2.0)
                notes.append(
                    f"bandwidth {bandwidth:.4g} adapted: the closest two labeled points are "
                    f"{closest:.4g} apart"
                )
            elif labeled.shape[0] > 1:
                notes.append(f"bandwidth {bandwidth:.4g}: the labeled points are all one point")
        result = herding_greedy(
            x, labeled_mask, budget, rng, bandwidth, self.neighbours, weights, show_progress
        )
        u = np.ones(x.shape[0]) if weights is None else weights
        details = tuple(
            {
                "reason": self.name,
                "coverage_gain": float(g),
                "coverage": float(c),
                "uncertainty": float(u[i]),
            }
            for i, g, c in zip(result.chosen, result.gains, result.coverage, strict=True)
        )
        unlabeled = ~labeled_mask
        metrics = herding_metrics(result, bandwidth, int(unlabeled.sum()))
        metrics.update(
            ucoverage_before=result.coverage_before,
            ucoverage_after=float(result.coverage[-1]),
            temperature=temperature,
            uncertainty_mean=float(u[unlabeled].mean()),
        )
        notes.append(coverage_notes(self.name, result, int(labeled.shape[0])))
        if weights is not None and not (weights > 0).any():
            notes.append(
                "every unlabeled point has uncertainty 0: the picks are ties, drawn at random"
            )
        return Selection(result.chosen, details, tuple(notes), metrics)
