"""Stopping signals: is another round of labels worth it?

Two estimators, both computed without a single label beyond those bought:

- **Agreement** (stabilising predictions, Bloodgood and Vijay-Shanker 2009, "A Method for
  Stopping Active Learning Based on Stabilizing Predictions"): Cohen's kappa between the
  classes this round's model and the previous round's predict on a stop set, a fixed random
  sample of the pool whose labels are never read. Their rule: stop once the mean kappa of the
  last ``AGREEMENT_WINDOW`` = 3 rounds reaches ``AGREEMENT_THRESHOLD`` = 0.99.
- **Coverage**: MaxHerding's generalised coverage of the pool by the labeled set,
  (1/n) sum_x max_{l in L} exp(-||x - l||^2 / (2 bw^2)) on L2-normalised embeddings, with
  MaxHerding's bandwidth (the official h = 1). Rule: stop once a round raised it by less than
  ``COVERAGE_GAIN_THRESHOLD``.

How well either predicts the flattening of the true learning curve is measured, not assumed:
``benchmarks/stopping.py`` (docs/results.md, "Stopping"). On digits and digits_lt neither rule
is reliable: the agreement rule stops late (safe, few labels saved), the coverage rule early or
late by the budget. The loop logs both per round
(``stop.*`` metrics in MLflow); ``alsys select`` reports the coverage, the only one it can
compute without the previous round's model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from alsys.strategies.clustering import knn_sqdist
from alsys.strategies.maxherding import DEFAULT_BANDWIDTH, rbf

IntArray = npt.NDArray[np.int64]

STOP_SET_SIZE = 1000  # rows of the stop set (Bloodgood and Vijay-Shanker used 2,000 and more)
AGREEMENT_THRESHOLD = 0.99  # Bloodgood and Vijay-Shanker's kappa threshold
AGREEMENT_WINDOW = 3  # ... averaged over the last three model pairs
COVERAGE_GAIN_THRESHOLD = 0.01  # one point of coverage per round; see benchmarks/stopping.py
# Pools above this are estimated on a seeded sample of this many rows (s.e. under 0.4 points).
COVERAGE_SAMPLE = 20_000


def stop_set(n: int, rng: np.random.Generator, size: int = STOP_SET_SIZE) -> IntArray:
    """A fixed random sample of ``size`` pool rows (all rows when the pool is smaller)."""
    if n <= size:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, size, replace=False)).astype(np.int64)


def cohen_kappa(first: npt.ArrayLike, second: npt.ArrayLike) -> float:
    """Cohen's kappa of two label vectors: (p_o - p_e) / (1 - p_e); 1.0 when both are one
    and the same constant (p_e = 1)."""
    a, b = np.asarray(first), np.asarray(second)
    observed = float(np.mean(a == b))
    classes = np.union1d(a, b)
    expected = float(sum(np.mean(a == c) * np.mean(b == c) for c in classes))
    if expected >= 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


def _unit(rows: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    x = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, np.float32(1e-12)))


def coverage_rows(n: int, rng: np.random.Generator, size: int = COVERAGE_SAMPLE) -> IntArray:
    """The rows the coverage is averaged over: every row, or a seeded sample above ``size``."""
    return stop_set(n, rng, size)


def kernel_coverage(
    embeddings: npt.NDArray[Any],
    labeled_rows: npt.ArrayLike,
    rows: npt.ArrayLike | None = None,
    bandwidth: float = DEFAULT_BANDWIDTH,
) -> float:
    """(1/|rows|) sum_{x in rows} max_{l labeled} k(x, l) on L2-normalised rows; 0 when nothing
    is labeled. ``rows`` None: every row. Only those rows and the labeled ones are read, so a
    memory-mapped pool is never normalised whole."""
    labeled = np.asarray(labeled_rows, dtype=np.int64)
    if labeled.size == 0:
        return 0.0
    chosen = np.arange(embeddings.shape[0]) if rows is None else np.asarray(rows)
    sq, _ = knn_sqdist(_unit(embeddings[chosen]), _unit(embeddings[labeled]), 1)
    covered = rbf(sq[:, 0], bandwidth)
    covered[np.isin(chosen, labeled)] = 1.0
    return float(covered.mean())


@dataclass(frozen=True)
class StoppingSignal:
    """One round's signal.

    Attributes:
        coverage: the kernel coverage of the pool by the labeled set after the round.
        coverage_gain: how much this round's labels raised it.
        agreement: kappa between this round's and the previous round's predictions on the
            stop set; ``None`` in the first round.
        agreement_mean: its mean over the last AGREEMENT_WINDOW rounds, once there are that many.
    """

    coverage: float
    coverage_gain: float
    agreement: float | None = None
    agreement_mean: float | None = None

    @property
    def coverage_says_stop(self) -> bool:
        return self.coverage_gain < COVERAGE_GAIN_THRESHOLD

    @property
    def agreement_says_stop(self) -> bool:
        return self.agreement_mean is not None and self.agreement_mean >= AGREEMENT_THRESHOLD

    def metrics(self) -> dict[str, float]:
        """``stop.*`` metrics for the tracker; each rule's verdict as 1.0 or 0.0."""
        out = {
            "coverage": self.coverage,
            "coverage_gain": self.coverage_gain,
            "coverage_says_stop": float(self.coverage_says_stop),
            "agreement_says_stop": float(self.agreement_says_stop),
        }
        if self.agreement is not None:
            out["agreement"] = self.agreement
        if self.agreement_mean is not None:
            out["agreement_mean"] = self.agreement_mean
        return out


