"""What every query strategy shares: its inputs, its result, and the checks on both.

A strategy is a frozen dataclass whose fields are its hyperparameters (validated in
``__post_init__``); the data arrive in :meth:`Strategy.select`. Strategies are pure: they read
arrays, draw randomness only from the ``numpy.random.Generator`` they are given, and return
indices. They never see the labels of unlabeled points.
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from alsys.errors import InputError
from alsys.spaces import unit_rows

FloatArray = npt.NDArray[np.floating[Any]]
IntArray = npt.NDArray[np.integer[Any]]
BoolArray = npt.NDArray[np.bool_]

# Rows of a probability matrix may drift this far from summing to 1 (float32 softmax output).
PROB_SUM_TOLERANCE = 1e-3


def _check_finite(name: str, array: npt.NDArray[Any]) -> None:
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(name, f"must hold real numbers, got dtype {array.dtype}")
    if not array.size or not np.issubdtype(array.dtype, np.floating):
        return
    # A NaN or inf always makes its row's sum non-finite, so the row sums (n values, not an
    # (n, d) temporary) clear a finite array; only a non-finite sum needs the exact check.
    sums = array.sum(axis=-1, dtype=np.float64) if array.ndim > 1 else array
    if not np.isfinite(sums).all() and not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array.reshape(-1)))[0])
        raise InputError(name, f"contains NaN or infinite values (first at flat position {bad})")


def _check_probs(name: str, probs: npt.NDArray[Any]) -> None:
    if probs.size == 0:
        raise InputError(name, f"is empty (shape {probs.shape}): there is nothing to select")
    _check_finite(name, probs)
    if probs.shape[-1] < 2:
        raise InputError(name, f"needs at least 2 classes in the last axis, got {probs.shape[-1]}")
    if (probs < 0).any():
        raise InputError(name, "probabilities must be non-negative")
    sums = probs.sum(axis=-1)
    if np.abs(sums - 1.0).max() > PROB_SUM_TOLERANCE:
        raise InputError(name, "each row must sum to 1 (class probabilities, e.g. softmax output)")


@dataclass(frozen=True)
class Pool:
    """What a strategy may see of the pool of ``n`` points. Never an unlabeled point's label.

    Attributes:
        embeddings: (n, d_clst) features for clustering and distances (SSL embeddings, or the
            classifier's penultimate features for Coreset in FSL).
        typ_embeddings: (n, d_typ) features for typicality; ``None`` means ``embeddings``
            (the D_clst/D_typ study of thesis chapter 4 sets them apart).
        probs: (n, classes) class probabilities from the current model.
        mc_probs: (T_mc, n, classes) MC-dropout probability samples.
        clusters: (n,) a precomputed cluster assignment (e.g. SCAN for TypiClust-DC).
        scores: (n,) a per-point score a strategy ranks by, e.g. the HVAE's LLR^{>2} for
            ``ood_llr``.
        labels: (n,) the class index of each labeled point and -1 elsewhere: only the labels
            already bought, for strategies that balance what they buy next (``supclust_la``).
        dropout_probs: (T, n, classes) the model's probabilities with its head applied to
            features under random dropout (DropQuery), drawn by the caller's classifier.
        heldout_rows, heldout_probs: (m,) labeled rows and (m, classes) the probabilities of a
            model trained on the other labeled points only (a calibration split the strategy
            asked for with :meth:`Strategy.heldout_split`).
    """

    embeddings: FloatArray | None = None
    typ_embeddings: FloatArray | None = None
    probs: FloatArray | None = None
    mc_probs: FloatArray | None = None
    clusters: IntArray | None = None
    scores: FloatArray | None = None
    labels: IntArray | None = None
    dropout_probs: FloatArray | None = None
    heldout_rows: IntArray | None = None
    heldout_probs: FloatArray | None = None
    n: int = field(init=False)

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        for name in ("embeddings", "typ_embeddings"):
            array = getattr(self, name)
            if array is None:
                continue
            array = np.asarray(array)
            if array.ndim != 2:
                raise InputError(name, f"must be 2-D (n, d), got shape {array.shape}")
            if array.shape[0] < 1 or array.shape[1] < 1:
                raise InputError(name, f"must be non-empty, got shape {array.shape}")
            _check_finite(name, array)
            sizes[name] = array.shape[0]
        if self.probs is not None:
            probs = np.asarray(self.probs)
            if probs.ndim != 2:
                raise InputError("probs", f"must be 2-D (n, classes), got shape {probs.shape}")
            _check_probs("probs", probs)
            sizes["probs"] = probs.shape[0]
        for name in ("mc_probs", "dropout_probs"):
            if getattr(self, name) is not None:
                mc = np.asarray(getattr(self, name))
                if mc.ndim != 3:
                    raise InputError(name, f"must be 3-D (T, n, classes), got shape {mc.shape}")
                _check_probs(name, mc)
                sizes[name] = mc.shape[1]
        if self.clusters is not None:
            clusters = np.asarray(self.clusters)
            if clusters.ndim != 1 or not np.issubdtype(clusters.dtype, np.integer):
                raise InputError("clusters", "must be a 1-D array of integer cluster ids")
            if clusters.size and clusters.min() < 0:
                raise InputError("clusters", "cluster ids must be non-negative")
            sizes["clusters"] = clusters.shape[0]
        if self.scores is not None:
            scores = np.asarray(self.scores)
            if scores.ndim != 1:
                raise InputError("scores", f"must be 1-D (n,), got shape {scores.shape}")
            _check_finite("scores", scores)
            sizes["scores"] = scores.shape[0]
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                raise InputError(
                    "labels", "must be a 1-D array of integer class ids (-1: unlabeled)"
                )
            if labels.size and labels.min() < -1:
                raise InputError("labels", "class ids must be non-negative, or -1 for unlabeled")
            sizes["labels"] = labels.shape[0]
        if not sizes:
            raise InputError("pool", "needs at least one of embeddings, probs or mc_probs")
        if len(set(sizes.values())) != 1:
            detail = ", ".join(f"{k}={v}" for k, v in sizes.items())
            raise InputError("pool", f"inputs disagree on the number of points: {detail}")
        if next(iter(sizes.values())) == 0:
            raise InputError(next(iter(sizes)), "the pool is empty: there is nothing to select")
        object.__setattr__(self, "n", next(iter(sizes.values())))
        self._check_heldout(self.n)

    def _check_heldout(self, n: int) -> None:
        if (self.heldout_rows is None) != (self.heldout_probs is None):
            raise InputError("heldout_probs", "heldout_rows and heldout_probs go together")
        if self.heldout_rows is None:
            return
        rows, probs = np.asarray(self.heldout_rows), np.asarray(self.heldout_probs)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer) or rows.size == 0:
            raise InputError("heldout_rows", "must be a non-empty 1-D array of row indices")
        if rows.min() < 0 or rows.max() >= n or np.unique(rows).size != rows.size:
            raise InputError("heldout_rows", f"must be distinct rows of the pool of {n}")
        if probs.ndim != 2 or probs.shape[0] != rows.size:
            raise InputError("heldout_probs", f"must be ({rows.size}, classes), got {probs.shape}")
        _check_probs("heldout_probs", probs)

    def class_probs(self, dtype: npt.DTypeLike | None = None) -> FloatArray | None:
        """(n, classes) the model's probabilities; the mean of the MC samples when only those
        are given; ``None`` before any model output."""
        if self.probs is not None:
            return np.asarray(self.probs, dtype=dtype)
        if self.mc_probs is not None:
            return np.asarray(self.mc_probs, dtype=dtype).mean(axis=0)  # type: ignore[no-any-return]
        return None


@dataclass(frozen=True)
class Selection:
    """The result of one query.

    Attributes:
        indices: (budget,) the chosen pool rows, in the order they were chosen.
        details: one JSON-ready dict per index saying why it was chosen (cluster, cluster size,
            typicality, SUP or another score).
        notes: things the run should record, e.g. that a model-based strategy drew at random
            because no model exists yet (cold start).
        metrics: the selection's own scalar diagnostics (ProbCover's delta and coverage,
            k-means inertia, ...); the loop hands them to the tracker as per-round metrics.
        record: what the strategy saw, JSON-ready (e.g. each visited cluster's candidates with
            their typicality and SUP); the tracker keeps it as an artifact and the report plots
            it as it is, recomputing nothing.
    """

    indices: IntArray
    details: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    record: dict[str, Any] | None = None

    @property
    def random_fallback(self) -> bool:
        return any(note.startswith(COLD_START_NOTE) for note in self.notes)


COLD_START_NOTE = "cold start"


def labeled_mask_from_indices(indices: npt.ArrayLike, n: int, name: str = "labeled") -> BoolArray:
    """(n,) boolean mask from a list of labeled row indices; rejects duplicates and bad rows."""
    array = np.asarray(indices)
    if array.size == 0:
        return np.zeros(n, dtype=bool)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise InputError(name, "must be a 1-D list of integer row indices")
    out_of_range = (array < 0) | (array >= n)
    if out_of_range.any():
        raise InputError(
            name, f"index {int(array[out_of_range][0])} is out of range for a pool of {n} rows"
        )
    unique, counts = np.unique(array, return_counts=True)
    if (counts > 1).any():
        raise InputError(name, f"index {int(unique[counts > 1][0])} is listed more than once")
    mask = np.zeros(n, dtype=bool)
    mask[array] = True
    return mask


def check_budget(budget: int, n_unlabeled: int) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer):
        raise InputError("budget", f"must be an integer, got {budget!r}")
    if budget < 1:
        raise InputError("budget", f"must be at least 1, got {budget}")
    if budget > n_unlabeled:
        raise InputError(
            "budget", f"{budget} is larger than the unlabeled pool ({n_unlabeled} points)"
        )


def validate_selection(indices: npt.ArrayLike, labeled_mask: BoolArray, budget: int) -> IntArray:
    """The loop's check of every selection: unique, in range, unlabeled, exactly ``budget``."""
    selected = np.asarray(indices)
    n = labeled_mask.shape[0]
    if selected.ndim != 1 or not np.issubdtype(selected.dtype, np.integer):
        raise AssertionError(f"selection must be 1-D integer indices, got {selected!r}")
    if selected.shape[0] != budget:
        raise AssertionError(f"selected {selected.shape[0]} points, budget is {budget}")
    if ((selected < 0) | (selected >= n)).any():
        raise AssertionError("selection holds indices outside the pool")
    if np.unique(selected).shape[0] != selected.shape[0]:
        raise AssertionError("selection holds duplicate indices")
    if labeled_mask[selected].any():
        raise AssertionError("selection holds already-labeled points")
    return selected.astype(np.int64)


