"""digits: scikit-learn's 1,797 real 8x8 handwritten digits; the embedded default, offline."""

from __future__ import annotations

import numpy as np

from alsys.data.base import Dataset

# Fixed, seeded split: the same train pool and test split on every machine.
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


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
