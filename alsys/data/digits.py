"""digits: scikit-learn's 1,797 real 8x8 handwritten digits; the embedded default, offline.

digits_lt: the same train pool cut to CIFAR-10-LT's exponential class profile, the same
balanced test split: an imbalanced dataset that runs anywhere in seconds.
"""

from __future__ import annotations

import numpy as np

from alsys.data.base import Dataset
from alsys.data.cifar import check_imbalance_ratio, long_tail_counts, long_tail_subset
from alsys.errors import InputError

# Fixed, seeded split: the same train pool and test split on every machine.
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
# digits_lt (ours): ~144 images per class leave no room for CIFAR-10-LT's ratio of 50; 10 keeps
# 14 of the smallest class. The seed fixes which images of each class are kept.
DIGITS_LT_IMBALANCE_RATIO = 10.0
DIGITS_LT_SUBSET_SEED = 0


def load() -> Dataset:
    """1,437 train / 360 test images, (N, 8, 8, 1) uint8 (pixel values 0-16 scaled to 0-255)."""
    # Imported here: scikit-learn costs a sweep's every trial worker ~1.3 CPU-s to import, and
    # workers get their data from the object store, never from this loader.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images,
        labels,
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=labels,
    )
    return Dataset(
        name="digits",
        classes=tuple(str(c) for c in range(10)),
        train_labels=train_y,
        test_labels=test_y,
        train_images=np.ascontiguousarray(train_x),
        test_images=np.ascontiguousarray(test_x),
    )


def load_lt(imbalance_ratio: float = DIGITS_LT_IMBALANCE_RATIO) -> Dataset:
    """digits with a long-tailed train pool (class c keeps n_max * ratio^(-c / 9) images, at
    most its own); the test split is digits' own, balanced. Headline metric: balanced accuracy."""
    ratio = check_imbalance_ratio("digits_lt", imbalance_ratio)
    full = load()
    assert full.train_images is not None
    sizes = np.bincount(full.train_labels, minlength=full.n_classes)
    counts = long_tail_counts(sizes, ratio)
    if counts.min() < 1:
        raise InputError(
            "digits_lt.imbalance_ratio",
            f"{imbalance_ratio!r} leaves class {int(counts.argmin())} without images; "
            f"it must stay below {int(sizes.max())}, the largest class's size",
        )
    keep = long_tail_subset(full.train_labels, ratio, DIGITS_LT_SUBSET_SEED)
    return Dataset(
        name="digits_lt",
        classes=full.classes,
        train_labels=full.train_labels[keep],
        test_labels=full.test_labels,
        train_images=np.ascontiguousarray(full.train_images[keep]),
        test_images=full.test_images,
        options={"imbalance_ratio": ratio},
    )
