"""The sweep's launch stage, the one sweep engine: the Tuner over the frozen trials (a grid)
or over a search's candidates (a search algorithm and a scheduler), its callbacks (the progress
bar, the parent run's learning curves), and interrupts.

SIGINT (Ctrl-C) or SIGTERM on the driver stops the trials as Tune stops them on its own
interrupt: the running ones end, Tune's state is saved, and ``--resume`` continues every trial
from its last finished round in its own MLflow run (a search's algorithm from its saved state).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from alsys.sweep.collect import curves
from alsys.sweep.spec import Sweep, Trial
from alsys.sweep.trainable import PROGRESS_DIR, Where, load_state, trainable


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


class ParentCurves(tune.Callback):
    """Logs a configuration's learning curve (mean and s.e. of balanced accuracy over its
    seeds, per round) on the sweep's parent run as soon as its last trial finishes; the collect
    stage logs the rest (configurations with a failed trial) at the end."""

    def __init__(self, trials: list[Trial], progress_dir: Path, log: Any) -> None:
        self.trials, self.progress_dir, self.log = trials, progress_dir, log

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        name = (trial.config or {}).get("trial")
        this = next((t for t in self.trials if t.name == name), None)
        if this is None:
            return
        group = [t for t in self.trials if t.configuration == this.configuration]
        found = finished_rounds(group, self.progress_dir)
        if all(len(found.get(t.name, [])) == t.config.episodes for t in group):
            self.log(curves(group, found))


def finished_rounds(trials: list[Trial], progress_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Each trial's finished rounds ``(round, balanced accuracy)``, from its progress file."""
    out = {}
    for trial in trials:
        saved = load_state(progress_dir / f"{trial.name}.npz", trial.id)
        if saved is not None:
            out[trial.name] = [(r.round, r.balanced_accuracy) for r in saved[0].rounds]
    return out


