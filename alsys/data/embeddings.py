"""Bring your own embeddings: precomputed features (e.g. DINOv2) plus labels, no images.

Every sweep runs on them in the SSL setting; FSL needs images and is refused for them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alsys.data.base import Dataset
from alsys.errors import InputError


def _read(path: str | None, field: str, labels: bool) -> np.ndarray:
    if not path:
        raise InputError(f"embeddings.{field}", "is required (a .npy file)")
    file = Path(path)
    if not file.is_file():
        raise InputError(f"embeddings.{field}", f"no such file: {path}")
    if labels and file.suffix == ".txt":
        try:
            return np.loadtxt(file, dtype=np.int64, ndmin=1)
        except ValueError as error:
            raise InputError(f"embeddings.{field}", f"{path}: {error}") from None
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(
            f"embeddings.{field}", f"{path} is not a readable .npy ({error})"
        ) from None
    if labels:
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise InputError(f"embeddings.{field}", "labels must be a 1-D integer array")
        return np.asarray(array, dtype=np.int64)
    if array.ndim != 2 or not np.isfinite(array).all():
        raise InputError(f"embeddings.{field}", "features must be a finite 2-D array (n, d)")
    return np.asarray(array, dtype=np.float32)


def load_embeddings(
    train: str | None = None,
    train_labels: str | None = None,
    test: str | None = None,
    test_labels: str | None = None,
    classes: str | None = None,
) -> Dataset:
    """Features (n, d) and labels for both splits; ``classes`` is an optional comma list."""
    train_x = _read(train, "train", labels=False)
    test_x = _read(test, "test", labels=False)
    if train_x.shape[1] != test_x.shape[1]:
        raise InputError("embeddings.test", "train and test features differ in dimension")
    train_y = _read(train_labels, "train_labels", labels=True)
    test_y = _read(test_labels, "test_labels", labels=True)
    n_classes = int(max(train_y.max(initial=0), test_y.max(initial=0))) + 1
    names = tuple(classes.split(",")) if classes else tuple(str(c) for c in range(n_classes))
    return Dataset(
        "embeddings",
        names,
        train_y,
        test_y,
        train_features=train_x,
        test_features=test_x,
        options={"train": train, "test": test},
    )
