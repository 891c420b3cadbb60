"""SimCLR embeddings at any dimension, trained once and kept in the embedding store.

>>> from alsys.embed import simclr_embeddings
>>> by_dim = simclr_embeddings("digits", dims=[8, 16, 32])   # {d: Embeddings(train, test, path)}

``import alsys`` does not import this module, and this module imports torch (with
:mod:`alsys.embed.simclr`) only when :func:`simclr_embeddings` runs: the CLI, which reads the
encoder names of :mod:`alsys.embed.encoders`, parses and refuses bad input without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

import alsys
from alsys.config import SIMCLR_DIMENSIONS as DIMENSIONS
from alsys.data import Dataset, dataset_loader, load_dataset
from alsys.embed.store import EmbeddingStore
from alsys.errors import InputError

MODES = ("nested", "separate")
# Loader options that say where or how to read the data, not which data: not part of the key.
NOT_IN_KEY = frozenset({"root", "download", "verify", "show_progress"})


@dataclass(frozen=True)
class Embeddings:
    """One dimension's embeddings: train (N, d) and test (M, d) float32, and the store entry."""

    train: np.ndarray
    test: np.ndarray
    path: Path


@cache
def code_version() -> str:
    """alsys's version plus a hash of the code that shapes an embedding (part of every key)."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in ("augment.py", "simclr.py"):
        digest.update((here / name).read_bytes())
    return f"{alsys.__version__}+{digest.hexdigest()[:12]}"


def parse_dims(text: str | Sequence[int]) -> tuple[int, ...]:
    """'8,16,32' or a sequence -> sorted unique positive dimensions."""
    try:
        values = [int(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise InputError("dims", f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError("dims", f"dimensions must be positive integers, got {text!r}")
    return tuple(sorted(set(values)))


def simclr_embeddings(
    dataset: str,
    dims: Sequence[int],
    mode: str = "nested",
    seed: int = 0,
    epochs: int | None = None,
    store: EmbeddingStore | None = None,
    dataset_options: dict[str, Any] | None = None,
    show_progress: bool = True,
    features: str | None = None,
) -> dict[int, Embeddings]:
    """SimCLR embeddings of the train pool and the test split at every D in ``dims``.

    Nested mode trains one model for all of ``dims``; separate mode one per D. Each training
    is computed once per spec and then read from ``store``. ``features`` overrides the preset's
    choice of tensor ("backbone" or "head", see :mod:`alsys.embed.simclr`).
    """
    from alsys.embed.simclr import embed_images, preset, train_simclr

    dims = parse_dims(dims)
    if mode not in MODES:
        raise InputError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    dataset_loader(dataset)  # an unknown name fails here, listing the valid ones
    if dataset == "embeddings":
        raise InputError("dataset", "embeddings already holds features; SimCLR does not apply")
    config = preset(dataset, epochs)
    if features is not None:
        config = replace(config, features=features)  # validated by SimCLRConfig
    options = dict(dataset_options or {})
    store = store or EmbeddingStore()
    loaded: list[Dataset] = []

    def images() -> Dataset:
        if not loaded:
            loaded.append(load_dataset(dataset, **options))
        return loaded[0]

    def train(train_dims: Sequence[int], nested: bool) -> dict[str, np.ndarray]:
        data = images()
        assert data.train_images is not None and data.test_images is not None
        model, losses = train_simclr(
            data.train_images, config, train_dims, seed, nested, show_progress
        )
        return {
            "train": embed_images(model, data.train_images, config),
            "test": embed_images(model, data.test_images, config),
            "loss": np.asarray(losses),
        }

    base = {
        "dataset": dataset,
        "dataset_options": {k: v for k, v in options.items() if k not in NOT_IN_KEY},
        "simclr": config.as_dict(),
        "seed": seed,
        "code": code_version(),
    }
    out: dict[int, Embeddings] = {}
    if mode == "nested":
        spec = {**base, "mode": "nested", "dims": list(dims)}
        arrays = store.get_or_compute(spec, lambda: train(dims, nested=True))
        for d in dims:
            out[d] = Embeddings(arrays["train"][:, :d], arrays["test"][:, :d], store.path(spec))
    else:
        for d in dims:
            spec = {**base, "mode": "separate", "dim": d}

            def train_one(d: int = d) -> dict[str, np.ndarray]:
                return train([d], nested=False)

            arrays = store.get_or_compute(spec, train_one)
            out[d] = Embeddings(arrays["train"], arrays["test"], store.path(spec))
    return out


__all__ = [
    "DIMENSIONS",
    "EmbeddingStore",
    "Embeddings",
    "code_version",
    "parse_dims",
    "simclr_embeddings",
]
