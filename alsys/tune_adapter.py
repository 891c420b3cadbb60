"""The small adapter between the loop and Ray Tune; imported by ``sweeps/`` only.

Stages, pycls-style: setup (validate the whole sweep, connect Ray, open the MLflow parent
run) -> embeddings (every distinct store entry computed once, as parallel Ray tasks) -> launch
(one Tune trial per trial config) -> collect (a compact summary of mean +- s.e. over seeds
printed, the table per configuration and round written as CSV).

A trial reports every round to Tune with a checkpoint holding its labels bought so far, the
finished rounds and its MLflow run id, so a retried or resumed trial continues at its last
finished round and in its own MLflow run, logging each round exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune

from alsys.config import TrialConfig
from alsys.errors import InputError
from alsys.loop import RoundResult, TrialData, TrialState, prepare_data, run_trial
from alsys.sweep import SweepSpec, holdout_text, results_table, summary_text

SWEEP_STATE = "alsys_sweep.json"  # the parent run id, kept beside Tune's experiment state


def default_storage() -> str:
    """Absolute, because under `ray job submit` the working directory is a temporary copy."""
    return os.environ.get("ALSYS_RESULTS") or str(Path.home() / "ray_results" / "alsys")


def connect_ray() -> None:
    """Joins the cluster when there is one (ray job submit, RAY_ADDRESS); else starts Ray
    locally. Resources are never passed: that raises when joining an existing cluster."""
    if not ray.is_initialized():
        ray.init()


def check_tracking(uri: str) -> None:
    """A SQLite URI is one file on the driver's disk: right for one machine, wrong for a
    cluster, where trials on other nodes could not reach it. Refused outright when the cluster
    already has several nodes; a warning when joining a cluster that may still grow."""
    if not uri.startswith("sqlite:"):
        return
    advice = (
        "run an MLflow server (cluster/local/start.sh, cluster/k8s/mlflow.yaml) and pass "
        "--tracking-uri http://HOST:PORT"
    )
    alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    if len(alive) > 1:
        raise InputError(
            "--tracking-uri",
            f"{uri} is a SQLite file on this node, but the cluster has {len(alive)} nodes "
            f"whose trials could not log to it; {advice}",
        )
    if os.environ.get("RAY_ADDRESS") or os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
        print(
            f"alsys: warning: MLflow writes to {uri} on the head node. That holds while the "
            f"cluster has one node; if workers join, {advice}.",
            file=sys.stderr,
        )


def _cluster_gpus() -> float:
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return float(resources.get("GPU", 0))


def trial_resources(requested: dict[str, float]) -> dict[str, float]:
    """The requested share, with the GPU part dropped on a cluster without GPUs (a GPU request
    there would stay PENDING forever)."""
    resources = {"cpu": float(requested.get("cpu", 1))}
    if _cluster_gpus() > 0 and requested.get("gpu", 0) > 0:
        resources["gpu"] = float(requested["gpu"])
    return resources


def data_key(config: TrialConfig) -> str:
    """Trials with the same key read the same embeddings."""
    return json.dumps(
        {
            "dataset": config.dataset,
            "options": config.dataset_options,
            "setting": config.setting,
            "d": [config.clustering_dim, config.typicality_dim, config.ssl.embedding_dim],
            "embed": [config.embed_mode, config.embed_epochs, config.embed_seed],
            "space": config.space,
            "hvae": [config.hvae_models, config.hvae_epochs],
            "scores": (
                [config.strategy_params.get("model", "hvae"), config.strategy_params.get("k", 2)]
                if config.strategy == "ood_llr"
                else None
            ),
        },
        sort_keys=True,
    )


@ray.remote
def _train_embeddings(config_dict: dict[str, Any], store_root: str | None) -> None:
    """Fills the store entry a config needs; returns nothing, so no arrays travel back."""
    from alsys.embed.store import EmbeddingStore

    store = EmbeddingStore(store_root)
    config = TrialConfig.from_dict(config_dict)
    prepare_data(config, store)
    if store.computed:  # another process may have built it while this task waited on the lock
        what = "SimCLR and HVAE" if config.hvae_models else "SimCLR"
        print(f"alsys: trained {what} embeddings for {config.dataset} into {store.root}")


def _training_key(config: TrialConfig) -> str:
    """Trials with the same key share one SimCLR training (one store entry)."""
    options = json.dumps(config.dataset_options, sort_keys=True)
    return json.dumps(
        [
            config.dataset,
            options,
            config.embed_mode,
            config.embed_epochs,
            config.embed_seed,
            config.hvae_models,
            config.hvae_epochs,
        ]
    )


def prepare_embeddings(trials: list[TrialConfig], store_root: str | None) -> dict[str, Any]:
    """For each data key, the object refs ``(dataset, spaces)`` that its trials read.

    Store entries still missing are computed first, one Ray task per distinct SimCLR training
    (on a GPU when the cluster has one); entries already in the store cost no task. The driver
    then reads the store (local, or shared storage on a cluster) and puts each dataset once and
    each key's embedding spaces once into the object store; trials read both zero-copy.
    """
    from alsys.data import load_dataset
    from alsys.embed.store import EmbeddingStore, MissingEntry

    by_key: dict[str, TrialConfig] = {}
    for config in trials:
        by_key.setdefault(data_key(config), config)
    datasets: dict[str, Any] = {}

    def dataset_of(config: TrialConfig) -> Any:
        name = json.dumps([config.dataset, config.dataset_options], sort_keys=True)
        if name not in datasets:
            datasets[name] = load_dataset(config.dataset, **config.dataset_options)
        return datasets[name]

    reader = EmbeddingStore(store_root, compute=False)
    ready: dict[str, TrialData] = {}
    missing: dict[str, TrialConfig] = {}
    for key, config in by_key.items():
        try:
            ready[key] = prepare_data(config, reader, dataset=dataset_of(config))
        except MissingEntry:
            missing.setdefault(_training_key(config), config)
    if missing:
        task = _train_embeddings.options(num_gpus=1 if _cluster_gpus() > 0 else 0)
        try:
            ray.get([task.remote(c.to_dict(), store_root) for c in missing.values()])
        except ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, InputError):  # e.g. a dataset missing: say it plainly
                raise error.cause from None
            raise
        for key, config in by_key.items():
            if key in ready:
                continue
            try:
                ready[key] = prepare_data(config, reader, dataset=dataset_of(config))
            except MissingEntry as missing_entry:
                raise RuntimeError(
                    f"the embedding tasks finished but {missing_entry} is not in the store: the "
                    "workers run other alsys code than the driver (the store key holds a hash of "
                    "the SimCLR code), or the store is not shared between the nodes"
                ) from None
    dataset_refs = {id(d): ray.put(d) for d in datasets.values()}
    return {
        key: (
            dataset_refs[id(data.dataset)],
            ray.put((data.features_train, data.features_test, data.clst, data.typ, data.scores)),
        )
        for key, data in ready.items()
    }


def shared_data(refs: tuple[Any, Any]) -> TrialData:
    """A trial's TrialData from the object store, zero-copy (the arrays are read-only)."""
    dataset, spaces = ray.get(list(refs))
    return TrialData(dataset, *spaces)


