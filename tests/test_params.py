"""Every hyperparameter of every registered strategy is set by a test (scikit-activeml's check).

``SETTINGS`` gives, per strategy and hyperparameter, a valid value other than the default and
an invalid one. The tests below run over the registry, not over this table: a strategy with a
hyperparameter the table lacks fails the first test, and every hyperparameter is set once to a
value the strategy must accept (and select with, under the contract) and once to one it must
refuse, naming the parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from alsys.errors import InputError
from alsys.strategies import (
    REGISTRY,
    make_strategy,
    strategy_params,
    validate_selection,
    with_n_classes,
)
from tests.strategy_contract import StrategyContract

# What TypiClust's clustering takes, and every strategy built on it.
CLUSTERING = {
    "max_clusters": (3, 0),
    "min_cluster_size": (1, -1),
    "k_neighbors": (5, 0),
    "distance": ("euclidean", "cosine"),
    "knn": ("partitioned", "approximate"),
    "normalize": (False, "no"),
    "kmeans_iters": (5, 0),
    "kmeans_restarts": (2, 0),
}
SETTINGS: dict[str, dict[str, tuple[Any, Any]]] = {
    "random": {},
    "least_confidence": {},
    "margin": {},
    "entropy": {},
    "bald": {},
    "dbal": {},
    "batchbald": {"num_samples": (200, 0), "max_candidates": (50, -1)},
    "badge": {"seeding": ("skactiveml", "kmeans"), "normalize": (True, "yes")},
    "coreset": {"normalize": (True, 1)},
    "typiclust": CLUSTERING,
    "probcover": {
        "delta": (0.3, 0.0),
        "n_classes": (3, 1),
        "purity": (0.9, 1.5),
        "purity_sample": (50, 0),
        "normalize": (False, "x"),
        "max_edges": (10**6, 0),
        "max_pool": (10**6, 0),
    },
    "maxherding": {"bandwidth": (0.5, 0.0), "neighbours": (7, 0), "normalize": (False, "x")},
    "uherding": {
        "uncertainty": ("entropy", "bald"),
        "temperature": (2.0, 0.0),
        "fit_min_per_class": (0.5, -1.0),
        "adaptive_bandwidth": (False, "x"),
        "bandwidth": (0.5, -1.0),
        "neighbours": (7, 0),
        "normalize": (False, "x"),
    },
    "supclust": {**CLUSTERING, "temperature": (0.5, 0.0), "typ_ratio": (0.5, 1.5)},
    "supclust_no_sup": {**CLUSTERING, "typ_ratio": (0.5, 0.0)},
    "supclust_no_typicality": {**CLUSTERING, "temperature": (0.5, -1.0)},
    "ood_llr": {**CLUSTERING, "invert": (True, 1), "k": (1, 3), "model": ("hvae-emb", "vae")},
    "tcm": {
        "switch_per_class": (2.0, -1.0),
        "n_classes": (4, 1),
        "max_clusters": (3, 0),
        "k_neighbors": (5, 0),
    },
    "supclust_la": {**CLUSTERING, "temperature": (0.5, 0.0), "typ_ratio": (0.5, 1.5)},
    "dcom": {
        "initial_delta": (0.5, -1.0),
        "n_classes": (3, 1),
        "max_delta": (2.0, 0.0),
        "delta_resolution": (0.1, 0.0),
        "k_logistic": (10.0, 0.0),
        "a_logistic": (0.5, 1.5),
        "normalize": (False, "x"),
        "max_edges": (10**6, 0),
    },
    "dropquery": {
        "dropout_rate": (0.5, 1.0),
        "dropout_passes": (5, 0),
        "normalize": (False, "x"),
    },
    "falcun": {"gamma": (2.0, -1.0)},
}
EVERY = [(name, param) for name in sorted(REGISTRY) for param in strategy_params(name)]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_hyperparameter_has_a_test_that_sets_it(name: str) -> None:
    missing = sorted(set(strategy_params(name)) - set(SETTINGS.get(name, {})))
    assert not missing, f"{name}: no test sets {', '.join(missing)} (add it to SETTINGS)"
    stale = sorted(set(SETTINGS.get(name, {})) - set(strategy_params(name)))
    assert not stale, f"{name} has no parameter {', '.join(stale)}"


@pytest.mark.parametrize(("name", "param"), EVERY, ids=[f"{n}.{p}" for n, p in EVERY])
def test_a_valid_value_is_taken_and_the_strategy_still_keeps_its_contract(
    name: str, param: str
) -> None:
    value = SETTINGS[name][param][0]
    assert value != strategy_params(name)[param], "the test sets another value than the default"
    contract = type("Contract", (StrategyContract,), {"name": name, "params": {param: value}})()
    if name == "batchbald":
        contract.params = {"num_samples": 200, **contract.params}  # fast, as in the contract
    assert getattr(contract.strategy(), param) == value
    pool = contract.make_pool()
    mask = contract.labeled(pool.n, 7)
    selection = contract.select(pool, mask, 10, np.random.default_rng(0))
    validate_selection(selection.indices, mask, 10)


@pytest.mark.parametrize(("name", "param"), EVERY, ids=[f"{n}.{p}" for n, p in EVERY])
def test_an_invalid_value_is_refused_naming_the_parameter(name: str, param: str) -> None:
    bad = SETTINGS[name][param][1]
    with pytest.raises(InputError, match=rf"\b{param}\b") as error:
        make_strategy(name, **with_n_classes(name, {param: bad}, 4))
    assert "\n" not in str(error.value)
