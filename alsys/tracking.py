"""MLflow tracking: the only module that imports mlflow. It does not import the loop.

One run per trial (:class:`TrialTracker`, driven by ``alsys.runner`` for ``alsys run`` and for
every Tune trial alike):

- params: the trial's flattened config, the strategy's parameters as run (defaults included)
  under ``strategy_params.<name>``;
- metrics: each round's metrics with step = round;
- artifacts: the resolved config (JSON), the selections per round with their true labels
  (JSON), and a learning-curve PNG;
- tags: strategy, dataset, budget, setting, seed, alsys version and git commit, the trial's
  configuration (``alsys_configuration``: its key, :class:`alsys.stats.Configuration`, which
  ``alsys report`` groups by) and the trial's identity (``TrialConfig.trial_id``).

A sweep has a parent run (:func:`open_sweep_run`) holding, per configuration, the mean and s.e.
of balanced accuracy per round (:func:`log_curves`), closed as failed with the error when the
sweep fails (:func:`fail_run`), and its verdict on its claim (:func:`log_verdict`). A
search's candidates are child runs of their own (:class:`CandidateRun`), each the parent of
its trials' runs; a sweep's figures (:func:`log_figures`) are a run of their own.

The default tracking URI is a SQLite file at an absolute path under the working directory
(``sqlite:////abs/path/mlflow.db``), so it survives Ray's per-trial working directories; an
``http://`` MLflow server URI works the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import alsys
from alsys.config import TrialConfig
from alsys.results import RoundResult, TrialState

DEFAULT_EXPERIMENT = "alsys"
TRIAL_KEY_TAG = "alsys_trial_key"  # the trial's identity: at most one run per trial and parent
CONFIGURATION_TAG = "alsys_configuration"  # the trial's configuration key, as JSON
CANDIDATE_TAG = "alsys_candidate"  # a search candidate's identity: one run per candidate


def default_tracking_uri(directory: str | Path | None = None) -> str:
    path = Path(directory or Path.cwd()).resolve() / "mlflow.db"
    return f"sqlite:///{path}"


def resolve_tracking_uri(uri: str | None) -> str:
    """An explicit URI as given (relative SQLite paths made absolute), else
    ``$MLFLOW_TRACKING_URI``, else the default SQLite file under the working directory."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return default_tracking_uri()
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return f"{prefix}{Path(uri[len(prefix) :]).resolve()}"
    return uri


def git_commit() -> str:
    """The commit of the alsys checkout, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(alsys.__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def trial_tags(config: TrialConfig) -> dict[str, str]:
    return {
        "strategy": config.strategy,
        "dataset": config.dataset,
        "budget": config.budget,
        "setting": config.setting,
        "seed": str(config.seed),
        "alsys_version": alsys.__version__,
        "git_commit": git_commit(),
        CONFIGURATION_TAG: config.configuration().to_json(),
    }


def learning_curve_png(rounds: list[RoundResult], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    labels = [r.n_labeled for r in rounds]
    ax.plot(labels, [r.accuracy for r in rounds], marker="o", label="accuracy")
    ax.plot(labels, [r.balanced_accuracy for r in rounds], marker="s", label="balanced accuracy")
    ax.set_xlabel("number of labels")
    ax.set_ylabel("test score")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# MLflow 3's UI opens an experiment in its GenAI layout unless told it holds model training.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def ensure_experiment(client: Any, name: str) -> str:
    """The id of experiment ``name``, created if absent (a concurrent creator is tolerated).

    A new experiment is tagged as model development, so `mlflow ui` opens it on its training
    runs rather than on GenAI traces.
    """
    found = with_retries(client.get_experiment_by_name, name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(with_retries(client.create_experiment, name, tags=EXPERIMENT_KIND))
    except Exception:
        again = with_retries(client.get_experiment_by_name, name)
        if again is None:
            raise
        return str(again.experiment_id)


def with_retries(call: Any, *args: Any, attempts: int = 6, **kwargs: Any) -> Any:
    """Calls an MLflow client method, retrying a busy SQLite store ("database is locked")
    with exponential backoff; any other error, or the last failure, is raised."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if "locked" not in str(error).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


