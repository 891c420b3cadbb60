"""How far the partitioned kNN moves typicality and the picks, against the exact search.

On pools where both run (every shape of benchmarks/shapes.py, 50k x 512 by default), each
cold-start round (b = 10 and 50: clusters of about 5,000 and 1,000 points) runs TypiClust and
SUPClust twice with the same seed: ``knn="exact"`` (the reference's search) and
``knn="partitioned"`` (every cluster of more than 2,048 candidates searched among the 1,024
points of each candidate's nearest leaves). Both see the same clusters (the k-means comes
first, from the same generator), so each visit can be compared:

- picks: the share of visits whose pick is the same;
- rank: where the partitioned pick ranks among its cluster by exact typicality (0 = the most
  typical), as a share of the candidates: median and largest over the visits;
- typicality: the relative error of the partitioned typicality, median and 99th percentile
  over every candidate of the partitioned clusters (it is never above the exact value: a
  partitioned search can only miss neighbours, never find nearer ones);
- SUPClust's kept set (its top 10 % by typicality): the share of it both searches keep.

    python benchmarks/knn_fidelity.py                       # every shape, seeds 0-2
    python benchmarks/knn_fidelity.py --shapes mix100 --seeds 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from shapes import SHAPES, generated_pool

from alsys.strategies import Pool, make_strategy


def compare(exact: Any, fast: Any) -> dict[str, list[float]]:
    """Per-visit measures of a partitioned round against the exact one (same clusters)."""
    out: dict[str, list[float]] = {"same": [], "rank": [], "error": [], "kept": []}
    for truth, ours in zip(exact.record["visits"], fast.record["visits"], strict=True):
        if truth["candidates"] != ours["candidates"] or truth["typicality"] is None:
            continue  # an earlier pick differed: this visit saw other candidates
        typ = np.asarray(truth["typicality"])
        approx = np.asarray(ours["typicality"])
        out["same"].append(float(truth["pick"] == ours["pick"]))
        picked = typ[truth["candidates"].index(ours["pick"])]
        out["rank"].append(float((typ > picked).mean()))
        out["error"].extend(((typ - approx) / typ).tolist())
        if truth["kept"] is not None:
            both = set(truth["kept"]) & set(ours["kept"])
            out["kept"].append(len(both) / len(truth["kept"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{args.n} x {args.dim}, cold start; knn=partitioned against knn=exact, seeds "
        f"0-{args.seeds - 1}; rank: the partitioned pick's exact-typicality rank in its cluster "
        "(share of candidates above it); error: relative typicality error"
    )
    print(
        f"{'shape':<9} {'strategy':<10} {'b':>3} {'visits':>6} {'same pick':>9} "
        f"{'rank med':>8} {'rank max':>8} {'err med':>8} {'err p99':>8} {'kept':>6}"
    )
    for shape in args.shapes:
        x = generated_pool(shape, args.n, args.dim)[0]
        pool = Pool(embeddings=x)
        labeled = np.zeros(args.n, dtype=bool)
        for name in ("typiclust", "supclust"):
            for budget in args.budgets:
                totals: dict[str, list[float]] = {"same": [], "rank": [], "error": [], "kept": []}
                for seed in range(args.seeds):
                    runs = [
                        make_strategy(name, knn=knn).select(
                            pool, labeled, budget, np.random.default_rng(seed)
                        )
                        for knn in ("exact", "partitioned")
                    ]
                    for key, values in compare(*runs).items():
                        totals[key].extend(values)
                kept = f"{statistics.mean(totals['kept']):.3f}" if totals["kept"] else "-"
                error = np.asarray(totals["error"])
                # SUPClust picks by SUP among its kept set: its pick's typicality rank says
                # nothing of the search; the kept set's overlap does.
                rank = "       -        -"
                if name == "typiclust":
                    rank = f"{statistics.median(totals['rank']):>8.4f} {max(totals['rank']):>8.4f}"
                print(
                    f"{shape:<9} {name:<10} {budget:>3} {len(totals['same']):>6} "
                    f"{statistics.mean(totals['same']):>9.3f} {rank} "
                    f"{np.median(error):>8.1e} {np.percentile(error, 99):>8.1e} {kept:>6}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
