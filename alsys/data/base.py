"""The dataset record every loader returns."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alsys.errors import InputError

ImageArray = npt.NDArray[np.uint8]
LabelArray = npt.NDArray[np.int64]


class DatasetUnavailable(InputError):
    """A dataset's files are missing and cannot be fetched here; says what to get and where."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"dataset {name}", problem)


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where datasets live: ``root``, else $ALSYS_DATA, else ~/.cache/alsys/data (absolute)."""
    chosen = root or os.environ.get("ALSYS_DATA") or Path.home() / ".cache" / "alsys" / "data"
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class Dataset:
    """A train pool and a test split with integer labels.

    Image datasets fill ``train_images``/``test_images`` (N, H, W, C) uint8; bring-your-own
    embedding datasets fill ``train_features``/``test_features`` (N, d) float32 instead.
    """

    name: str
    classes: tuple[str, ...]
    train_labels: LabelArray
    test_labels: LabelArray
    train_images: ImageArray | None = None
    test_images: ImageArray | None = None
    train_features: npt.NDArray[np.float32] | None = None
    test_features: npt.NDArray[np.float32] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        has_images = self.train_images is not None and self.test_images is not None
        has_features = self.train_features is not None and self.test_features is not None
        if not (has_images or has_features):
            raise InputError(self.name, "a dataset needs images or features for both splits")
        for split, labels in (("train", self.train_labels), ("test", self.test_labels)):
            images = self.train_images if split == "train" else self.test_images
            features = self.train_features if split == "train" else self.test_features
            data = images if images is not None else features
            assert data is not None
            if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
                raise InputError(
                    f"{self.name}.{split}_labels",
                    f"{labels.shape[0]} labels for {data.shape[0]} {split} points",
                )
            if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
                raise InputError(
                    f"{self.name}.{split}_labels", f"labels must lie in [0, {len(self.classes)})"
                )

    @property
    def has_images(self) -> bool:
        return self.train_images is not None

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_train(self) -> int:
        return int(self.train_labels.shape[0])