class TrialTracker:
    """Logs one trial to one MLflow run; ``run_id`` lets a resumed trial reopen the same run."""

    def __init__(
        self,
        config: TrialConfig,
        tracking_uri: str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        trial_key: str | None = None,
        n_classes: int | None = None,
        run_name: str | None = None,
    ) -> None:
        """``trial_key`` (the trial's identity) closes the window between creating the run and
        the first checkpoint: a retried trial that has no checkpoint yet finds the run its
        earlier attempt created, by that tag under the same parent, instead of opening a second
        one. ``n_classes`` completes the strategy's effective parameters; ``run_name`` is the
        sweep's name for the trial (default: the config's)."""
        import mlflow

        self.config = config
        self.n_classes = n_classes
        self.run_name = run_name or config.run_name()
        self.client = mlflow.MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))
        self.logged_steps: set[int] = set()
        found_by_key = False
        if run_id is None and trial_key is not None:
            run_id = self._find_run(experiment, trial_key, parent_run_id)
            found_by_key = run_id is not None
        if run_id is None:
            experiment_id = ensure_experiment(self.client, experiment)
            tags = trial_tags(config)
            if parent_run_id:
                tags["mlflow.parentRunId"] = parent_run_id
            if trial_key is not None:
                tags[TRIAL_KEY_TAG] = trial_key
            run = with_retries(
                self.client.create_run, experiment_id, tags=tags, run_name=self.run_name
            )
            self.run_id: str = run.info.run_id
            self._log_params()
            return
        self.run_id = run_id
        if found_by_key:
            self._log_params()  # the earlier attempt may have died half-way; same values again
        with_retries(self.client.update_run, run_id, status="RUNNING")
        # A resumed trial: rounds already logged are not logged again (exactly once).
        history = with_retries(self.client.get_metric_history, run_id, "balanced_accuracy")
        self.logged_steps = {m.step for m in history}

    def _find_run(self, experiment: str, trial_key: str, parent_run_id: str | None) -> str | None:
        return find_run(self.client, experiment, TRIAL_KEY_TAG, trial_key, parent_run_id)

    def _log_params(self) -> None:
        from mlflow.entities import Param

        params = [
            Param(k, v if isinstance(v, str) else json.dumps(v))
            for k, v in self.config.tracked_params(self.n_classes).items()
        ]
        for start in range(0, len(params), 100):
            with_retries(self.client.log_batch, self.run_id, params=params[start : start + 100])

    def log_round(self, result: RoundResult) -> None:
        from mlflow.entities import Metric

        if result.round in self.logged_steps:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, result.round) for k, v in result.metrics().items()]
        with_retries(self.client.log_batch, self.run_id, metrics=metrics)
        self.logged_steps.add(result.round)

    def finish(self, state: TrialState, status: str = "FINISHED") -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "config.json").write_text(self.config.to_json())
            selections = [
                {
                    "round": r.round,
                    "indices": r.selected,
                    "labels": r.selected_labels,
                    "random_fallback": r.random_fallback,
                    "notes": r.notes,
                    "metrics": r.strategy_metrics,
                    **({"record": r.record} if r.record is not None else {}),
                }
                for r in state.rounds
            ]
            # One line per round: a round's record lists every visited candidate, and indenting
            # it would put each number on a line of its own (about 3x the bytes).
            rows = ",\n".join(json.dumps(round_, separators=(",", ":")) for round_ in selections)
            (folder / "selections.json").write_text(f"[\n{rows}\n]\n")
            if state.rounds:
                learning_curve_png(state.rounds, folder / "learning_curve.png", self.run_name)
            for file in sorted(folder.iterdir()):
                with_retries(self.client.log_artifact, self.run_id, str(file))
        with_retries(self.client.set_terminated, self.run_id, status=status)

    def fail(self, error: BaseException) -> None:
        close_failed(self.client, self.run_id, error)


