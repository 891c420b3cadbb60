"""CIFAR-10, CIFAR-100 (torchvision's archives and checksums) and CIFAR-10-LT.

The archives are fetched with torchvision's downloader into the data root and checked against
torchvision's MD5 sums; the unpacked batches (the official pickled format) are read directly.
"""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from alsys.data.base import Dataset, DatasetUnavailable, data_root
from alsys.errors import InputError

# Thesis 5.3.1: an imbalance ratio of 50 between the largest and the smallest class.
DEFAULT_IMBALANCE_RATIO = 50.0


def _torchvision_class(name: str) -> Any:
    from torchvision import datasets

    return datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100


def _ensure_files(name: str, root: Path, download: bool, verify: bool) -> Path:
    spec = _torchvision_class(name)
    folder: Path = root / spec.base_folder
    files = [*spec.train_list, *spec.test_list, [spec.meta["filename"], spec.meta["md5"]]]
    missing = [f for f, _ in files if not (folder / f).is_file()]
    if missing:
        where = f"{spec.url} (unpacked into {root})"
        if not download:
            raise DatasetUnavailable(name, f"{folder / missing[0]} is missing; get {where}")
        from torchvision.datasets.utils import download_and_extract_archive

        created = [p for p in (root, *root.parents) if not p.exists()]  # ours to remove
        try:
            download_and_extract_archive(
                spec.url, str(root), filename=spec.filename, md5=spec.tgz_md5
            )
        except Exception as error:  # no network, a proxy, a bad archive: all say the same
            (root / spec.filename).unlink(missing_ok=True)  # a partial archive is never kept
            for folder_made in created:  # nor the empty folders made for it
                with contextlib.suppress(OSError):
                    folder_made.rmdir()
            raise DatasetUnavailable(
                name, f"cannot download {where}: {error}. Fetch it elsewhere and unpack it there"
            ) from None
    if verify:
        from torchvision.datasets.utils import check_integrity

        for filename, md5 in files:
            if not check_integrity(str(folder / filename), md5):
                raise DatasetUnavailable(
                    name,
                    f"{folder / filename} fails its MD5 check; delete it to fetch it again "
                    "(or pass verify=False for a deliberately re-packed copy)",
                )
    return folder


class _ArraysOnly(pickle.Unpickler):
    """Reads the official CIFAR batches (pickled dicts of lists, bytes and numpy arrays) and
    refuses every other global, so a tampered file cannot run code; the MD5 check comes first
    unless verify=False."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.numeric", "_frombuffer"),  # protocol-5 pickles of numpy 2
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _read_batch(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        batch: dict[str, Any] = _ArraysOnly(handle, encoding="latin1").load()
    return batch


def _load_split(folder: Path, files: list[list[str]], label_key: str) -> tuple[Any, Any]:
    images, labels = [], []
    for filename, _ in files:
        try:
            batch = _read_batch(folder / filename)
        except (pickle.UnpicklingError, EOFError, ValueError) as error:
            raise DatasetUnavailable(
                folder.name, f"{folder / filename} is not a CIFAR batch ({error})"
            ) from None
        data = np.asarray(batch["data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def load_cifar(
    name: str, root: str | None = None, download: bool = True, verify: bool = True
) -> Dataset:
    """cifar10 or cifar100: 50,000 train and 10,000 test images, (N, 32, 32, 3) uint8."""
    spec = _torchvision_class(name)
    folder = _ensure_files(name, data_root(root), download, verify)
    label_key = "labels" if name == "cifar10" else "fine_labels"
    train_x, train_y = _load_split(folder, spec.train_list, label_key)
    test_x, test_y = _load_split(folder, spec.test_list, label_key)
    classes = tuple(_read_batch(folder / spec.meta["filename"])[spec.meta["key"]])
    return Dataset(name, classes, train_y, test_y, train_x, test_x, options={"root": root})


def load_cifar10(root: str | None = None, download: bool = True, verify: bool = True) -> Dataset:
    return load_cifar("cifar10", root, download, verify)


def load_cifar100(root: str | None = None, download: bool = True, verify: bool = True) -> Dataset:
    return load_cifar("cifar100", root, download, verify)


def long_tail_counts(class_sizes: np.ndarray, imbalance_ratio: float) -> np.ndarray:
    """Exponential profile n_c = n_max * ratio^(-c / (C - 1)), at most the class's size."""
    n_classes = class_sizes.shape[0]
    n_max = int(class_sizes.max())
    exponents = np.arange(n_classes) / max(1, n_classes - 1)
    counts = np.floor(n_max * imbalance_ratio ** (-exponents)).astype(np.int64)
    capped: np.ndarray = np.minimum(counts, class_sizes)
    return capped


def check_imbalance_ratio(dataset: str, imbalance_ratio: Any) -> float:
    """``imbalance_ratio`` as a float; anything but a finite number >= 1 is an InputError."""
    if (
        isinstance(imbalance_ratio, bool)
        or not isinstance(imbalance_ratio, int | float)
        or not np.isfinite(imbalance_ratio)
        or imbalance_ratio < 1
    ):
        raise InputError(
            f"{dataset}.imbalance_ratio", f"must be a number >= 1, got {imbalance_ratio!r}"
        )
    return float(imbalance_ratio)


def long_tail_subset(labels: np.ndarray, imbalance_ratio: float, seed: int) -> np.ndarray:
    """Sorted train indices of the long-tailed subset: a function of the ratio and the seed."""
    n_classes = int(labels.max()) + 1
    counts = long_tail_counts(np.bincount(labels, minlength=n_classes), imbalance_ratio)
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[: counts[c]] for c in range(n_classes)]
    return np.sort(np.concatenate(keep))


def load_cifar10_lt(
    imbalance_ratio: float = DEFAULT_IMBALANCE_RATIO,
    subset_seed: int = 0,
    root: str | None = None,
    download: bool = True,
    verify: bool = True,
) -> Dataset:
    """CIFAR-10 with an exponentially long-tailed train pool; the test split stays balanced."""
    check_imbalance_ratio("cifar10_lt", imbalance_ratio)
    full = load_cifar("cifar10", root, download, verify)
    assert full.train_images is not None
    keep = long_tail_subset(full.train_labels, imbalance_ratio, subset_seed)
    return Dataset(
        "cifar10_lt",
        full.classes,
        full.train_labels[keep],
        full.test_labels,
        full.train_images[keep],
        full.test_images,
        options={**full.options, "imbalance_ratio": imbalance_ratio, "subset_seed": subset_seed},
    )
