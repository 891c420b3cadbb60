"""The strategy steps that run blocks of work in threads (alsys.strategies.parallel), timed with
the threads and in one thread as before them, side by side in one process.

"one thread" sets parallel.MAX_THREADS = 1: the code as it ran before the threads (each block in
turn, the BLAS on all its threads). "threads": as many as the BLAS may use, each block's BLAS
calls on one. The cases:

- TypiClust and SUPClust selections on pools of benchmarks/shapes.py (the exact kNN of
  typicality, by blocks of rows, and k-means's assignments), at the cold start (b = 10 and 50)
  and with 450 labeled (b = 50, 500 clusters);
- k-means alone (alsys.strategies.kmeans.kmeans) at 50 clusters;
- BatchBALD's greedy loop on 1,000 candidates (b = 20, 10 classes: M = 4,000 configurations).

Prints the medians of --repeats runs in turns, the ratio, and whether the picks are the same.

    python benchmarks/threads.py
    python benchmarks/threads.py --shapes mix100 --n 20000 --dim 128 --repeats 7
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from shapes import pool_file

from alsys.strategies import Pool, make_strategy, parallel
from alsys.strategies.batchbald import batchbald_greedy
from alsys.strategies.parallel import blas_threads


def paired(run: Callable[[], Any], repeats: int) -> tuple[float, float, bool]:
    """Median seconds in one thread and with threads (in turns), and whether the outputs match."""
    times: dict[bool, list[float]] = {False: [], True: []}
    outputs: dict[bool, Any] = {}
    for _ in range(repeats):
        for threaded in (False, True):
            parallel.MAX_THREADS = None if threaded else 1
            start = time.perf_counter()
            outputs[threaded] = run()
            times[threaded].append(time.perf_counter() - start)
    parallel.MAX_THREADS = None
    same = np.array_equal(outputs[False], outputs[True])
    return statistics.median(times[False]), statistics.median(times[True]), same


def picks(strategy: Any, pool: Pool, mask: np.ndarray, budget: int) -> np.ndarray:
    return np.asarray(strategy.select(pool, mask, budget, np.random.default_rng(0)).indices)


def assignment(kmeans: Callable[..., Any], x: np.ndarray) -> np.ndarray:
    return np.asarray(kmeans(x, 50, np.random.default_rng(0)).assignment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["mix100", "zipf", "sphere"])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scratch", default="/tmp/alsys_scale")
    args = parser.parse_args()
    kmeans = importlib.import_module("alsys.strategies.kmeans").kmeans
    print(f"{blas_threads()} BLAS threads; seconds, median of {args.repeats} in turns")
    print(f"{'case':<44} {'one thread':>10} {'threads':>8} {'ratio':>6}  same picks")

    def row(case: str, run: Callable[[], Any]) -> None:
        alone, threaded, same = paired(run, args.repeats)
        print(f"{case:<44} {alone:>10.3f} {threaded:>8.3f} {alone / threaded:>5.2f}x  {same}")

    for shape in args.shapes:
        path = pool_file(Path(args.scratch), shape, args.n, args.dim)
        x = np.ascontiguousarray(np.load(path), dtype=np.float32)
        pool = Pool(embeddings=x)
        size = f"{shape} {args.n // 1000}k x {args.dim}"
        for name, labeled, budget in (
            ("typiclust", 0, 10),
            ("typiclust", 0, 50),
            ("typiclust", 450, 50),
            ("supclust", 0, 50),
        ):
            mask = np.zeros(x.shape[0], dtype=bool)
            mask[np.random.default_rng(1).permutation(x.shape[0])[:labeled]] = True
            strategy = make_strategy(name)
            row(
                f"{size} {name} |L|={labeled} b={budget}",
                partial(picks, strategy, pool, mask, budget),
            )
        row(
            f"{size} k-means, 50 clusters",
            partial(assignment, kmeans, x),
        )
    rng = np.random.default_rng(0)
    mc = rng.dirichlet(np.full(10, 0.3), size=(20, 1000))
    row(
        "BatchBALD 1,000 candidates, 10 classes, b=20",
        lambda: batchbald_greedy(mc, 20, np.random.default_rng(0), 4000)[0],
    )


if __name__ == "__main__":
    main()
