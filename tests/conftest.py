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


def toy_data(n: int = 60, n_train: int = 40, dim: int = 4) -> Any:
    """A small embeddings dataset of 3 classes as a trial reads it (``alsys.loop.TrialData``):
    seeded Gaussian features, the train rows L2-normalised."""
    from alsys.data.base import Dataset
    from alsys.loop import TrialData

    rng = np.random.default_rng(0)
    features = rng.normal(size=(n, dim)).astype(np.float32)
    labels = np.arange(n) % 3
    dataset = Dataset(
        name="toy",
        classes=("a", "b", "c"),
        train_labels=labels[:n_train],
        test_labels=labels[n_train:],
        train_features=features[:n_train],
        test_features=features[n_train:],
    )
    unit = features[:n_train] / np.linalg.norm(features[:n_train], axis=1, keepdims=True)
    return TrialData(dataset, unit, features[n_train:], unit, unit)


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


def zipf_pool(n: int = 6000, seed: int = 0) -> np.ndarray:
    """Groups whose sizes follow a Zipf law: a few thousand points in one, a handful in most."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 201) ** 1.1
    ids = rng.choice(200, n, p=p / p.sum())
    centres = rng.normal(size=(200, 32))
    return (centres[ids] * 0.35 + rng.normal(size=(n, 32)) * 0.53).astype(np.float32)
