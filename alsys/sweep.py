"""Sweep specs: a YAML space expanded into validated trial configs, and the results table.

No Ray here (``alsys/tune_adapter.py`` and ``sweeps/`` hold it). A spec names lists for the axes
it sweeps; every combination is one trial. The whole spec is validated, every trial config
built, before anything runs, so a bad field fails at once with its name.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alsys.config import TrialConfig
from alsys.errors import InputError

AXES = ("strategy", "dataset", "budget", "setting", "seed", "d_clst", "d_typ", "space")
SCALARS = (
    "episodes",
    "embed_epochs",
    "embed_mode",
    "mc_passes",
    "embed_seed",
    "hvae_epochs",
    "ssl",
    "fsl",
)
# Each axis may be written singular or plural; either takes one value or a list.
PLURALS = {
    "strategy": "strategies",
    "dataset": "datasets",
    "budget": "budgets",
    "setting": "settings",
    "seed": "seeds",
    "space": "spaces",
}


def _selects_in_a_space(strategy: Any) -> bool:
    """Whether the ``space`` axis matters to a strategy: those that select in embeddings
    (Coreset reads the classifier's features, model-based ones its outputs)."""
    from alsys.strategies import REGISTRY

    cls = REGISTRY.get(str(strategy))
    return cls is not None and cls.needs == "embeddings" and cls.name != "coreset"


@dataclass(frozen=True)
class SweepSpec:
    """A sweep's space. ``axes["space"]`` may also be a mapping strategy -> list of spaces, and
    a ``strategy_params`` entry a list of parameter sets (variants, each its own trial)."""

    name: str
    axes: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    strategy_params: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1, "gpu": 0.25})
    max_failures: int = 2
    # Trials where D_clst/D_typ are unset sweep only the other axes (e.g. random).
    dims_for: tuple[str, ...] = ("typiclust", "supclust")

    def trials(self) -> list[TrialConfig]:
        """Every trial of the space, validated; D_clst/D_typ apply to ``dims_for`` only."""
        from alsys.config import FSLClassifierConfig, SSLClassifierConfig

        fixed = dict(self.fixed)
        try:
            if isinstance(fixed.get("ssl"), dict):
                fixed["ssl"] = SSLClassifierConfig(**fixed["ssl"])
            if isinstance(fixed.get("fsl"), dict):
                fixed["fsl"] = FSLClassifierConfig(**fixed["fsl"])
        except TypeError as error:
            raise InputError(f"{self.name}: ssl/fsl", str(error)) from None
        configs: dict[str, TrialConfig] = {}
        names = [a for a in AXES if a in self.axes and a != "space"]
        for values in itertools.product(*(self.axes[a] for a in names)):
            point = dict(zip(names, values, strict=True))
            if point.get("strategy") not in self.dims_for:
                point.pop("d_clst", None)
                point.pop("d_typ", None)
            strategy = point["strategy"]
            params = self.strategy_params.get(strategy, {})
            variants = params if isinstance(params, list) else [params]
            spaces: list[Any] = ["simclr"]
            if _selects_in_a_space(strategy):
                spaces = self.spaces_for(strategy)
            for space, variant in itertools.product(spaces, variants):
                if not isinstance(variant, dict):
                    raise InputError(
                        f"strategy_params.{strategy}", "must be a mapping or a list of mappings"
                    )
                try:
                    config = TrialConfig(
                        **point,
                        **fixed,
                        space=space,
                        strategy_params=variant,
                        dataset_options=self.dataset_options,
                    )
                except TypeError as error:
                    raise InputError(self.name, str(error)) from None
                configs.setdefault(config.run_name(), config)
        return list(configs.values())

    def spaces_for(self, strategy: str) -> list[Any]:
        """The spaces a strategy's trials select in (``simclr`` when the axis is absent)."""
        spaces = self.axes.get("space", ["simclr"])
        if len(spaces) == 1 and isinstance(spaces[0], dict):
            by_strategy = spaces[0]
            unknown = sorted(set(by_strategy) - set(self.axes["strategy"]))
            if unknown:
                raise InputError("spaces", f"names strategy {unknown[0]!r}, not in this sweep")
            chosen = by_strategy.get(strategy, ["simclr"])
            return list(chosen) if isinstance(chosen, list) else [chosen]
        return spaces


