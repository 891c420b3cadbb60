"""Sweep throughput: Tune on 2 CPUs against the same trials one after another in one process.

The trials are dim_grid's smoke set (8 trials on digits) with the default 5 rounds. Both sides
run one thread per trial (a trial's CPU share is 1), so parallel efficiency is
``T_sequential / (n_cpus x T_tune)``, 1.0 being perfect. Both log to MLflow (SQLite); Ray's
start-up is excluded, Tune's per-trial overhead and checkpoints are included. Prints trials
per minute for both.

    .venv/bin/python benchmarks/sweep.py [--episodes 5]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=5)
    args = parser.parse_args()
    smoke = load_spec(SWEEPS / "dim_grid.yaml", smoke=True)
    spec = SweepSpec(
        **{
            **vars(smoke),
            "name": "bench_sweep",
            "fixed": {**smoke.fixed, "episodes": args.episodes},
        }
    )
    trials = spec.trials()
    work = Path(tempfile.mkdtemp(prefix="alsys-bench-sweep-"))
    store = EmbeddingStore(work / "store")
    datas = {}
    for config in trials:  # embeddings first, outside both timings
        key = (config.clustering_dim, config.typicality_dim)
        if key not in datas:
            datas[key] = prepare_data(config, store)

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    from alsys.tracking import tracked_trial

    start = time.perf_counter()
    for config in trials:  # with the same MLflow logging as the Tune side
        data = datas[(config.clustering_dim, config.typicality_dim)]
        tracked_trial(config, data, f"sqlite:///{work / 'seq.db'}", "bench")
    sequential = time.perf_counter() - start

    import ray

    from alsys.tune_adapter import run_sweep

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    spec = SweepSpec(**{**vars(spec), "resources": {"cpu": 1}})
    start = time.perf_counter()
    run_sweep(
        spec,
        storage_path=str(work / "ray"),
        tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
        experiment="bench",
        store_root=str(work / "store"),
    )
    tuned = time.perf_counter() - start
    cpus = 2
    print(f"{len(trials)} trials x {args.episodes} rounds (digits, dim_grid smoke grid)")
    rate = 60 * len(trials) / sequential
    print(f"sequential, 1 thread:  {sequential:6.1f} s  {rate:6.1f} trials/min")
    print(
        f"Tune, {cpus} x 1 CPU:      {tuned:6.1f} s  {60 * len(trials) / tuned:6.1f} trials/min "
        f"(+ checkpoints, Tune overhead)"
    )
    print(f"parallel efficiency {sequential / (cpus * tuned):.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
