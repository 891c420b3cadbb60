"""alsys against scikit-activeml 1.0.1, the peer a user would pick, on the same pools and inputs.

For every strategy both have (TypiClust, ProbCover with a given delta, MaxHerding, BADGE,
BatchBALD, CoreSet), at a cold start (b = 10, nothing labeled) and in a round with labels
(|L| = 450, b = 50), on pools of benchmarks/shapes.py (default: the 100-group mixture at
20k x 128 and 50k x 512). The two sides take turns (alsys, peer, alsys, peer, ...):

- in-process: the selection call alone, inputs ready, median seconds over --runs;
- whole process (--processes): a fresh Python for each selection, loading the pool from a .npy
  and importing its library, median wall seconds and peak RSS (wait4) over --runs.

The ratio is the median of the per-pair ratios peer / alsys (> 1: alsys is faster). Both sides
get the same inputs:

- TypiClust: K = 20 neighbours on both (scikit-activeml's default is 5), min(|L| + b, 500)
  clusters (its KMeans runs once, n_init="auto"; alsys's k-means runs 10 restarts up to 50
  clusters); the k-means inertia of both is printed, alsys's over the peer's (< 1 is better);
- ProbCover: one delta for both, the median distance of 1,000 sampled points to their 20th
  neighbour; scikit-activeml computes every pairwise distance (n x n float64, 19 GiB at 50k),
  so above --peer-kernel-max points it is not run either;
- MaxHerding: the same kernel, exp(-||x - y||^2) (alsys's bandwidth 1/sqrt(2), the peer's
  gamma 1); scikit-activeml builds the full n x n kernel in float64 (20 GB at 50k), so above
  --peer-kernel-max points it is not run, and the row says so;
- BADGE: probabilities of a fixed random linear head on the pool (10 classes) and the pool as
  the penultimate features, handed to the peer through a classifier that returns them;
- BatchBALD: 20 MC samples from that head with feature dropout; both score the 1,000
  unlabeled points of highest BALD (alsys's default pre-filter) with M = 4,000 sampled
  configurations (alsys's default, 40,000 / #classes; scikit-activeml's default M is its number
  of MC samples, 20, which the like-for-like comparison does not use);
- CoreSet: the pool itself.

    python benchmarks/peers.py                   # in-process, both pools (minutes)
    python benchmarks/peers.py --processes       # whole processes too
    python benchmarks/peers.py --pools 20000x128 --only typiclust --runs 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from scale import timed_process
from shapes import pool_file

HERE = Path(__file__).resolve()
STRATEGIES = ("typiclust", "probcover", "maxherding", "badge", "batchbald", "coreset")
CASES = (("cold start", 0, 10), ("|L|=450", 450, 50))  # 10 and 500 clusters on both sides
N_CLASSES = 10
MC_PASSES = 20
DROPOUT = 0.2
K_NEIGHBORS = 20
BATCHBALD_CANDIDATES = 1_000  # alsys's default pre-filter


def batchbald_samples() -> int:
    """M sampled configurations, the same on both sides: alsys's default 40,000 / #classes
    (scikit-activeml's default is its number of MC samples, 20)."""
    return 40_000 // N_CLASSES


def model_outputs(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(probs (n, C), MC samples (T, n, C)) of a fixed random linear head on ``x``."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(x.shape[1], N_CLASSES)).astype(np.float32) * 3.0

    def softmax(logits: np.ndarray) -> np.ndarray:
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    probs = softmax(x @ weights)
    mc = np.stack(
        [
            softmax((x * (rng.random(x.shape) > DROPOUT) / (1 - DROPOUT)) @ weights)
            for _ in range(MC_PASSES)
        ]
    )
    return probs.astype(np.float64), mc.astype(np.float64)


def probcover_delta(x: np.ndarray) -> float:
    rng = np.random.default_rng(0)
    sample = x[rng.choice(x.shape[0], min(1000, x.shape[0]), replace=False)]
    sq = (sample**2).sum(1)[:, None] + (x**2).sum(1)[None, :] - 2 * sample @ x.T
    nearest = np.sqrt(np.maximum(np.partition(sq, K_NEIGHBORS, axis=1)[:, K_NEIGHBORS], 0))
    return float(np.median(nearest))


def labeled(n: int, count: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(1).permutation(n)[:count]] = True
    return mask


class Inputs:
    """A pool and what each strategy reads of it, each computed on first use (a whole-process
    run computes only its strategy's)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    @cached_property
    def x64(self) -> np.ndarray:
        return self.x.astype(np.float64)

    @cached_property
    def outputs(self) -> tuple[np.ndarray, np.ndarray]:
        return model_outputs(self.x)

    @property
    def probs(self) -> np.ndarray:
        return self.outputs[0]

    @property
    def mc(self) -> np.ndarray:
        return self.outputs[1]

    @cached_property
    def delta(self) -> float:
        return probcover_delta(self.x)

    def batchbald_candidates(self, mask: np.ndarray) -> np.ndarray:
        """alsys's default pre-filter (the 1,000 unlabeled points of highest BALD), handed to
        the peer as its candidates, so both score the same points."""
        from alsys.strategies import bald_scores

        unlabeled = np.flatnonzero(~mask)
        scores = bald_scores(self.mc[:, unlabeled])
        return np.sort(unlabeled[np.argsort(-scores, kind="stable")[:BATCHBALD_CANDIDATES]])


def alsys_call(name: str, data: Inputs, mask: np.ndarray, budget: int) -> Callable[[], Any]:
    from alsys.strategies import Pool, make_strategy

    params: dict[str, Any] = {}
    pool = Pool(embeddings=data.x)
    if name == "probcover":
        params["delta"] = data.delta
    if name == "badge":
        pool = Pool(embeddings=data.x, probs=data.probs)
    if name == "batchbald":
        pool = Pool(mc_probs=data.mc)
        params["num_samples"] = batchbald_samples()
    strategy = make_strategy(name, **params)
    return lambda: strategy.select(pool, mask, budget, np.random.default_rng(0))


def peer_call(name: str, data: Inputs, mask: np.ndarray, budget: int) -> Callable[[], Any]:
    import skactiveml.pool as sk

    y = np.full(mask.shape[0], np.nan)
    y[mask] = np.flatnonzero(mask) % N_CLASSES
    if name == "typiclust":
        query = sk.TypiClust(random_state=0, k=K_NEIGHBORS)
        return lambda: query.query(data.x64, y, batch_size=budget)
    if name == "probcover":
        cover = sk.ProbCover(deltas=[data.delta], random_state=0)
        return lambda: cover.query(data.x64, y, batch_size=budget)
    if name == "maxherding":
        herding = sk.MaxHerding(metric_dict={"gamma": 1.0}, random_state=0)
        return lambda: herding.query(data.x64, y, batch_size=budget)
    if name == "coreset":
        coreset = sk.CoreSet(random_state=0)
        return lambda: coreset.query(data.x64, y, batch_size=budget)
    if name == "badge":
        clf = fixed_outputs(data)
        rows = np.arange(mask.shape[0], dtype=np.float64)[:, None]
        badge = sk.Badge(random_state=0)
        return lambda: badge.query(rows, y, clf, fit_clf=False, batch_size=budget)
    if name == "batchbald":
        probas = data.mc[:, data.batchbald_candidates(mask)]
        samples = batchbald_samples()
        return lambda: sk.batch_bald(
            probas, batch_size=budget, n_MC_samples=samples, random_state=0
        )
    raise ValueError(name)


def fixed_outputs(data: Inputs) -> Any:
    """scikit-activeml's Badge reads (probabilities, embeddings) from its classifier: one that
    returns the given ones for row ids."""
    from skactiveml.base import SkactivemlClassifier

    class FixedOutputs(SkactivemlClassifier):  # type: ignore[misc]
        def __init__(self, classes: Any = None, missing_label: Any = np.nan) -> None:
            super().__init__(classes=classes, missing_label=missing_label)

        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
            return self

        def predict_proba(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
            rows = np.asarray(X)[:, 0].astype(int)
            return data.probs[rows], data.x64[rows]

    return FixedOutputs(classes=np.arange(N_CLASSES))


# The peer strategies that hold an n x n float64 matrix: MaxHerding its kernel, ProbCover its
# pairwise distances (sklearn.metrics.pairwise_distances over the whole pool, then a boolean
# n x n edge matrix beside it).
PEER_SQUARE_MATRIX = {"maxherding": "kernel", "probcover": "distance matrix"}


def peer_skipped(name: str, n: int, args: argparse.Namespace) -> str | None:
    if name in PEER_SQUARE_MATRIX and n > args.peer_kernel_max:
        what = PEER_SQUARE_MATRIX[name]
        return f"peer not run: its {n} x {n} float64 {what} needs {n * n * 8 / 2**30:.0f} GiB"
    return None


def peer_typiclust_inertia(data: Inputs, mask: np.ndarray, budget: int) -> float:
    """scikit-activeml's TypiClust clusters with KMeans(n_clusters=|L| + b, random_state=0)
    (uncapped: the cases keep it at 500 or below, alsys's cap); its inertia, recomputed the
    same way, untimed."""
    from sklearn.cluster import KMeans

    k = int(mask.sum()) + budget
    return float(KMeans(k, random_state=0).fit(data.x64).inertia_)


def in_process(args: argparse.Namespace) -> None:
    print(
        f"in-process seconds, median of {args.runs} (alsys and scikit-activeml in turns); "
        "ratio = peer / alsys"
    )
    print(f"{HEADER}  notes", flush=True)
    for shape, n, d in pools(args):
        from shapes import generated_pool

        data = Inputs(generated_pool(shape, n, d)[0])
        for name in args.only or STRATEGIES:
            for title, n_labeled, budget in CASES:
                mask = labeled(n, n_labeled)
                ours = alsys_call(name, data, mask, budget)
                skip = peer_skipped(name, n, args)
                theirs = None if skip else peer_call(name, data, mask, budget)
                times: dict[str, list[float]] = {"alsys": [], "peer": []}
                result = None
                for _ in range(args.runs):
                    start = time.perf_counter()
                    result = ours()
                    times["alsys"].append(time.perf_counter() - start)
                    if theirs is not None:
                        start = time.perf_counter()
                        theirs()
                        times["peer"].append(time.perf_counter() - start)
                notes = [skip] if skip else []
                if name == "typiclust" and result is not None:
                    peer_inertia = peer_typiclust_inertia(data, mask, budget)
                    ours_inertia = float(result.metrics["kmeans_inertia"])
                    notes.append(f"inertia alsys / peer {ours_inertia / peer_inertia:.4f}")
                print_row(f"{shape} {n // 1000}k x {d}", name, title, times, notes)


HEADER = f"{'pool':<17} {'strategy':<11} {'case':<11} {'alsys':>8} {'peer':>8} {'ratio':>7}"


def print_row(
    pool: str, name: str, title: str, times: dict[str, list[float]], notes: list[str]
) -> None:
    ours = statistics.median(times["alsys"])
    if times["peer"]:
        theirs = statistics.median(times["peer"])
        ratio = statistics.median(p / a for a, p in zip(times["alsys"], times["peer"], strict=True))
        cells = f"{ours:>8.2f} {theirs:>8.2f} {ratio:>6.1f}x"
    else:
        cells = f"{ours:>8.2f} {'-':>8} {'-':>7}"
    print(f"{pool:<17} {name:<11} {title:<11} {cells}  {'; '.join(notes)}", flush=True)


def whole_process(args: argparse.Namespace) -> None:
    print(
        f"whole-process wall seconds and peak RSS (MiB), median of {args.runs} "
        "(fresh processes in turns); ratio = peer / alsys"
    )
    print(f"{HEADER}  notes", flush=True)
    for shape, n, d in pools(args):
        path = pool_file(Path(args.scratch), shape, n, d)
        for name in args.only or STRATEGIES:
            for title, n_labeled, budget in CASES:
                skip = peer_skipped(name, n, args)
                sides = ["alsys"] if skip else ["alsys", "peer"]
                times: dict[str, list[float]] = {"alsys": [], "peer": []}
                rss: dict[str, list[float]] = {"alsys": [], "peer": []}
                for _ in range(args.runs):
                    for side in sides:
                        argv = [sys.executable, str(HERE), "--one", side, name, str(path)]
                        argv += [str(n_labeled), str(budget)]
                        rc, seconds, mib, last = timed_process(argv)
                        if rc != 0:
                            raise SystemExit(f"{side} {name} failed ({rc}): {last}")
                        times[side].append(seconds)
                        rss[side].append(mib)
                notes = [skip] if skip else []
                notes.append("RSS " + " / ".join(f"{statistics.median(rss[s]):.0f}" for s in sides))
                print_row(f"{shape} {n // 1000}k x {d}", name, title, times, notes)


def run_one(side: str, name: str, path: str, n_labeled: int, budget: int) -> None:
    """One selection in this process: the whole-process measurement's unit."""
    x = np.load(path, mmap_mode="r") if side == "alsys" else np.load(path)
    data = Inputs(np.asarray(x))
    mask = labeled(x.shape[0], n_labeled)
    call = alsys_call if side == "alsys" else peer_call
    result = call(name, data, mask, budget)()
    print(json.dumps({"picked": len(result.indices if side == "alsys" else result)}))


def pools(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    out = []
    for spec in args.pools:
        n, d = spec.split("x")
        out.append((args.shape, int(n), int(d)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", nargs="+", default=["20000x128", "50000x512"])
    parser.add_argument("--shape", default="mix100", help="a pool shape of benchmarks/shapes.py")
    parser.add_argument("--only", nargs="+", choices=STRATEGIES)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", action="store_true", help="whole processes too")
    parser.add_argument("--peer-kernel-max", type=int, default=30_000)
    parser.add_argument("--scratch", default="/tmp/alsys_scale")
    parser.add_argument("--one", nargs=5, metavar=("SIDE", "STRATEGY", "POOL", "L", "B"))
    args = parser.parse_args()
    if args.one:
        side, name, path, n_labeled, budget = args.one
        run_one(side, name, path, int(n_labeled), int(budget))
        return
    if args.processes:  # first, while this process holds nothing large (a child's peak RSS
        whole_process(args)  # counts what it shared with its parent before exec)
    in_process(args)


if __name__ == "__main__":
    main()
