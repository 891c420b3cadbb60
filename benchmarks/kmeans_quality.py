"""k-means against the reference's scikit-learn k-means, pool shape by pool shape.

For each shape of benchmarks/shapes.py and each number of clusters, alsys's k-means and the
k-means the reference ran at that size: scikit-learn KMeans(n_init=10) up to 50 clusters (its
default before 1.4), MiniBatchKMeans(n_init=3, batch_size=5000) above. Printed: seconds (median
over --seeds, one after the other in one process), the inertia over every point (median), its
ratio (alsys / reference, median of the per-seed ratios; < 1: alsys's is lower), and the spread
of cluster sizes (largest / median) of each.

    python benchmarks/kmeans_quality.py                             # 50k x 512, 10/50/500
    python benchmarks/kmeans_quality.py --n 1281167 --clusters 500 --seeds 1   # ImageNet-sized
    python benchmarks/kmeans_quality.py --previous-stops    # and alsys with 2026-12-03's stops

--previous-stops also runs alsys with the stopping rules it had before 2026-12-04 (all 10
restarts iterate to the end, Hartigan's tolerance 1e-5, no Lloyd tolerance above 50 clusters),
seed by seed beside today's, and prints its seconds and inertia ratio too.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans

sys.path.insert(0, str(Path(__file__).parent))
from shapes import SHAPES, generated_pool

from alsys.strategies import kmeans, kmeans_steps

kmeans_module = sys.modules["alsys.strategies.kmeans"]
PREVIOUS_STOPS = {"RESTART_KEEP": None, "LLOYD_TOL": 0.0}
PREVIOUS_HARTIGAN_TOL = 1e-5


def spread(assignment: np.ndarray, k: int) -> float:
    sizes = np.bincount(assignment, minlength=k)
    return float(sizes.max() / max(np.median(sizes), 1))


def reference(x: np.ndarray, k: int, seed: int) -> Any:
    if k <= 50:
        return KMeans(k, n_init=10, random_state=seed).fit(x)
    return MiniBatchKMeans(k, batch_size=5000, n_init=3, random_state=seed).fit(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, nargs="+", default=[10, 50, 500])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--previous-stops", action="store_true", help="also the old stops")
    args = parser.parse_args()
    print(
        f"{args.n} x {args.dim}; alsys k-means against scikit-learn KMeans(n_init=10) (<= 50 "
        "clusters) or MiniBatchKMeans(n_init=3) (above); medians over seeds"
    )
    header = f"{'shape':<9} {'k':>4} {'alsys s':>8} {'ref s':>8} {'alsys inertia':>14}"
    header += f" {'ref inertia':>12} {'ratio':>8} {'spread':>7} {'ref spread':>10}"
    print(header + (f" {'before s':>8} {'before ratio':>12}" if args.previous_stops else ""))
    for shape in args.shapes:
        x = generated_pool(shape, args.n, args.dim)[0]
        for k in args.clusters:
            ours_s, theirs_s, ours_i, theirs_i, ratios, ours_sp, theirs_sp = ([] for _ in range(7))
            before_s, before_ratios = [], []
            for seed in range(args.seeds):
                if args.previous_stops:
                    start = time.perf_counter()
                    with previous_stops():
                        before = kmeans(x, k, np.random.default_rng(seed))
                    before_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                ours = kmeans(x, k, np.random.default_rng(seed))
                ours_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                theirs = reference(x, k, seed)
                theirs_s.append(time.perf_counter() - start)
                assert ours.inertia is not None
                ours_i.append(ours.inertia)
                theirs_i.append(float(theirs.inertia_))
                ratios.append(ours.inertia / float(theirs.inertia_))
                if args.previous_stops:
                    assert before.inertia is not None
                    before_ratios.append(before.inertia / float(theirs.inertia_))
                ours_sp.append(spread(ours.assignment, k))
                theirs_sp.append(spread(theirs.labels_, k))
            m = statistics.median
            print(
                f"{shape:<9} {k:>4} {m(ours_s):>8.2f} {m(theirs_s):>8.2f} {m(ours_i):>14.1f} "
                f"{m(theirs_i):>12.1f} {m(ratios):>8.5f} {m(ours_sp):>7.1f} {m(theirs_sp):>10.1f}"
                + (f" {m(before_s):>8.2f} {m(before_ratios):>12.5f}" if before_s else ""),
                flush=True,
            )


@contextlib.contextmanager
def previous_stops() -> Iterator[None]:
    """alsys's k-means with the stopping rules of the round before 2026-12-04."""
    saved = {name: getattr(kmeans_module, name) for name in PREVIOUS_STOPS}
    saved_tol = kmeans_steps.HARTIGAN_TOL
    try:
        for name, value in PREVIOUS_STOPS.items():
            setattr(kmeans_module, name, value)
        kmeans_steps.HARTIGAN_TOL = PREVIOUS_HARTIGAN_TOL
        yield
    finally:
        for name, value in saved.items():
            setattr(kmeans_module, name, value)
        kmeans_steps.HARTIGAN_TOL = saved_tol


if __name__ == "__main__":
    main()
