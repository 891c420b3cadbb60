"""The statistics of every table and figure, one rule each: the standard error, the area under
the learning curve, the effective D pair, and the key of a configuration.

The sweep summary, its CSV, the parent run's curves, ``alsys report`` and tune_supclust's
held-out table all use these, so one seed reads "1 seed" everywhere and one configuration is
one line everywhere (tuned and default SUPClust are two).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from alsys.config import TrialConfig


def sem(values: Iterable[float]) -> float:
    """The standard error of the mean, ``std(ddof=1) / sqrt(n)``; NaN for fewer than two values
    (one seed has no standard error: it is written "1 seed", never 0)."""
    array = np.asarray(list(values), dtype=np.float64)
    if array.shape[0] < 2:
        return math.nan
    return float(array.std(ddof=1) / math.sqrt(array.shape[0]))


# What tells one trial of a configuration from another: its SimCLR training and its seed.
REPLICATE = ("embed_seed", "seed")


def seeds_text(n: int) -> str:
    """``1 seed``, ``3 seeds``."""
    return f"{n} seed" if n == 1 else f"{n} seeds"


def mean_sem_text(mean: float, error: float) -> str:
    """``0.612 ± 0.010``; without a standard error (one seed) ``0.612 (1 seed)``."""
    return f"{mean:.3f} ± {error:.3f}" if error == error else f"{mean:.3f} ({seeds_text(1)})"


def auc(balanced_accuracies: Iterable[float]) -> float:
    """The area under the learning curve: the mean balanced accuracy over the rounds (the
    rounds are equally spaced in labels, b per round)."""
    return float(np.mean(np.asarray(list(balanced_accuracies), dtype=np.float64)))


def effective_dims(d_clst: int | None, d_typ: int | None, embedding_dim: int) -> tuple[int, int]:
    """The SimCLR dimensions a trial clusters and measures typicality in: D_clst defaults to
    the classifier's embedding dimension, D_typ to D_clst (thesis chapter 4)."""
    clustering = d_clst or embedding_dim
    return clustering, d_typ or clustering


def params_label(params: Mapping[str, Any], joiner: str = " ", equals: str = "=") -> str:
    """Strategy parameters in a name or a table: ``temperature=0.5 typ_ratio=0.1``; none is
    ``default``."""
    if not params:
        return "default"
    return joiner.join(
        f"{k}{equals}{f'{v:.4g}' if isinstance(v, float) else v}" for k, v in sorted(params.items())
    )


def _strategy_defaults(strategy: str) -> tuple[dict[str, Any], tuple[str, ...]] | None:
    """The strategy's parameters with their defaults, and those every name spells; None for a
    strategy this alsys does not know (a run logged by another version)."""
    from alsys.errors import InputError
    from alsys.strategies import get_inputs, strategy_params

    try:
        return strategy_params(strategy), get_inputs(strategy).name_params
    except InputError:
        return None


