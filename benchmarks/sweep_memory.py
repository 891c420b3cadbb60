"""Peak memory of N concurrent trials that share one embedding through Ray's object store.

A synthetic pool of ``--n`` points in ``--dim`` dimensions (float32; 1.0 GB by default) is
served as an ``embeddings`` dataset. For N in ``--trials`` (1 2 4), N Random trials run at
once (CPU share 2/N each, so all N are live together) while a sampler reads, every 0.1 s:

the unique memory (USS: pages no other process shares) summed over Ray's worker processes.
The embedding itself sits once in the object store's shared memory, whatever N.

The same N trials also run on digits (a tiny pool), which gives each worker's own cost (torch,
faiss, MLflow); the difference is what the shared embedding costs the workers. With zero-copy
reads it stays near zero as N grows, far below one copy of the embedding per extra trial.

    .venv/bin/python benchmarks/sweep_memory.py [--n 250000 --dim 1024] [--trials 1 2 4]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from alsys.sweep import SweepSpec

CPUS = 2


def worker_uss() -> tuple[float, int]:
    """Summed unique memory (Private_Clean + Private_Dirty, /proc/PID/smaps_rollup) of Ray's
    worker processes (those titled ``ray::...``), and how many there are."""
    total, n = 0.0, 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if not (proc / "cmdline").read_bytes().startswith(b"ray::"):
                continue
            for line in (proc / "smaps_rollup").read_text().splitlines():
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1]) * 1024
            n += 1
        except OSError:  # the process ended meanwhile
            continue
    return total, n


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_uss = 0.0
        self.peak_workers = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            total, n = worker_uss()
            if total > self.peak_uss:
                self.peak_uss, self.peak_workers = total, n
            time.sleep(0.1)


def sweep(name: str, n_trials: int, dataset: str, options: dict[str, Any], work: Path) -> float:
    from alsys.sweep.cli import run_sweep

    spec = SweepSpec(
        name=name,
        axes={"strategy": ["random"], "seed": list(range(n_trials))},
        fixed={"dataset": dataset, "setting": "ssl", "budget": "tiny", "episodes": 3},
        dataset_options=options,
        resources={"cpu": CPUS / n_trials},
    )
    sampler = Sampler()
    sampler.start()
    errors = run_sweep(
        spec.sweep(),
        storage_path=str(work / "ray"),
        tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
        experiment="bench-memory",
        store_root=str(work / "store"),
    ).errors
    sampler.stop.set()
    sampler.join()
    if errors:
        raise RuntimeError(errors[0])
    return sampler.peak_uss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=250_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="alsys-bench-memory-"))
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, args.dim)).astype(np.float32)
    labels = rng.integers(0, 10, size=args.n)
    train = centres[labels] + rng.normal(size=(args.n, args.dim)).astype(np.float32)
    test_labels = rng.integers(0, 10, size=2000)
    test = centres[test_labels] + rng.normal(size=(2000, args.dim)).astype(np.float32)
    files = {}
    for name, array in [
        ("train", train),
        ("train_labels", labels),
        ("test", test),
        ("test_labels", test_labels),
    ]:
        files[name] = str(work / f"{name}.npy")
        np.save(files[name], array)
    embedding_mb = train.nbytes / 2**20
    del train

    import ray

    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
    # Both stores filled first (and workers started), so no SimCLR training task is measured.
    sweep("warm_big", 1, "embeddings", files, work)
    sweep("warm_small", 1, "digits", {}, work)
    rows = []
    for n_trials in args.trials:
        big = sweep(f"mem_big_{n_trials}", n_trials, "embeddings", files, work)
        small = sweep(f"mem_small_{n_trials}", n_trials, "digits", {}, work)
        rows.append((n_trials, big / 2**20, small / 2**20))
    print(
        f"\nembedding: {args.n} x {args.dim} float32 = {embedding_mb:.0f} MiB "
        f"(Random, SSL, 3 rounds; {CPUS} CPUs)"
    )
    print(
        f"{'trials':>6} {'workers USS, big pool':>22} {'same, digits':>13} "
        f"{'attributable to data':>21}"
    )
    for n_trials, big, small in rows:
        print(f"{n_trials:>6} {big:>18.0f} MiB {small:>9.0f} MiB {big - small:>17.0f} MiB")
    (n0, b0, s0), (n1, b1, s1) = rows[0], rows[-1]
    per_trial = ((b1 - s1) - (b0 - s0)) / max(n1 - n0, 1)
    print(
        f"growth per extra trial attributable to the embedding: {per_trial:.0f} MiB "
        f"= {per_trial / embedding_mb:.3f} copies of it (target: much less than 1)"
    )


if __name__ == "__main__":
    main()
