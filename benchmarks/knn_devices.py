"""The exact kNN that typicality needs, on each engine this machine has: faiss-cpu's flat search
(what alsys's knn_sqdist runs on the CPU), alsys's own numpy search (alsys.strategies.neighbours
.self_knn, what typicality runs on the CPU), and, where a CUDA GPU is visible, a torch GEMM and
topk per block of rows on it (not an alsys path: the measure of what one would gain).

Each on generated, L2-normalised m x 512 float32 points against themselves, K + 1 = 21 nearest,
median of 3 runs; the neighbour lists are compared with faiss's.

    python benchmarks/knn_devices.py [--sizes 16384 50000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import faiss
import numpy as np

from alsys.strategies.neighbours import self_knn

Q = 21
TORCH_ROWS = 8192


def timed(run: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def torch_knn(x: np.ndarray) -> np.ndarray:
    import torch

    xg = torch.from_numpy(x).cuda()
    sq = (xg * xg).sum(1)
    found = []
    for start in range(0, x.shape[0], TORCH_ROWS):
        block = xg[start : start + TORCH_ROWS]
        dist = sq[start : start + TORCH_ROWS, None] + sq[None, :] - 2 * block @ xg.T
        found.append(torch.topk(dist, Q, dim=1, largest=False).indices)
    out = torch.cat(found).cpu().numpy()
    torch.cuda.synchronize()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16_384, 50_000])
    args = parser.parse_args()
    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:
        gpu = False
    rng = np.random.default_rng(0)
    for m in args.sizes:
        x = rng.standard_normal((m, 512), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        faiss_s, (_, faiss_idx) = timed(partial(faiss.knn, x, x, Q))
        numpy_s, (_, numpy_idx) = timed(partial(self_knn, x, Q))
        same = float((np.sort(numpy_idx, axis=1) == np.sort(faiss_idx, axis=1)).mean())
        line = (
            f"{m} x 512, K + 1 = {Q}: faiss-cpu {faiss_s:.3f} s, alsys numpy {numpy_s:.3f} s "
            f"(lists equal to faiss's {same:.4f})"
        )
        if gpu:
            torch_knn(x[:TORCH_ROWS])  # warm-up: CUDA context and kernels
            torch_s, torch_idx = timed(partial(torch_knn, x))
            same = float((np.sort(torch_idx, axis=1) == np.sort(faiss_idx, axis=1)).mean())
            line += f", torch GPU {torch_s:.3f} s (lists equal {same:.4f})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
