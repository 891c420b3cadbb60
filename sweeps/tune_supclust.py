"""Tune SUPClust's temperature and typ_ratio with Optuna TPE through Ray Tune's OptunaSearch.

Tunes on the YAML's ``seeds``, then runs the best parameters, TypiClust and SUPClust with its
default parameters on the held-out seeds (``holdout_seeds``, disjoint) as ordinary trials, and
ends with their table: mean balanced accuracy over rounds, mean +- s.e. over the held-out
seeds. Also prints the parameter importances; the study is stored beside Tune's results (an
Optuna journal file) so it can be inspected or extended. See --help.

All of alsys's Optuna code lives here; its MLflow logging goes through alsys.tracking.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray import tune

from alsys.config import TrialConfig, params_label
from alsys.errors import InputError
from alsys.loop import run_trial
from alsys.sweep.cli import default_storage, open_parent_run, run_sweep
from alsys.sweep.collect import configuration_means, mean_sem
from alsys.sweep.launch import SweepProgress, result_files
from alsys.sweep.prepare import (
    check_tracking,
    connect_ray,
    data_key,
    prepare_embeddings,
    shared_data,
    trial_resources,
)
from alsys.sweep.spec import SweepSpec, read_yaml

DEFAULT_CONFIG = Path(__file__).with_suffix(".yaml")


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
        labels.append((label, mean_sem(row.mean, row.sem), str(row.seeds)))
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
    raw = read_yaml(path, smoke, known)
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


def tuning_trainable(
    param: dict[str, Any],
    datasets: dict[str, Any],
    base: dict[str, Any],
    seeds: list[int],
    key: str,
    tracking_uri: str,
    experiment: str,
    parent_run_id: str,
) -> None:
    """One Optuna candidate: SUPClust with (temperature, typ_ratio) on every seed of ``seeds``.

    The objective is the area under the learning curve (mean balanced accuracy over rounds),
    averaged over the same fixed seeds for every candidate, so all values are comparable. After
    each seed the running mean is reported, so an early-stopped candidate's value is still the
    same quantity over fewer seeds.
    """
    from alsys.tracking import log_candidate

    data = shared_data(datasets[key])
    params = {"temperature": float(param["temperature"]), "typ_ratio": float(param["typ_ratio"])}
    curves: list[float] = []
    for done, seed in enumerate(seeds, start=1):
        config = TrialConfig.from_dict({**base, "seed": seed, "strategy_params": params})
        state = run_trial(config, data)
        curves.append(float(np.mean([r.balanced_accuracy for r in state.rounds])))
        tune.report({"auc": float(np.mean(curves)), "seeds_done": done})
    log_candidate(
        tracking_uri,
        experiment,
        parent_run_id,
        f"supclust-T{params['temperature']:.3g}-r{params['typ_ratio']:.3g}",
        {**params, "seeds": seeds},
        {"auc": (float(np.mean(curves)), len(curves))},
        {"strategy": "supclust"},
    )


def tune_main(default_config: Path = DEFAULT_CONFIG, argv: list[str] | None = None) -> int:
    """Optuna TPE over SUPClust's temperature (log-uniform) and typ_ratio via OptunaSearch on
    the tuning seeds; then the best parameters, TypiClust and default SUPClust on the held-out
    seeds."""
    import argparse

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from alsys.tracking import finish_run, resolve_tracking_uri, set_tag

    parser = argparse.ArgumentParser(description=tune_main.__doc__)
    parser.add_argument("--config", default=str(default_config))
    parser.add_argument("--smoke", action="store_true", help="the ~1 minute version")
    parser.add_argument(
        "--storage-path",
        default=default_storage(),
    )
    parser.add_argument("--tracking-uri")
    parser.add_argument("--store")
    parser.add_argument(
        "--early-stop", action="store_true", help="ASHA over seeds: stop poor candidates early"
    )
    args = parser.parse_args(argv)
    try:
        tuning = load_tuning_spec(args.config, smoke=args.smoke)
    except InputError as error:
        print(f"{default_config.stem}: error: {error}", file=sys.stderr)
        return 2
    name = tuning.name + ("_smoke" if args.smoke else "")
    folder = Path(args.storage_path).resolve() / name
    folder.mkdir(parents=True, exist_ok=True)
    study_file = folder / "optuna_journal.log"  # the stored study; one writer (the driver)
    storage = JournalStorage(JournalFileBackend(str(study_file)))
    uri = resolve_tracking_uri(args.tracking_uri)
    connect_ray()
    try:
        check_tracking(uri)
    except InputError as error:
        print(f"{default_config.stem}: error: {error}", file=sys.stderr)
        return 2
    store_root = str(Path(args.store).resolve()) if args.store else None
    base = tuning.base
    datasets = prepare_embeddings([base], store_root)
    parent = open_parent_run(SweepSpec(name=name, axes={}), uri, name, folder, resume=False)
    # Where the study lives, so `alsys report` can draw it.
    set_tag(uri, parent, "optuna_journal", str(study_file))
    space = {
        "temperature": tune.loguniform(*tuning.temperature),
        "typ_ratio": tune.uniform(*tuning.typ_ratio),
    }
    searcher = OptunaSearch(
        metric="auc",
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=tuning.sampler_seed),
        study_name=name,
        storage=storage,
    )
    fn = tune.with_parameters(
        tuning_trainable,
        datasets=datasets,
        base=base.to_dict(),
        seeds=tuning.seeds,
        key=data_key(base),
        tracking_uri=uri,
        experiment=name,
        parent_run_id=parent,
    )
    scheduler = None
    if args.early_stop or tuning.early_stop:
        scheduler = ASHAScheduler(
            time_attr="seeds_done", max_t=len(tuning.seeds), grace_period=1, reduction_factor=2
        )
    with result_files() as loggers:
        grid = tune.Tuner(
            tune.with_resources(fn, trial_resources(tuning.resources)),
            param_space=space,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                metric="auc",
                mode="max",
                num_samples=tuning.num_samples,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(folder.parent),
                callbacks=[
                    SweepProgress(
                        tuning.num_samples,
                        tuning.num_samples * len(tuning.seeds),
                        "seeds_done",
                        "seed",
                    ),
                    *loggers,
                ],
                verbose=0,
            ),
        ).fit()
    best = grid.get_best_result()
    best_config, best_metrics = best.config or {}, best.metrics or {}
    finish_run(uri, parent)
    tuned = {k: float(best_config[k]) for k in ("temperature", "typ_ratio")}
    print(
        f"best: temperature={tuned['temperature']:.4g} typ_ratio={tuned['typ_ratio']:.4g} "
        f"auc={best_metrics['auc']:.4f} (on the tuning seeds: held-out results below)"
    )
    study = optuna.load_study(study_name=name, storage=storage)
    try:
        importances = optuna.importance.get_param_importances(study)
        print("parameter importances: " + ", ".join(f"{k}={v:.3f}" for k, v in importances.items()))
    except (RuntimeError, ValueError) as error:
        print(f"parameter importances: not computable ({error})")
    print(
        f"study {name!r} stored in {study_file} ({len(study.trials)} trials); "
        f"load it with optuna.load_study(study_name={name!r}, "
        f"storage=JournalStorage(JournalFileBackend({str(study_file)!r})))"
    )
    # The held-out seeds, as ordinary trials (Tune, MLflow children of their own parent run).
    rows, errors = run_sweep(
        tuning.holdout_spec(f"{name}_holdout", tuned),
        storage_path=str(folder.parent),
        tracking_uri=uri,
        experiment=name,
        store_root=store_root,
    )
    print("\n" + holdout_text(rows, tuning, tuned, float(best_metrics["auc"])))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(tune_main())
