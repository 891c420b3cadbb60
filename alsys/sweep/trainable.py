"""What one Tune trial runs: the trial's frozen config, read by identity, through the shared
runner (``alsys.runner``), with a checkpoint and a progress file after every round.

A trial reports every round to Tune with a checkpoint holding its labels bought so far, the
finished rounds and its MLflow run id, so a retried or resumed trial continues at its last
finished round and in its own MLflow run, logging each round exactly once. Its own progress file
(``<storage>/<sweep>/alsys_progress/<name>.npz``, replaced atomically each round) covers what
Tune's saved state may miss when the driver is killed.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune

from alsys.errors import InputError
from alsys.results import RoundResult, TrialState
from alsys.sweep.prepare import data_key, shared_data
from alsys.sweep.spec import TRIALS_DIR, Trial

PROGRESS_DIR = "alsys_progress"  # one file per trial, beside Tune's experiment state


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


def trainable(
    param: dict[str, Any],
    index: dict[str, str],
    datasets: dict[str, Any],
    sweep_dir: str,
    tracking_uri: str,
    experiment: str,
    parent_run_id: str | None,
    sweep: str = "",
) -> None:
    """One Tune trial: the full loop, resumed from where it got to if it ran before.

    Tune's config is the trial's name (``param["trial"]``); ``index`` maps it to the trial's
    identity, under which its frozen config waits in the sweep's storage. Rounds a previous
    attempt finished are not run again: those Tune does not have yet are reported from the
    saved progress (``replayed: 1``), the rest are run and reported.
    """
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    from alsys.runner import tracked_rounds
    from alsys.tracking import TrialTracker

    # A line per round's checkpoint is noise next to the driver's progress bar.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    cpus = max(1, int(tune.get_context().get_trial_resources().required_resources.get("CPU", 1)))
    torch.set_num_threads(cpus)  # Ray sets OMP_NUM_THREADS; torch, faiss and BLAS are set
    faiss.omp_set_num_threads(cpus)  # explicitly, for a worker that does not honour it
    threadpool_limits(cpus)
    name = str(param.get("trial"))
    if name not in index:
        raise InputError(
            "sweep config",
            f"trial {name} is in Tune's saved state but not in the sweep's config; "
            "resume with the config the sweep started with",
        )
    folder = Path(sweep_dir)
    trial = Trial.from_dict(json.loads((folder / TRIALS_DIR / f"{index[name]}.json").read_text()))
    config = trial.config
    data = shared_data(datasets[data_key(config)])
    progress = folder / PROGRESS_DIR / f"{name}.npz"
    state, run_id, known = _resume_point(progress, trial.id)
    node_id = ray.get_runtime_context().get_node_id()
    metrics = TrialMetrics(sweep, config.strategy)
    # The identity with the parent run finds this trial's MLflow run when no record has its id
    # (a retry that died before its first checkpoint, a fresh Tuner after a killed driver).
    tracker = TrialTracker(
        config,
        tracking_uri,
        experiment,
        run_id,
        parent_run_id,
        trial_key=trial.id,
        n_classes=data.dataset.n_classes,
        run_name=name,
    )
    try:
        for result, current, replayed in tracked_rounds(config, data, tracker, state, known):
            if not replayed:
                metrics.round_done(result)
                save_state(progress, current, tracker.run_id, trial.id)
            with tempfile.TemporaryDirectory() as checkpoint:
                save_state(Path(checkpoint) / "trial.npz", current, tracker.run_id, trial.id)
                values = {
                    # Per-class recalls and label counts go to MLflow only: they would be a column
                    # per class in every result Tune's driver logs and keeps (200 on CIFAR-100).
                    **result.summary(),
                    "round": result.round,
                    "run_id": tracker.run_id,
                    "replayed": int(replayed),
                    "node_id": node_id,  # which node ran the round (several share one IP in tests)
                }
                tune.report(values, checkpoint=tune.Checkpoint.from_directory(checkpoint))
    except BaseException as error:  # a failed report or checkpoint (the loop's is logged)
        tracker.fail(error)
        raise
