"""The command line every sweep script shares: the stages in order (spec -> prepare -> launch ->
collect), the MLflow parent run around them, and the one line an interrupt prints."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from alsys.errors import InputError
from alsys.sweep.spec import SweepSpec, Trial, freeze, load_spec

SWEEP_STATE = "alsys_sweep.json"  # the parent run id, kept beside Tune's experiment state


def default_storage() -> str:
    """Absolute, because under `ray job submit` the working directory is a temporary copy."""
    return os.environ.get("ALSYS_RESULTS") or str(Path.home() / "ray_results" / "alsys")


class SweepInterrupted(Exception):
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
    spec: SweepSpec, tracking_uri: str, experiment: str, state_dir: Path, resume: bool
) -> str:
    """The sweep's MLflow parent run: reused on --resume, created once otherwise (driver)."""
    from alsys.tracking import open_sweep_run

    state_file = state_dir / SWEEP_STATE
    if resume and state_file.is_file():
        return str(json.loads(state_file.read_text())["parent_run_id"])
    run_id = open_sweep_run(tracking_uri, experiment, spec.name, {"sweep": spec.name})
    state_dir.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps({"parent_run_id": run_id}))
    return run_id


def run_sweep(
    spec: SweepSpec,
    *,
    storage_path: str,
    tracking_uri: str,
    experiment: str,
    store_root: str | None,
    resume: bool = False,
    interrupt: Any = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Runs (or resumes) the sweep; returns its rows (one per trial and round: the config's
    fields, ``baseline``, ``round`` and ``balanced_accuracy``) and the trials' errors. Raises
    SweepInterrupted when SIGINT or SIGTERM stopped it."""
    from alsys.sweep.collect import curves, trial_rows
    from alsys.sweep.launch import Interrupt, finished_rounds, launch
    from alsys.sweep.prepare import check_tracking, connect_ray, prepare_embeddings
    from alsys.sweep.trainable import PROGRESS_DIR
    from alsys.tracking import finish_run, log_curves, metric_keys

    trials = spec.expand()  # spec: every trial validated, named, with its identity
    interrupt = interrupt or Interrupt()
    connect_ray()
    check_tracking(tracking_uri)
    storage = Path(storage_path).resolve()
    sweep_dir = storage / spec.name
    parent = open_parent_run(spec, tracking_uri, experiment, sweep_dir, resume)
    progress_dir = sweep_dir / PROGRESS_DIR
    if not resume and progress_dir.exists():
        shutil.rmtree(progress_dir)  # a new sweep in the same folder starts from nothing
    progress_dir.mkdir(parents=True, exist_ok=True)
    freeze(trials, sweep_dir)  # prepare: frozen configs first, then the data
    print(f"sweep {spec.name}: {len(trials)} trials; MLflow parent run {parent}", file=sys.stderr)
    logged = {key.rsplit("/", 1)[0] for key in metric_keys(tracking_uri, parent)}

    def log_new(found: dict[str, list[tuple[int, float, float]]]) -> None:
        fresh = {label: points for label, points in found.items() if label not in logged}
        if fresh:
            log_curves(tracking_uri, parent, fresh)
            logged.update(fresh)

    with interrupt.installed():
        try:
            datasets = prepare_embeddings([t.config for t in trials], store_root)
            launched = launch(
                trials,
                name=spec.name,
                storage=storage,
                datasets=datasets,
                resources=spec.resources,
                max_failures=spec.max_failures,
                tracking_uri=tracking_uri,
                experiment=experiment,
                parent_run_id=parent,
                log_curves=log_new,
                interrupt=interrupt,
                resume=resume,
            )
        except KeyboardInterrupt:
            interrupt.signal = interrupt.signal or 2
        except Exception:
            if interrupt.signal is None:
                raise  # an error of its own; after an interrupt, the stop is what matters
    saved = finished_rounds(trials, progress_dir)
    if interrupt.signal is not None:
        finished = sum(len(saved.get(t.name, [])) == t.config.episodes for t in trials)
        finish_run(tracking_uri, parent, status="KILLED")
        raise SweepInterrupted(interrupt.exit_code, finished, len(saved), len(trials))
    rows = [
        row
        for trial in trials
        if trial.name in launched.rounds
        for row in trial_rows(trial, launched.rounds[trial.name])
    ]
    # Configurations a failed trial left incomplete. The callbacks may be a restored copy
    # (Tune keeps them with its state), so what the parent holds is read again first.
    logged.update(key.rsplit("/", 1)[0] for key in metric_keys(tracking_uri, parent))
    log_new(curves(trials, saved))
    finish_run(tracking_uri, parent, status="FAILED" if launched.errors else "FINISHED")
    if launched.errors:
        print(
            f"{len(launched.errors)} trial(s) failed; first: {launched.errors[0]}",
            file=sys.stderr,
        )
    return rows, launched.errors


@dataclass(frozen=True)
class SweepContext:
    """What a sweep script's ``after`` hook gets: the spec and where things went."""

    spec: SweepSpec
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


def sweep_main(
    default_config: Path,
    argv: list[str] | None = None,
    after: Callable[[SweepContext], None] | None = None,
    add_arguments: Callable[[Any], None] | None = None,
) -> int:
    """The command line every sweep script shares; ``after`` runs once the sweep succeeded
    (e.g. sweeps/hvae.py draws its figures then)."""
    from alsys.sweep.collect import print_results
    from alsys.tracking import resolve_tracking_uri

    argv = list(sys.argv[1:] if argv is None else argv)
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
            spec = replace(spec, name=spec.name + "_smoke")
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
    except SweepInterrupted as stopped:
        print(
            f"{default_config.stem}: interrupted: {stopped.finished} of {stopped.total} trials "
            f"finished, {stopped.started - stopped.finished} stopped mid-way, "
            f"{stopped.total - stopped.started} not started; Tune's state is saved. "
            f"Resume with: {resume_command(default_config, argv)}",
            file=sys.stderr,
        )
        return stopped.exit_code
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
        after(SweepContext(spec, tracking_uri, args.experiment or spec.name, store_root, args))
    return 0


__all__ = ["SweepContext", "SweepInterrupted", "Trial", "run_sweep", "sweep_main"]
