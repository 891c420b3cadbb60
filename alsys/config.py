"""One trial's configuration: frozen, validated, flattenable to MLflow params and back to JSON.

A trial is one (strategy, dataset, budget, setting, seed, temperature, typ_ratio, D_clst, D_typ)
experiment; every default below carries its source.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from alsys.errors import InputError

BUDGETS = ("tiny", "small")  # thesis 2.1.1: b = #classes, b = 5 x #classes
SETTINGS = ("ssl", "fsl")  # thesis 5.3.1
BUDGET_FACTOR = {"tiny": 1, "small": 5}
SIMCLR_DIMENSIONS = (8, 16, 32, 64, 128, 256, 512)  # thesis chapter 4


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


@dataclass(frozen=True)
class TrialConfig:
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
    embed_mode: str = "nested"
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
        from alsys.data import dataset_loader
        from alsys.strategies import make_strategy

        make_strategy(self.strategy, **self.strategy_kwargs(2))  # validates name and params
        dataset_loader(self.dataset)
        if self.budget not in BUDGETS:
            raise InputError("budget", f"must be one of {', '.join(BUDGETS)}, got {self.budget!r}")
        if self.setting not in SETTINGS:
            raise InputError("setting", f"must be ssl or fsl, got {self.setting!r}")
        if self.setting == "fsl" and self.dataset == "embeddings":
            raise InputError("setting", "fsl trains on images; the embeddings dataset has none")
        for name in ("seed", "embed_seed", "episodes", "mc_passes"):
            value = getattr(self, name)
            low = 0 if name in ("seed", "embed_seed") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(name, f"must be an integer >= {low}, got {value!r}")
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
        if self.hvae_epochs is not None and (
            isinstance(self.hvae_epochs, bool)
            or not isinstance(self.hvae_epochs, int)
            or self.hvae_epochs < 1
        ):
            raise InputError("hvae_epochs", f"must be an integer >= 1, got {self.hvae_epochs!r}")
        for name in ("d_clst", "d_typ"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputError(name, f"must be a positive integer, got {value!r}")
            if (
                value is not None
                and self.dataset != "embeddings"
                and value not in SIMCLR_DIMENSIONS
            ):
                dims = ", ".join(map(str, SIMCLR_DIMENSIONS))
                raise InputError(name, f"SimCLR embeddings come in {dims}; not {value}")

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
        return self.d_clst or self.ssl.embedding_dim

    @property
    def typicality_dim(self) -> int:
        return self.d_typ or self.clustering_dim

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        data = dict(data)
        data["ssl"] = SSLClassifierConfig(**data.get("ssl", {}))
        data["fsl"] = FSLClassifierConfig(**data.get("fsl", {}))
        return cls(**data)

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
        """Readable: ``supclust-digits-tiny-ssl-s0-c32-t64``, plus the parameters the strategy
        declares as part of every name (``Inputs.name_params``)."""
        name = f"{self.strategy}-{self.dataset}-{self.budget}-{self.setting}-s{self.seed}"
        if self.d_clst or self.d_typ:
            name += f"-c{self.clustering_dim}-t{self.typicality_dim}"
        if self.space != "simclr":
            name += "-" + self.space.replace(":", "-")
        from alsys.strategies import get_inputs

        spelled = get_inputs(self.strategy).name_params
        if spelled:
            params = self.effective_params()
            name += "-" + params_label({k: params[k] for k in spelled}, joiner="-", equals="")
        return name

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


def params_label(params: dict[str, Any], joiner: str = " ", equals: str = "=") -> str:
    """Strategy parameters in a name or a table: ``temperature=0.5 typ_ratio=0.1``; none is
    ``default``."""
    if not params:
        return "default"
    return joiner.join(
        f"{k}{equals}{f'{v:.4g}' if isinstance(v, float) else v}" for k, v in sorted(params.items())
    )
