"""k-means++ above 50 clusters: the pruned seeding against reading every point, shape by shape.

Above 50 clusters alsys seeds one k-means++ run on a sample of max(16,384, 16 k) points
(alsys.strategies.kmeans). This times that seeding as it runs now (kmeans_pp, which skips the
points no trial centre can come nearer: kmeans_pp_pruned) and the seeding that reads every point
at every step (kmeans_pp_seeds), in turns in one process, on the same sample of each pool shape
of benchmarks/shapes.py. Printed: the median seconds of each, their ratio, whether the seeds are
identical, and how many of the k - 1 steps read every point all the same (a step does once more
than PP_PRUNED_SHARE of the points could come nearer a trial).

    python benchmarks/kmeans_seeding.py                 # 50k x 512 pools, k = 500, 3 runs each
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))
from shapes import SHAPES, generated_pool

from alsys.strategies import kmeans_steps
from alsys.strategies.kmeans import KMEANS_PP_MIN_SAMPLE, KMEANS_PP_POINTS_PER_CLUSTER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=sorted(SHAPES))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    k = args.clusters
    size = max(KMEANS_PP_MIN_SAMPLE, KMEANS_PP_POINTS_PER_CLUSTER * k)
    trials = 2 + int(math.log(k))
    print(
        f"k-means++ of {k} centres ({trials} trials a step) on {size} points sampled from "
        f"{args.n} x {args.dim}; medians of {args.runs} runs in turns"
    )
    header = f"{'shape':<9} {'pruned s':>9} {'every point s':>14} {'ratio':>6} {'same':>5}"
    print(f"{header}  full reads")
    reads: list[int] = []
    dots = kmeans_steps.dots

    def counted(*a: object) -> np.ndarray:
        reads.append(1)
        return dots(*a)  # type: ignore[arg-type]

    for shape in args.shapes:
        x = generated_pool(shape, args.n, args.dim)[0]
        rows = np.sort(np.random.default_rng(1).choice(args.n, min(size, args.n), replace=False))
        sample = np.ascontiguousarray(x[rows])
        del x
        pruned_s, every_s = [], []
        for _ in range(args.runs):
            reads.clear()
            kmeans_steps.dots = counted  # type: ignore[assignment]
            start = time.perf_counter()
            pruned = kmeans_steps.kmeans_pp(sample, k, np.random.default_rng(0), transpose=False)
            pruned_s.append(time.perf_counter() - start)
            kmeans_steps.dots = dots  # type: ignore[assignment]
            full_reads = len(reads) - 1  # the first centre's distances are read whole in both
            with threadpool_limits(None, user_api="blas"):  # as kmeans_pp sets it at this size
                start = time.perf_counter()
                every = kmeans_steps.kmeans_pp_seeds(
                    sample, None, k, np.random.default_rng(0), 1, trials
                )
                every_s.append(time.perf_counter() - start)
        m = statistics.median
        print(
            f"{shape:<9} {m(pruned_s):>9.2f} {m(every_s):>14.2f} {m(every_s) / m(pruned_s):>6.2f} "
            f"{np.array_equal(pruned, every)!s:>5}  {full_reads} of {k - 1}",
            flush=True,
        )


if __name__ == "__main__":
    main()