PROGRESS_DIR = "alsys_progress"  # one file per trial, beside Tune's experiment state


class SweepProgress(tune.Callback):
    """A tqdm bar on stderr in place of Tune's per-trial tables: the sweep's rounds done, with
    trials finished, failed and retried beside it, and one line per failure or retry.

    The position is each trial's furthest ``key`` (its round, or the seeds a tuning candidate
    has done), so rounds a retried trial replays are not counted twice, and a resumed sweep
    starts where it stood.
    """

    def __init__(self, trials: int, total: int, key: str = "round", unit: str = "round") -> None:
        self.trials, self.total, self.key, self.unit = trials, total, key, unit
        self.bar: Any = None
        self.retried = self.done = self.failed = 0
        self.furthest: dict[str, int] = {}  # trial id -> its furthest `key`

    def _recount(self, trials: list[Any]) -> None:
        """A scan of every trial: at the start and when one ends, not on every result."""
        self.done = sum(t.status == "TERMINATED" for t in trials)
        self.failed = sum(t.status == "ERROR" for t in trials)
        for t in trials:
            self._advance(t.trial_id, (t.last_result or {}).get(self.key, 0))

    def _advance(self, trial_id: str, value: Any) -> None:
        self.furthest[trial_id] = max(self.furthest.get(trial_id, 0), int(value or 0))

    def _show(self) -> None:
        from tqdm import tqdm

        if self.bar is None:
            interactive = sys.stderr.isatty()
            self.bar = tqdm(
                total=self.total,
                unit=self.unit,
                desc="sweep",
                file=sys.stderr,
                dynamic_ncols=interactive,
                mininterval=0.5 if interactive else 15,  # a log file gets a line every 15 s
            )
        self.bar.set_postfix_str(
            f"trials {self.done}/{max(self.trials, len(self.furthest))} done, "
            f"{self.failed} failed, {self.retried} retried",
            refresh=False,
        )
        self.bar.update(sum(self.furthest.values()) - self.bar.n)  # drawn every mininterval

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self.bar is None:
            self._recount(trials)
            self._show()

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[Any, Any], **info: Any
    ) -> None:
        self._advance(trial.trial_id, result.get(self.key, 0))
        self._show()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._recount(trials)
        self._show()

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.retried += 1
        self._show()
        self.bar.write(f"alsys: trial {trial} failed and is retried from its last round")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._recount(trials)
        self._show()
        self.bar.write(f"alsys: trial {trial} failed for good; its error: {trial.error_file}")

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._recount(trials)  # also when a resumed sweep had nothing left to run
        self._show()
        self.bar.close()  # draws the final state