@dataclass(frozen=True)
class Configuration:
    """What a mean over seeds is taken over: the trials that differ only in their seed.

    ``params`` are the strategy's parameters that differ from its defaults (an explicit default
    is the default), sorted; ``d_clst``/``d_typ`` the SimCLR pair when the trial gives one (as
    :func:`effective_dims` completes it), else None.
    """

    strategy: str
    params: tuple[tuple[str, Any], ...]
    space: str
    d_clst: int | None
    d_typ: int | None
    dataset: str
    budget: str
    setting: str

    @classmethod
    def of(cls, config: TrialConfig) -> Configuration:
        dims = (
            (config.clustering_dim, config.typicality_dim)
            if config.d_clst or config.d_typ
            else None
        )
        return cls(
            strategy=config.strategy,
            params=_non_default(config.strategy, config.strategy_params),
            space=config.space,
            d_clst=dims[0] if dims else None,
            d_typ=dims[1] if dims else None,
            dataset=config.dataset,
            budget=config.budget,
            setting=config.setting,
        )

    @classmethod
    def from_json(cls, text: str) -> Configuration:
        data = json.loads(text)
        return cls(**{**data, "params": tuple((k, v) for k, v in data["params"])})

    def to_json(self) -> str:
        return json.dumps({**self.fields(), "params": [list(p) for p in self.params]})

    def fields(self) -> dict[str, Any]:
        """The key's columns for a table (``params`` as sorted JSON)."""
        return {
            "strategy": self.strategy,
            "params": json.dumps(dict(self.params), sort_keys=True),
            "space": self.space,
            "d_clst": self.d_clst,
            "d_typ": self.d_typ,
            "dataset": self.dataset,
            "budget": self.budget,
            "setting": self.setting,
        }

    def name(self, seed: int | None = None, embed_seed: int = 0) -> str:
        """``supclust-digits-tiny-ssl[-e1][-s0]-c16-t16[-<space>][-<named params>][-<params>]``:
        the trial's run name (``TrialConfig.run_name``; ``-e<n>`` for a SimCLR training other
        than the default 0) and the parameters that differ from the defaults; without ``seed``,
        the configuration's own name (over every seed and training)."""
        name = f"{self.strategy}-{self.dataset}-{self.budget}-{self.setting}"
        if seed is not None:
            name += (f"-e{embed_seed}" if embed_seed else "") + f"-s{seed}"
        if self.d_clst is not None:
            name += f"-c{self.d_clst}-t{self.d_typ}"
        if self.space != "simclr":
            name += "-" + self.space.replace(":", "-")
        known = _strategy_defaults(self.strategy)
        spelled = known[1] if known else ()
        if spelled and known:
            values = {**known[0], **dict(self.params)}
            name += "-" + params_label({k: values[k] for k in spelled}, joiner="-", equals="")
        rest = {k: v for k, v in self.params if k not in spelled}
        return name + ("-" + params_label(rest, joiner="-", equals="") if rest else "")

    def describe(self, dims: bool = True) -> str:
        """``supclust 16/16 [pca:32] temperature=0.5``: the strategy and what sets it apart."""
        label = self.strategy
        if dims and self.d_clst is not None:
            label += f" {self.d_clst}/{self.d_typ}"
        if self.space != "simclr":
            label += f" [{self.space}]"
        return label + (f" {params_label(dict(self.params))}" if self.params else "")


def _non_default(strategy: str, params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    known = _strategy_defaults(strategy)
    defaults = known[0] if known else {}
    return tuple(sorted((k, v) for k, v in params.items() if k not in defaults or v != defaults[k]))


def param_value(raw: str | None) -> Any:
    """An MLflow param as the value it was logged from (JSON, else the string itself)."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def configuration_of_params(params: Mapping[str, str]) -> Configuration:
    """The configuration of a run logged without its key (by an alsys before the key was
    tagged): from its MLflow params. The parameter that takes the dataset's number of classes
    is left out, as it is filled in the logged params whether or not it was given."""
    from alsys.strategies import get_inputs

    value = param_value
    strategy = params["strategy"]
    given = {
        k.removeprefix("strategy_params."): value(v)
        for k, v in params.items()
        if k.startswith("strategy_params.")
    }
    known = _strategy_defaults(strategy)
    declared = get_inputs(strategy).n_classes if known else None
    given.pop(declared or "", None)
    d_clst, d_typ = value(params.get("d_clst")), value(params.get("d_typ"))
    dims = (
        effective_dims(d_clst, d_typ, int(value(params.get("ssl.embedding_dim")) or 0))
        if d_clst or d_typ
        else (None, None)
    )
    return Configuration(
        strategy=strategy,
        params=_non_default(strategy, given),
        space=params.get("space") or "simclr",
        d_clst=dims[0],
        d_typ=dims[1],
        dataset=params.get("dataset", ""),
        budget=params.get("budget", ""),
        setting=params.get("setting", ""),
    )