def round_signal(
    coverage: float,
    previous_coverage: float,
    agreement: float | None,
    earlier_agreements: list[float],
) -> StoppingSignal:
    """The signal of a round from its coverage, the previous round's, this round's kappa and
    the kappas of the rounds before (oldest first)."""
    mean = None
    if agreement is not None:
        window = [*earlier_agreements, agreement][-AGREEMENT_WINDOW:]
        if len(window) == AGREEMENT_WINDOW:
            mean = float(np.mean(window))
    return StoppingSignal(coverage, coverage - previous_coverage, agreement, mean)


def coverage_line(before: float, after: float, n_picked: int) -> str:
    """The one line ``alsys select`` prints: the coverage now, after this batch, the verdict."""
    gain = after - before
    threshold = f"{COVERAGE_GAIN_THRESHOLD * 100:g} point"
    verdict = (
        f"under the stop rule's {threshold}: another round adds little coverage"
        if gain < COVERAGE_GAIN_THRESHOLD
        else f"over the stop rule's {threshold}: labels still cover new ground"
    )
    return (
        f"stopping signal: the labeled set covers {before:.1%} of the pool (kernel coverage), "
        f"{after:.1%} once these {n_picked} are labeled (+{gain * 100:.1f} points, {verdict}; "
        "a weak guide to accuracy, see docs/results.md, Stopping)"
    )


def select_signal(
    embeddings: npt.NDArray[Any] | None,
    labeled: npt.NDArray[np.bool_],
    selected: npt.NDArray[np.int64],
    seed: int,
) -> dict[str, Any]:
    """The stopping signal ``alsys select`` can give: the kernel coverage of the pool by the
    labeled rows, now and once the selected rows are labeled, the rule's verdict and the line
    to print."""
    if embeddings is None:
        line = "stopping signal: none (the coverage needs --embeddings)"
        return {"coverage_before": None, "coverage_after": None, "stop": None, "line": line}
    rows = coverage_rows(embeddings.shape[0], np.random.default_rng([seed, 3]))
    now = np.flatnonzero(labeled)
    before = kernel_coverage(embeddings, now, rows)
    after = kernel_coverage(embeddings, np.concatenate([now, selected]), rows)
    return {
        "coverage_before": before,
        "coverage_after": after,
        "coverage_gain": after - before,
        "stop": bool(after - before < COVERAGE_GAIN_THRESHOLD),
        "rule": f"stop once a round adds less than {COVERAGE_GAIN_THRESHOLD:g} coverage",
        "line": coverage_line(before, after, int(selected.shape[0])),
    }