class TrialMetrics:
    """Application metrics for the cluster dashboards (ray.util.metrics, scraped by Prometheus
    from every node): rounds finished, labels bought, seconds per selection. Tagged by sweep
    and strategy; Grafana's alsys dashboard (dashboards/grafana/alsys_dashboard.json) draws
    them."""

    def __init__(self, sweep: str, strategy: str) -> None:
        from ray.util import metrics

        keys = ("sweep", "strategy")
        self.tags = {"sweep": sweep, "strategy": strategy}
        self.rounds = metrics.Counter(
            "alsys_rounds_finished", "Active-learning rounds finished", tag_keys=keys
        )
        self.labels = metrics.Counter(
            "alsys_labels_bought", "Labels bought by the strategies", tag_keys=keys
        )
        self.selection = metrics.Histogram(
            "alsys_selection_seconds",
            "Seconds one selection took",
            boundaries=[0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100],
            tag_keys=keys,
        )

    def round_done(self, result: RoundResult) -> None:
        self.rounds.inc(1, tags=self.tags)
        self.labels.inc(len(result.selected), tags=self.tags)
        self.selection.observe(result.selection_seconds, tags=self.tags)


def fingerprint(config: TrialConfig) -> str:
    """Saved progress belongs to exactly this config (a changed YAML must not resume it)."""
    import hashlib

    return hashlib.sha256(config.to_json().encode()).hexdigest()[:16]


def save_state(file: Path, state: TrialState, run_id: str, config_key: str = "") -> None:
    """A trial's progress as one ``.npz`` (labels bought, finished rounds, MLflow run id, the
    config's fingerprint), replaced atomically: a reader sees the old file or the new one."""
    record = json.dumps(
        {
            "run_id": run_id,
            "rounds": [vars(r) for r in state.rounds],
            "config": config_key,
            "pid": os.getpid(),  # the process that ran the last round (for operators, tests)
        }
    )
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        np.savez(
            handle,
            bought_round=state.bought_round,
            record=np.frombuffer(record.encode(), dtype=np.uint8),
        )
    os.replace(tmp, file)


