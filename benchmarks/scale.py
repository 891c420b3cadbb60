"""Every registered strategy at scale: one selection round on a generated 50k x 512 pool.

The pool is a 100-class Gaussian mixture (centre scale 0.35, noise 3/sqrt(d) per coordinate, as
benchmarks/selection.py), L2-normalised, float32. ``probs`` and the MC-dropout samples come from
the loop's own linear probe (alsys.classifiers.SSLClassifier, dropout 0.2, 20 passes) trained on
1,000 of its labels, as do the feature-dropout passes (DropQuery's defaults: rate 0.75, 3
passes); ``scores`` (ood_llr) are the probe's negative max log-probability. A strategy that asks
for a calibration split (UHerding's fitted T) gets a second probe's probabilities on it.

The strategies are read from the REGISTRY, so a strategy added there is measured without an
edit here; CASES says which (|L|, b) rounds a strategy runs (clustering strategies: 10, 50 and
500 clusters), TARGETS its time target (seconds on 2 cores).

Printed per round: wall seconds, and the peak resident memory above the level before the round,
sampled every 5 ms from /proc/self/statm (RSS delta: numpy, faiss and torch allocations alike).

    python benchmarks/scale.py                       # every strategy, 50k x 512
    python benchmarks/scale.py --n 5000 --only typiclust coreset    # a quick look
    python benchmarks/scale.py --imagenet            # `alsys select` on 1.28M x 512 (mmap)
    python benchmarks/scale.py --loop                # `alsys run` timing, 5 rounds, SSL
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

N_CLASSES = 100
CENTRE_SCALE = 0.35
CHUNK = 65_536  # rows generated (and written) at a time
PROBE_LABELS = 1_000
MC_PASSES = 20

# (|L|, b) per round. Clustering strategies: min(|L| + b, 500) clusters = 10, 50 and 500.
CLUSTER_CASES = ((0, 10), (0, 50), (450, 50))
HERDING_CASES = ((0, 10), (0, 500), (PROBE_LABELS, 500))
CASES: dict[str, tuple[tuple[int, int], ...]] = {
    "probcover": ((0, 10), (450, 50)),
    "coreset": ((PROBE_LABELS, 500),),
    "batchbald": ((PROBE_LABELS, 50),),
    "badge": ((PROBE_LABELS, 50), (PROBE_LABELS, 500)),
    "maxherding": HERDING_CASES,
    "uherding": HERDING_CASES,
    "tcm": ((0, 10), (PROBE_LABELS, 50)),  # TypiClust at the cold start, then Margin
    "dcom": ((0, 10), (PROBE_LABELS, 50), (PROBE_LABELS, 500)),
    # The cold start clusters every point (b = 500: the largest k-means DropQuery runs).
    "dropquery": ((0, 10), (0, 500), (PROBE_LABELS, 50), (PROBE_LABELS, 500)),
    "falcun": ((PROBE_LABELS, 50), (PROBE_LABELS, 500)),
}
MODEL_CASES = ((PROBE_LABELS, 10), (PROBE_LABELS, 50))
# Seconds, 2 cores: the targets.
TARGETS = {
    "cluster": 5.0,
    "tcm": 5.0,
    "probcover": 30.0,
    "coreset": 10.0,
    "batchbald": 60.0,
    "maxherding": 60.0,
    "uherding": 60.0,
    "badge": 30.0,
    "dcom": 30.0,
    "dropquery": 10.0,
    "falcun": 10.0,
    "other": 2.0,
}


def chunk_rows(n: int, dim: int, seed: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [start, stop) of the generated pool (float32, L2-normalised) and their classes.

    Each CHUNK-aligned block has its own generator, so any block is reproducible alone: the
    in-memory pool and the chunked .npy file hold the same rows.
    """
    centres = np.random.default_rng(seed).normal(size=(N_CLASSES, dim)).astype(np.float32)
    xs, ys = [], []
    for block in range(start // CHUNK, (stop - 1) // CHUNK + 1):
        lo, hi = block * CHUNK, min((block + 1) * CHUNK, n)
        rng = np.random.default_rng([seed, block])
        y = rng.integers(0, N_CLASSES, hi - lo)
        x = rng.standard_normal((hi - lo, dim), dtype=np.float32) * np.float32(3.0 / np.sqrt(dim))
        x += centres[y] * np.float32(CENTRE_SCALE)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        a, b = max(start, lo) - lo, min(stop, hi) - lo
        xs.append(x[a:b])
        ys.append(y[a:b])
    return np.concatenate(xs), np.concatenate(ys)


def generated_pool(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return chunk_rows(n, dim, seed, 0, n)


def write_pool(path: Path, n: int, dim: int, seed: int = 0) -> None:
    """The generated pool as a .npy, written CHUNK rows at a time (one chunk in memory)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, CHUNK):
        out[start : start + CHUNK] = chunk_rows(n, dim, seed, start, min(start + CHUNK, n))[0]
    out.flush()
    del out


@contextmanager
def peak_rss() -> Iterator[list[float]]:
    """Yields a list that holds, on exit, the peak RSS above the entry level, in MiB."""
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    base, peak, done = rss(), [rss()], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], rss())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out: list[float] = []
    try:
        yield out
    finally:
        done.set()
        thread.join()
        out.append((max(peak[0], rss()) - base) / 2**20)


def compute_path() -> str:
    """Which path the strategies take: "gpu (faiss)", "gpu (torch)" or "cpu"."""
    from alsys.strategies.kmeans_steps import gpu_available

    if gpu_available():
        return "gpu (faiss)"
    import torch

    return "gpu (torch)" if torch.cuda.is_available() else "cpu"


@dataclass
class Inputs:
    x: np.ndarray
    labels: np.ndarray
    order: np.ndarray  # a fixed permutation: the first |L| rows of it are the labeled set
    probs: np.ndarray
    mc_probs: np.ndarray
    dropout_probs: np.ndarray
    scores: np.ndarray


def probe_inputs(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> Inputs:
    """probs, MC samples and scores from the loop's linear probe on PROBE_LABELS labels."""
    from alsys.classifiers import SSLClassifier
    from alsys.config import SSLClassifierConfig

    order = np.random.default_rng(seed).permutation(x.shape[0])
    known = order[:PROBE_LABELS]
    probe = SSLClassifier(SSLClassifierConfig(embedding_dim=x.shape[1]), N_CLASSES)
    probe.fit(x[known], labels[known], seed)
    probs = probe.predict_proba(x)
    mc = probe.mc_proba(x, MC_PASSES)
    dropped = probe.dropout_proba(x, 0.75, 3, seed)
    scores = -np.log(probs.max(axis=1))
    return Inputs(x, labels, order, probs, mc, dropped, scores)


def calibration_inputs(strategy: Any, data: Inputs, mask: np.ndarray) -> dict[str, np.ndarray]:
    """The held-out probabilities a strategy asks for, from a probe on the rest of its split."""
    from alsys.classifiers import SSLClassifier
    from alsys.config import SSLClassifierConfig

    split = strategy.heldout_split(mask, N_CLASSES, np.random.default_rng(1))
    if split is None:
        return {}
    fit, held = split
    probe = SSLClassifier(SSLClassifierConfig(embedding_dim=data.x.shape[1]), N_CLASSES)
    probe.fit(data.x[fit], data.labels[fit], 1)
    return {"heldout_rows": held, "heldout_probs": probe.predict_proba(data.x[held])}


def cases_for(name: str) -> tuple[tuple[int, int], ...]:
    from alsys.strategies import get_strategy_class
    from alsys.strategies.clustering import ClusterStrategy

    if name in CASES:
        return CASES[name]
    cls = get_strategy_class(name)
    if issubclass(cls, ClusterStrategy):
        return CLUSTER_CASES
    return MODEL_CASES


def target_for(name: str) -> float:
    from alsys.strategies import get_strategy_class
    from alsys.strategies.clustering import ClusterStrategy

    if name in TARGETS:
        return TARGETS[name]
    if issubclass(get_strategy_class(name), ClusterStrategy):
        return TARGETS["cluster"]
    return TARGETS["other"]


def run_pool(args: argparse.Namespace) -> None:
    import dataclasses

    from alsys.strategies import REGISTRY, Pool, effective_params, get_inputs, make_strategy

    start = time.perf_counter()
    x, labels = generated_pool(args.n, args.dim)
    data = probe_inputs(x, labels)
    print(
        f"pool {args.n} x {args.dim}, {N_CLASSES} classes; probe on {PROBE_LABELS} labels, "
        f"{MC_PASSES} MC passes; prepared in {time.perf_counter() - start:.1f} s; "
        f"path: {compute_path()}; memory: peak RSS above the round's start (sampled)",
        flush=True,
    )
    pool = Pool(
        embeddings=data.x,
        probs=data.probs,
        mc_probs=data.mc_probs,
        dropout_probs=data.dropout_probs,
        scores=data.scores,
    )
    names = args.only or sorted(REGISTRY)
    print(f"{'strategy':<24} {'|L|':>5} {'b':>4} {'seconds':>8} {'MiB':>7} {'target':>7}  notes")
    for name in names:
        params = effective_params(name, {}, n_classes=N_CLASSES)
        strategy = make_strategy(name, **params)
        for n_labeled, budget in cases_for(name):
            mask = np.zeros(args.n, dtype=bool)
            mask[data.order[:n_labeled]] = True
            seen = pool
            if n_labeled == 0:  # no model before the first label
                seen = Pool(embeddings=data.x, scores=data.scores)
            if get_inputs(name).labels:  # the classes bought, for label-aware strategies
                seen = dataclasses.replace(pool, labels=np.where(mask, data.labels, -1))
            if get_inputs(name).heldout:
                seen = dataclasses.replace(seen, **calibration_inputs(strategy, data, mask))
            with peak_rss() as memory:
                begin = time.perf_counter()
                selection = strategy.select(seen, mask, budget, np.random.default_rng(0))
                seconds = time.perf_counter() - begin
            target = target_for(name)
            flag = "ok" if seconds <= target else "SLOW"
            note = "; ".join(selection.notes)[:110]
            print(
                f"{name:<24} {n_labeled:>5} {budget:>4} {seconds:>8.2f} {memory[0]:>7.0f} "
                f"{target:>6.0f}s {flag:<4} {note}",
                flush=True,
            )


# `alsys select` on the ImageNet-sized pool: (strategy, budget, params). Cold start, so the
# clustering strategies make min(b, max_clusters) clusters and visit each once.
IMAGENET_N = 1_281_167
IMAGENET_RUNS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("typiclust", 500, ()),
    ("supclust", 500, ()),
    ("typiclust", 1000, ("max_clusters=1000",)),
    ("supclust", 1000, ("max_clusters=1000",)),
    ("probcover", 500, ("n_classes=1000",)),
    ("coreset", 500, ()),
)
IMAGENET_TARGETS = {500: 60.0, 1000: 90.0}


def timed_process(argv: list[str]) -> tuple[int, float, float, str]:
    """Runs ``argv``; returns (exit code, wall seconds, its own peak RSS in MiB, stderr tail)."""
    import subprocess

    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    return process.returncode, seconds, usage.ru_maxrss / 1024, lines[-1] if lines else ""


def run_imagenet(args: argparse.Namespace) -> None:
    """`alsys select` as a subprocess on a memory-mapped 1.28M x 512 float32 .npy."""
    import sys

    folder = Path(args.scratch)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"pool_{args.imagenet_n}x{args.dim}.npy"
    if not path.exists():
        start = time.perf_counter()
        write_pool(path, args.imagenet_n, args.dim)
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)
    array_mib = args.imagenet_n * args.dim * 4 / 2**20
    (folder / "labeled.txt").write_text("")
    print(
        f"alsys select on {args.imagenet_n} x {args.dim} float32 ({array_mib:.0f} MiB, "
        f"memory-mapped); path: {compute_path()}; peak RSS of the process (wait4)",
        flush=True,
    )
    print(
        f"{'strategy':<10} {'b':>5} {'params':<20} {'rc':>3} {'seconds':>8} {'MiB':>7} "
        f"{'/array':>6}  target / last stderr line"
    )
    for name, budget, params in IMAGENET_RUNS:
        if args.only and name not in args.only:
            continue
        argv = [
            sys.executable,
            "-m",
            "alsys.cli",
            "select",
            "--embeddings",
            str(path),
            "--labeled",
            str(folder / "labeled.txt"),
            "--budget",
            str(budget),
            "--strategy",
            name,
            "--out",
            str(folder / f"{name}_{budget}.json"),
        ]
        for param in params:
            argv += ["--param", param]
        rc, seconds, mib, last = timed_process(argv)
        target = IMAGENET_TARGETS.get(budget, 600.0) if name in ("typiclust", "supclust") else 600
        print(
            f"{name:<10} {budget:>5} {' '.join(params) or '-':<20} {rc:>3} {seconds:>8.1f} "
            f"{mib:>7.0f} {mib / array_mib:>6.2f}  {target:.0f}s; {last[:100]}",
            flush=True,
        )


