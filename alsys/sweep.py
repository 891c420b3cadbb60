"""Sweep specs: a YAML space expanded into validated trial configs, and the results table.

No Ray here (``alsys/tune_adapter.py`` and ``sweeps/`` hold it). A spec names lists for the axes
it sweeps; every combination is one trial. The whole spec is validated, every trial config
built, before anything runs, so a bad field fails at once with its name.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alsys.config import TrialConfig
from alsys.errors import InputError

AXES = ("strategy", "dataset", "budget", "setting", "seed", "d_clst", "d_typ", "space")
BASELINE_FIELDS = ("strategy", "d_clst", "d_typ")
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


def params_label(params: dict[str, Any], joiner: str = " ", equals: str = "=") -> str:
    """Strategy parameters in a name or a table: ``temperature=0.5 typ_ratio=0.1``; none is
    ``default``."""
    if not params:
        return "default"
    return joiner.join(
        f"{k}{equals}{f'{v:.4g}' if isinstance(v, float) else v}" for k, v in sorted(params.items())
    )


def _selects_in_a_space(strategy: Any) -> bool:
    """Whether the ``space`` axis matters to a strategy: those that select in embeddings
    (Coreset reads the classifier's features, model-based ones its outputs)."""
    from alsys.strategies import REGISTRY

    cls = REGISTRY.get(str(strategy))
    return cls is not None and cls.needs == "embeddings" and cls.name != "coreset"


@dataclass(frozen=True)
class SweepSpec:
    """A sweep's space. ``axes["space"]`` may also be a mapping strategy -> list of spaces, and
    a ``strategy_params`` entry a list of parameter sets (variants, each its own trial).

    ``baselines`` run beside the grid: each ``{strategy, d_clst, d_typ}`` (the D's optional,
    ``max`` = that axis's largest value) is crossed with the other axes (seeds, datasets,
    budgets, settings), not with the strategies, D's or spaces.
    """

    name: str
    axes: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    strategy_params: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1, "gpu": 0.25})
    max_failures: int = 2
    # Trials where D_clst/D_typ are unset sweep only the other axes (e.g. random).
    dims_for: tuple[str, ...] = ("typiclust", "supclust")
    baselines: tuple[dict[str, Any], ...] = ()

    def trials(self) -> list[TrialConfig]:
        """Every trial of the space and its baselines, validated, each config once."""
        return list(self.named_trials().values())

    def named_trials(self) -> dict[str, TrialConfig]:
        """Trial name -> config: the grid, then the baselines. Equal configs are one trial (a
        baseline that is also a grid point runs once). The name is the config's run name, with
        its strategy parameters appended where parameter variants would share one."""
        fixed = self._fixed()
        unique: dict[str, TrialConfig] = {}
        for config in [*self._grid(fixed), *self._baselines(fixed)]:
            unique.setdefault(config.to_json(), config)
        counts = Counter(c.run_name() for c in unique.values())
        named: dict[str, TrialConfig] = {}
        for config in unique.values():
            name = config.run_name()
            if counts[name] > 1:
                name += "-" + params_label(config.strategy_params, joiner="-", equals="")
            if name in named:
                raise InputError(
                    f"strategy_params.{config.strategy}", f"two variants are both named {name}"
                )
            named[name] = config
        return named

    def baseline_names(self) -> set[str]:
        """The names (as in ``named_trials``) of the baseline trials."""
        wanted = {c.to_json() for c in self._baselines(self._fixed())}
        return {name for name, c in self.named_trials().items() if c.to_json() in wanted}

    def _fixed(self) -> dict[str, Any]:
        from alsys.config import FSLClassifierConfig, SSLClassifierConfig

        fixed = dict(self.fixed)
        try:
            if isinstance(fixed.get("ssl"), dict):
                fixed["ssl"] = SSLClassifierConfig(**fixed["ssl"])
            if isinstance(fixed.get("fsl"), dict):
                fixed["fsl"] = FSLClassifierConfig(**fixed["fsl"])
        except TypeError as error:
            raise InputError(f"{self.name}: ssl/fsl", str(error)) from None
        return fixed

    def _variants(
        self, point: dict[str, Any], fixed: dict[str, Any], spaces: list[Any]
    ) -> list[TrialConfig]:
        """The configs of one point of the space: one per space and parameter set."""
        strategy = point["strategy"]
        params = self.strategy_params.get(strategy, {})
        variants = params if isinstance(params, list) else [params]
        configs = []
        for space, variant in itertools.product(spaces, variants):
            if not isinstance(variant, dict):
                raise InputError(
                    f"strategy_params.{strategy}", "must be a mapping or a list of mappings"
                )
            try:
                configs.append(
                    TrialConfig(
                        **point,
                        **fixed,
                        space=space,
                        strategy_params=variant,
                        dataset_options=self.dataset_options,
                    )
                )
            except TypeError as error:
                raise InputError(self.name, str(error)) from None
        return configs

    def _grid(self, fixed: dict[str, Any]) -> list[TrialConfig]:
        """The product of the axes; D_clst/D_typ apply to ``dims_for`` only."""
        configs = []
        names = [a for a in AXES if a in self.axes and a != "space"]
        for values in itertools.product(*(self.axes[a] for a in names)):
            point = dict(zip(names, values, strict=True))
            if point.get("strategy") not in self.dims_for:
                point.pop("d_clst", None)
                point.pop("d_typ", None)
            strategy = point["strategy"]
            spaces = self.spaces_for(strategy) if _selects_in_a_space(strategy) else ["simclr"]
            configs += self._variants(point, fixed, spaces)
        return configs

    def _baselines(self, fixed: dict[str, Any]) -> list[TrialConfig]:
        """Each baseline per value of the axes it does not set (seed, dataset, ...)."""
        configs = []
        names = [a for a in AXES if a in self.axes and a not in (*BASELINE_FIELDS, "space")]
        for index, entry in enumerate(self.baselines):
            where = f"baselines[{index}]"
            if not isinstance(entry, dict) or "strategy" not in entry:
                raise InputError(
                    where, "must be a mapping with a strategy, e.g. {strategy: random}"
                )
            unknown = sorted(set(entry) - set(BASELINE_FIELDS))
            if unknown:
                valid = ", ".join(BASELINE_FIELDS)
                raise InputError(f"{where}.{unknown[0]}", f"unknown field; valid: {valid}")
            dims = {}
            for axis in ("d_clst", "d_typ"):
                value = entry.get(axis)
                if value is None:
                    continue
                if entry["strategy"] not in self.dims_for:
                    raise InputError(f"{where}.{axis}", f"{entry['strategy']} has no D_clst/D_typ")
                if value == "max":
                    if not self.axes.get(axis):
                        raise InputError(f"{where}.{axis}", f"max needs a {axis} axis in the sweep")
                    value = max(self.axes[axis])
                dims[axis] = value
            for values in itertools.product(*(self.axes[a] for a in names)):
                point = {**dict(zip(names, values, strict=True)), **dims}
                point["strategy"] = entry["strategy"]
                configs += self._variants(point, fixed, ["simclr"])
        return configs

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
        "baselines",
        *AXES,
        *PLURALS.values(),
        *SCALARS,
    }
    raw = _read_yaml(path, smoke, known)
    baselines = raw.get("baselines") or []
    if not isinstance(baselines, list):
        raise InputError(f"{file.name}: baselines", "must be a list of {strategy, d_clst, d_typ}")
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
        baselines=tuple(baselines),
    )
    try:
        spec.trials()  # fail now, naming the field, not after the cluster has started
    except InputError as error:
        raise InputError(f"{file.name}: {error.field}", error.problem) from None
    return spec


