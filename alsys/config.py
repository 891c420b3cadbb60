"""One trial's configuration: frozen, validated, flattenable to MLflow params and back to JSON.

A trial is one (strategy, dataset, budget, setting, seed, temperature, typ_ratio, D_clst, D_typ)
experiment; every default below carries its source. Every field is checked when the config is
built (``__post_init__``): a sweep builds each trial's config once, from its YAML, before
anything starts, and later stages read the frozen configs without checking them again.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from alsys.errors import InputError
from alsys.stats import Configuration, effective_dims

BUDGETS = ("tiny", "small")  # thesis 2.1.1: b = #classes, b = 5 x #classes
SETTINGS = ("ssl", "fsl")  # thesis 5.3.1
BUDGET_FACTOR = {"tiny": 1, "small": 5}
SIMCLR_DIMENSIONS = (8, 16, 32, 64, 128, 256, 512)  # thesis chapter 4
# Nested: one SimCLR training gives every D (its first d features); separate: one per D.
EMBED_MODES = ("nested", "separate")
# The networks alsys.embed.simclr.make_backbone builds (which makes a ResNet18 of any other name).
FSL_BACKBONES = (
    "small_cnn",
    "small_cnn_fc",
    "small_cnn32_fc",
    "resnet18",
    "resnet18_cifar",
    "resnet34_cifar",
)


def check_count(name: str, value: Any, low: int = 1, optional: bool = False) -> None:
    """An integer >= ``low`` (or None when ``optional``); the error names the field."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(name, f"must be an integer >= {low}, got {value!r}")


def check_real(name: str, value: Any, low: float = 0.0, below: float | None = None) -> None:
    """A real number >= ``low`` (and < ``below``); the error names the field."""
    ok = not isinstance(value, bool) and isinstance(value, int | float) and value >= low
    if not ok or (below is not None and value >= below):
        upper = f" and < {below}" if below is not None else ""
        raise InputError(name, f"must be a number >= {low}{upper}, got {value!r}")


# (strategy class, parameters) already built once: a strategy's check is a pure function of
# both, so a sweep of thousands of trials builds each parameter set once to validate it.
_VALID_STRATEGIES: set[tuple[type, str]] = set()


def check_strategy(name: str, params: dict[str, Any]) -> None:
    """Builds strategy ``name`` with ``params`` (2 classes for a parameter that takes the
    dataset's number) once per distinct parameter set: an unknown name or parameter, or a bad
    value, is an InputError naming it."""
    from alsys.strategies import get_strategy_class, make_strategy, with_n_classes

    key = (get_strategy_class(name), json.dumps(params, sort_keys=True, default=repr))
    if key not in _VALID_STRATEGIES:
        make_strategy(name, **with_n_classes(name, params, 2))
        _VALID_STRATEGIES.add(key)


@dataclass(frozen=True)
class SSLClassifierConfig:
    """Linear classifier on frozen embeddings, trained with SGD for a fixed number of steps."""

    embedding_dim: int = 512  # SimCLR 512-D representations (thesis 5.3.1)
    steps: int = 300  # full-batch steps; the labeled set is small in this regime
    lr: float = 0.5
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # Dropout before the linear layer, so MC passes differ for bald/dbal/batchbald (the
    # reference head has none, which makes BALD ~0 everywhere). 0 turns it off.
    dropout: float = 0.2

    def __post_init__(self) -> None:
        check_count("ssl.embedding_dim", self.embedding_dim)
        check_count("ssl.steps", self.steps)
        for name in ("lr", "momentum", "weight_decay"):
            check_real(f"ssl.{name}", getattr(self, name))
        check_real("ssl.dropout", self.dropout, below=1.0)


@dataclass(frozen=True)
class FSLClassifierConfig:
    """ResNet18 from scratch on the labeled images (Table A.1); ``None`` = the dataset's preset."""

    backbone: str | None = None  # resnet18_cifar (CIFAR), resnet18 (ISIC), small_cnn (digits)
    epochs: int | None = None  # Table A.1: 200
    batch_size: int | None = None  # Table A.1: min(100, |L|) CIFAR, min(50, |L|) ISIC
    lr: float | None = None  # Table A.1: 0.025 CIFAR, 0.0125 ISIC
    momentum: float = 0.9  # Table A.1
    nesterov: bool = True  # Table A.1
    weight_decay: float = 3e-4  # Table A.1
    dropout: float = 0.2  # before the last layer, for MC-dropout strategies

    def __post_init__(self) -> None:
        if self.backbone is not None and self.backbone not in FSL_BACKBONES:
            valid = ", ".join(FSL_BACKBONES)
            raise InputError("fsl.backbone", f"must be one of {valid}; got {self.backbone!r}")
        check_count("fsl.epochs", self.epochs, optional=True)
        check_count("fsl.batch_size", self.batch_size, optional=True)
        if self.lr is not None:
            check_real("fsl.lr", self.lr)
        check_real("fsl.momentum", self.momentum)
        check_real("fsl.weight_decay", self.weight_decay)
        check_real("fsl.dropout", self.dropout, below=1.0)
        if not isinstance(self.nesterov, bool):
            raise InputError("fsl.nesterov", f"must be true or false, got {self.nesterov!r}")


