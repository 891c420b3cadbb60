"""Whole-process TypiClust: `alsys select` against the reference-style process, side by side.

On the generated 50k x 512 pool of benchmarks/scale.py (written once as a .npy), two cases:
a cold start with b = 10 (10 clusters) and |L| = 450 with b = 50 (500 clusters). Each run
starts a fresh Python process for each of three commands, in turn (A, B, C, A, B, C, ...):

    A  alsys select --strategy typiclust (memory-mapped --embeddings)
    B  benchmarks/reference_typiclust.py --kmeans restarts  (scikit-learn as the reference ran
       it, before 1.4: KMeans n_init=10, MiniBatchKMeans n_init=3)
    C  benchmarks/reference_typiclust.py --kmeans today     (today's defaults: one run)

Prints per case and command the median wall seconds and peak RSS (wait4) over --runs, the
speed-up as the median of the per-run ratios B/A and C/A (each pair ran back to back), and the
k-means inertia of each (alsys's over the reference's; < 1 is better).

    python benchmarks/whole_process.py            # 3 runs (about 6 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from scale import timed_process
from shapes import pool_file

HERE = Path(__file__).parent
CASES = (("cold start, b = 10 (10 clusters)", 0, 10), ("|L| = 450, b = 50 (500 clusters)", 450, 50))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scratch", default="/tmp/alsys_scale")
    args = parser.parse_args()
    folder = Path(args.scratch)
    folder.mkdir(parents=True, exist_ok=True)
    pool = pool_file(folder, "mix100", args.n, args.dim)
    print(f"pool {pool} ({args.n} x {args.dim} float32); {args.runs} runs each, in turn")
    print(f"{'case':<34} {'command':<24} {'wall s':>7} {'MiB':>6} {'speed-up':>8} {'inertia':>10}")
    for title, n_labeled, budget in CASES:
        labeled = folder / f"labeled_{n_labeled}.txt"
        rows = np.random.default_rng(1).choice(args.n, n_labeled, replace=False)
        labeled.write_text(" ".join(map(str, sorted(rows))))
        out = {name: folder / f"{name}_{n_labeled}.json" for name in "ABC"}
        select = [sys.executable, "-m", "alsys.cli", "select", "--embeddings", str(pool)]
        select += ["--labeled", str(labeled), "--budget", str(budget), "--strategy", "typiclust"]
        commands = {"A": [*select, "--quiet", "--out", str(out["A"])]}
        for name, mode in (("B", "restarts"), ("C", "today")):
            commands[name] = [sys.executable, str(HERE / "reference_typiclust.py"), str(pool)]
            commands[name] += [str(labeled), str(budget), "--kmeans", mode, "--out", str(out[name])]
        walls: dict[str, list[float]] = {name: [] for name in commands}
        rss: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                rc, seconds, mib, last = timed_process(argv)
                if rc != 0:
                    raise SystemExit(f"{name} failed ({rc}): {last}")
                walls[name].append(seconds)
                rss[name].append(mib)
        inertia = {name: json.loads(path.read_text()) for name, path in out.items()}
        ours = inertia["A"]["metrics"]["kmeans_inertia"]
        labels = {"A": "alsys select", "B": "reference, its restarts", "C": "reference, today"}
        for name in commands:
            ratios = [b / a for a, b in zip(walls["A"], walls[name], strict=True)]
            speed = "" if name == "A" else f"{statistics.median(ratios):.1f}x"
            value = ours if name == "A" else inertia[name]["kmeans_inertia"]
            ratio = "" if name == "A" else f" ({ours / value:.4f})"
            print(
                f"{title if name == 'A' else '':<34} {labels[name]:<24} "
                f"{statistics.median(walls[name]):>7.1f} {statistics.median(rss[name]):>6.0f} "
                f"{speed:>8} {value:>10.1f}{ratio}",
                flush=True,
            )


if __name__ == "__main__":
    main()