@dataclass
class Interrupt:
    """SIGINT and SIGTERM on the driver, while it runs a sweep. Outside the Tuner they raise
    KeyboardInterrupt; inside it they ask Tune to stop as on its own interrupt (SIGUSR1), which
    ends the running trials and saves its state. ``signal`` is the one received, if any."""

    signal: int | None = None
    _before: dict[int, Any] = field(default_factory=dict)
    _tuning: bool = False

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal or signal.SIGINT)

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.signal is None
        self.signal = self.signal or signum
        if not self._tuning or signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL:
            raise KeyboardInterrupt  # outside Tune's loop, or before it listens
        if first:
            # Tune would log its own warnings and "Trials did not complete"; we say it once.
            logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
            os.kill(os.getpid(), signal.SIGUSR1)

    @contextmanager
    def installed(self) -> Iterator[Interrupt]:
        import threading

        if threading.current_thread() is threading.main_thread():  # else Python refuses
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._before[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for number, handler in self._before.items():
                signal.signal(number, handler)

    @contextmanager
    def tuning(self) -> Iterator[None]:
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours asks Tune through SIGUSR1
        self._tuning = True
        try:
            yield
        finally:
            self._tuning = False
            del os.environ["TUNE_DISABLE_SIGINT_HANDLER"]


@dataclass(frozen=True)
class Search:
    """How a search samples its candidates: Tune's space over the strategy's parameters, a
    search algorithm (e.g. Ray's OptunaSearch), an optional scheduler (e.g. ASHA, over the
    seeds a candidate has done) and how many candidates. The engine maximises each candidate's
    ``auc`` (alsys.sweep.trainable.run_candidate)."""

    space: dict[str, Any]
    algorithm: Any
    scheduler: Any = None
    num_samples: int = 1


METRIC, MODE = "auc", "max"  # what a search maximises


def launch(
    sweep: Sweep,
    *,
    where: Where,
    datasets: dict[str, Any],
    parent_run_id: str,
    log_curves: Any,
    interrupt: Interrupt,
    resume: bool,
    search: Search | None = None,
) -> Launched:
    """Runs (or resumes) the sweep as one Tune experiment: its trials, or ``search``'s
    candidates when the sweep is a search."""
    from alsys.sweep.prepare import trial_resources

    fn = tune.with_parameters(
        trainable,
        trials={t.name: t for t in sweep.trials},
        candidates=sweep.candidates,
        datasets=datasets,
        where=where,
        parent_run_id=parent_run_id,
    )
    fn = tune.with_resources(fn, trial_resources(sweep.resources))
    with result_files() as loggers, interrupt.tuning():
        if resume and restorable(where.sweep_dir):
            tuner = tune.Tuner.restore(str(where.sweep_dir), trainable=fn, resume_errored=True)
        else:
            callbacks = [*_callbacks(sweep, where, search, log_curves), *loggers]
            tuner = _tuner(fn, sweep, where, search, callbacks)
        grid = tuner.fit()
    if interrupt.signal is not None:
        return Launched({}, [])  # the progress files say where each trial stands
    return _launched(grid, search)


def _callbacks(sweep: Sweep, where: Where, search: Search | None, log_curves: Any) -> list[Any]:
    """The progress bar, and (for a grid) the parent run's curves."""
    if search is not None and sweep.candidates is not None:
        seeds = len(sweep.candidates.seeds)
        return [SweepProgress(search.num_samples, search.num_samples * seeds, "seeds_done", "seed")]
    return [
        SweepProgress(len(sweep.trials), sum(t.config.episodes for t in sweep.trials)),
        ParentCurves(list(sweep.trials), where.sweep_dir / PROGRESS_DIR, log_curves),
    ]


def _tuner(
    fn: Any, sweep: Sweep, where: Where, search: Search | None, callbacks: list[Any]
) -> tune.Tuner:
    if search is None:
        # Tune's config is the trial's name (which spells its axis values) and no more: Tune
        # copies the grid once per trial and writes the config into every result and every
        # save of its state; the trials travel once, through the object store.
        space: dict[str, Any] = {"trial": tune.grid_search([t.name for t in sweep.trials])}
        config = tune.TuneConfig(
            trial_name_creator=lambda t: str(t.config.get("trial")),
            reuse_actors=True,  # one worker per CPU slot: imports and MLflow set-up once
        )
    else:
        space = search.space
        config = tune.TuneConfig(
            search_alg=search.algorithm,
            scheduler=search.scheduler,
            metric=METRIC,
            mode=MODE,
            num_samples=search.num_samples,
            reuse_actors=True,
        )
    return tune.Tuner(
        fn,
        param_space=space,
        tune_config=config,
        run_config=tune.RunConfig(
            name=sweep.name,
            storage_path=str(where.sweep_dir.parent),
            failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
            # Every round's checkpoint is kept (a few KiB each): after a driver is killed, Tune
            # restores from the checkpoint its last saved state names, which workers that ran
            # on for a moment would otherwise have deleted already.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            callbacks=callbacks,
            verbose=0,  # the bar instead of a config table per trial
        ),
    )


def _launched(grid: Any, search: Search | None) -> Launched:
    rounds: dict[str, list[tuple[int, float]]] = {}
    errors = [str(grid[i].error) for i in range(len(grid)) if grid[i].error]
    if search is not None:
        done = [r for r in grid if r.metrics and METRIC in r.metrics]
        best = max(done, key=lambda r: r.metrics[METRIC]) if done else None
        picked = (dict(best.config or {}), float(best.metrics[METRIC])) if best else None
        return Launched(rounds, errors, picked)
    for index in range(len(grid)):
        result = grid[index]
        trial_name = (result.config or {}).get("trial")
        frame = result.metrics_dataframe
        if trial_name is None or frame is None or "balanced_accuracy" not in frame:
            continue  # not started, or stopped before its first round
        rounds[str(trial_name)] = [
            (int(r), float(v))
            for r, v in zip(frame["round"], frame["balanced_accuracy"], strict=True)
        ]
    return Launched(rounds, errors)


@dataclass(frozen=True)
class Launched:
    """What Tune returned: each started trial's rounds ``(round, balanced accuracy)`` by name,
    as reported (a resumed trial may report a round twice), the failed trials' errors, and for
    a search its best candidate (its parameters and value), if one reported."""

    rounds: dict[str, list[tuple[int, float]]]
    errors: list[str]
    best: tuple[dict[str, Any], float] | None = None
