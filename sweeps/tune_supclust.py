"""Tune SUPClust's temperature and typ_ratio: a spec, Optuna TPE and (optionally) ASHA, run by
the shared sweep engine.

- The spec (``TuningSpec``, sweeps/tune_supclust.yaml): the trial every candidate runs, the
  tuning ``seeds``, the search ranges, the held-out seeds.
- The search algorithm: Optuna TPE through Ray Tune's OptunaSearch, its study stored beside
  Tune's results (an Optuna journal file) so it can be inspected or extended.
- The scheduler: ASHA over the seeds a candidate has done (``--early-stop``), or none.

``alsys.sweep.cli.run_sweep`` runs the search as it runs every sweep: the shared trainable,
runner and tracker, SIGINT and ``--resume``, the parent run closed as failed on any error, and
one MLflow child run per candidate (its trials' runs under it). The best parameters, TypiClust
and SUPClust with its default parameters then run on the held-out seeds (``holdout_seeds``,
disjoint) as an ordinary sweep, which ends with their table: mean balanced accuracy over
rounds, mean +- s.e. over the held-out seeds. See --help.

All of alsys's Optuna code lives here; its MLflow logging goes through alsys.tracking.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alsys.config import TrialConfig
from alsys.errors import InputError
from alsys.stats import mean_sem_text, params_label
from alsys.sweep.cli import STOPS, run_sweep, stopped_line, sweep_parser
from alsys.sweep.collect import configuration_means
from alsys.sweep.conclude import conclude
from alsys.sweep.spec import Candidates, Sweep, SweepSpec, read_yaml
from alsys.verdict.claims import SEARCH_CLAIMS, check_claim

DEFAULT_CONFIG = Path(__file__).with_suffix(".yaml")
TUNED = ("temperature", "typ_ratio")


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
    claim: str | None = None  # what the held-out sweep's end judges (alsys.verdict)

    def sweep(self, name: str) -> Sweep:
        """The search as a sweep: each candidate runs ``base`` on every tuning seed."""
        return Sweep(name, (), self.resources, candidates=Candidates(self.base, tuple(self.seeds)))

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
            claim=self.claim,
        )


def holdout_text(
    rows: list[dict[str, Any]], spec: TuningSpec, tuned: dict[str, float], tuning_auc: float
) -> str:
    """The held-out table: per configuration, the mean balanced accuracy over rounds, mean +-
    s.e. over the held-out seeds (alsys.stats: one seed reads "1 seed")."""
    from alsys.strategies import strategy_params

    default = {k: float(strategy_params("supclust")[k]) for k in sorted(tuned)}
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
        labels.append((label, mean_sem_text(row.mean, row.sem), str(row.seeds)))
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


KNOWN = {
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
    "claim",
}


def load_tuning_spec(path: str | Path, smoke: bool = False, full: bool = False) -> TuningSpec:
    file = Path(path)
    raw = read_yaml(path, smoke, KNOWN, full)
    search = raw.get("search", {})
    ranges = {}
    for name in TUNED:
        bounds = search.get(name, {})
        low, high = float(bounds.get("low", 0)), float(bounds.get("high", 0))
        if not 0 < low < high or (name == "typ_ratio" and high > 1):
            limit = "(0, 1]" if name == "typ_ratio" else "(0, inf)"
            raise InputError(f"{file.name}: search.{name}", f"needs low < high within {limit}")
        ranges[name] = (low, high)
    try:
        base = TrialConfig(
            strategy="supclust",
            dataset=raw.get("dataset", "digits"),
            setting=raw.get("setting", "ssl"),
            budget=raw.get("budget", "tiny"),
            episodes=raw.get("episodes", 5),
            embed_epochs=raw.get("embed_epochs"),
        )
    except InputError as error:
        raise InputError(f"{file.name}: {error.field}", error.problem) from None
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
        claim=check_claim(raw.get("claim"), f"{file.name}: claim", SEARCH_CLAIMS),
    )


def optuna_search(tuning: TuningSpec, name: str, journal: Path, early_stop: bool) -> Any:
    """The search: Optuna TPE (seeded) over temperature (log-uniform) and typ_ratio (uniform),
    its study in ``journal`` (one writer: the driver), and ASHA over seeds when asked."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from alsys.sweep.launch import METRIC, MODE, Search

    algorithm = OptunaSearch(
        metric=METRIC,
        mode=MODE,
        sampler=optuna.samplers.TPESampler(seed=tuning.sampler_seed),
        study_name=name,
        storage=JournalStorage(JournalFileBackend(str(journal))),
    )
    scheduler = None
    if early_stop:
        seeds = len(tuning.seeds)
        scheduler = ASHAScheduler(
            time_attr="seeds_done", max_t=seeds, grace_period=1, reduction_factor=2
        )
    space = {
        "temperature": tune.loguniform(*tuning.temperature),
        "typ_ratio": tune.uniform(*tuning.typ_ratio),
    }
    return Search(space, algorithm, scheduler, tuning.num_samples)


