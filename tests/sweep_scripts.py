"""The sweep scripts under sweeps/ as modules (sweeps/ is entry points, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"


def load(name: str) -> ModuleType:
    """``sweeps/<name>.py``, imported once."""
    key = f"sweeps_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, SWEEPS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses look their module up while it executes
        spec.loader.exec_module(module)
        from ray import cloudpickle

        # Ray's workers cannot import a script by this name: its functions travel by value,
        # as they do when the script runs as __main__.
        cloudpickle.register_pickle_by_value(module)
    return sys.modules[key]


def tune_main(*args: Any, **kwargs: Any) -> int:
    return int(load("tune_supclust").tune_main(*args, **kwargs))


def load_tuning_spec(*args: Any, **kwargs: Any) -> Any:
    return load("tune_supclust").load_tuning_spec(*args, **kwargs)
