"""One selection round of typiclust, supclust and probcover vs a reference-style baseline.

The pool is generated: 50,000 x 512, a mixture of 100 Gaussian blobs (centre scale 0.35, noise
3/sqrt(d) per coordinate), L2-normalised. Each round is a cold start with budget = #clusters
(10, 50, 500), so every cluster is visited once.

The baseline is written the way the reference (deep-al) code works: scikit-learn KMeans
(default n_init) up to 50 clusters, MiniBatchKMeans(batch_size=5000) above, then an exact flat
faiss kNN inside each picked cluster, recomputed per pick. ProbCover's baseline builds the graph
from dense batched distances and runs the reference's edge-list greedy (np.isin per step).

Prints, side by side in one run: median seconds over --repeats, the speed-up, the inertia
ratio (ours / baseline, < 1 is better), the largest relative difference between our typicality
and the baseline's on the same clusters, and the seconds the baseline spends in exact kNN. Both
sides do that same exact kNN work (the typicality must be identical), so base / (base kNN) is
the most any exact implementation can gain on this machine.

A first table puts alsys's k-means itself beside the reference's: scikit-learn KMeans with
n_init=10 (its default before 1.4, which the reference ran up to 50 clusters) and
MiniBatchKMeans(n_init=3, batch_size=5000) (above), at each --clusters, on the 1,797 digits
pixels (L2-normalised) and on a generated pool of --kmeans-n x --kmeans-dim: median seconds and
inertia over --kmeans-repeats seeds, and our inertia over each baseline's (< 1 is better).
KMeans(n_init=10) is skipped above 50 clusters on the generated pool (minutes a run there;
the reference did not run it either). The selection rounds' own baseline uses today's
KMeans default (n_init="auto": one run).

    python benchmarks/selection.py            # the full run (about 10 minutes on 2 cores)
    python benchmarks/selection.py --only-kmeans   # the k-means table (3-6 minutes, most of
                                                   # it MiniBatchKMeans at 500 clusters)
    python benchmarks/selection.py --n 5000 --dim 64 --repeats 1   # a quick look
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
from reference_typiclust import typicality as reference_typicality  # this folder (a script)
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.datasets import load_digits

from alsys.strategies import Pool, coverage_graph, kmeans, make_strategy, typicality
from alsys.strategies.kmeans import REFERENCE_KMEANS_MAX_CLUSTERS, Clustering, inertia


def generated_pool(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(100, dim)).astype(np.float32)
    blob = rng.integers(0, 100, n)
    noise = rng.normal(size=(n, dim)).astype(np.float32) * (3.0 / np.sqrt(dim))
    x = centres[blob] * 0.35 + noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# ---- the reference-style baseline ------------------------------------------------------------


def reference_kmeans(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if k <= 50:
        km: Any = KMeans(n_clusters=k, random_state=seed)
    else:
        km = MiniBatchKMeans(n_clusters=k, batch_size=5000, random_state=seed)
    labels = km.fit_predict(x)
    return labels, km.cluster_centers_.astype(np.float32)


def reference_round(
    x: np.ndarray,
    budget: int,
    seed: int,
    sup_temperature: float | None = None,
    knn_seconds: list[float] | None = None,
) -> list[int]:
    """TypiClust as deep-al writes it; with sup_temperature, SUPClust on top of it.

    Appends the seconds spent in exact kNN to ``knn_seconds`` when given.
    """
    labels, centres = reference_kmeans(x, budget, seed)
    ids, sizes = np.unique(labels, return_counts=True)
    order = [c for c, s in sorted(zip(ids, sizes, strict=True), key=lambda t: -t[1]) if s > 5]
    labels = labels.copy()
    selected = []
    for i in range(budget):
        cluster = order[i % len(order)]
        indices = (labels == cluster).nonzero()[0]
        start = time.perf_counter()
        typ = reference_typicality(x[indices], min(20, len(indices) // 2))
        if knn_seconds is not None:
            knn_seconds.append(time.perf_counter() - start)
        if sup_temperature is None:
            pick = indices[typ.argmax()]
        else:
            kept = indices[np.argsort(-typ)[: max(1, int(0.1 * len(indices)))]]
            others = np.delete(np.arange(len(centres)), cluster)
            dc = np.linalg.norm(centres[others] - centres[cluster], axis=1)
            w = np.exp(-dc / sup_temperature)
            w /= w.sum()
            d = np.linalg.norm(x[kept][:, None, :] - centres[others][None], axis=2)
            pick = kept[np.argmax(1 / (d @ w))]
        selected.append(int(pick))
        labels[pick] = -1
    return selected


def reference_probcover(x: np.ndarray, delta: float, budget: int) -> list[int]:
    xs, ys = [], []
    batch = 500
    for start in range(0, len(x), batch):  # (the reference drops the last partial batch)
        block = x[start : start + batch]
        sq = (block**2).sum(1)[:, None] + (x**2).sum(1)[None] - 2 * block @ x.T
        src, dst = np.nonzero(np.sqrt(np.maximum(sq, 0)) < delta)
        xs.append(src + start)
        ys.append(dst)
    edge_x, edge_y = np.concatenate(xs), np.concatenate(ys)
    covered = np.zeros(0, dtype=np.int64)
    selected = []
    for _ in range(budget):
        degrees = np.bincount(edge_x, minlength=len(x))
        current = int(degrees.argmax())
        new = edge_y[edge_x == current]
        keep = ~np.isin(edge_y, new)
        edge_x, edge_y = edge_x[keep], edge_y[keep]
        covered = np.concatenate([covered, new])
        selected.append(current)
    return selected


# ---- k-means against the reference's ----------------------------------------------------------


def digits_pixels() -> np.ndarray:
    x = load_digits().data.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


Fit = Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]


def timed_inertia(fit: Fit, x: np.ndarray, k: int, seed: int) -> tuple[float, float]:
    """Seconds of ``fit(x, k, seed)`` and the inertia of the (labels, centres) it returns."""
    start = time.perf_counter()
    labels, centres = fit(x, k, seed)
    seconds = time.perf_counter() - start
    return seconds, inertia(x, Clustering(labels.astype(np.int64), centres.astype(np.float32)))


def kmeans_table(pools: dict[str, np.ndarray], clusters: list[int], repeats: int) -> None:
    """alsys kmeans vs KMeans(n_init=10) and MiniBatchKMeans(n_init=3): medians over seeds."""

    def ours(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        result = kmeans(x, k, np.random.default_rng(seed))
        return result.assignment, result.centres

    def sk_kmeans(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        fitted = KMeans(k, n_init=10, random_state=seed).fit(x)
        return fitted.labels_, fitted.cluster_centers_

    def sk_minibatch(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        fitted = MiniBatchKMeans(k, n_init=3, batch_size=5000, random_state=seed).fit(x)
        return fitted.labels_, fitted.cluster_centers_

    print(f"k-means, median of {repeats} seeds (inertia ratio < 1: alsys is lower)")
    print(
        f"{'pool':<14} {'k':>4} {'alsys s':>8} {'inertia':>10} {'KM10 s':>8} {'inertia':>10} "
        f"{'MB3 s':>8} {'inertia':>10} {'/KM10':>7} {'/MB3':>7}"
    )
    for name, x in pools.items():
        for k in clusters:
            row: dict[str, tuple[float, float]] = {}
            fits: dict[str, Fit] = {"alsys": ours, "KM10": sk_kmeans, "MB3": sk_minibatch}
            for label, fit in fits.items():
                if label == "KM10" and k > REFERENCE_KMEANS_MAX_CLUSTERS and name != "digits":
                    continue
                runs = [timed_inertia(fit, x, k, seed) for seed in range(repeats)]
                row[label] = (
                    statistics.median(t for t, _ in runs),
                    statistics.median(v for _, v in runs),
                )
            cells = [f"{name:<14} {k:>4}"]
            for label in fits:
                seconds, value = row.get(label, (math.nan, math.nan))
                cells.append(f"{seconds:>8.2f} {value:>10.2f}" if label in row else f"{'-':>19}")
            for label in ("KM10", "MB3"):
                ratio = f"{row['alsys'][1] / row[label][1]:.4f}" if label in row else "-"
                cells.append(f"{ratio:>7}")
            print(" ".join(cells), flush=True)
    print()


# ---- timing ----------------------------------------------------------------------------------


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, nargs="+", default=[10, 50, 500])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--probcover-repeats", type=int, default=1, help="its O(n^2 d) graph takes ~15 s a run"
    )
    parser.add_argument("--kmeans-n", type=int, default=20_000)
    parser.add_argument("--kmeans-dim", type=int, default=128)
    parser.add_argument("--kmeans-repeats", type=int, default=3)
    parser.add_argument("--only-kmeans", action="store_true", help="the k-means table alone")
    args = parser.parse_args()

    generated = f"gen {args.kmeans_n}x{args.kmeans_dim}"
    pools = {"digits": digits_pixels(), generated: generated_pool(args.kmeans_n, args.kmeans_dim)}
    kmeans_table(pools, args.clusters, args.kmeans_repeats)
    if args.only_kmeans:
        return

    x = generated_pool(args.n, args.dim)
    unlabeled = np.zeros(args.n, dtype=bool)
    pool = Pool(embeddings=x)
    print(
        f"pool {args.n} x {args.dim}, faiss threads {faiss.omp_get_max_threads()}, "
        f"median of {args.repeats}"
    )
    header = f"{'strategy':<10} {'k':>4} {'ours s':>8} {'base s':>8} {'speed-up':>9} "
    print(header + f"{'inertia ours/base':>18} {'max typ rel diff':>17} {'base kNN s':>11}")

    for k in args.clusters:
        # Inertia: median over 3 seeds on each side (single runs vary by about 1%).
        typiclust = make_strategy("typiclust")
        ours_inertia = [
            inertia(x, typiclust.cluster(x, pool, k, np.random.default_rng(s))) for s in range(3)
        ]
        base_inertia = [inertia(x, Clustering(*reference_kmeans(x, k, s))) for s in range(3)]
        ratio = statistics.median(ours_inertia) / statistics.median(base_inertia)
        ours_clusters = typiclust.cluster(x, pool, k, np.random.default_rng(0))
        # Typicality on the same clusters: ours vs the reference's per-cluster faiss search.
        worst = 0.0
        for c in range(min(k, 20)):
            members = np.flatnonzero(ours_clusters.assignment == c)
            if members.shape[0] < 3:
                continue
            kk = min(20, members.shape[0] // 2)
            ours_typ = typicality(x[members], kk)
            base_typ = reference_typicality(np.ascontiguousarray(x[members]), kk)
            worst = max(worst, float(np.max(np.abs(ours_typ - base_typ) / base_typ)))
        for name, temperature in (("typiclust", None), ("supclust", 1.0)):
            strategy = make_strategy(name)
            ours = median_seconds(
                lambda s=strategy, b=k: s.select(pool, unlabeled, b, np.random.default_rng(0)),
                args.repeats,
            )
            knn: list[float] = []
            base = median_seconds(
                lambda t=temperature, b=k, o=knn: reference_round(x, b, 0, t, o), args.repeats
            )
            print(
                f"{name:<10} {k:>4} {ours:>8.2f} {base:>8.2f} {base / ours:>8.1f}x "
                f"{ratio:>18.4f} {worst:>17.2e} {sum(knn) / args.repeats:>11.2f}"
            )

    # ProbCover: delta so that a ball holds about 20 points on average.
    sample = x[np.random.default_rng(1).choice(args.n, 1000, replace=False)]
    nn, _ = faiss.knn(sample, x, 21)
    delta = float(np.median(np.sqrt(np.maximum(nn[:, 20], 0))))
    graph = coverage_graph(x, delta)
    dense_bytes = args.n * args.n * 4
    graph_bytes = graph.data.nbytes + graph.indices.nbytes + graph.indptr.nbytes
    print(
        f"probcover delta={delta:.4f}: {graph.nnz} edges, sparse graph "
        f"{graph_bytes / 2**20:.1f} MiB vs dense float32 n x n {dense_bytes / 2**30:.1f} GiB"
    )
    for budget in args.clusters:
        strategy = make_strategy("probcover", delta=delta)
        ours = median_seconds(
            lambda s=strategy, b=budget: s.select(pool, unlabeled, b, np.random.default_rng(0)),
            args.probcover_repeats,
        )
        base = median_seconds(
            lambda b=budget: reference_probcover(x, delta, b), args.probcover_repeats
        )
        print(f"{'probcover':<10} {budget:>4} {ours:>8.2f} {base:>8.2f} {base / ours:>8.1f}x")


if __name__ == "__main__":
    main()