def _read_yaml(path: str | Path, smoke: bool, known: set[str]) -> dict[str, Any]:
    """A sweep YAML as a dict, its ``smoke:`` section overlaid when asked; unknown fields fail."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise InputError("--config", f"no such file: {path}")
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InputError("--config", f"{path} is not valid YAML{at}: {problem}") from None
    if not isinstance(raw, dict):
        raise InputError("--config", f"{path} must hold a mapping")
    smoke_overrides = raw.pop("smoke", {}) or {}
    if smoke:
        raw.update(smoke_overrides)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(
            f"{file.name}: {unknown[0]}", f"unknown field; valid: {', '.join(sorted(known))}"
        )
    return raw


def load_spec(path: str | Path, smoke: bool = False) -> SweepSpec:
    """Reads a sweep YAML; ``smoke`` overlays its ``smoke:`` section (a ~1 minute version)."""
    file = Path(path)
    known = {
        "name",
        "strategy_params",
        "dataset_options",
        "resources",
        "max_failures",
        *AXES,
        *PLURALS.values(),
        *SCALARS,
    }
    raw = _read_yaml(path, smoke, known)
    axes: dict[str, list[Any]] = {}
    for axis in AXES:
        value = raw.get(PLURALS.get(axis, axis), raw.get(axis))
        if value is None:
            continue
        axes[axis] = list(value) if isinstance(value, list) else [value]
    if "strategy" not in axes:
        raise InputError(f"{file.name}: strategies", "a sweep needs at least one strategy")
    spec = SweepSpec(
        name=str(raw.get("name", file.stem)),
        axes=axes,
        fixed={k: raw[k] for k in SCALARS if k in raw},
        strategy_params=raw.get("strategy_params", {}) or {},
        dataset_options=raw.get("dataset_options", {}) or {},
        resources=raw.get("resources", {"cpu": 1, "gpu": 0.25}),
        max_failures=int(raw.get("max_failures", 2)),
    )
    try:
        spec.trials()  # fail now, naming the field, not after the cluster has started
    except InputError as error:
        raise InputError(f"{file.name}: {error.field}", error.problem) from None
    return spec


def results_table(rows: list[dict[str, Any]]) -> Any:
    """Mean and standard error over seeds, per configuration and round (a pandas DataFrame).

    rows: one dict per (trial, round) with the config fields, ``round`` and metrics.
    """
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    keys = [
        k
        for k in (
            "strategy",
            "params",
            "space",
            "dataset",
            "budget",
            "setting",
            "d_clst",
            "d_typ",
            "round",
        )
        if k in frame
    ]
    frame = frame.fillna({"d_clst": "-", "d_typ": "-"})
    grouped = frame.groupby(keys, dropna=False)["balanced_accuracy"]
    table = grouped.agg(["mean", "count", "std"]).reset_index()
    table["sem"] = table["std"] / np.sqrt(table["count"])
    return table.drop(columns="std").rename(columns={"count": "seeds"})


@dataclass(frozen=True)
class TuningSpec:
    """Optuna's search over SUPClust's temperature and typ_ratio."""

    name: str
    base: TrialConfig  # the trial every candidate runs (seed and SUPClust params replaced)
    seeds: list[int]
    temperature: tuple[float, float]
    typ_ratio: tuple[float, float]
    num_samples: int
    sampler_seed: int
    early_stop: bool
    resources: dict[str, float]


def load_tuning_spec(path: str | Path, smoke: bool = False) -> TuningSpec:
    file = Path(path)
    known = {
        "name",
        "dataset",
        "setting",
        "budget",
        "seeds",
        "episodes",
        "embed_epochs",
        "search",
        "num_samples",
        "sampler_seed",
        "early_stop",
        "resources",
    }
    raw = _read_yaml(path, smoke, known)
    search = raw.get("search", {})
    ranges = {}
    for name, low_bound in (("temperature", 0.0), ("typ_ratio", 0.0)):
        bounds = search.get(name, {})
        low, high = float(bounds.get("low", 0)), float(bounds.get("high", 0))
        if not low_bound < low < high or (name == "typ_ratio" and high > 1):
            limit = "(0, 1]" if name == "typ_ratio" else "(0, inf)"
            raise InputError(f"{file.name}: search.{name}", f"needs low < high within {limit}")
        ranges[name] = (low, high)
    base = TrialConfig(
        strategy="supclust",
        dataset=raw.get("dataset", "digits"),
        setting=raw.get("setting", "ssl"),
        budget=raw.get("budget", "tiny"),
        episodes=int(raw.get("episodes", 5)),
        embed_epochs=raw.get("embed_epochs"),
    )
    seeds = [int(s) for s in raw.get("seeds", [0, 1, 2])]
    if not seeds:
        raise InputError(f"{file.name}: seeds", "needs at least one seed")
    return TuningSpec(
        name=str(raw.get("name", file.stem)),
        base=base,
        seeds=seeds,
        temperature=ranges["temperature"],
        typ_ratio=ranges["typ_ratio"],
        num_samples=int(raw.get("num_samples", 20)),
        sampler_seed=int(raw.get("sampler_seed", 0)),
        early_stop=bool(raw.get("early_stop", False)),
        resources=raw.get("resources", {"cpu": 1, "gpu": 0.25}),
    )
