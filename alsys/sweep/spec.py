"""The sweep's spec: a YAML space expanded, once, into validated, frozen, named trials.

No Ray here. A spec names lists for the axes it sweeps; every combination is one trial.
:func:`load_sweep` reads the YAML and expands it into a :class:`Sweep`: every trial config is
built (and so checked) there, once, before anything runs, so a bad field fails at once with its
name; the later stages read the frozen trials and check nothing again. A trial's identity is
``TrialConfig.trial_id`` (a hash of its validated config); two entries of the YAML that give
one trial are an error naming both. Its name is its config's run name
(:meth:`alsys.stats.Configuration.name`: every axis it varies, and the strategy parameters set
to other values than their defaults).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alsys.config import TrialConfig
from alsys.errors import InputError

AXES = (
    "strategy",
    "dataset",
    "budget",
    "setting",
    "embed_seed",
    "seed",
    "d_clst",
    "d_typ",
    "space",
)
BASELINE_FIELDS = ("strategy", "d_clst", "d_typ")
SCALARS = (
    "episodes",
    "embed_epochs",
    "embed_mode",
    "mc_passes",
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
    # The SimCLR training each trial reads (its own seed): several make the representation a
    # factor of the sweep, as a selection seed is one (alsys.verdict splits the spread).
    "embed_seed": "embed_seeds",
    "space": "spaces",
}


def _selects_in_a_space(strategy: Any) -> bool:
    """Whether the ``space`` axis matters to a strategy (its class declares it)."""
    from alsys.strategies import REGISTRY

    cls = REGISTRY.get(str(strategy))
    return cls is not None and cls.inputs.space


def _has_dims(strategy: Any) -> bool:
    """Whether the D_clst/D_typ axes apply to a strategy (its class declares it)."""
    from alsys.strategies import REGISTRY

    cls = REGISTRY.get(str(strategy))
    return cls is not None and cls.inputs.dims


@dataclass(frozen=True)
class Trial:
    """One trial of a sweep: its name (unique in the sweep, readable), its identity, its
    config, whether it is one of the sweep's baselines, and its configuration's name (the name
    without the seed: the trials a mean over seeds is taken over, ``alsys.stats``)."""

    name: str
    id: str
    config: TrialConfig
    baseline: bool
    configuration: str

    @classmethod
    def of(cls, config: TrialConfig, baseline: bool = False) -> Trial:
        key = config.configuration()
        return cls(config.run_name(), config.trial_id(), config, baseline, key.name())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "baseline": self.baseline,
            "configuration": self.configuration,
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        return cls(
            name=str(data["name"]),
            id=str(data["id"]),
            config=TrialConfig.from_dict(data["config"]),
            baseline=bool(data["baseline"]),
            configuration=str(data["configuration"]),
        )


# Where each config came from: axis -> "seeds[1]=3", for naming duplicated entries.
_Source = dict[str, str]


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
    # Strategies the D_clst/D_typ axes apply to; None: those whose class declares them
    # (Inputs.dims). Other trials sweep only the other axes (e.g. random).
    dims_for: tuple[str, ...] | None = None
    baselines: tuple[dict[str, Any], ...] = ()
    # The claim the sweep tests (alsys.verdict.CLAIMS), checked where the YAML is read.
    claim: str | None = None

    def sweep(self) -> Sweep:
        """The sweep this space runs: every trial expanded and validated, once."""
        trials = tuple(self.expand())
        return Sweep(self.name, trials, self.resources, self.max_failures, claim=self.claim)

    def expand(self) -> list[Trial]:
        """Every trial, once: the grid, then the baselines. A baseline that is also a grid
        point is that one trial (marked a baseline); two entries of the YAML that give one
        trial are an InputError naming both."""
        fixed = self._fixed()
        unique: dict[str, TrialConfig] = {}
        sources: dict[str, _Source] = {}
        baselines: set[str] = set()
        for part in ("grid", "baselines"):
            found = self._grid(fixed) if part == "grid" else self._baselines(fixed)
            for config, source in found:
                key = config.trial_id()
                if key in unique and part == "baselines" and key not in baselines:
                    baselines.add(key)  # the grid's own trial, run once
                    continue
                if key in unique:
                    raise _duplicate(sources[key], source, config)
                unique[key], sources[key] = config, source
                if part == "baselines":
                    baselines.add(key)
        trials: dict[str, Trial] = {}
        for key, config in unique.items():
            trial = Trial.of(config, key in baselines)
            if trial.name in trials:
                raise InputError(
                    f"strategy_params.{config.strategy}",
                    f"two variants are both named {trial.name}",
                )
            trials[trial.name] = trial
        return list(trials.values())

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
        self, point: dict[str, Any], source: _Source, fixed: dict[str, Any], spaces: list[Any]
    ) -> Iterator[tuple[TrialConfig, _Source]]:
        """The configs of one point of the space: one per space and parameter set, each with
        the entries of the YAML it came from."""
        strategy = point["strategy"]
        params = self.strategy_params.get(strategy, {})
        variants = params if isinstance(params, list) else [params]
        for (s, space), (v, variant) in itertools.product(enumerate(spaces), enumerate(variants)):
            if not isinstance(variant, dict):
                raise InputError(
                    f"strategy_params.{strategy}", "must be a mapping or a list of mappings"
                )
            where = dict(source)
            if len(spaces) > 1:
                where["space"] = f"{self._spaces_field(strategy)}[{s}]={space}"
            if isinstance(params, list):
                where["params"] = f"strategy_params.{strategy}[{v}]={variant}"
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
            yield config, where

    def _dims_for(self, strategy: Any) -> bool:
        return strategy in self.dims_for if self.dims_for is not None else _has_dims(strategy)

    def _grid(self, fixed: dict[str, Any]) -> Iterator[tuple[TrialConfig, _Source]]:
        """The product of the axes; D_clst/D_typ apply to the strategies that declare them."""
        names = [a for a in AXES if a in self.axes and a != "space"]
        indexed = [list(enumerate(self.axes[a])) for a in names]
        seen: set[str] = set()
        for values in itertools.product(*indexed):
            point = {a: value for a, (_, value) in zip(names, values, strict=True)}
            source = {
                a: f"{PLURALS.get(a, a)}[{i}]={value}"
                for a, (i, value) in zip(names, values, strict=True)
            }
            if not self._dims_for(point.get("strategy")):
                for axis in ("d_clst", "d_typ"):
                    point.pop(axis, None)
                    source.pop(axis, None)
            where = json.dumps(source, sort_keys=True)
            if where in seen:
                continue  # an axis that does not apply to this strategy: the same point again
            seen.add(where)
            strategy = point["strategy"]
            spaces = self.spaces_for(strategy) if _selects_in_a_space(strategy) else ["simclr"]
            yield from self._variants(point, source, fixed, spaces)

    def _baselines(self, fixed: dict[str, Any]) -> Iterator[tuple[TrialConfig, _Source]]:
        """Each baseline per value of the axes it does not set (seed, dataset, ...)."""
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
                if not self._dims_for(entry["strategy"]):
                    raise InputError(f"{where}.{axis}", f"{entry['strategy']} has no D_clst/D_typ")
                if value == "max":
                    if not self.axes.get(axis):
                        raise InputError(f"{where}.{axis}", f"max needs a {axis} axis in the sweep")
                    value = max(self.axes[axis])
                dims[axis] = value
            indexed = [list(enumerate(self.axes[a])) for a in names]
            for values in itertools.product(*indexed):
                point = {a: value for a, (_, value) in zip(names, values, strict=True)}
                point = {**point, **dims, "strategy": entry["strategy"]}
                source = {
                    a: f"{PLURALS.get(a, a)}[{i}]={value}"
                    for a, (i, value) in zip(names, values, strict=True)
                }
                source["baseline"] = f"{where}={entry}"
                yield from self._variants(point, source, fixed, ["simclr"])

    def _spaces_field(self, strategy: str) -> str:
        spaces = self.axes.get("space", ["simclr"])
        by_strategy = len(spaces) == 1 and isinstance(spaces[0], dict)
        return f"spaces.{strategy}" if by_strategy else "spaces"

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


def read_yaml(path: str | Path, smoke: bool, known: set[str], full: bool = False) -> dict[str, Any]:
    """A sweep YAML as a dict, its ``smoke:`` (a ~1 minute version) or ``full:`` section (the
    thesis's whole axis, opt-in) overlaid when asked; unknown fields fail."""
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
    if smoke and full:
        raise InputError("--full", "give --smoke or --full, not both")
    sections = {name: raw.pop(name, None) for name in ("smoke", "full")}
    chosen = "smoke" if smoke else "full" if full else None
    if chosen is not None:
        overrides = sections[chosen]
        if chosen == "full" and overrides is None:
            raise InputError("--full", f"{file.name} has no full: section")
        if overrides is not None and not isinstance(overrides, dict):
            raise InputError(f"{file.name}: {chosen}", "must be a mapping of fields to override")
        raw.update(overrides or {})
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(
            f"{file.name}: {unknown[0]}", f"unknown field; valid: {', '.join(sorted(known))}"
        )
    return raw


def read_spec(path: str | Path, smoke: bool = False, full: bool = False) -> SweepSpec:
    """A sweep YAML as its space, not yet expanded; ``smoke`` overlays its ``smoke:`` section
    (a ~1 minute version), ``full`` its ``full:`` section."""
    file = Path(path)
    known = {
        "name",
        "strategy_params",
        "dataset_options",
        "resources",
        "max_failures",
        "baselines",
        "claim",
        *AXES,
        *PLURALS.values(),
        *SCALARS,
    }
    raw = read_yaml(path, smoke, known, full)
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
    claim = _claim(raw.get("claim"), f"{file.name}: claim", axes, baselines)
    return SweepSpec(
        name=str(raw.get("name", file.stem)),
        axes=axes,
        fixed={k: raw[k] for k in SCALARS if k in raw},
        strategy_params=raw.get("strategy_params", {}) or {},
        dataset_options=raw.get("dataset_options", {}) or {},
        resources=raw.get("resources", {"cpu": 1, "gpu": 0.25}),
        max_failures=int(raw.get("max_failures", 2)),
        baselines=tuple(baselines),
        claim=claim,
    )


def _claim(value: Any, field: str, axes: dict[str, list[Any]], baselines: list[Any]) -> str | None:
    """The YAML's ``claim:``, checked once here: a claim a grid sweep can test, and one its
    axes can answer (alsys.verdict.claims holds both rules)."""
    from alsys.strategies import TYPICLUST
    from alsys.verdict.claims import GRID_CLAIMS, check_claim, check_grid_claim

    claim = check_claim(value, field, GRID_CLAIMS)
    check_grid_claim(claim, field, axes, baselines, TYPICLUST)
    return claim


def load_sweep(path: str | Path, smoke: bool = False, full: bool = False) -> Sweep:
    """The sweep a YAML gives: read, expanded and validated once, before anything runs; an
    error names the file and the field."""
    spec = read_spec(path, smoke, full)
    try:
        return spec.sweep()
    except InputError as error:
        raise InputError(f"{Path(path).name}: {error.field}", error.problem) from None


@dataclass(frozen=True)
class Sweep:
    """A sweep as it runs: its trials, expanded and validated once and frozen from then on, and
    how they run (each trial's resources, the retries a failed trial gets).

    ``candidates`` makes it a search: Tune's search algorithm samples strategy parameters and
    each sample (a candidate) runs on :class:`Candidates`'s seeds; ``trials`` are then empty.
    ``claim`` is what its end judges (alsys.verdict), None for none.
    """

    name: str
    trials: tuple[Trial, ...]
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1, "gpu": 0.25})
    max_failures: int = 2
    candidates: Candidates | None = None
    claim: str | None = None

    def renamed(self, name: str) -> Sweep:
        return replace(self, name=name)

    def configs(self) -> list[TrialConfig]:
        """The configs whose data the sweep reads: its trials', or a search's base on each of
        its seeds."""
        if self.candidates is not None:
            return [replace(self.candidates.base, seed=s) for s in self.candidates.seeds]
        return [t.config for t in self.trials]


