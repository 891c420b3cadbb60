"""The strategy contract (tests/strategy_contract.py) over every registered strategy: a class per
registry entry, made here, so a strategy added to the registry is under contract without a line
of test. Each runs with its default parameters, except where a default only costs time."""

from __future__ import annotations

from typing import Any

from alsys.strategies import REGISTRY
from tests.strategy_contract import StrategyContract

# BatchBALD's default samples up to 40,000 / C class configurations per pick: seconds per
# selection here, and nothing in the contract depends on the sample count.
FASTER: dict[str, dict[str, Any]] = {"batchbald": {"num_samples": 200}}

CONTRACTS = {
    name: type(
        f"TestContract_{name}", (StrategyContract,), {"name": name, "params": FASTER.get(name, {})}
    )
    for name in REGISTRY
}
globals().update({cls.__name__: cls for cls in CONTRACTS.values()})
