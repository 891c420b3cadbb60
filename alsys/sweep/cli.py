"""The command line every sweep script shares: the stages in order (spec -> prepare -> launch ->
collect), the MLflow parent run around them (closed as failed, with the error, on any error),
and the one line an interrupt prints."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alsys.errors import AlsysError, InputError
from alsys.sweep.spec import Sweep, Trial, freeze, load_sweep

SWEEP_STATE = "alsys_sweep.json"  # the parent run id, kept beside Tune's experiment state


def default_storage() -> str:
    """Absolute, because under `ray job submit` the working directory is a temporary copy."""
    return os.environ.get("ALSYS_RESULTS") or str(Path.home() / "ray_results" / "alsys")


class SweepInterrupted(AlsysError):
    """SIGINT or SIGTERM stopped the sweep; Tune's state is saved."""

    def __init__(self, exit_code: int, finished: int, started: int, total: int) -> None:
        super().__init__(f"{finished} of {total} trials finished")
        self.exit_code, self.finished, self.started, self.total = (
            exit_code,
            finished,
            started,
            total,
        )


def open_parent_run(
    name: str,
    tracking_uri: str,
    experiment: str,
    state_dir: Path,
    resume: bool,
    tags: dict[str, str] | None = None,
) -> str:
    """The sweep's MLflow parent run: reused on --resume, created once otherwise (driver)."""
    from alsys.tracking import open_sweep_run

    state_file = state_dir / SWEEP_STATE
    if resume and state_file.is_file():
        return str(json.loads(state_file.read_text())["parent_run_id"])
    state_dir.mkdir(parents=True, exist_ok=True)  # before the run: a run left open is a lie
    run_id = open_sweep_run(tracking_uri, experiment, name, {"sweep": name, **(tags or {})})
    with closing_parent(tracking_uri, run_id):
        state_file.write_text(json.dumps({"parent_run_id": run_id}))
    return run_id