def find_run(
    client: Any, experiment: str, tag: str, value: str, parent_run_id: str | None
) -> str | None:
    """The first run of ``experiment`` tagged ``tag = value`` (under ``parent_run_id``)."""
    found = with_retries(client.get_experiment_by_name, experiment)
    if found is None:
        return None
    query = f"tags.{tag} = '{value}'"
    if parent_run_id:
        query += f" and tags.mlflow.parentRunId = '{parent_run_id}'"
    runs = with_retries(
        client.search_runs, [found.experiment_id], query, order_by=["start_time ASC"]
    )
    return str(runs[0].info.run_id) if runs else None


def client_for(tracking_uri: str | None) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))


def open_sweep_run(tracking_uri: str, experiment: str, name: str, tags: dict[str, str]) -> str:
    """A sweep's parent run (``sweep-<name>``), created; returns its id."""
    client = client_for(tracking_uri)
    experiment_id = ensure_experiment(client, experiment)
    run = with_retries(client.create_run, experiment_id, run_name=f"sweep-{name}", tags=tags)
    return str(run.info.run_id)


def finish_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    with_retries(client_for(tracking_uri).set_terminated, run_id, status=status)


def fail_run(tracking_uri: str, run_id: str, error: BaseException) -> None:
    """Closes a run as FAILED, its ``error`` tag saying why."""
    close_failed(client_for(tracking_uri), run_id, error)


def close_failed(client: Any, run_id: str, error: BaseException) -> None:
    """Tags the run with the error (its type and message) and closes it as FAILED."""
    message = f"{type(error).__name__}: {error}"[:5000]
    with_retries(client.set_tag, run_id, "error", message)
    with_retries(client.set_terminated, run_id, status="FAILED")


def set_tag(tracking_uri: str, run_id: str, key: str, value: str) -> None:
    with_retries(client_for(tracking_uri).set_tag, run_id, key, value)


def metric_keys(tracking_uri: str, run_id: str) -> set[str]:
    """The metrics a run holds already."""
    return set(with_retries(client_for(tracking_uri).get_run, run_id).data.metrics)


def log_curves(
    tracking_uri: str, run_id: str, curves: dict[str, list[tuple[int, float, float]]]
) -> None:
    """Learning curves on a sweep's parent run: per configuration label, ``<label>/mean`` and
    ``<label>/sem`` of balanced accuracy with step = round, so the run's chart view draws
    them without expanding its children."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = []
    for label, points in curves.items():
        for step, mean, sem in points:
            metrics.append(Metric(f"{label}/mean", float(mean), now, int(step)))
            if sem == sem:  # one seed has no standard error
                metrics.append(Metric(f"{label}/sem", float(sem), now, int(step)))
    client = client_for(tracking_uri)
    for start in range(0, len(metrics), 500):
        with_retries(client.log_batch, run_id, metrics=metrics[start : start + 500])


class CandidateRun:
    """A search candidate's MLflow run, a child of the sweep's parent: its parameters, the
    seeds it runs on, and its value after each seed (step = seeds done). A candidate started
    again (a retry, --resume) finds its run by its identity and logs each step once."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        parent_run_id: str,
        name: str,
        params: dict[str, Any],
        key: str,
        tags: dict[str, str],
    ) -> None:
        from mlflow.entities import Param

        self.client = client_for(tracking_uri)
        found = find_run(self.client, experiment, CANDIDATE_TAG, key, parent_run_id)
        if found is not None:
            self.run_id = found
            with_retries(self.client.update_run, found, status="RUNNING")
            history = with_retries(self.client.get_metric_history, found, "auc")
            self.logged = {m.step for m in history}
            return
        run = with_retries(
            self.client.create_run,
            ensure_experiment(self.client, experiment),
            run_name=name,
            tags={"mlflow.parentRunId": parent_run_id, CANDIDATE_TAG: key, **tags},
        )
        self.run_id = str(run.info.run_id)
        self.logged = set()
        values = [Param(k, v if isinstance(v, str) else json.dumps(v)) for k, v in params.items()]
        with_retries(self.client.log_batch, self.run_id, params=values)

    def log_value(self, value: float, seeds_done: int) -> None:
        from mlflow.entities import Metric

        if seeds_done in self.logged:
            return
        metric = Metric("auc", float(value), int(time.time() * 1000), seeds_done)
        with_retries(self.client.log_batch, self.run_id, metrics=[metric])
        self.logged.add(seeds_done)

    def finish(self, status: str = "FINISHED", note: str | None = None) -> None:
        if note is not None:
            with_retries(self.client.set_tag, self.run_id, "stopped", note)
        with_retries(self.client.set_terminated, self.run_id, status=status)

    def fail(self, error: BaseException) -> None:
        close_failed(self.client, self.run_id, error)


