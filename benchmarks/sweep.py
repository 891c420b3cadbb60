"""Sweep throughput: Tune on 2 CPUs against the same trials one after another in one process.

The trials are dim_grid's smoke trials (9 on digits per seed: the 8-trial grid and Random) with
the default 5 rounds, at several sizes (``--seeds 1 12``: 9 and 108 trials, the last a little
above dim_grid's default sweep of 99), each measured ``--repeats`` times side by side
(sequential, then Tune); the table shows medians (about 12 minutes in all on 2 cores).

Both sides run one thread per trial (a trial's CPU share is 1): torch, faiss and BLAS
(threadpoolctl) are held to one thread in the sequential loop, as Ray's OMP_NUM_THREADS and
the trial's own limits hold them in a Tune worker. Parallel efficiency is
``T_sequential / (n_cpus x T_tune)``, 1.0 being perfect. Both log to MLflow (SQLite).

Embeddings are in the store before either timing, and Ray's start is excluded; each Tune sweep
pays its fixed costs (Tune's start, one worker per CPU slot importing torch/faiss/MLflow, the
parent run); the "1st trial done" column shows them. The steady-state column is the efficiency
of the trials/min between the 10th and 90th percentile of trial completions, both sides timed
by the end times of the MLflow runs they logged: the sweep's throughput once its workers are up
and before its last trials drain. The marginal row compares the extra time per extra trial
between the smallest and largest size. The no-op column runs the same number of no-op trials
through Tune (same reports and checkpoints, no work): Tune's own floor on this machine. The
driver column is the CPU time the sweep's driver process (Tune's controller, MLflow's parent
run, the embedding stage) spends per trial: on 2 cores it competes with the two trial workers.

    .venv/bin/python benchmarks/sweep.py [--episodes 5] [--seeds 1 12] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import torch
from threadpoolctl import threadpool_limits

from alsys.embed.store import EmbeddingStore
from alsys.loop import prepare_data
from alsys.sweep import Sweep, SweepSpec, read_spec

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
CPUS = 2


def sweep_for(episodes: int, seeds: int) -> Sweep:
    smoke = read_spec(SWEEPS / "dim_grid.yaml", smoke=True)
    return SweepSpec(
        **{
            **vars(smoke),
            "name": f"bench_sweep_{seeds}",
            "fixed": {**smoke.fixed, "episodes": episodes},
            "axes": {**smoke.axes, "seed": list(range(seeds))},
            "resources": {"cpu": 1},
        }
    ).sweep()


def tune_floor(n_trials: int, episodes: int, storage: Path) -> float:
    """Seconds for Tune alone: the same number of trials, each reporting ``episodes`` rounds
    with a small checkpoint, but doing no work (reused actors, 1 CPU each, the sweep's
    loggers)."""
    from ray import tune

    from alsys.sweep.launch import result_files

    def noop(config: dict[str, int]) -> None:
        for r in range(episodes):
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / "state.json").write_text("{}")
                tune.report({"round": r + 1}, checkpoint=tune.Checkpoint.from_directory(folder))

    start = time.perf_counter()
    with result_files() as loggers:  # Tune set up as the sweep sets it up
        tune.Tuner(
            tune.with_resources(noop, {"cpu": 1}),
            param_space={"i": tune.grid_search(list(range(n_trials)))},
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(
                storage_path=str(storage), name="floor", callbacks=loggers, verbose=0
            ),
        ).fit()
    return time.perf_counter() - start


def completions(uri: str) -> list[float]:
    """When each trial's MLflow run ended (Unix seconds), in order; a sweep's parent run is not
    a trial. Both sides are timed the same way, by the runs they logged."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("bench")
    runs = client.search_runs([experiment.experiment_id], max_results=50000)
    return sorted(r.info.end_time / 1000 for r in runs if not r.info.run_name.startswith("sweep-"))


