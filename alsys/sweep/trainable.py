"""What one Tune trial runs: a frozen trial of the grid, or a search's candidate (its trials on
the search's seeds), each trial through the shared runner (``alsys.runner``) with its own MLflow
run and a progress file after every round.

The frozen trials reach the workers through Ray's object store, as the driver built and checked
them; nothing here checks them again. A grid trial reports every round to Tune with a
checkpoint holding its labels bought so far, the finished rounds and its MLflow run id, so a
retried or resumed trial continues at its last finished round and in its own MLflow run,
logging each round exactly once. Its own progress file
(``<storage>/<sweep>/alsys_progress/<name>.npz``, replaced atomically each round) covers what
Tune's saved state may miss when the driver is killed; a candidate's trials resume from theirs.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune

from alsys.errors import InputError
from alsys.results import RoundResult, TrialState
from alsys.sweep.prepare import data_key, shared_data
from alsys.sweep.spec import Candidates, Trial

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


def _resume_point(
    progress: Path, key: str, checkpointed: bool
) -> tuple[TrialState | None, str | None, int]:
    """Where a (re)started trial goes on from: the newer of Tune's checkpoint (a grid trial's)
    and the trial's own progress file, plus how many rounds Tune already has. The progress file
    covers the window Tune's saved state may miss when its driver is killed: Tune then restarts
    finished or advanced trials from older checkpoints, or from nothing."""
    tune_state = None
    checkpoint = tune.get_checkpoint() if checkpointed else None
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            tune_state = load_state(Path(folder) / "trial.npz", key)
    own = load_state(progress, key)
    known = len(tune_state[0].rounds) if tune_state else 0
    best = max((tune_state, own), key=lambda s: len(s[0].rounds) if s else -1)
    if best is None:
        return None, None, 0
    return best[0], best[1], known


@dataclass(frozen=True)
class Where:
    """Where a sweep's trials log and keep their progress."""

    sweep_dir: Path
    tracking_uri: str
    experiment: str
    sweep: str

    def progress(self, trial: Trial) -> Path:
        return self.sweep_dir / PROGRESS_DIR / f"{trial.name}.npz"


class TrialRun:
    """One trial in its MLflow run (a child of ``parent_run_id``): :meth:`rounds` runs it
    through the shared runner, each round logged once and saved to its progress file; rounds a
    previous attempt finished are replayed, not run. Use it as a context manager: an error in
    the caller's hands (a failed report or checkpoint) closes the run as failed."""

    def __init__(
        self, trial: Trial, data: Any, where: Where, parent_run_id: str | None, checkpointed: bool
    ) -> None:
        from alsys.tracking import TrialTracker

        self.trial, self.data = trial, data
        self.progress = where.progress(trial)
        self.state, run_id, self.known = _resume_point(self.progress, trial.id, checkpointed)
        self.metrics = TrialMetrics(where.sweep, trial.config.strategy)
        # The identity with the parent run finds this trial's MLflow run when no record has its
        # id (a retry that died before its first checkpoint, a fresh Tuner after a killed
        # driver).
        self.tracker = TrialTracker(
            trial.config,
            where.tracking_uri,
            where.experiment,
            run_id,
            parent_run_id,
            trial_key=trial.id,
            n_classes=data.dataset.n_classes,
            run_name=trial.name,
        )

    def __enter__(self) -> TrialRun:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, trace: Any) -> None:
        if error is not None:
            self.tracker.fail(error)

    def rounds(self) -> Iterator[tuple[RoundResult, TrialState, bool]]:
        """``(result, state, replayed)`` per round."""
        from alsys.classifiers import model_for
        from alsys.runner import tracked_rounds

        config, data = self.trial.config, self.data
        model = model_for(config, data.dataset.n_classes)
        for result, current, replayed in tracked_rounds(
            config, data, self.tracker, model, self.state, self.known
        ):
            if not replayed:
                self.metrics.round_done(result)
                save_state(self.progress, current, self.tracker.run_id, self.trial.id)
            yield result, current, replayed


