from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# The local Rays the sweeps under test start (in this process and in the sweep processes,
# which inherit it) leave out Ray's dashboard: 11 processes and about 3 s of CPU each, about
# 35 times in a run. tests/test_dashboards.py starts one with it; `ray job submit` in .ci/run
# goes through cluster/local/start.sh, whose head has it.
os.environ.setdefault("ALSYS_RAY_DASHBOARD", "0")


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
def digits_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedding store holding digits' SimCLR training of 3 epochs (what the sweep YAMLs'
    smoke runs and the tests' sweeps read), trained once per session."""
    from alsys.config import TrialConfig
    from alsys.embed.store import EmbeddingStore
    from alsys.loop import prepare_data

    root = tmp_path_factory.mktemp("digits_store")
    prepare_data(TrialConfig(strategy="random", embed_epochs=3), EmbeddingStore(root))
    return root


@pytest.fixture(scope="session")
def digits_data(digits_store: Path) -> Any:
    """digits with SimCLR embeddings of a few epochs (the loop is what is tested)."""
    from alsys.config import TrialConfig
    from alsys.embed.store import EmbeddingStore
    from alsys.loop import prepare_data

    config = TrialConfig(strategy="random", embed_epochs=3)
    return prepare_data(config, EmbeddingStore(digits_store, compute=False))


@pytest.fixture
def warm_store(digits_store: Path, tmp_path: Path) -> Path:
    """``tmp_path / "store"``: a copy of :func:`digits_store`, the store of a user who has run a
    sweep before, so the sweep under test trains no SimCLR. The store's compute path (a Ray
    task per missing entry, one training under the file lock) is tested by the tests that
    start from an empty store: the dim_grid smoke, two sweeps at once, ``alsys embed``."""
    dest = tmp_path / "store"
    shutil.copytree(digits_store, dest, ignore=shutil.ignore_patterns("*.lock"))
    return dest


def zipf_pool(n: int = 6000, seed: int = 0) -> np.ndarray:
    """Groups whose sizes follow a Zipf law: a few thousand points in one, a handful in most."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 201) ** 1.1
    ids = rng.choice(200, n, p=p / p.sum())
    centres = rng.normal(size=(200, 32))
    return (centres[ids] * 0.35 + rng.normal(size=(n, 32)) * 0.53).astype(np.float32)
