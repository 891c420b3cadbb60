"""Query strategies: one file each, one registry mapping names to classes.

>>> from alsys.strategies import make_strategy, Pool
>>> strategy = make_strategy("supclust", temperature=0.5)
>>> selection = strategy.select(Pool(embeddings=x), labeled_mask, budget=10, rng=rng)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from alsys.errors import InputError, lookup
from alsys.strategies.badge import BADGE
from alsys.strategies.bald import BALD
from alsys.strategies.base import (
    Inputs,
    Pool,
    Selection,
    Strategy,
    labeled_mask_from_indices,
    validate_selection,
)
from alsys.strategies.batchbald import BatchBALD
from alsys.strategies.clustering import Clustering, kmeans, typicality
from alsys.strategies.coreset import Coreset, kcenter_greedy
from alsys.strategies.dbal import DBAL
from alsys.strategies.dcom import DCoM
from alsys.strategies.dropquery import DropQuery
from alsys.strategies.entropy import Entropy
from alsys.strategies.falcun import FALCUN
from alsys.strategies.least_confidence import LeastConfidence
from alsys.strategies.margin import Margin
from alsys.strategies.maxherding import MaxHerding, herding_greedy, kernel_coverage
from alsys.strategies.ood_llr import OODLLR
from alsys.strategies.probcover import ProbCover, coverage_graph, purity_delta
from alsys.strategies.random import Random
from alsys.strategies.supclust import (
    SUPClust,
    SUPClustNoSup,
    SUPClustNoTypicality,
    cluster_weights,
    sup_scores,
)
from alsys.strategies.supclust_la import SUPClustLA
from alsys.strategies.tcm import TCM
from alsys.strategies.typiclust import TypiClust
from alsys.strategies.uherding import UHerding
from alsys.strategies.uncertainty import (
    bald_scores,
    entropy_scores,
    least_confidence_scores,
    margin_scores,
)

REGISTRY: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        Random,
        LeastConfidence,
        Margin,
        Entropy,
        BALD,
        DBAL,
        BatchBALD,
        BADGE,
        Coreset,
        TypiClust,
        ProbCover,
        MaxHerding,
        UHerding,
        SUPClust,
        SUPClustNoSup,
        SUPClustNoTypicality,
        OODLLR,
        TCM,
        SUPClustLA,
        DCoM,
        DropQuery,
        FALCUN,
    )
}


# The comparisons the thesis draws, by name, for the report: the SUPClust ablation (Fig. 5.3),
# the strategies of the D_clst x D_typ study (chapter 4), the baselines every figure has, and
# the thesis's own method (the verdicts of alsys.verdict).
ABLATION = (SUPClust.name, SUPClustNoSup.name, SUPClustNoTypicality.name, TypiClust.name)
DIM_STRATEGIES = (TypiClust.name, SUPClust.name, SUPClustNoSup.name, SUPClustNoTypicality.name)
RANDOM = Random.name
TYPICLUST = TypiClust.name
SUPCLUST = SUPClust.name


def strategy_params(name: str) -> dict[str, Any]:
    """The hyperparameters of strategy ``name`` with their defaults."""
    return {f.name: f.default for f in dataclasses.fields(get_strategy_class(name)) if f.init}


def get_strategy_class(name: str) -> type[Strategy]:
    return lookup(REGISTRY, name, "strategy")


def get_inputs(name: str) -> Inputs:
    """What strategy ``name`` reads in a trial (its class's declaration)."""
    return get_strategy_class(name).inputs


def effective_params(
    name: str, params: dict[str, Any], n_classes: int | None = None
) -> dict[str, Any]:
    """Every hyperparameter strategy ``name`` runs with: its defaults, overlaid with
    ``params``; the parameter it declares for the number of classes gets ``n_classes`` when
    left unset."""
    values = {**strategy_params(name), **params}
    return values if n_classes is None else with_n_classes(name, values, n_classes)


def with_n_classes(name: str, params: dict[str, Any], n_classes: int) -> dict[str, Any]:
    """``params`` with the dataset's number of classes in the parameter strategy ``name``
    declares for it (``Inputs.n_classes``), where that is unset and not overridden."""
    inputs, out = get_inputs(name), dict(params)
    declared, unless = inputs.n_classes, inputs.n_classes_unless
    if declared is None or out.get(declared) is not None:
        return out
    if unless is None or out.get(unless) is None:
        out[declared] = n_classes
    return out


def make_strategy(name: str, **params: Any) -> Strategy:
    """The strategy ``name`` with ``params``; unknown names or parameters list what is valid."""
    cls = get_strategy_class(name)
    valid = strategy_params(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        listing = ", ".join(valid) if valid else "none"
        raise InputError(f"{name}.{unknown[0]}", f"unknown parameter; {name} takes: {listing}")
    return cls(**params)


__all__ = [
    "ABLATION",
    "BADGE",
    "BALD",
    "DBAL",
    "DIM_STRATEGIES",
    "FALCUN",
    "OODLLR",
    "RANDOM",
    "REGISTRY",
    "SUPCLUST",
    "TCM",
    "TYPICLUST",
    "BatchBALD",
    "Clustering",
    "Coreset",
    "DCoM",
    "DropQuery",
    "Entropy",
    "Inputs",
    "LeastConfidence",
    "Margin",
    "MaxHerding",
    "Pool",
    "ProbCover",
    "Random",
    "SUPClust",
    "SUPClustLA",
    "SUPClustNoSup",
    "SUPClustNoTypicality",
    "Selection",
    "Strategy",
    "TypiClust",
    "UHerding",
    "bald_scores",
    "cluster_weights",
    "coverage_graph",
    "effective_params",
    "entropy_scores",
    "get_inputs",
    "get_strategy_class",
    "herding_greedy",
    "kcenter_greedy",
    "kernel_coverage",
    "kmeans",
    "labeled_mask_from_indices",
    "least_confidence_scores",
    "make_strategy",
    "margin_scores",
    "purity_delta",
    "strategy_params",
    "sup_scores",
    "typicality",
    "validate_selection",
    "with_n_classes",
]