def trainable(
    param: dict[str, Any],
    trials: dict[str, Trial],
    candidates: Candidates | None,
    datasets: dict[str, Any],
    where: Where,
    parent_run_id: str,
) -> None:
    """One Tune trial: a grid trial, or a candidate of a search.

    Tune's config is the trial's name (``param["trial"]``) for a grid, whose frozen trials
    ``trials`` holds by name; for a search it is the candidate's sampled strategy parameters.
    """
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    # A line per round's checkpoint is noise next to the driver's progress bar.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    cpus = max(1, int(tune.get_context().get_trial_resources().required_resources.get("CPU", 1)))
    torch.set_num_threads(cpus)  # Ray sets OMP_NUM_THREADS; torch, faiss and BLAS are set
    faiss.omp_set_num_threads(cpus)  # explicitly, for a worker that does not honour it
    threadpool_limits(cpus)
    if candidates is not None:
        run_candidate(dict(param), candidates, datasets, where, parent_run_id)
        return
    name = str(param.get("trial"))
    if name not in trials:
        raise InputError(
            "sweep config",
            f"trial {name} is in Tune's saved state but not in the sweep's config; "
            "resume with the config the sweep started with",
        )
    trial = trials[name]
    data = shared_data(datasets[data_key(trial.config)])
    node_id = ray.get_runtime_context().get_node_id()
    with TrialRun(trial, data, where, parent_run_id, checkpointed=True) as run:
        for result, current, replayed in run.rounds():
            with tempfile.TemporaryDirectory() as checkpoint:
                save_state(Path(checkpoint) / "trial.npz", current, run.tracker.run_id, trial.id)
                values = {
                    # Per-class recalls and label counts go to MLflow only: they would be a
                    # column per class in every result Tune's driver logs and keeps (200 on
                    # CIFAR-100).
                    **result.summary(),
                    "round": result.round,
                    "run_id": run.tracker.run_id,
                    "replayed": int(replayed),
                    "node_id": node_id,  # which node ran the round (several share one IP)
                }
                tune.report(values, checkpoint=tune.Checkpoint.from_directory(checkpoint))


def run_candidate(
    params: dict[str, Any],
    candidates: Candidates,
    datasets: dict[str, Any],
    where: Where,
    parent_run_id: str,
) -> None:
    """One candidate of a search: its trials, seed after seed, in MLflow runs under the
    candidate's own run. After each seed it reports its value so far to Tune: the mean over the
    seeds done of the area under the learning curve (the same quantity over fewer seeds when a
    scheduler stops it early)."""
    from alsys.stats import auc, params_label
    from alsys.tracking import CandidateRun

    trials = candidates.trials(params)
    data = shared_data(datasets[data_key(trials[0].config)])
    run = CandidateRun(
        where.tracking_uri,
        where.experiment,
        parent_run_id,
        candidates.name(params),
        {**params, "seeds": list(candidates.seeds)},
        key=json.dumps([trials[0].configuration, list(candidates.seeds)]),
        tags={"strategy": candidates.base.strategy, "candidate": params_label(params)},
    )
    values: list[float] = []
    try:
        for done, trial in enumerate(trials, start=1):
            with TrialRun(trial, data, where, run.run_id, checkpointed=False) as one:
                finished = [result.balanced_accuracy for result, _, _ in one.rounds()]
            values.append(auc(finished))
            run.log_value(float(np.mean(values)), done)
            tune.report({"auc": float(np.mean(values)), "seeds_done": done})
    except SystemExit:  # Tune stopped the candidate (a scheduler, an interrupt)
        run.finish("KILLED", f"stopped after {len(values)} of {len(trials)} seeds")
        raise
    except BaseException as error:
        run.fail(error)
        raise
    run.finish()