@contextmanager
def closing_parent(tracking_uri: str, run_id: str) -> Iterator[None]:
    """The parent run's end: killed by an interrupt, failed with the error on any other error
    (a stage's, a trial's not retried, a bug's), else left to the caller."""
    from alsys.tracking import fail_run, finish_run

    try:
        yield
    except SweepInterrupted:
        finish_run(tracking_uri, run_id, status="KILLED")
        raise
    except BaseException as error:
        fail_run(tracking_uri, run_id, error)
        raise


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: its rows (one per trial and round: the configuration's key, ``seed``,
    ``baseline``, ``round`` and ``balanced_accuracy``), the trials' errors, for a search its
    best candidate (parameters, value), and its MLflow parent run."""

    rows: list[dict[str, Any]]
    errors: list[str]
    best: tuple[dict[str, Any], float] | None = None
    parent: str = ""


def run_sweep(
    sweep: Sweep,
    *,
    storage_path: str,
    tracking_uri: str,
    experiment: str,
    store_root: str | None,
    resume: bool = False,
    interrupt: Any = None,
    search: Any = None,
    parent_tags: dict[str, str] | None = None,
) -> SweepResult:
    """Runs (or resumes) the sweep, or the search ``search`` (``alsys.sweep.launch.Search``)
    over its candidates. Raises SweepInterrupted when SIGINT or SIGTERM stopped it."""
    from alsys.sweep.launch import Interrupt
    from alsys.sweep.prepare import check_tracking, connect_ray, load_datasets
    from alsys.sweep.trainable import Where
    from alsys.tracking import finish_run
    from alsys.verdict.claims import CLAIM_TAG

    datasets = load_datasets(sweep.configs())  # what only the data can check, before anything
    connect_ray()
    check_tracking(tracking_uri)
    where = Where(Path(storage_path).resolve() / sweep.name, tracking_uri, experiment, sweep.name)
    # The claim on the parent from the start: `alsys report` judges even an unfinished sweep.
    tags = {**({CLAIM_TAG: sweep.claim} if sweep.claim else {}), **(parent_tags or {})}
    parent = open_parent_run(sweep.name, tracking_uri, experiment, where.sweep_dir, resume, tags)
    with closing_parent(tracking_uri, parent):
        result = _stages(
            sweep, where, datasets, parent, store_root, resume, interrupt or Interrupt(), search
        )
    finish_run(tracking_uri, parent, status="FAILED" if result.errors else "FINISHED")
    if result.errors:
        print(f"{len(result.errors)} trial(s) failed; first: {result.errors[0]}", file=sys.stderr)
    return result


def _stages(
    sweep: Sweep,
    where: Any,
    datasets: dict[str, Any],
    parent: str,
    store_root: str | None,
    resume: bool,
    interrupt: Any,
    search: Any,
) -> SweepResult:
    """prepare -> launch -> collect, under the parent run."""
    from alsys.sweep.collect import curves, trial_rows
    from alsys.sweep.launch import finished_rounds, launch
    from alsys.sweep.prepare import prepare_embeddings
    from alsys.sweep.trainable import PROGRESS_DIR
    from alsys.tracking import log_curves, metric_keys

    progress_dir = where.sweep_dir / PROGRESS_DIR
    if not resume and progress_dir.exists():
        shutil.rmtree(progress_dir)  # a new sweep in the same folder starts from nothing
    progress_dir.mkdir(parents=True, exist_ok=True)
    freeze(sweep.trials, where.sweep_dir)  # prepare: frozen configs first, then the data
    size = f"{len(sweep.trials)} trials" if search is None else f"{search.num_samples} candidates"
    print(f"sweep {sweep.name}: {size}; MLflow parent run {parent}", file=sys.stderr)
    logged = {key.rsplit("/", 1)[0] for key in metric_keys(where.tracking_uri, parent)}

    def log_new(found: dict[str, list[tuple[int, float, float]]]) -> None:
        fresh = {label: points for label, points in found.items() if label not in logged}
        if fresh:
            log_curves(where.tracking_uri, parent, fresh)
            logged.update(fresh)

    launched = None
    with interrupt.installed():
        try:
            refs = prepare_embeddings(sweep.configs(), datasets, store_root)
            launched = launch(
                sweep,
                where=where,
                datasets=refs,
                parent_run_id=parent,
                log_curves=log_new,
                interrupt=interrupt,
                resume=resume,
                search=search,
            )
        except KeyboardInterrupt:
            interrupt.signal = interrupt.signal or 2
        except Exception:
            if interrupt.signal is None:
                raise  # an error of its own; after an interrupt, the stop is what matters
    if interrupt.signal is not None or launched is None:
        raise _interrupted(sweep, progress_dir, interrupt.exit_code, search)
    trials = list(sweep.trials)
    rows = [
        row
        for trial in trials
        if trial.name in launched.rounds
        for row in trial_rows(trial, launched.rounds[trial.name])
    ]
    # Configurations a failed trial left incomplete. The callbacks may be a restored copy
    # (Tune keeps them with its state), so what the parent holds is read again first.
    logged.update(key.rsplit("/", 1)[0] for key in metric_keys(where.tracking_uri, parent))
    log_new(curves(trials, finished_rounds(trials, progress_dir)))
    return SweepResult(rows, launched.errors, launched.best, parent)


def _interrupted(sweep: Sweep, progress_dir: Path, exit_code: int, search: Any) -> SweepInterrupted:
    """How far the interrupted sweep got, from its trials' progress files (a search's: those
    of its candidates' trials, of which it runs its candidates times its seeds)."""
    from alsys.sweep.launch import finished_rounds
    from alsys.sweep.trainable import load_state

    if sweep.candidates is None:
        saved = finished_rounds(list(sweep.trials), progress_dir)
        finished = sum(len(saved.get(t.name, [])) == t.config.episodes for t in sweep.trials)
        return SweepInterrupted(exit_code, finished, len(saved), len(sweep.trials))
    states = [load_state(f) for f in progress_dir.glob("*.npz")]
    rounds = [len(state[0].rounds) for state in states if state is not None]
    finished = sum(n == sweep.candidates.base.episodes for n in rounds)
    total = search.num_samples * len(sweep.candidates.seeds) if search else len(rounds)
    return SweepInterrupted(exit_code, finished, len(rounds), total)


