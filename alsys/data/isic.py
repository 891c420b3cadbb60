"""ISIC-2019: 25,331 dermoscopy images in 8 classes, from a local folder; balanced accuracy.

Expected layout under ``<root>/isic2019``: the official ``ISIC_2019_Training_GroundTruth.csv``
and the folder ``ISIC_2019_Training_Input/`` of ``<image>.jpg`` files. ISIC publishes no test
labels, so the test split is a fixed, seeded, stratified 20 % of the training data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from alsys.data.base import Dataset, DatasetUnavailable, data_root
from alsys.errors import InputError

CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")  # UNK has no training image
GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
IMAGE_FOLDER = "ISIC_2019_Training_Input"
SOURCE = "https://challenge.isic-archive.com/data/#2019 (Training Data and Training Ground Truth)"
IMAGE_SIZE = 224  # thesis 5.3.1
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def _read_labels(csv: Path) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    table = pd.read_csv(csv)
    missing = [c for c in ("image", *CLASSES) if c not in table.columns]
    if missing:
        raise InputError(str(csv), f"is not the ISIC-2019 ground truth: no column {missing[0]}")
    onehot = table[list(CLASSES)].to_numpy(dtype=np.float64)
    unlabeled = np.flatnonzero(onehot.max(axis=1) < 1)
    if unlabeled.size:
        raise InputError(str(csv), f"row {int(unlabeled[0]) + 2} has none of the 8 classes")
    return table["image"].astype(str).tolist(), onehot.argmax(axis=1).astype(np.int64)


def _read_images(folder: Path, names: list[str], size: int, show_progress: bool) -> np.ndarray:
    from PIL import Image
    from tqdm import tqdm

    images = np.empty((len(names), size, size, 3), dtype=np.uint8)
    for i, name in enumerate(
        tqdm(names, desc="isic2019 images", file=sys.stderr, disable=not show_progress)
    ):
        path = folder / f"{name}.jpg"
        if not path.is_file():
            raise DatasetUnavailable(
                "isic2019", f"image {path} listed in the ground truth is missing"
            )
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        images[i] = np.asarray(resized)
    return images


def load_isic2019(
    root: str | None = None,
    image_size: int = IMAGE_SIZE,
    test_fraction: float = TEST_FRACTION,
    split_seed: int = SPLIT_SEED,
    show_progress: bool = True,
) -> Dataset:
    folder = data_root(root) / "isic2019"
    csv, images = folder / GROUND_TRUTH, folder / IMAGE_FOLDER
    if not csv.is_file() or not images.is_dir():
        raise DatasetUnavailable(
            "isic2019",
            f"expected {csv} and the image folder {images}/; download both from {SOURCE} "
            f"and unzip them into {folder}",
        )
    from sklearn.model_selection import train_test_split  # not at import: see digits.load

    names, labels = _read_labels(csv)
    pixels = _read_images(images, names, image_size, show_progress)
    train_x, test_x, train_y, test_y = train_test_split(
        pixels, labels, test_size=test_fraction, random_state=split_seed, stratify=labels
    )
    return Dataset(
        "isic2019",
        CLASSES,
        train_y,
        test_y,
        np.ascontiguousarray(train_x),
        np.ascontiguousarray(test_x),
        options={"root": root, "image_size": image_size, "split_seed": split_seed},
    )
