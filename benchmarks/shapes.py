"""A family of generated pools: one generator per shape a user's embedding may have.

Every pool is float32, L2-normalised, and reproducible block by block (each CHUNK-aligned block
of rows has its own generator), so a pool of any size can be written to a .npy one block at a
time and an in-memory pool holds the same rows.

    mix100     100 Gaussian groups, even sizes (benchmarks/scale.py's pool since issue 19)
    mix1000    1,000 groups (ImageNet's class count)
    mix10000   10,000 groups: more groups than any clustering here has clusters
    zipf       1,000 groups whose sizes follow a Zipf law (p_g ~ 1 / g^1.1): the largest holds
               about 18 % of the pool, the smallest a few thousandths of a percent
    sphere     points spread evenly over the sphere: no structure at all
    dup10      mix100 with 10 % of each block's rows replaced by exact copies of other rows

A group is a random centre times CENTRE_SCALE plus isotropic noise of norm about 3, so two
members of a group have a cosine of about 0.87 at d = 512 and members of different groups about
0 (benchmarks/selection.py's recipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK = 65_536  # rows generated (and written) at a time
CENTRE_SCALE = 0.35
ZIPF_EXPONENT = 1.1
DUPLICATE_SHARE = 0.10


@dataclass(frozen=True)
class Shape:
    """How a pool is drawn: ``groups`` centres (0: none), their size law, duplicated rows."""

    name: str
    groups: int
    zipf: bool = False
    duplicates: float = 0.0

    def group_probabilities(self) -> np.ndarray | None:
        if not self.zipf:
            return None
        weights = 1.0 / np.arange(1, self.groups + 1) ** ZIPF_EXPONENT
        return weights / weights.sum()  # type: ignore[no-any-return]


SHAPES: dict[str, Shape] = {
    shape.name: shape
    for shape in (
        Shape("mix100", 100),
        Shape("mix1000", 1000),
        Shape("mix10000", 10_000),
        Shape("zipf", 1000, zipf=True),
        Shape("sphere", 0),
        Shape("dup10", 100, duplicates=DUPLICATE_SHARE),
    )
}


def chunk_rows(
    shape: Shape, n: int, dim: int, seed: int, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows [start, stop) of the pool (float32, L2-normalised) and their group ids (-1: none)."""
    centres = None
    if shape.groups:
        centre_rng = np.random.default_rng(seed)
        centres = centre_rng.normal(size=(shape.groups, dim)).astype(np.float32)
    p = shape.group_probabilities()
    xs, ys = [], []
    for block in range(start // CHUNK, (stop - 1) // CHUNK + 1):
        lo, hi = block * CHUNK, min((block + 1) * CHUNK, n)
        rng = np.random.default_rng([seed, block])
        if centres is None:
            y = np.full(hi - lo, -1, dtype=np.int64)
            x = rng.standard_normal((hi - lo, dim), dtype=np.float32)
        else:
            if p is None:
                y = rng.integers(0, shape.groups, hi - lo)
            else:
                y = rng.choice(shape.groups, hi - lo, p=p)
            x = rng.standard_normal((hi - lo, dim), dtype=np.float32)
            x *= np.float32(3.0 / np.sqrt(dim))
            x += centres[y] * np.float32(CENTRE_SCALE)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        if shape.duplicates:
            copies = round(shape.duplicates * (hi - lo))
            targets = rng.choice(hi - lo, copies, replace=False)
            keep = np.setdiff1d(np.arange(hi - lo), targets)
            sources = rng.choice(keep, copies)
            x[targets] = x[sources]
            y[targets] = y[sources]
        a, b = max(start, lo) - lo, min(stop, hi) - lo
        xs.append(x[a:b])
        ys.append(y[a:b])
    return np.concatenate(xs), np.concatenate(ys)


def generated_pool(shape: str, n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The whole pool of ``shape`` in memory: (n, dim) float32 rows and (n,) group ids."""
    return chunk_rows(SHAPES[shape], n, dim, seed, 0, n)


def write_pool(path: Path, shape: str, n: int, dim: int, seed: int = 0) -> None:
    """The pool as a .npy, written CHUNK rows at a time (one block in memory)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        out[start:stop] = chunk_rows(SHAPES[shape], n, dim, seed, start, stop)[0]
    out.flush()
    del out


def pool_file(folder: Path, shape: str, n: int, dim: int, seed: int = 0) -> Path:
    """The pool's .npy under ``folder``, written on first use."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"pool_{shape}_{n}x{dim}_s{seed}.npy"
    if not path.exists():
        partial = path.with_suffix(".part.npy")
        write_pool(partial, shape, n, dim, seed)
        partial.rename(path)
    return path