@dataclass(frozen=True)
class TrialConfig:
    """One trial: everything that determines its selections and its numbers, frozen.

    A trial runs ``episodes`` rounds of select, label, train and evaluate on ``dataset`` with
    strategy ``strategy`` (its hyperparameters in ``strategy_params``), buying ``budget`` labels
    a round, in the ``setting`` SSL (a linear head on SimCLR embeddings) or FSL (a network from
    scratch on the images). Its randomness flows from ``seed`` (round r: ``[seed, r, stream]``);
    its representation from ``embed_seed``. Clustering strategies select in ``space``, at the
    SimCLR dimensions ``d_clst``/``d_typ`` there. :meth:`trial_id` is its identity and
    :meth:`run_name` its readable name; :meth:`tracked_params` are its MLflow params.
    """

    strategy: str
    dataset: str = "digits"
    budget: str = "tiny"
    setting: str = "ssl"
    seed: int = 0
    episodes: int = 5  # thesis: e = 5
    strategy_params: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    d_clst: int | None = None  # clustering space; None = the classifier's embedding dim
    d_typ: int | None = None  # typicality space; None = d_clst
    embed_mode: str = "nested"  # EMBED_MODES
    embed_epochs: int | None = None  # None = the dataset's SimCLR preset
    # One SimCLR model per dataset serves every active-learning seed (as in the thesis);
    # set it to vary the representation too.
    embed_seed: int = 0
    mc_passes: int = 20  # T_mc stochastic forward passes for bald/dbal/batchbald
    # Where clustering strategies select (thesis chapter 3): "simclr", an HVAE latent such
    # as "hvae:z2:mean" (on the images) or "hvae-emb:z0:rp" (on the SimCLR embeddings), or a
    # baseline on the raw images: "pixels", or "pca:32" (alsys.spaces).
    space: str = "simclr"
    hvae_epochs: int | None = None  # None = the dataset's HVAE preset
    ssl: SSLClassifierConfig = field(default_factory=SSLClassifierConfig)
    fsl: FSLClassifierConfig = field(default_factory=FSLClassifierConfig)

    def __post_init__(self) -> None:
        from alsys.data import check_dataset_options

        if not isinstance(self.strategy_params, dict):
            raise InputError("strategy_params", "must be a mapping of parameter names to values")
        check_strategy(self.strategy, self.strategy_params)
        check_dataset_options(self.dataset, self.dataset_options)
        if self.budget not in BUDGETS:
            raise InputError("budget", f"must be one of {', '.join(BUDGETS)}, got {self.budget!r}")
        if self.setting not in SETTINGS:
            raise InputError("setting", f"must be ssl or fsl, got {self.setting!r}")
        if self.setting == "fsl" and self.dataset == "embeddings":
            raise InputError("setting", "fsl trains on images; the embeddings dataset has none")
        for name in ("seed", "embed_seed", "episodes", "mc_passes"):
            check_count(name, getattr(self, name), 0 if name in ("seed", "embed_seed") else 1)
        check_count("embed_epochs", self.embed_epochs, optional=True)
        check_count("hvae_epochs", self.hvae_epochs, optional=True)
        if self.embed_mode not in EMBED_MODES:
            modes = ", ".join(EMBED_MODES)
            raise InputError("embed_mode", f"must be one of {modes}, got {self.embed_mode!r}")
        if not isinstance(self.ssl, SSLClassifierConfig):
            raise InputError("ssl", "must be a mapping of the SSL classifier's settings")
        if not isinstance(self.fsl, FSLClassifierConfig):
            raise InputError("fsl", "must be a mapping of the FSL classifier's settings")
        self._check_space()

    def _check_space(self) -> None:
        """The selection space and the SimCLR dimensions; what needs the data itself (a pca:D
        within the images, D of an embeddings dataset) is checked where it is loaded."""
        from alsys.spaces import parse_space

        space = parse_space(self.space)
        if space.model is not None and (self.d_clst is not None or self.d_typ is not None):
            raise InputError(
                "space", f"{self.space} is not SimCLR; d_clst/d_typ choose SimCLR dimensions"
            )
        if space.model == "hvae" and self.dataset == "embeddings":
            raise InputError("space", "hvae reads images; the embeddings dataset has none")
        if space.is_baseline and self.dataset == "embeddings":
            raise InputError(
                "space", f"{self.space} is computed from images; the embeddings dataset has none"
            )
        dims = ", ".join(map(str, SIMCLR_DIMENSIONS))
        for name in ("d_clst", "d_typ"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InputError(name, f"must be a positive integer, got {value!r}")
            if value is not None and value < 1:
                raise InputError(name, f"must be a positive integer, got {value!r}")
            if (
                value is not None
                and self.dataset != "embeddings"
                and value not in SIMCLR_DIMENSIONS
            ):
                raise InputError(name, f"SimCLR embeddings come in {dims}; not {value}")
        # The classifier's D, and D_clst/D_typ when those are not given.
        if self.dataset != "embeddings" and self.ssl.embedding_dim not in SIMCLR_DIMENSIONS:
            raise InputError(
                "ssl.embedding_dim",
                f"SimCLR embeddings come in {dims}; not {self.ssl.embedding_dim}",
            )

    def strategy_kwargs(self, n_classes: int) -> dict[str, Any]:
        """The strategy's parameters as given; the parameter it declares for the number of
        classes (ProbCover's purity rule, Yehuda et al.) gets ``n_classes`` when unset."""
        from alsys.strategies import with_n_classes

        return with_n_classes(self.strategy, self.strategy_params, n_classes)

    def effective_params(self, n_classes: int | None = None) -> dict[str, Any]:
        """Every hyperparameter the strategy runs with, its defaults included."""
        from alsys.strategies import effective_params

        return effective_params(self.strategy, self.strategy_params, n_classes)

    def trial_id(self) -> str:
        """The trial's identity: a stable hash of the validated config, with the strategy's
        effective parameters (an explicit default and an omitted one are the same trial)."""
        import hashlib

        identity = {**self.to_dict(), "strategy_params": self.effective_params()}
        text = json.dumps(identity, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def tracked_params(self, n_classes: int | None = None) -> dict[str, Any]:
        """The flattened config as MLflow params, the strategy's parameters as run, defaults
        included, all under ``strategy_params.<name>``."""
        flat = {k: v for k, v in self.flatten().items() if not k.startswith("strategy_params.")}
        for key, value in sorted(self.effective_params(n_classes).items()):
            flat[f"strategy_params.{key}"] = value
        return flat

    def budget_size(self, n_classes: int) -> int:
        return BUDGET_FACTOR[self.budget] * n_classes

    @property
    def clustering_dim(self) -> int:
        return effective_dims(self.d_clst, self.d_typ, self.ssl.embedding_dim)[0]

    @property
    def typicality_dim(self) -> int:
        return effective_dims(self.d_clst, self.d_typ, self.ssl.embedding_dim)[1]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        """The config of ``to_dict``'s output, validated again (it is input)."""
        data = dict(data)
        for name, kind in (("ssl", SSLClassifierConfig), ("fsl", FSLClassifierConfig)):
            try:
                data[name] = kind(**data.get(name, {}))
            except TypeError as error:  # an unknown key
                raise InputError(name, str(error)) from None
        try:
            return cls(**data)
        except TypeError as error:
            raise InputError("config", str(error)) from None

    def flatten(self) -> dict[str, Any]:
        """``{"ssl.lr": 0.5, "strategy_params.temperature": 1.0, ...}`` for MLflow params."""
        flat: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key in sorted(value):
                    walk(f"{prefix}.{key}" if prefix else str(key), value[key])
            else:
                flat[prefix] = value

        walk("", self.to_dict())
        return flat

    def run_name(self) -> str:
        """Readable and unique in a sweep: ``supclust-digits-tiny-ssl-s0-c32-t64``, plus the
        parameters the strategy declares as part of every name (``Inputs.name_params``) and those
        set to other values than the defaults (:meth:`alsys.stats.Configuration.name`)."""
        return self.configuration().name(self.seed, self.embed_seed)

    def configuration(self) -> Configuration:
        """The trials a mean over seeds is taken over: this one's, but for the seed and the
        SimCLR training (``embed_seed``): both are replicates of one configuration."""
        return Configuration.of(self)

    def score_source(self) -> tuple[str, int] | None:
        """The HVAE and k whose LLR^{>k} scores the strategy reads, if it reads scores."""
        from alsys.strategies import get_inputs

        declared = get_inputs(self.strategy).scores
        if declared is None:
            return None
        params = self.effective_params()
        return str(params[declared[0]]), int(params[declared[1]])

    @property
    def hvae_models(self) -> list[str]:
        """The HVAEs this trial reads: its space's, and its score model's."""
        from alsys.spaces import parse_space

        models = []
        space = parse_space(self.space)
        if space.is_hvae:
            models.append(str(space.model))
        scores = self.score_source()
        if scores is not None:
            models.append(scores[0])
        return sorted(set(models))
