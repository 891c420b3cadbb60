from __future__ import annotations

from typing import Any

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


@pytest.fixture(scope="session")
def digits_data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """digits with SimCLR embeddings of a few epochs (the loop is what is tested), trained once
    per session into a temporary store."""
    from alsys.config import TrialConfig
    from alsys.embed.store import EmbeddingStore
    from alsys.loop import prepare_data

    store = EmbeddingStore(tmp_path_factory.mktemp("digits_store"))
    return prepare_data(TrialConfig(strategy="random", embed_epochs=3), store)
