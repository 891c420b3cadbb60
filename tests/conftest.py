from __future__ import annotations

import numpy as np
import pytest


def blobs(
    rng: np.random.Generator, n_per_blob: int = 30, n_blobs: int = 4, dim: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs: (n, dim) float32 points and their blob ids."""
    centres = rng.normal(size=(n_blobs, dim)) * 10
    ids = np.repeat(np.arange(n_blobs), n_per_blob)
    points = centres[ids] + rng.normal(size=(ids.shape[0], dim))
    return points.astype(np.float32), ids


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def zipf_pool(n: int = 6000, seed: int = 0) -> np.ndarray:
    """Groups whose sizes follow a Zipf law: a few thousand points in one, a handful in most."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 201) ** 1.1
    ids = rng.choice(200, n, p=p / p.sum())
    centres = rng.normal(size=(200, 32))
    return (centres[ids] * 0.35 + rng.normal(size=(n, 32)) * 0.53).astype(np.float32)