def load_state(file: Path, config_key: str | None = None) -> tuple[TrialState, str] | None:
    """The progress saved in ``file``; None when absent, unreadable (it is never unpickled)
    or saved for another config than ``config_key``."""
    try:
        with np.load(file, allow_pickle=False) as saved:
            record = json.loads(saved["record"].tobytes().decode())
            state = TrialState(np.array(saved["bought_round"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if config_key is not None and record.get("config") != config_key:
        return None
    state.rounds = [RoundResult(**r) for r in record["rounds"]]
    return state, str(record["run_id"])


def _resume_point(progress: Path, key: str) -> tuple[TrialState | None, str | None, int]:
    """Where a (re)started trial goes on from: the newer of Tune's checkpoint and the trial's
    own progress file, plus how many rounds Tune already has. The progress file covers the
    window Tune's saved state may miss when its driver is killed: Tune then restarts finished
    or advanced trials from older checkpoints, or from nothing."""
    tune_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            tune_state = load_state(Path(folder) / "trial.npz", key)
    own = load_state(progress, key)
    known = len(tune_state[0].rounds) if tune_state else 0
    best = max((tune_state, own), key=lambda s: len(s[0].rounds) if s else -1)
    if best is None:
        return None, None, 0
    return best[0], best[1], known


def trial_name(param: dict[str, Any]) -> str:
    """The trial's name in its Tune config. Sweeps started by an earlier alsys kept it, with the
    whole trial config, under ``grid``; their trials find their config by that name."""
    return str(param["trial"] if "trial" in param else param["grid"]["name"])


def trainable(
    param: dict[str, Any],
    trials: dict[str, dict[str, Any]],
    datasets: dict[str, Any],
    tracking_uri: str,
    experiment: str,
    parent_run_id: str | None,
    progress_dir: str,
    sweep: str = "",
) -> None:
    """One Tune trial: the full loop, resumed from where it got to if it ran before.

    Tune's config is the trial's name (``param["trial"]``); its whole config is in ``trials``
    (one copy in the object store for the sweep), because Tune encodes a trial's config into
    every result it logs and every state it saves.

    Rounds a previous attempt finished are not run again: those Tune does not have yet are
    reported from the saved progress (``replayed: 1``), the rest are run and reported.
    """
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    from alsys.tracking import TrialTracker

    # A line per round's checkpoint is noise next to the driver's progress bar.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    cpus = max(1, int(tune.get_context().get_trial_resources().required_resources.get("CPU", 1)))
    torch.set_num_threads(cpus)  # Ray sets OMP_NUM_THREADS; torch, faiss and BLAS are set
    faiss.omp_set_num_threads(cpus)  # explicitly, for a worker that does not honour it
    threadpool_limits(cpus)
    name = trial_name(param)
    if name not in trials:
        raise InputError(
            "sweep config",
            f"trial {name} is in Tune's saved state but not in the sweep's config; "
            "resume with the config the sweep started with",
        )
    config = TrialConfig.from_dict(trials[name])
    data = shared_data(datasets[data_key(config)])
    progress = Path(progress_dir) / f"{name}.npz"
    key = fingerprint(config)
    state, run_id, known = _resume_point(progress, key)
    node_id = ray.get_runtime_context().get_node_id()
    metrics = TrialMetrics(sweep, config.strategy)
    # The run name is unique within a sweep and stable across retries, restores and fresh
    # Tuners: with the parent run it finds this trial's MLflow run when no record has its id.
    tracker = TrialTracker(config, tracking_uri, experiment, run_id, parent_run_id, trial_key=name)

    def report(result: RoundResult, current: TrialState, replayed: bool) -> None:
        with tempfile.TemporaryDirectory() as folder:
            save_state(Path(folder) / "trial.npz", current, tracker.run_id, key)
            values = {
                # Per-class recalls and label counts go to MLflow only: they would be a column
                # per class in every result Tune's driver logs and keeps (200 on CIFAR-100).
                **result.summary(),
                "round": result.round,
                "run_id": tracker.run_id,
                "replayed": int(replayed),
                "node_id": node_id,  # which node ran the round (several share one IP in tests)
            }
            tune.report(values, checkpoint=tune.Checkpoint.from_directory(folder))

    if state is not None:
        for done in range(known, len(state.rounds)):
            view = TrialState(np.where(state.bought_round <= done + 1, state.bought_round, -1))
            view.rounds = state.rounds[: done + 1]
            tracker.log_round(state.rounds[done])  # a no-op unless the kill fell in between
            report(state.rounds[done], view, replayed=True)

    def on_round(result: RoundResult, current: TrialState) -> None:
        metrics.round_done(result)
        tracker.log_round(result)
        save_state(progress, current, tracker.run_id, key)
        report(result, current, replayed=False)

    try:
        final = run_trial(config, data, state, on_round)
    except BaseException as error:
        tracker.fail(error)
        raise
    tracker.finish(final)


@contextmanager
def result_files() -> Iterator[list[Any]]:
    """Tune's loggers for a sweep: result.json and progress.csv per trial (what ResultGrid reads
    back), not its TensorBoard files, which cost the driver more per result than both and add
    nothing to MLflow. Tune adds its default loggers to the callbacks it is given unless
    TUNE_DISABLE_AUTO_CALLBACK_LOGGERS is set on the driver while the Tuner runs."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    name = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
    before = os.environ.get(name)
    os.environ[name] = "1"
    try:
        yield [JsonLoggerCallback(), CSVLoggerCallback()]  # type: ignore[no-untyped-call]
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def restorable(experiment_dir: Path) -> bool:
    """Whether Tune's saved state can be restored. A driver killed while copying that state
    to storage can leave one of its files empty; the sweep then starts a fresh Tuner in the
    same folder instead, and every trial goes on from its own progress file."""
    if not tune.Tuner.can_restore(str(experiment_dir)):
        return False
    newest = [
        max(experiment_dir.glob(pattern), default=None)
        for pattern in ("experiment_state-*.json", "basic-variant-state-*.json", "tuner.pkl")
    ]
    damaged = [f for f in newest if f is None or f.stat().st_size == 0]
    if not damaged:
        try:
            json.loads(newest[0].read_text())  # type: ignore[union-attr]
        except (OSError, ValueError):
            damaged = [newest[0]]
    if damaged:
        print(
            f"alsys: Tune's saved state in {experiment_dir} is damaged ({damaged[0]}); "
            "starting a fresh Tuner there: finished trials replay their saved rounds, "
            "unfinished ones continue from theirs",
            file=sys.stderr,
        )
    return not damaged


def open_parent_run(
    spec: SweepSpec, tracking_uri: str, experiment: str, state_dir: Path, resume: bool
) -> str:
    """The sweep's MLflow parent run: reused on --resume, created once otherwise (driver)."""
    from mlflow import MlflowClient

    from alsys.tracking import ensure_experiment, with_retries

    state_file = state_dir / SWEEP_STATE
    if resume and state_file.is_file():
        return str(json.loads(state_file.read_text())["parent_run_id"])
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = ensure_experiment(client, experiment)
    run = with_retries(
        client.create_run, experiment_id, run_name=f"sweep-{spec.name}", tags={"sweep": spec.name}
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps({"parent_run_id": run.info.run_id}))
    return str(run.info.run_id)


def run_sweep(
    spec: SweepSpec,
    *,
    storage_path: str,
    tracking_uri: str,
    experiment: str,
    store_root: str | None,
    resume: bool = False,
) -> Any:
    """Runs (or resumes) the sweep; returns its rows (one per trial and round: the config's
    fields, ``baseline``, ``round`` and ``balanced_accuracy``) and the trials' errors."""
    from mlflow import MlflowClient

    from alsys.tracking import with_retries

    named = spec.named_trials()
    trials = list(named.values())
    baselines = spec.baseline_names()
    connect_ray()
    check_tracking(tracking_uri)
    storage = Path(storage_path).resolve()
    experiment_dir = storage / spec.name
    parent = open_parent_run(spec, tracking_uri, experiment, experiment_dir, resume)
    progress_dir = experiment_dir / PROGRESS_DIR
    if not resume and progress_dir.exists():
        shutil.rmtree(progress_dir)  # a new sweep in the same folder starts from nothing
    progress_dir.mkdir(parents=True, exist_ok=True)
    print(f"sweep {spec.name}: {len(trials)} trials; MLflow parent run {parent}", file=sys.stderr)
    datasets = prepare_embeddings(trials, store_root)
    by_name = {name: c.to_dict() for name, c in named.items()}
    fn = tune.with_parameters(
        trainable,
        trials=by_name,
        datasets=datasets,
        tracking_uri=tracking_uri,
        experiment=experiment,
        parent_run_id=parent,
        progress_dir=str(progress_dir),
        sweep=spec.name,
    )
    fn = tune.with_resources(fn, trial_resources(spec.resources))
    with result_files() as loggers:
        if resume and restorable(experiment_dir):
            tuner = tune.Tuner.restore(str(experiment_dir), trainable=fn, resume_errored=True)
        else:
            # Tune's config is the trial's name (which spells its axis values) and no more:
            # Tune copies the grid once per trial and writes the config into every result and
            # every save of its state; the whole config is in `by_name`.
            tuner = tune.Tuner(
                fn,
                param_space={"trial": tune.grid_search(list(by_name))},
                tune_config=tune.TuneConfig(
                    trial_name_creator=lambda t: trial_name(t.config),
                    reuse_actors=True,  # one worker per CPU slot: imports and MLflow set-up once
                ),
                run_config=tune.RunConfig(
                    name=spec.name,
                    storage_path=str(storage),
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                    # Every round's checkpoint is kept (a few KiB each): after a driver is killed,
                    # Tune restores from the checkpoint its last saved state names, which workers
                    # that ran on for a moment would otherwise have deleted already.
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                    callbacks=[
                        SweepProgress(len(trials), sum(c.episodes for c in trials)),
                        *loggers,
                    ],
                    verbose=0,  # the bar instead of a config table per trial
                ),
            )
        grid = tuner.fit()
    results = [grid[i] for i in range(len(grid))]
    rows = []
    for result in results:
        if result.metrics_dataframe is None:
            continue
        name = trial_name(result.config or {})
        trial = by_name[name]
        # A trial resumed from an older checkpoint reports some rounds again (MLflow logs them
        # once); the table keeps each round once.
        frame = result.metrics_dataframe[["round", "balanced_accuracy"]]
        frame = frame.drop_duplicates("round", keep="last")
        for record in frame.to_dict("records"):
            rows.append(
                {
                    **{
                        k: trial.get(k)
                        for k in (
                            "strategy",
                            "dataset",
                            "budget",
                            "setting",
                            "seed",
                            "d_clst",
                            "d_typ",
                        )
                    },
                    "space": trial.get("space", "simclr"),
                    "params": json.dumps(trial.get("strategy_params") or {}, sort_keys=True),
                    "baseline": name in baselines,
                    "round": record["round"],
                    "balanced_accuracy": record["balanced_accuracy"],
                }
            )
    errors = [str(r.error) for r in results if r.error]
    client = MlflowClient(tracking_uri=tracking_uri)
    with_retries(client.set_terminated, parent, status="FAILED" if errors else "FINISHED")
    if errors:
        print(f"{len(errors)} trial(s) failed; first: {errors[0]}", file=sys.stderr)
    return rows, errors


def sweep_main(
    default_config: Path,
    argv: list[str] | None = None,
    after: Callable[[SweepContext], None] | None = None,
    add_arguments: Callable[[Any], None] | None = None,
) -> int:
    """The command line every sweep script shares; ``after`` runs once the sweep succeeded
    (e.g. sweeps/hvae.py draws its figures then)."""
    import argparse

    from alsys.errors import InputError
    from alsys.sweep import load_spec
    from alsys.tracking import resolve_tracking_uri

    parser = argparse.ArgumentParser(description=f"alsys sweep ({default_config.stem})")
    parser.add_argument("--config", default=str(default_config), help="the sweep's YAML space")
    parser.add_argument("--smoke", action="store_true", help="the ~1 minute version")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    parser.add_argument(
        "--storage-path",
        default=default_storage(),
        help="Tune storage; shared storage (NFS/S3) on a multi-node cluster "
        "(default $ALSYS_RESULTS or ~/ray_results/alsys)",
    )
    parser.add_argument("--tracking-uri", help="MLflow URI (default sqlite:///<cwd>/mlflow.db)")
    parser.add_argument("--experiment", help="MLflow experiment (default: the sweep's name)")
    parser.add_argument("--store", help="embedding store (default $ALSYS_STORE or cache)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.config, smoke=args.smoke)
        if args.smoke:
            spec = SweepSpec(**{**vars(spec), "name": spec.name + "_smoke"})
        tracking_uri = resolve_tracking_uri(args.tracking_uri)
        store_root = str(Path(args.store).resolve()) if args.store else None
        rows, errors = run_sweep(
            spec,
            storage_path=args.storage_path,
            tracking_uri=tracking_uri,
            experiment=args.experiment or spec.name,
            store_root=store_root,
            resume=args.resume,
        )
    except InputError as error:
        print(f"{default_config.stem}: error: {error}", file=sys.stderr)
        return 2
    print_results(
        rows,
        Path(args.storage_path).resolve() / spec.name / "results.csv",
        tracking_uri,
        args.experiment or spec.name,
        store_root,
    )
    if errors:
        return 1
    if after is not None:
        after(
            SweepContext(
                spec,
                resolve_tracking_uri(args.tracking_uri),
                args.experiment or spec.name,
                str(Path(args.store).resolve()) if args.store else None,
                args,
            )
        )
    return 0


def print_results(
    rows: list[dict[str, Any]],
    csv: Path,
    tracking_uri: str,
    experiment: str,
    store_root: str | None,
) -> None:
    """The end of every sweep, printed here and only here: the compact summary, the file that
    holds the long table (one row per configuration and round), and the next two commands."""
    from mlflow import MlflowClient

    from alsys.tracking import with_retries

    csv.parent.mkdir(parents=True, exist_ok=True)
    results_table(rows).to_csv(csv, index=False)
    print(summary_text(rows))
    print(f"\nPer configuration and round (mean, seeds, s.e.): {csv}")
    found = with_retries(MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name, experiment)
    runs = "/#/experiments/{}/runs?workflowType=machine_learning".format(
        found.experiment_id if found else "<id>"
    )
    report = ["alsys", "report", "--experiment", experiment, "--tracking-uri", tracking_uri]
    report += ["--out", f"report/{experiment}", *(["--store", store_root] if store_root else [])]
    if tracking_uri.startswith(("http://", "https://")):  # the server serves the UI itself
        ui = f"open {tracking_uri.rstrip('/')}{runs}"
    else:
        ui = f"{shlex.join(['mlflow', 'ui', '--backend-store-uri', tracking_uri])}"
        ui += f"  # then open http://127.0.0.1:5000{runs}"
    print(f"\nNext:\n  {shlex.join(report)}\n  {ui}")


@dataclass(frozen=True)
class SweepContext:
    """What a sweep script's ``after`` hook gets: the spec and where things went."""

    spec: SweepSpec
    tracking_uri: str
    experiment: str
    store_root: str | None
    args: Any  # the parsed command line (argparse.Namespace)


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
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from alsys.tracking import ensure_experiment, with_retries

    data = shared_data(datasets[key])
    params = {"temperature": float(param["temperature"]), "typ_ratio": float(param["typ_ratio"])}
    curves: list[float] = []
    for done, seed in enumerate(seeds, start=1):
        config = TrialConfig.from_dict({**base, "seed": seed, "strategy_params": params})
        state = run_trial(config, data)
        curves.append(float(np.mean([r.balanced_accuracy for r in state.rounds])))
        tune.report({"auc": float(np.mean(curves)), "seeds_done": done})
    client = MlflowClient(tracking_uri=tracking_uri)
    run = with_retries(
        client.create_run,
        ensure_experiment(client, experiment),
        run_name=f"supclust-T{params['temperature']:.3g}-r{params['typ_ratio']:.3g}",
        tags={"mlflow.parentRunId": parent_run_id, "strategy": "supclust"},
    )
    with_retries(
        client.log_batch,
        run.info.run_id,
        metrics=[Metric("auc", float(np.mean(curves)), 0, len(curves))],
        params=[Param(k, str(v)) for k, v in {**params, "seeds": seeds}.items()],
    )
    with_retries(client.set_terminated, run.info.run_id)


def tune_main(default_config: Path, argv: list[str] | None = None) -> int:
    """Optuna TPE over SUPClust's temperature (log-uniform) and typ_ratio via OptunaSearch on
    the tuning seeds; then the best parameters, TypiClust and default SUPClust on the held-out
    seeds."""
    import argparse

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from alsys.sweep import load_tuning_spec
    from alsys.tracking import resolve_tracking_uri

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
    from mlflow import MlflowClient

    from alsys.tracking import with_retries

    # Where the study lives, so `alsys report` can draw it.
    with_retries(MlflowClient(tracking_uri=uri).set_tag, parent, "optuna_journal", str(study_file))
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
    with_retries(MlflowClient(tracking_uri=uri).set_terminated, parent)
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