def argmax_tiebreak(scores: FloatArray, rng: np.random.Generator) -> int:
    """Index of the maximum of ``scores``; ties are broken uniformly with ``rng``."""
    best = scores.max()
    ties = np.flatnonzero(scores == best)
    if ties.shape[0] == 1:
        return int(ties[0])
    return int(rng.choice(ties))


def top_k_tiebreak(scores: FloatArray, k: int, rng: np.random.Generator) -> IntArray:
    """Positions of the ``k`` largest ``scores``, highest first; ties ordered by ``rng``."""
    random_key = np.asarray(rng.random(len(scores)))
    order = np.lexsort((random_key, -scores))
    return order[:k]


# A float32 row whose norm is within this of 1 counts as normalised: prepare_features then uses
# the caller's array as it is (float32 normalisation leaves norms within a few 1e-7 of 1).
NORM_TOLERANCE = 4e-6
# Rows per block when features are checked (a bounded temporary, whatever n is).
FEATURE_BLOCK = 16_384


def prepare_features(array: FloatArray, name: str, normalize: bool) -> npt.NDArray[np.float32]:
    """The features as float32, C-contiguous, L2-normalised per row if asked (as the reference
    code does) by the one row normaliser, :func:`alsys.spaces.unit_rows`, and its zero-row rule.

    An array that is already all that (the loop's spaces, normalised where they enter; a
    float32 pool saved normalised, memory-mapped by ``alsys select``) is returned as it is, not
    copied: strategies only read it. Otherwise the result is one new array.
    """
    x = np.asarray(array)
    ready = x.dtype == np.float32 and x.flags.c_contiguous
    if not normalize:
        return x if ready else np.ascontiguousarray(x, dtype=np.float32)
    if ready and x.ndim == 2:
        norms = np.concatenate(
            [
                np.linalg.norm(x[s : s + FEATURE_BLOCK], axis=1)
                for s in range(0, x.shape[0], FEATURE_BLOCK)
            ]
        )
        if np.all(np.abs(norms - 1.0) <= NORM_TOLERANCE):
            return x
    return unit_rows(x, name)