def log_figures(tracking_uri: str, experiment: str, paths: list[Path], tags: dict[str, str]) -> str:
    """A run named ``figures`` holding ``paths`` as artifacts under ``figures/``."""
    client = client_for(tracking_uri)
    run = with_retries(
        client.create_run, ensure_experiment(client, experiment), run_name="figures", tags=tags
    )
    for path in paths:
        with_retries(client.log_artifact, run.info.run_id, str(path), "figures")
    with_retries(client.set_terminated, run.info.run_id)
    return str(run.info.run_id)


def log_verdict(tracking_uri: str, run_id: str, paths: list[Path], tags: dict[str, str]) -> None:
    """A sweep's verdict on its parent run: ``paths`` as artifacts under ``verdict/`` and
    ``tags`` (the claim, the outcome in short; cut to MLflow's tag length)."""
    client = client_for(tracking_uri)
    for path in paths:
        with_retries(client.log_artifact, run_id, str(path), "verdict")
    for key, value in tags.items():
        with_retries(client.set_tag, run_id, key, value[:5000])


def experiment_id(tracking_uri: str, experiment: str) -> str | None:
    found = with_retries(client_for(tracking_uri).get_experiment_by_name, experiment)
    return str(found.experiment_id) if found is not None else None


def read_experiment(
    tracking_uri: str | None, experiment: str, metrics: tuple[str, ...] = ("balanced_accuracy",)
) -> dict[str, Any]:
    """Everything ``alsys report`` needs from one experiment, as plain data.

    Returns ``{"experiment_id", "runs": [{"run_id", "name", "status", "params", "tags",
    "parent", "history": {metric: [(step, value), ...]}}]}``; raises InputError (naming the
    experiments there are) when no experiment has that name.
    """
    import mlflow

    from alsys.errors import InputError

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        # Reading must not create an empty store where the user mistyped a path.
        raise InputError("--tracking-uri", f"no MLflow store at {uri[len('sqlite:///') :]}")
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = with_retries(client.get_experiment_by_name, experiment)
    if found is None:
        names = sorted(e.name for e in with_retries(client.search_experiments))
        raise InputError(
            "--experiment", f"no experiment {experiment!r}; there are: {', '.join(names) or 'none'}"
        )
    runs, token = [], None
    while True:
        page = with_retries(
            client.search_runs, [found.experiment_id], max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    out = []
    for run in runs:
        history = {
            name: sorted(
                (m.step, m.value)
                for m in with_retries(client.get_metric_history, run.info.run_id, name)
            )
            for name in metrics
            if name in run.data.metrics
        }
        out.append(
            {
                "run_id": run.info.run_id,
                "name": run.info.run_name,
                "status": run.info.status,
                "params": dict(run.data.params),
                "tags": dict(run.data.tags),
                "parent": run.data.tags.get("mlflow.parentRunId"),
                "history": history,
            }
        )
    return {"experiment_id": found.experiment_id, "runs": out}


def download_artifact(tracking_uri: str | None, run_id: str, path: str, dst: Path) -> Path | None:
    """One artifact of a run into ``dst``; None if the run has no such artifact."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))
    try:
        return Path(with_retries(client.download_artifacts, run_id, path, str(dst)))
    except Exception as error:  # MlflowException or OSError: the artifact is not there
        if "locked" in str(error).lower():
            raise
        return None