def steady_rate(ends: list[float]) -> float:
    """Trials per second between the 10th and the 90th percentile of completions: the sweep's
    throughput once its workers are up, before its last trials drain."""
    low, high = len(ends) // 10, len(ends) - 1 - len(ends) // 10
    return (high - low) / (ends[high] - ends[low])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 12])
    parser.add_argument("--repeats", type=int, default=3, help="medians over this many runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="alsys-bench-sweep-"))
    store = EmbeddingStore(work / "store")
    datas = {}
    for trial in sweep_for(args.episodes, 1).trials:  # embeddings first, outside timings
        config = trial.config
        datas[(config.clustering_dim, config.typicality_dim)] = prepare_data(config, store)

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    threadpool_limits(1)  # numpy/scipy's BLAS would otherwise use both cores
    import ray

    from alsys.runner import tracked_trial
    from alsys.sweep.cli import run_sweep

    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
    rows = []
    for seeds in args.seeds:
        sweep = sweep_for(args.episodes, seeds)
        trials = [t.config for t in sweep.trials]
        runs = []
        for repeat in range(args.repeats):
            tag = f"{seeds}-{repeat}"
            seq_uri, tune_uri = (
                f"sqlite:///{work / f'{side}{tag}.db'}" for side in ("seq", "tune")
            )
            start, begun = time.perf_counter(), time.time()
            for config in trials:  # with the same MLflow logging as the Tune side
                data = datas[(config.clustering_dim, config.typicality_dim)]
                tracked_trial(config, data, seq_uri, "bench")
            sequential = time.perf_counter() - start
            seq_ends = completions(seq_uri)
            seq_first = seq_ends[0] - begun
            start, driver, begun = time.perf_counter(), time.process_time(), time.time()
            run_sweep(
                sweep,
                storage_path=str(work / f"ray{tag}"),
                tracking_uri=tune_uri,
                experiment="bench",
                store_root=str(work / "store"),
            )
            tuned = time.perf_counter() - start
            driver = (time.process_time() - driver) / len(trials)
            tune_ends = completions(tune_uri)
            steady = steady_rate(tune_ends) / (CPUS * steady_rate(seq_ends))
            floor = tune_floor(len(trials), args.episodes, work / f"floor{tag}")
            runs.append(
                (
                    sequential,
                    tuned,
                    seq_first,
                    tune_ends[0] - begun,
                    steady,
                    floor,
                    driver,
                    sequential / (CPUS * tuned),
                )
            )
            print(
                f"[{len(trials)} trials, run {repeat + 1}/{args.repeats}] sequential "
                f"{sequential:.1f} s, Tune {tuned:.1f} s, efficiency {runs[-1][-1]:.2f}, "
                f"steady-state {steady:.2f}",
                flush=True,
            )
        medians = [statistics.median(column) for column in zip(*runs, strict=True)]
        rows.append((len(trials), *medians, min(r[-1] for r in runs), max(r[-1] for r in runs)))

    print(
        f"\ndim_grid smoke grid on digits, {args.episodes} rounds, {CPUS} CPUs, 1 CPU per trial;"
        f" medians of {args.repeats} runs"
    )
    print(
        f"{'trials':>7} {'sequential s':>13} {'trials/min':>11} {'Tune s':>8} {'trials/min':>11}"
        f" {'efficiency':>11} {'(min-max)':>11} {'1st trial done s':>17} {'steady-state':>13}"
        f" {'no-op Tune s':>13} {'driver CPU s/trial':>19}"
    )
    for n, seq, tuned, seq_first, tune_first, steady, floor, driver, eff, low, high in rows:
        print(
            f"{n:>7} {seq:>13.1f} {60 * n / seq:>11.1f} {tuned:>8.1f} {60 * n / tuned:>11.1f}"
            f" {eff:>11.2f} {f'{low:.2f}-{high:.2f}':>11}"
            f" {f'{seq_first:.1f} / {tune_first:.1f}':>17} {steady:>13.2f}"
            f" {floor:>13.1f} {driver:>19.2f}"
        )
    print(
        "1st trial done: seconds from start to the first finished trial, sequential / Tune; "
        "steady-state: efficiency of the trials/min between the 10th and 90th percentile of "
        "trial completions (both sides timed by their MLflow runs' end times)"
    )
    if len(rows) >= 2:
        (n0, s0, t0, _, _, _, f0, *_), (n1, s1, t1, _, _, _, f1, *_) = rows[0], rows[-1]
        print(
            f"marginal ({n0}->{n1} trials, medians): "
            f"sequential {(s1 - s0) / (n1 - n0):.2f} s/trial, "
            f"Tune {(t1 - t0) / (n1 - n0):.2f} s/trial, "
            f"efficiency {(s1 - s0) / (CPUS * (t1 - t0)):.2f}; "
            f"Tune's own cost {(f1 - f0) / (n1 - n0):.2f} s/trial (no-op trials)"
        )
    print("target: parallel efficiency >= 0.8")


if __name__ == "__main__":
    main()