CONFIG_KEYS = ("strategy", "params", "space", "dataset", "budget", "setting", "d_clst", "d_typ")


def _frame(rows: list[dict[str, Any]]) -> Any:
    """The rows as a frame; an unset D (a strategy without one) reads ``-``."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for key in ("d_clst", "d_typ"):
        if key in frame:
            frame[key] = ["-" if pd.isna(v) else int(v) for v in frame[key]]
    if "baseline" not in frame:
        frame["baseline"] = False
    return frame


def results_table(rows: list[dict[str, Any]]) -> Any:
    """Mean and standard error over seeds, per configuration and round (a pandas DataFrame).

    rows: one dict per (trial, round) with the config fields, ``seed``, ``baseline`` (whether
    the trial is one of the sweep's baselines), ``round`` and ``balanced_accuracy``.
    """
    frame = _frame(rows)
    if frame.empty:
        return frame
    keys = [k for k in (*CONFIG_KEYS, "baseline", "round") if k in frame]
    grouped = frame.groupby(keys, dropna=False, sort=False)["balanced_accuracy"]
    table = grouped.agg(["mean", "count", "std"]).reset_index()
    table["sem"] = table["std"] / np.sqrt(table["count"])
    return table.drop(columns="std").rename(columns={"count": "seeds"})


def configuration_means(rows: list[dict[str, Any]]) -> Any:
    """Per configuration, the mean balanced accuracy over rounds (the area under the learning
    curve) of each seed, then its mean and standard error over seeds (columns ``mean``,
    ``sem``, ``seeds``), in the order the configurations first appear."""
    frame = _frame(rows)
    if frame.empty:
        return frame
    keys = [k for k in (*CONFIG_KEYS, "baseline") if k in frame]
    per_seed = frame.groupby([*keys, "seed"], sort=False).balanced_accuracy.mean().reset_index()
    grouped = per_seed.groupby(keys, sort=False).balanced_accuracy
    table = grouped.agg(["mean", "count", "std"]).reset_index()
    table["sem"] = table["std"] / np.sqrt(table["count"])  # NaN for one seed
    return table.drop(columns="std").rename(columns={"count": "seeds"})


def _config_label(row: Any, dims: bool = True, mark: bool = True) -> str:
    """``typiclust 64/64 hvae:z2:mean invert=True``: the strategy and what sets it apart."""
    label = str(row.strategy)
    if dims and (row.d_clst != "-" or row.d_typ != "-"):
        label += f" {row.d_clst}/{row.d_typ}"
    if getattr(row, "space", "simclr") != "simclr":
        label += f" {row.space}"
    params = json.loads(getattr(row, "params", "{}") or "{}")
    if params:
        label += " " + params_label(params)
    return label + (" (baseline)" if mark and row.baseline else "")


def summary_text(rows: list[dict[str, Any]]) -> str:
    """The end of a sweep in a few lines: per dataset/budget/setting, a D_clst x D_typ grid of
    the mean over rounds (mean over seeds) for each strategy run at several D pairs; then every
    other configuration and the baselines, mean +- s.e. over seeds, a column per
    dataset/budget/setting."""
    import pandas as pd

    means = configuration_means(rows)
    if means.empty:
        return "No trial finished a round: nothing to summarise."
    counts = sorted(set(means.seeds))
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    lines = [
        "Mean balanced accuracy over rounds (the area under the learning curve), mean over "
        f"seeds ({seeds} seed{'' if seeds == '1' else 's'} per configuration):"
    ]
    means["group"] = means.dataset + " " + means.budget + " " + means.setting
    keys = ["group", "strategy", "space", "params"]
    with_dims = means.d_clst != "-"
    listed = [means[~with_dims | means.baseline]]
    for (group, *_), block in means[with_dims].groupby(keys, sort=False):
        if len(block) < 2:  # one D pair is no grid: it is listed with the others
            listed.append(block)
            continue
        title = _config_label(block.iloc[0], dims=False, mark=False)
        lines += ["", f"{title}, {group}: D_clst (rows) x D_typ (columns)", *_grid_lines(block)]
    table = pd.concat(listed).drop_duplicates(subset=[*keys, "d_clst", "d_typ"])
    if table.empty:
        return "\n".join(lines)
    table = table.sort_values("baseline", kind="stable")  # baselines last, beside the grids
    table["label"] = [_config_label(row) for row in table.itertuples()]
    table["cell"] = [_mean_sem(m, e) for m, e in zip(table["mean"], table["sem"], strict=True)]
    pivot = table.pivot(index="label", columns="group", values="cell")
    pivot = pivot.reindex(index=table.label.unique(), columns=means.group.unique()).fillna("")
    pivot.index.name = pivot.columns.name = None
    lines += ["", "Mean ± s.e. over seeds:", pivot.to_string(line_width=100)]
    return "\n".join(lines)


def _mean_sem(mean: float, sem: float) -> str:
    """``0.612 ± 0.010``; one seed has no standard error."""
    return f"{mean:.3f} ± {sem:.3f}" if sem == sem else f"{mean:.3f} (1 seed)"


def _grid_lines(block: Any) -> list[str]:
    """One strategy's D_clst x D_typ grid of means, as text rows."""
    grid = block.pivot_table(index="d_clst", columns="d_typ", values="mean", aggfunc="mean")
    grid = grid.reindex(index=sorted(grid.index), columns=sorted(grid.columns))
    head = "D_clst\\D_typ"
    lines = [f"{head:>12}" + "".join(f"{c:>7}" for c in grid.columns)]
    for d_clst, values in grid.iterrows():
        cells = "".join(f"{v:7.3f}" if v == v else f"{'':>7}" for v in values)
        lines.append(f"{d_clst:>12}{cells}")
    return lines


@dataclass(frozen=True)
class TuningSpec:
    """Optuna's search over SUPClust's temperature and typ_ratio on the tuning ``seeds``, then
    the chosen parameters on ``holdout_seeds`` (disjoint) beside TypiClust and default
    SUPClust."""

    name: str
    base: TrialConfig  # the trial every candidate runs (seed and SUPClust params replaced)
    seeds: list[int]
    holdout_seeds: list[int]
    temperature: tuple[float, float]
    typ_ratio: tuple[float, float]
    num_samples: int
    sampler_seed: int
    early_stop: bool
    resources: dict[str, float]

    def holdout_spec(self, name: str, tuned: dict[str, float]) -> SweepSpec:
        """The held-out evaluation as an ordinary sweep: SUPClust with the tuned and with its
        default parameters, and TypiClust, each on every held-out seed."""
        base = self.base
        return SweepSpec(
            name=name,
            axes={
                "strategy": ["supclust", "typiclust"],
                "dataset": [base.dataset],
                "budget": [base.budget],
                "setting": [base.setting],
                "seed": list(self.holdout_seeds),
            },
            fixed={"episodes": base.episodes, "embed_epochs": base.embed_epochs},
            strategy_params={"supclust": [dict(tuned), {}]},
            resources=self.resources,
        )


def holdout_text(
    rows: list[dict[str, Any]], spec: TuningSpec, tuned: dict[str, float], tuning_auc: float
) -> str:
    """The held-out table: per strategy and parameters, the mean balanced accuracy over rounds,
    mean +- s.e. over the held-out seeds."""
    from alsys.strategies import make_strategy

    defaults = make_strategy("supclust")
    default = {k: float(getattr(defaults, k)) for k in sorted(tuned)}
    means = configuration_means(rows)
    lines = [
        f"Held-out seeds {', '.join(map(str, spec.holdout_seeds))} (tuned on seeds "
        f"{', '.join(map(str, spec.seeds))}): mean balanced accuracy over rounds, mean ± s.e. "
        "over the held-out seeds",
    ]
    labels = []
    for row in means.itertuples() if not means.empty else []:
        if row.strategy != "supclust":
            label = str(row.strategy)
        elif json.loads(row.params):
            label = f"supclust tuned: {params_label(tuned)}"
        else:
            label = f"supclust default: {params_label(default)}"
        labels.append((label, _mean_sem(row.mean, row.sem), str(row.seeds)))
    width = max([len("strategy / parameters"), *(len(label) for label, _, _ in labels)])
    lines.append(f"{'strategy / parameters':<{width}}  {'mean ± s.e.':<15}  seeds")
    lines += [f"{label:<{width}}  {cell:<15}  {seeds}" for label, cell, seeds in labels]
    if not labels:
        lines.append("(no held-out trial finished a round)")
    lines.append(
        f"The tuning seeds' value of the tuned parameters ({tuning_auc:.4f}) is how they were "
        "chosen, not a result: it is biased upwards. Compare on the held-out seeds."
    )
    return "\n".join(lines)


def _seeds(raw: dict[str, Any], key: str, default: list[int], file: Path) -> list[int]:
    """A list of seeds from the YAML: non-empty integers >= 0."""
    value = raw.get(key, default)
    values = value if isinstance(value, list) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise InputError(f"{file.name}: {key}", f"needs a list of integers >= 0, got {value!r}")
    return [int(v) for v in values]


def load_tuning_spec(path: str | Path, smoke: bool = False) -> TuningSpec:
    file = Path(path)
    known = {
        "name",
        "dataset",
        "setting",
        "budget",
        "seeds",
        "holdout_seeds",
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
    seeds = _seeds(raw, "seeds", [0, 1, 2], file)
    if "holdout_seeds" not in raw:
        raise InputError(f"{file.name}: holdout_seeds", "needs seeds disjoint from seeds")
    holdout = _seeds(raw, "holdout_seeds", [], file)
    shared = sorted(set(seeds) & set(holdout))
    if shared:
        raise InputError(
            f"{file.name}: holdout_seeds",
            f"must be disjoint from the tuning seeds; both hold {', '.join(map(str, shared))}",
        )
    return TuningSpec(
        name=str(raw.get("name", file.stem)),
        base=base,
        seeds=seeds,
        holdout_seeds=holdout,
        temperature=ranges["temperature"],
        typ_ratio=ranges["typ_ratio"],
        num_samples=int(raw.get("num_samples", 20)),
        sampler_seed=int(raw.get("sampler_seed", 0)),
        early_stop=bool(raw.get("early_stop", False)),
        resources=raw.get("resources", {"cpu": 1, "gpu": 0.25}),
    )
