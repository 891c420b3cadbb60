"""Selecting each row's q largest closeness scores, the step of the exact kNN (typicality) that
costs as much as its GEMM: np.partition over whole rows against alsys's selection.

For each pool shape of benchmarks/shapes.py and each cluster size m, the first m rows of a
generated pool stand for one cluster. alsys.strategies.neighbours.self_knn scores it by blocks
of r = block_rows(m) rows (2^20 / m, at least 256 up to 2^23 entries), and selects from two
kinds of rows (from 256 dimensions on; below, only the
first): a block's rows against the rest of the cluster ("wide", r x m), and the rest of the
cluster's rows against the block, transposed ("narrow", (m - r) x r). Each kind's q = K + 1 = 21
(one visit) and 29 (kept lists) largest entries are selected by:

- partition: np.partition over whole rows (alsys's values-only selection until 2026-12-04);
- alsys: alsys.strategies.neighbours.top_values (whole rows up to WHOLE_ROW_VALUES columns,
  groups of columns above);
- +columns: alsys.strategies.neighbours.top_columns (with the columns, for kept lists).

Prints nanoseconds per score entry, median over --repeats, each timed in turns, the ratio
partition / alsys, and whether the selected values are the same (they must be: all are exact).

    python benchmarks/top_selection.py
    python benchmarks/top_selection.py --shapes sphere dup10 --sizes 5000 --dims 512
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from shapes import SHAPES, generated_pool

from alsys.strategies.neighbours import (
    SYMMETRIC_MIN_DIM,
    block_rows,
    top_columns,
    top_values,
)


def score_blocks(x: np.ndarray) -> dict[str, np.ndarray]:
    """The first block of rows self_knn scores against every row of ``x`` ("wide"), and the
    later rows against that block, as self_knn writes them transposed ("narrow")."""
    rows = block_rows(x.shape[0])
    half = np.einsum("ij,ij->i", x, x) * np.float32(0.5)
    gram = x[:rows] @ x.T
    narrow = np.ascontiguousarray((gram[:, rows:] - half[:rows, None]).T)
    gram -= half[None, :]
    return {"wide": gram, "narrow": narrow}


def whole_rows(scores: np.ndarray, q: int) -> np.ndarray:
    scores.partition(scores.shape[1] - q, axis=1)
    return scores[:, scores.shape[1] - q :]


def timed(
    select: Callable[[np.ndarray, int], Any], block: np.ndarray, q: int
) -> tuple[float, np.ndarray]:
    scores = block.copy()  # each selection may overwrite its input
    start = time.perf_counter()
    out = select(scores, q)
    seconds = time.perf_counter() - start
    values = out[0] if isinstance(out, tuple) else out
    return seconds, np.sort(values, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["mix100", "zipf", "sphere", "dup10"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 16384])
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--q", type=int, nargs="+", default=[21, 29])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    unknown = set(args.shapes) - set(SHAPES)
    if unknown:
        parser.error(f"unknown shapes {sorted(unknown)}; choose among {sorted(SHAPES)}")
    print(f"ns per score entry, median of {args.repeats} (in turns); ratio = partition / alsys")
    header = f"{'shape':<7} {'m':>6} {'d':>4} {'rows':<6} {'r x c':>12} {'q':>3}"
    print(f"{header} {'partition':>10} {'alsys':>6} {'+columns':>9} {'ratio':>6}  same")
    for shape in args.shapes:
        for dim in args.dims:
            pool = generated_pool(shape, max(args.sizes), dim)[0]
            for m in args.sizes:
                blocks = score_blocks(np.ascontiguousarray(pool[:m]))
                for kind, block in blocks.items():
                    if kind == "narrow" and dim < SYMMETRIC_MIN_DIM:
                        continue
                    for q in args.q:
                        print_row(shape, m, dim, kind, block, q, args.repeats)


def print_row(
    shape: str, m: int, dim: int, kind: str, block: np.ndarray, q: int, repeats: int
) -> None:
    times: dict[str, list[float]] = {"partition": [], "alsys": [], "cols": []}
    same = True
    for _ in range(repeats):
        t_whole, v_whole = timed(whole_rows, block, q)
        t_ours, v_ours = timed(top_values, block, q)
        t_cols, v_cols = timed(top_columns, block, q)
        times["partition"].append(t_whole)
        times["alsys"].append(t_ours)
        times["cols"].append(t_cols)
        same &= np.array_equal(v_whole, v_ours) and np.array_equal(v_whole, v_cols)
    ns = {key: statistics.median(v) / block.size * 1e9 for key, v in times.items()}
    size = f"{block.shape[0]} x {block.shape[1]}"
    print(
        f"{shape:<7} {m:>6} {dim:>4} {kind:<6} {size:>12} {q:>3} {ns['partition']:>10.2f} "
        f"{ns['alsys']:>6.2f} {ns['cols']:>9.2f} {ns['partition'] / ns['alsys']:>5.1f}x  "
        f"{'yes' if same else 'NO'}",
        flush=True,
    )


if __name__ == "__main__":
    main()
