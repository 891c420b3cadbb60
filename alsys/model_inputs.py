"""What a strategy reads from the model, computed where models live (the loop, ``alsys select``).

A strategy never trains or runs a model: its class declares (:class:`alsys.strategies.Inputs`)
which model outputs it reads, and :func:`model_outputs` computes them from the trained
classifier, so the loop and ``alsys select`` give every strategy the same thing:

- ``probs`` (n, C), or ``mc_probs`` (T_mc, n, C) for the MC-dropout strategies;
- ``dropout_probs`` (T, n, C): the head on dropped-out features (``Inputs.feature_dropout``
  names the rate and pass parameters), masks seeded from a child of the round's generator;
- ``heldout_rows``/``heldout_probs``: when the strategy asks for a calibration split
  (``Inputs.heldout``, :meth:`alsys.strategies.Strategy.heldout_split`, drawn from another
  child of the round's generator), a second model of the same kind trained on the rest of
  the labeled rows, and its probabilities on the held-out ones.

Children (``Generator.spawn``) leave the round's generator itself untouched, so the strategy's
own draws are the same whether or not these inputs were drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from alsys.strategies import Inputs, Strategy

SEED_RANGE = 2**31 - 1


def model_outputs(
    inputs: Inputs,
    model: Any,
    pool_inputs: np.ndarray,
    mc_passes: int,
    *,
    strategy: Strategy | None = None,
    params: dict[str, Any] | None = None,
    fit: Callable[[np.ndarray, int], Any] | None = None,
    labeled: np.ndarray | None = None,
    n_classes: int = 0,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """The model outputs ``strategy`` declares, as :class:`alsys.strategies.Pool` fields.

    Args:
        inputs: the strategy's declaration.
        model: the classifier trained on every labeled row (``predict_proba``, ``mc_proba``,
            ``dropout_proba``).
        pool_inputs: what the classifier reads for the pool's rows (embeddings or images).
        mc_passes: MC-dropout samples, for strategies that read them.
        strategy: the strategy; needed when it declares a held-out split.
        params: its effective hyperparameters; needed when it declares feature dropout or a
            held-out split.
        fit: trains a fresh classifier of the same kind on the given labeled rows with a seed
            (a held-out split).
        labeled: (n,) the labeled mask; ``n_classes`` the number of classes (a held-out split).
        rng: the round's generator (only its children are drawn from).
    """
    out: dict[str, np.ndarray] = {}
    if inputs.mc_samples:
        out["mc_probs"] = model.mc_proba(pool_inputs, mc_passes)
    elif inputs.probs:
        out["probs"] = model.predict_proba(pool_inputs)
    if inputs.feature_dropout is None and not inputs.heldout:
        return out
    if rng is None or params is None:
        raise ValueError("model_outputs: feature dropout and held-out splits need params and rng")
    dropout_rng, heldout_rng = rng.spawn(2)
    if inputs.feature_dropout is not None:
        rate, passes = (params[name] for name in inputs.feature_dropout)
        seed = int(dropout_rng.integers(SEED_RANGE))
        out["dropout_probs"] = model.dropout_proba(pool_inputs, float(rate), int(passes), seed)
    if inputs.heldout:
        if strategy is None or fit is None or labeled is None:
            raise ValueError("model_outputs: a held-out split needs strategy, fit and labeled")
        split = strategy.heldout_split(labeled, n_classes, heldout_rng)
        if split is not None:
            fit_rows, held_rows = split
            calibration = fit(fit_rows, int(heldout_rng.integers(SEED_RANGE)))
            out["heldout_rows"] = held_rows
            out["heldout_probs"] = calibration.predict_proba(pool_inputs[held_rows])
    return out