def release_orphans(name: str, journal: Path) -> None:
    """Marks as failed the study's trials an interrupted driver left running. Nothing runs
    them: on --resume, Tune restarts their candidates and OptunaSearch records each as a new
    trial with the same parameters, so every candidate keeps one complete trial."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not journal.is_file():
        return
    storage = JournalStorage(JournalFileBackend(str(journal)))
    if name not in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        return
    study = optuna.load_study(study_name=name, storage=storage)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def print_study(name: str, journal: Path, best: tuple[dict[str, Any], float]) -> None:
    """The best candidate (on the tuning seeds), the parameter importances, where the study is."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    params, value = best
    print(
        f"best: temperature={params['temperature']:.4g} typ_ratio={params['typ_ratio']:.4g} "
        f"auc={value:.4f} (on the tuning seeds: held-out results below)"
    )
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=name, storage=storage)
    try:
        importances = optuna.importance.get_param_importances(study)
        print("parameter importances: " + ", ".join(f"{k}={v:.3f}" for k, v in importances.items()))
    except (RuntimeError, ValueError) as error:
        print(f"parameter importances: not computable ({error})")
    print(
        f"study {name!r} stored in {journal} ({len(study.trials)} trials); "
        f"load it with optuna.load_study(study_name={name!r}, "
        f"storage=JournalStorage(JournalFileBackend({str(journal)!r})))"
    )


def tune_main(default_config: Path = DEFAULT_CONFIG, argv: list[str] | None = None) -> int:
    """Optuna TPE over SUPClust's temperature (log-uniform) and typ_ratio via OptunaSearch on
    the tuning seeds; then the best parameters, TypiClust and default SUPClust on the held-out
    seeds."""
    from alsys.tracking import resolve_tracking_uri

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = sweep_parser(default_config, tune_main.__doc__ or "")
    parser.add_argument(
        "--early-stop", action="store_true", help="ASHA over seeds: stop poor candidates early"
    )
    args = parser.parse_args(argv)
    try:
        tuning = load_tuning_spec(args.config, smoke=args.smoke, full=args.full)
        name = tuning.name + ("_smoke" if args.smoke else "_full" if args.full else "")
        journal = Path(args.storage_path).resolve() / name / "optuna_journal.log"
        journal.parent.mkdir(parents=True, exist_ok=True)
        if args.resume:
            release_orphans(name, journal)
        where = {
            "storage_path": args.storage_path,
            "tracking_uri": resolve_tracking_uri(args.tracking_uri),
            "experiment": args.experiment or name,
            "store_root": str(Path(args.store).resolve()) if args.store else None,
            "resume": args.resume,
        }
        searched = run_sweep(
            tuning.sweep(name),
            search=optuna_search(tuning, name, journal, args.early_stop or tuning.early_stop),
            parent_tags={"optuna_journal": str(journal)},  # `alsys report` draws the study
            **where,
        )
        if searched.best is None:
            print(f"{default_config.stem}: no candidate finished a seed", file=sys.stderr)
            return 1
        print_study(name, journal, searched.best)
        tuned = {k: float(searched.best[0][k]) for k in TUNED}
        holdout = tuning.holdout_spec(f"{name}_holdout", tuned).sweep()
        held = run_sweep(holdout, **where)
    except STOPS as stopped:
        line, code = stopped_line(default_config, argv, stopped)
        print(line, file=sys.stderr)
        return code
    print("\n" + holdout_text(held.rows, tuning, tuned, searched.best[1]))
    folder = Path(args.storage_path).resolve() / holdout.name
    conclude(holdout, held, folder, str(where["tracking_uri"]))
    return 1 if searched.errors or held.errors else 0


if __name__ == "__main__":
    raise SystemExit(tune_main())
