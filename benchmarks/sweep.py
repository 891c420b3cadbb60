"""Sweep throughput: Tune on 2 CPUs against the same trials one after another in one process.

The trials are dim_grid's smoke grid (8 trials on digits per seed) with the default 5 rounds,
at several sizes (``--seeds 1 4 12``: 8, 32 and 96 trials, the last the size of dim_grid's
default sweep; about 8 minutes in all on 2 cores). Both sides run one thread per trial (a
trial's CPU share is 1), so parallel efficiency is ``T_sequential / (n_cpus x T_tune)``, 1.0
being perfect. Both log to MLflow (SQLite). Embeddings are in the store before either timing;
Ray's start is excluded, but each Tune sweep pays its fixed costs (Tune's start, one worker
per CPU slot importing torch/faiss and opening the MLflow store). The marginal row compares
the extra time per extra trial between the smallest and largest size, i.e. the steady state
once those fixed costs are paid. The no-op column runs the same number of no-op trials
through Tune (same reports and checkpoints, no work): Tune's own floor on this machine. The
driver column is the CPU time the sweep's driver process (Tune's controller, MLflow's parent
run, the embedding stage) spends per trial: on 2 cores it competes with the two trial workers.

    .venv/bin/python benchmarks/sweep.py [--episodes 5] [--seeds 1 4 12]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import faiss
import torch

from alsys.embed.store import EmbeddingStore
from alsys.loop import prepare_data
from alsys.sweep import SweepSpec, load_spec

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
CPUS = 2


def spec_for(episodes: int, seeds: int) -> SweepSpec:
    smoke = load_spec(SWEEPS / "dim_grid.yaml", smoke=True)
    return SweepSpec(
        **{
            **vars(smoke),
            "name": f"bench_sweep_{seeds}",
            "fixed": {**smoke.fixed, "episodes": episodes},
            "axes": {**smoke.axes, "seed": list(range(seeds))},
            "resources": {"cpu": 1},
        }
    )


def tune_floor(n_trials: int, episodes: int, storage: Path) -> float:
    """Seconds for Tune alone: the same number of trials, each reporting ``episodes`` rounds
    with a small checkpoint, but doing no work (reused actors, 1 CPU each)."""
    from ray import tune

    def noop(config: dict[str, int]) -> None:
        for r in range(episodes):
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / "state.json").write_text("{}")
                tune.report({"round": r + 1}, checkpoint=tune.Checkpoint.from_directory(folder))

    start = time.perf_counter()
    tune.Tuner(
        tune.with_resources(noop, {"cpu": 1}),
        param_space={"i": tune.grid_search(list(range(n_trials)))},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(storage), name=f"floor{n_trials}", verbose=0),
    ).fit()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 12])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="alsys-bench-sweep-"))
    store = EmbeddingStore(work / "store")
    datas = {}
    for config in spec_for(args.episodes, 1).trials():  # embeddings first, outside timings
        datas[(config.clustering_dim, config.typicality_dim)] = prepare_data(config, store)

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    import ray

    from alsys.tracking import tracked_trial
    from alsys.tune_adapter import run_sweep

    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
    rows = []
    for seeds in args.seeds:
        spec = spec_for(args.episodes, seeds)
        trials = spec.trials()
        start = time.perf_counter()
        for config in trials:  # with the same MLflow logging as the Tune side
            data = datas[(config.clustering_dim, config.typicality_dim)]
            tracked_trial(config, data, f"sqlite:///{work / f'seq{seeds}.db'}", "bench")
        sequential = time.perf_counter() - start
        start, driver = time.perf_counter(), time.process_time()
        run_sweep(
            spec,
            storage_path=str(work / "ray"),
            tracking_uri=f"sqlite:///{work / f'tune{seeds}.db'}",
            experiment="bench",
            store_root=str(work / "store"),
        )
        tuned = time.perf_counter() - start
        driver = (time.process_time() - driver) / len(trials)
        floor = tune_floor(len(trials), args.episodes, work)
        rows.append((len(trials), sequential, tuned, floor, driver))

    print(f"\ndim_grid smoke grid on digits, {args.episodes} rounds, {CPUS} CPUs, 1 CPU per trial")
    print(
        f"{'trials':>7} {'sequential s':>13} {'trials/min':>11} {'Tune s':>8} {'trials/min':>11}"
        f" {'efficiency':>11} {'no-op Tune s':>13} {'driver CPU s/trial':>19}"
    )
    for n, seq, tuned, floor, driver in rows:
        print(
            f"{n:>7} {seq:>13.1f} {60 * n / seq:>11.1f} {tuned:>8.1f} {60 * n / tuned:>11.1f}"
            f" {seq / (CPUS * tuned):>11.2f} {floor:>13.1f} {driver:>19.2f}"
        )
    if len(rows) >= 2:
        (n0, s0, t0, f0, _), (n1, s1, t1, f1, _) = rows[0], rows[-1]
        print(
            f"marginal ({n0}->{n1} trials): sequential {(s1 - s0) / (n1 - n0):.2f} s/trial, "
            f"Tune {(t1 - t0) / (n1 - n0):.2f} s/trial, "
            f"efficiency {(s1 - s0) / (CPUS * (t1 - t0)):.2f}; "
            f"Tune's own cost {(f1 - f0) / (n1 - n0):.2f} s/trial (no-op trials)"
        )
    print("target: parallel efficiency >= 0.8")


if __name__ == "__main__":
    main()