@dataclass(frozen=True)
class SweepContext:
    """What a sweep script's ``after`` hook gets: the sweep and where things went."""

    sweep: Sweep
    tracking_uri: str
    experiment: str
    store_root: str | None
    args: Any  # the parsed command line (argparse.Namespace)


def resume_command(default_config: Path, argv: list[str]) -> str:
    """The exact command that resumes this sweep: the script as it was started, its flags,
    and ``--resume``."""
    started = sys.argv[0] if sys.argv and sys.argv[0].endswith(".py") else ""
    script = started or str(default_config.with_suffix(".py"))
    return shlex.join(["python", script, *[a for a in argv if a != "--resume"], "--resume"])


def sweep_parser(default_config: Path, description: str) -> argparse.ArgumentParser:
    """The flags every sweep script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=str(default_config), help="the sweep's YAML space")
    parser.add_argument("--smoke", action="store_true", help="the ~1 minute version")
    parser.add_argument(
        "--full", action="store_true", help="the YAML's opt-in full: section (the thesis's axis)"
    )
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
    return parser


# What a sweep script reports in one line: bad input (exit 2), an interrupt (130 or 143), and
# what the system refused (a full disk, a store that is not a folder: exit 1). The parent run
# is closed already (as failed, with the error, or as killed).
STOPS = (InputError, SweepInterrupted, OSError)


def stopped_line(default_config: Path, argv: list[str], stopped: BaseException) -> tuple[str, int]:
    """The one line (and exit code) of a sweep that ends on one of ``STOPS``."""
    name = default_config.stem
    if isinstance(stopped, InputError):
        return f"{name}: error: {stopped}", 2
    if not isinstance(stopped, SweepInterrupted):
        return f"{name}: error: {stopped}", 1
    line = (
        f"{name}: interrupted: {stopped.finished} of {stopped.total} trials finished, "
        f"{stopped.started - stopped.finished} stopped mid-way, "
        f"{stopped.total - stopped.started} not started; Tune's state is saved. "
        f"Resume with: {resume_command(default_config, argv)}"
    )
    return line, stopped.exit_code


def sweep_main(
    default_config: Path,
    argv: list[str] | None = None,
    after: Callable[[SweepContext], None] | None = None,
    add_arguments: Callable[[Any], None] | None = None,
) -> int:
    """The command line every sweep script shares; ``after`` runs once the sweep succeeded
    (e.g. sweeps/hvae.py draws its figures then). The sweep ends with its verdict."""
    from alsys.sweep.collect import print_results
    from alsys.sweep.conclude import conclude
    from alsys.tracking import resolve_tracking_uri

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = sweep_parser(default_config, f"alsys sweep ({default_config.stem})")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.config, smoke=args.smoke, full=args.full)
        if args.smoke or args.full:
            sweep = sweep.renamed(sweep.name + ("_smoke" if args.smoke else "_full"))
        tracking_uri = resolve_tracking_uri(args.tracking_uri)
        store_root = str(Path(args.store).resolve()) if args.store else None
        experiment = args.experiment or sweep.name
        result = run_sweep(
            sweep,
            storage_path=args.storage_path,
            tracking_uri=tracking_uri,
            experiment=experiment,
            store_root=store_root,
            resume=args.resume,
        )
    except STOPS as stopped:
        line, code = stopped_line(default_config, argv, stopped)
        print(line, file=sys.stderr)
        return code
    csv = Path(args.storage_path).resolve() / sweep.name / "results.csv"
    print_results(result.rows, csv, tracking_uri, experiment, store_root)
    conclude(sweep, result, csv.parent, tracking_uri)
    if result.errors:
        return 1
    if after is not None:
        after(SweepContext(sweep, tracking_uri, experiment, store_root, args))
    return 0


__all__ = [
    "STOPS",
    "SweepContext",
    "SweepInterrupted",
    "SweepResult",
    "Trial",
    "run_sweep",
    "sweep_main",
    "sweep_parser",
]
