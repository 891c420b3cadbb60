from __future__ import annotations

import dataclasses

import pytest

import alsys
from alsys.errors import InputError
from alsys.strategies import REGISTRY, make_strategy, strategy_params

EXPECTED = {
    "random",
    "least_confidence",
    "margin",
    "entropy",
    "bald",
    "dbal",
    "batchbald",
    "coreset",
    "typiclust",
    "probcover",
    "supclust",
    "supclust_no_sup",
    "supclust_no_typicality",
    "ood_llr",  # chapter 3: TypiClust's clusters, picks by the HVAE's LLR
}
# Beyond the thesis: the low-budget strategies researchers compare against today.
FRONTIER = {"badge", "maxherding", "uherding", "tcm", "supclust_la", "dcom", "dropquery", "falcun"}


def test_registry_holds_every_strategy_of_the_thesis_and_the_frontier() -> None:
    assert set(REGISTRY) == EXPECTED | FRONTIER
    for name, cls in REGISTRY.items():
        assert cls.name == name
        assert dataclasses.is_dataclass(cls)


def test_unknown_strategy_lists_the_valid_names() -> None:
    with pytest.raises(InputError, match="valid: badge, bald, batchbald, coreset"):
        make_strategy("typiclus")


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(InputError, match=r"supclust takes: max_clusters.*temperature, typ_ratio"):
        make_strategy("supclust", temprature=0.5)


def test_strategies_are_frozen_and_report_their_defaults() -> None:
    strategy = make_strategy("supclust")
    with pytest.raises(dataclasses.FrozenInstanceError):
        strategy.temperature = 2.0  # type: ignore[misc]
    assert strategy_params("supclust")["typ_ratio"] == 0.1


def test_import_alsys_does_not_import_ray_or_mlflow() -> None:
    import subprocess
    import sys

    code = (
        "import alsys, alsys.strategies, alsys.cli, alsys.loop, alsys.data, alsys.sweep, sys; "
        "print(sorted(m for m in ('ray', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert alsys.__version__
