"""What a strategy sees of the pool: the model it may query, and the one assembly of its inputs.

- :class:`Model` is what the loop needs of a classifier (as baal injects its model): fit on
  the labeled rows, then probabilities, MC-dropout samples and features for the pool. The SSL
  linear head and the FSL network (``alsys.classifiers``) implement it; so can any object a
  caller brings (``tests/test_loop.py`` runs the loop with one defined in the test). The probe
  of ``alsys select`` is the SSL head, the same object.
- :func:`pool_for` builds a strategy's :class:`~alsys.strategies.Pool` from what its class
  declares it reads (``Inputs``), and from nothing else; the model's outputs come from
  :func:`alsys.model_inputs.model_outputs`, which ``alsys select`` calls too.

No torch here.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from alsys.model_inputs import model_outputs
from alsys.strategies import Inputs, Pool, Strategy


class Model(Protocol):
    """A classifier the loop trains each round and queries for the strategy.

    Each :meth:`fit` starts from scratch (nothing of an earlier fit is kept), with all its
    randomness from ``seed``; the other methods read the last fit. ``x`` is what the model
    reads: (n, d) embeddings, or (n, H, W, C) images.
    """

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        """Trains on the labeled rows ``x`` with classes ``y`` (n,)."""
        ...

    def predict_proba(self, x: np.ndarray) -> npt.NDArray[np.float64]:
        """(n, classes) class probabilities."""
        ...

    def mc_proba(self, x: np.ndarray, passes: int) -> npt.NDArray[np.float64]:
        """(passes, n, classes) MC-dropout probability samples."""
        ...

    def features(self, x: np.ndarray) -> npt.NDArray[np.float32]:
        """(n, d) the features the model classifies (its penultimate layer)."""
        ...

    def dropout_proba(
        self, x: np.ndarray, rate: float, passes: int, seed: int
    ) -> npt.NDArray[np.float64]:
        """(passes, n, classes) the head on its input features with each dropped at ``rate``;
        masks from ``seed``. Only strategies that declare ``Inputs.feature_dropout``
        (DropQuery) call it, so a model brought for the others may leave it out."""
        ...


def pool_for(
    inputs: Inputs,
    *,
    space: np.ndarray,
    typ_space: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    cold_features: np.ndarray | None = None,
    model: Model | None = None,
    model_inputs: np.ndarray | None = None,
    mc_passes: int = 20,
    labels: np.ndarray | None = None,
    strategy: Strategy | None = None,
    params: dict[str, Any] | None = None,
    labeled: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    n_classes: int = 0,
    rng: np.random.Generator | None = None,
) -> Pool:
    """A strategy's pool, from what its class declares (``inputs``).

    Args:
        inputs: the strategy's declaration.
        space: (n, d_clst) the selection space (normalised where it entered).
        typ_space: (n, d_typ) the typicality space, None when it is ``space``.
        scores: (n,) per-row scores, for strategies that declare them.
        cold_features: (n, d) the features before any model exists (the SSL embeddings;
            ``space`` when None), for strategies that read the model's features.
        model: the model of the last round, None before the first (cold start).
        model_inputs: what the model reads for the pool rows, when there is a model.
        mc_passes: MC-dropout samples for strategies that read them.
        labels: (n,) the classes of the labeled rows, -1 elsewhere.
        strategy: the strategy, for the model outputs it declares beyond probabilities
            (feature dropout, a held-out split).
        params: its effective hyperparameters, for the same outputs.
        labeled: (n,) the labeled mask; ``targets`` (n,) the classes a fresh model of the same
            kind is trained on for a held-out split (read at the labeled rows only), and
            ``n_classes`` their number.
        rng: the round's generator; only its children are drawn from.
    """
    fields: dict[str, Any] = {}
    if inputs.features:
        # The classifier's penultimate features; before the first model, the embeddings.
        if model is not None:
            fields["embeddings"] = model.features(_model_inputs(model_inputs))
        else:
            fields["embeddings"] = cold_features if cold_features is not None else space
    elif inputs.space:
        fields.update(embeddings=space, typ_embeddings=typ_space, scores=scores)
    model_based = inputs.probs or inputs.mc_samples
    if model is not None and model_based:
        x = _model_inputs(model_inputs)

        def fit(rows: np.ndarray, seed: int) -> Model:
            """A fresh model of the same kind (each fit starts from scratch) on ``rows``."""
            if targets is None:
                raise ValueError("pool_for: a held-out split needs targets")
            fresh = copy.deepcopy(model)
            fresh.fit(x[rows], targets[rows], seed)
            return fresh

        fields.update(
            model_outputs(
                inputs,
                model,
                x,
                mc_passes,
                strategy=strategy,
                params=params,
                fit=fit,
                labeled=labeled,
                n_classes=n_classes,
                rng=rng,
            )
        )
    elif "embeddings" not in fields:
        fields["embeddings"] = space  # cold start: model-based strategies draw at random
    if inputs.labels:
        fields["labels"] = labels
    return Pool(**fields)


def _model_inputs(model_inputs: np.ndarray | None) -> np.ndarray:
    if model_inputs is None:
        raise ValueError("pool_for: a model needs model_inputs, what it reads for the pool")
    return model_inputs