@dataclass(frozen=True)
class Candidates:
    """A search's unit: each candidate (a set of strategy parameters the search samples) runs
    ``base`` with those parameters on every seed of ``seeds``, the same seeds for every
    candidate, so that their values compare. Its value is the mean over those seeds of the area
    under the learning curve."""

    base: TrialConfig
    seeds: tuple[int, ...]

    def trials(self, params: dict[str, Any]) -> list[Trial]:
        """The candidate's trials, one per seed (each config built, so checked, here)."""
        given = {**self.base.strategy_params, **params}
        return [Trial.of(replace(self.base, seed=s, strategy_params=given)) for s in self.seeds]

    def name(self, params: dict[str, Any]) -> str:
        """``supclust-temperature0.123-typ_ratio0.456``: what a candidate's MLflow run is called."""
        from alsys.stats import params_label

        return f"{self.base.strategy}-" + params_label(params, joiner="-", equals="")


def _duplicate(first: _Source, second: _Source, config: TrialConfig) -> InputError:
    """Two entries of the YAML give one trial: the error names both."""
    differ = [k for k in {**first, **second} if first.get(k) != second.get(k)]
    one = ", ".join(first[k] for k in differ if k in first) or "an earlier entry"
    two = ", ".join(second[k] for k in differ if k in second) or "a later entry"
    axis = differ[0] if differ else "strategy"
    field = (
        "strategy_params"
        if axis == "params"
        else "baselines"
        if axis == "baseline"
        else PLURALS.get(axis, axis)
    )
    return InputError(
        field, f"{one} and {two} are the same trial ({config.run_name()}); list it once"
    )


TRIALS_DIR = "trials"  # <storage>/<sweep>/trials/<id>.json: every trial's frozen config


def freeze(trials: tuple[Trial, ...] | list[Trial], folder: Path) -> None:
    """Writes every trial's frozen config to ``folder/trials/<id>.json`` (each atomically),
    before any trial starts: the record of what the sweep ran, by identity (the trials
    themselves reach the workers through Ray's object store)."""
    target = folder / TRIALS_DIR
    target.mkdir(parents=True, exist_ok=True)
    for trial in trials:
        file = target / f"{trial.id}.json"
        tmp = file.with_name(f".{file.name}.tmp")
        tmp.write_text(json.dumps(trial.to_dict(), indent=2, sort_keys=True))
        tmp.replace(file)
