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
the kernel's high-water mark reset at the round's start (numpy, faiss and torch allocations
alike; no sampling thread beside the round).

    python benchmarks/scale.py                       # every strategy, 50k x 512
    python benchmarks/scale.py --n 5000 --only typiclust coreset    # a quick look
    python benchmarks/scale.py --imagenet            # `alsys select` on 1.28M x 512 (mmap)
    python benchmarks/scale.py --loop                # `alsys run` timing, 5 rounds, SSL
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import shapes

N_CLASSES = 100
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


def pool_labels(shape: str, x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The probe's classes: the group (modulo N_CLASSES); a shape without groups (sphere) is
    labeled by the nearest of N_CLASSES fixed random directions."""
    if (groups >= 0).all():
        return groups % N_CLASSES  # type: ignore[no-any-return]
    directions = np.random.default_rng(7).normal(size=(x.shape[1], N_CLASSES)).astype(np.float32)
    return np.argmax(x @ directions, axis=1)  # type: ignore[no-any-return]


@contextmanager
def peak_rss() -> Iterator[list[float]]:
    """Yields a list that holds, on exit, the peak RSS above the entry level, in MiB.

    Exact and without a thread: the kernel's high-water mark (VmHWM), reset at entry by
    writing 5 to /proc/self/clear_refs. A sampling thread, as this used before, woke every
    5 ms and took the GIL and a core from the round it measured. Where the reset is refused,
    the peak since the process began, which only overstates."""
    base = _status_kib("VmRSS:")
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    out: list[float] = []
    try:
        yield out
    finally:
        out.append(max(0.0, (_status_kib("VmHWM:") - base) / 1024))


def _status_kib(field: str) -> int:
    """One memory figure of this process, in KiB, from /proc/self/status."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


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


def run_pool(args: argparse.Namespace, shape: str, header: bool) -> None:
    import dataclasses

    from alsys.strategies import REGISTRY, Pool, effective_params, get_inputs, make_strategy

    start = time.perf_counter()
    x, groups = shapes.generated_pool(shape, args.n, args.dim)
    data = probe_inputs(x, pool_labels(shape, x, groups))
    print(
        f"pool {shape} {args.n} x {args.dim}; probe on {PROBE_LABELS} labels ({N_CLASSES} "
        f"classes), {MC_PASSES} MC passes; prepared in {time.perf_counter() - start:.1f} s; "
        f"path: {compute_path()}",
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
    if header:
        print(
            "seconds: one selection round; MiB: peak RSS above the round's start (VmHWM); "
            "spread: the largest cluster over the median one (clustering strategies)"
        )
        print(
            f"{'shape':<9} {'strategy':<24} {'|L|':>5} {'b':>4} {'seconds':>8} {'MiB':>7} "
            f"{'spread':>6} {'target':>7}  notes"
        )
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
                f"{shape:<9} {name:<24} {n_labeled:>5} {budget:>4} {seconds:>8.2f} "
                f"{memory[0]:>7.0f} {spread_of(selection.metrics):>6} {target:>6.0f}s "
                f"{flag:<4} {note}",
                flush=True,
            )


def spread_of(metrics: dict[str, float]) -> str:
    """The largest cluster over the median one, where the selection clustered."""
    if "largest_cluster" not in metrics:
        return "-"
    return f"{metrics['largest_cluster'] / max(metrics['median_cluster'], 1):.1f}"


# `alsys select` on the ImageNet-sized pool: (strategy, budget, params), cold start. The
# clustering strategies make min(b, 500) clusters: at b = 1000 each is visited twice.
IMAGENET_N = 1_281_167
CLUSTER_RUNS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("typiclust", 500, ()),
    ("supclust", 500, ()),
    ("typiclust", 1000, ()),
    ("supclust", 1000, ()),
)
IMAGENET_RUNS = (*CLUSTER_RUNS, ("probcover", 500, ("n_classes=1000",)), ("coreset", 500, ()))
IMAGENET_TARGET = 60.0  # seconds, the clustering strategies; 10 minutes for the others


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


def run_imagenet(args: argparse.Namespace, shape: str, header: bool) -> None:
    """`alsys select` as a subprocess on a memory-mapped 1.28M x 512 float32 .npy."""
    folder = Path(args.scratch)
    path = folder / f"pool_{shape}_{args.imagenet_n}x{args.dim}_s0.npy"
    if not path.exists():
        start = time.perf_counter()
        shapes.pool_file(folder, shape, args.imagenet_n, args.dim)
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)
    array_mib = args.imagenet_n * args.dim * 4 / 2**20
    (folder / "labeled.txt").write_text("")
    if header:
        print(
            f"alsys select on {args.imagenet_n} x {args.dim} float32 ({array_mib:.0f} MiB, "
            f"memory-mapped), cold start; path: {compute_path()}; peak RSS of the process "
            "(wait4); spread: the largest cluster over the median one"
        )
        print(
            f"{'shape':<9} {'strategy':<10} {'b':>5} {'params':<16} {'rc':>3} {'seconds':>8} "
            f"{'MiB':>7} {'/array':>6} {'spread':>6}  target / last stderr line"
        )
    runs = CLUSTER_RUNS if args.shapes else IMAGENET_RUNS
    for name, budget, params in runs:
        if args.only and name not in args.only:
            continue
        out = folder / f"{shape}_{name}_{budget}.json"
        argv = [sys.executable, "-m", "alsys.cli", "select", "--embeddings", str(path)]
        argv += ["--labeled", str(folder / "labeled.txt"), "--budget", str(budget)]
        argv += ["--strategy", name, "--out", str(out)]
        for param in params:
            argv += ["--param", param]
        rc, seconds, mib, last = timed_process(argv)
        spread = spread_of(json.loads(out.read_text())["metrics"]) if rc == 0 else "-"
        target = IMAGENET_TARGET if (name, budget, params) in CLUSTER_RUNS else 600.0
        flag = "ok" if rc == 0 and seconds <= target else "SLOW"
        print(
            f"{shape:<9} {name:<10} {budget:>5} {' '.join(params) or '-':<16} {rc:>3} "
            f"{seconds:>8.1f} {mib:>7.0f} {mib / array_mib:>6.2f} {spread:>6}  "
            f"{target:.0f}s {flag}; {last[:90]}",
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
    x, y = shapes.generated_pool("mix100", args.n + args.n // 5, args.dim, seed=1)
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
    parser.add_argument(
        "--shapes",
        nargs="*",
        choices=list(shapes.SHAPES),
        help="these pool shapes (none named: every one); default: mix100 alone",
    )
    parser.add_argument("--imagenet", action="store_true", help="alsys select on 1.28M x 512")
    parser.add_argument("--imagenet-n", type=int, default=IMAGENET_N)
    parser.add_argument("--loop", action="store_true", help="alsys run, 5 rounds, per stage")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--scratch", default="/tmp/alsys_scale", help="generated files go here")
    args = parser.parse_args()
    if args.loop:
        run_loop(args)
        return
    chosen = ["mix100"] if args.shapes is None else (args.shapes or list(shapes.SHAPES))
    for position, shape in enumerate(chosen):
        if args.imagenet:
            run_imagenet(args, shape, header=position == 0)
        else:
            run_pool(args, shape, header=position == 0)


if __name__ == "__main__":
    main()