def run_loop(args: argparse.Namespace) -> None:
    """`alsys run --dataset embeddings` on the generated pool: seconds per round by stage."""
    from alsys.config import TrialConfig
    from alsys.embed.store import EmbeddingStore
    from alsys.loop import prepare_data, run_trial
    from alsys.strategies import REGISTRY

    folder = Path(args.scratch) / f"loop_{args.n}x{args.dim}"
    folder.mkdir(parents=True, exist_ok=True)
    x, y = generated_pool(args.n + args.n // 5, args.dim, seed=1)
    files = {}
    for split, rows in (("train", slice(0, args.n)), ("test", slice(args.n, None))):
        np.save(folder / f"{split}.npy", x[rows])
        np.save(folder / f"{split}_labels.npy", y[rows])
        files[split] = str(folder / f"{split}.npy")
        files[f"{split}_labels"] = str(folder / f"{split}_labels.npy")
    print(
        f"alsys run --dataset embeddings, {args.n} train x {args.dim}, SSL, "
        f"{args.episodes} rounds (b = #classes, 5 x #classes); seconds per round (mean): select / "
        "train / other (the model's outputs on the pool for the strategy, and the test); "
        f"path: {compute_path()}",
        flush=True,
    )
    print(f"{'strategy':<24} {'budget':>6} {'select':>7} {'train':>7} {'other':>7} {'acc':>6}")
    for name in args.only or sorted(REGISTRY):
        if name == "ood_llr":  # needs an HVAE's scores: trained per trial, not a loop figure
            print(f"{name:<24} skipped: its scores come from an HVAE trained in the trial")
            continue
        for budget in ("tiny", "small"):
            config = TrialConfig(
                strategy=name,
                dataset="embeddings",
                budget=budget,
                setting="ssl",
                seed=0,
                episodes=args.episodes,
                dataset_options=files,
            )
            data = prepare_data(config, EmbeddingStore(folder / "store"), show_progress=False)
            start = time.perf_counter()
            rounds = run_trial(config, data).rounds
            total = time.perf_counter() - start
            select = float(np.mean([r.selection_seconds for r in rounds]))
            train = float(np.mean([r.training_seconds for r in rounds]))
            other = max(0.0, total / len(rounds) - select - train)
            print(
                f"{name:<24} {budget:>6} {select:>7.2f} {train:>7.2f} {other:>7.2f} "
                f"{rounds[-1].accuracy:>6.3f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--only", nargs="+", help="these strategies only")
    parser.add_argument("--imagenet", action="store_true", help="alsys select on 1.28M x 512")
    parser.add_argument("--imagenet-n", type=int, default=IMAGENET_N)
    parser.add_argument("--loop", action="store_true", help="alsys run, 5 rounds, per stage")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--scratch", default="/tmp/alsys_scale", help="generated files go here")
    args = parser.parse_args()
    if args.imagenet:
        run_imagenet(args)
    elif args.loop:
        run_loop(args)
    else:
        run_pool(args)


if __name__ == "__main__":
    main()