T = TypeVar("T")


def progress(items: Iterable[T], *, total: int, desc: str, enabled: bool) -> Iterator[T]:
    """A tqdm bar on stderr when ``enabled``; a plain iteration otherwise."""
    if not enabled:
        yield from items
        return
    yield from tqdm(items, total=total, desc=desc, file=sys.stderr, leave=False)


def progress_bar(total: int, desc: str, enabled: bool) -> tqdm[Any]:
    """A manually advanced bar on stderr (``bar.update(1)``); silent unless ``enabled``."""
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, disable=not enabled)


def check_number(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> None:
    """Validates one hyperparameter; the error names the strategy, the field and the range
    (``low_open``/``high_open``: the bound itself is refused)."""
    field_name = f"{owner}.{name}"
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError(field_name, f"must be a number, got {value!r}")
    if integer and not float(value).is_integer():
        raise InputError(field_name, f"must be an integer, got {value!r}")
    if not math.isfinite(float(value)):
        raise InputError(field_name, f"must be finite, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        sign = ">" if low_open else ">="
        raise InputError(field_name, f"must be {sign} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        sign = "<" if high_open else "<="
        raise InputError(field_name, f"must be {sign} {high}, got {value!r}")


def check_flag(owner: str, name: str, value: Any) -> None:
    """Validates a true/false hyperparameter; the error names the strategy and the field."""
    if not isinstance(value, bool):
        raise InputError(f"{owner}.{name}", f"must be true or false: {value}")


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{owner}.{name}", f"must be one of {', '.join(choices)}; got {value!r}")


@dataclass(frozen=True)
class Inputs:
    """What a strategy reads in a trial, declared as data on its class. The config, the loop
    and the sweep read it; none of them names a strategy.

    Attributes:
        space: selects in the trial's selection space (``TrialConfig.space``: SimCLR, an HVAE
            latent, pixels, PCA), so a sweep's ``spaces`` axis applies to it.
        dims: the D_clst x D_typ study applies (thesis chapter 4): separate SimCLR dimensions
            for clustering and typicality.
        probs: class probabilities of the current model, (n, classes).
        mc_samples: ``TrialConfig.mc_passes`` MC-dropout samples, (T_mc, n, classes).
        features: the classifier's penultimate features once a model exists (before: the SSL
            embeddings), as ``Pool.embeddings``.
        scores: per-row scores, LLR^{>k} of an HVAE: the names of the parameters that give the
            HVAE (``hvae`` or ``hvae-emb``) and k.
        labels: the classes of the labeled points (``Pool.labels``), never those of the rest.
        n_classes: a parameter that gets the dataset's number of classes when left unset,
        n_classes_unless: unless this parameter is given (ProbCover's delta replaces k).
        name_params: parameters every run name spells (variants a reader must tell apart).
        feature_dropout: the names of the parameters that give the dropout rate and the number
            of passes of ``Pool.dropout_probs`` (the model's head on dropped-out features).
        heldout: the strategy may ask (:meth:`Strategy.heldout_split`) for the probabilities of
            a model trained on part of the labeled set, on the rest (``Pool.heldout_probs``).
    """

    space: bool = False
    dims: bool = False
    probs: bool = False
    mc_samples: bool = False
    features: bool = False
    scores: tuple[str, str] | None = None
    labels: bool = False
    n_classes: str | None = None
    n_classes_unless: str | None = None
    name_params: tuple[str, ...] = ()
    feature_dropout: tuple[str, str] | None = None
    heldout: bool = False


@dataclass(frozen=True)
class Strategy(ABC):
    """Base of every query strategy.

    Subclasses set ``name`` and ``inputs`` (what they read, which a trial gives them, see
    :class:`Inputs`), and implement :meth:`_select`.
    :meth:`select` validates the query before and the selection after.
    """

    name: ClassVar[str]
    inputs: ClassVar[Inputs] = Inputs()

    def select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        *,
        show_progress: bool = False,
    ) -> Selection:
        """Chooses ``budget`` unlabeled rows of ``pool``.

        Args:
            pool: the inputs; see :class:`Pool`.
            labeled_mask: (n,) True where a point is already labeled. Not modified.
            budget: how many points to choose, 1 <= budget <= #unlabeled.
            rng: the only source of randomness, tie-breaking included.
            show_progress: draw progress bars on stderr for long work.
        """
        labeled_mask = np.asarray(labeled_mask)
        if labeled_mask.dtype != np.bool_ or labeled_mask.shape != (pool.n,):
            raise InputError("labeled_mask", f"must be a boolean array of shape ({pool.n},)")
        check_budget(budget, int(pool.n - labeled_mask.sum()))
        if pool.labels is not None:
            known = np.asarray(pool.labels) >= 0
            if (known != labeled_mask).any():
                row = int(np.flatnonzero(known != labeled_mask)[0])
                raise InputError(
                    "labels", f"row {row}: a class is given exactly for the labeled points"
                )
        if not isinstance(rng, np.random.Generator):
            raise InputError("rng", "must be a numpy.random.Generator")
        selection = self._select(pool, labeled_mask, int(budget), rng, show_progress)
        validate_selection(selection.indices, labeled_mask, budget)
        return selection

    @abstractmethod
    def _select(
        self,
        pool: Pool,
        labeled_mask: BoolArray,
        budget: int,
        rng: np.random.Generator,
        show_progress: bool,
    ) -> Selection: ...

    def heldout_split(
        self, labeled_mask: BoolArray, n_classes: int, rng: np.random.Generator
    ) -> tuple[IntArray, IntArray] | None:
        """The labeled rows to fit a calibration model on and those to hold out, drawn with
        ``rng``; ``None`` (the default) when the strategy wants none this round."""
        return None

    def _require_embeddings(self, pool: Pool) -> FloatArray:
        if pool.embeddings is None:
            raise InputError("embeddings", f"strategy {self.name} needs embeddings of shape (n, d)")
        return pool.embeddings


def random_selection(
    labeled_mask: BoolArray, budget: int, rng: np.random.Generator, note: str | None = None
) -> Selection:
    """``budget`` unlabeled rows drawn uniformly without replacement."""
    unlabeled = np.flatnonzero(~labeled_mask)
    chosen = rng.choice(unlabeled, size=budget, replace=False).astype(np.int64)
    details = tuple({"reason": "random"} for _ in chosen)
    return Selection(chosen, details, (note,) if note else ())
