"""Datasets: one registry from names to loaders; each returns a :class:`Dataset`.

>>> from alsys.data import load_dataset
>>> digits = load_dataset("digits")     # offline, ships with scikit-learn
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from alsys.data.base import Dataset, DatasetUnavailable, data_root
from alsys.data.cifar import load_cifar10, load_cifar10_lt, load_cifar100, long_tail_counts
from alsys.data.digits import load as load_digits
from alsys.data.digits import load_lt as load_digits_lt
from alsys.data.embeddings import load_embeddings
from alsys.data.imagefolder import load_imagefolder
from alsys.data.isic import load_isic2019
from alsys.errors import InputError, lookup

DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "digits_lt": load_digits_lt,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "cifar10_lt": load_cifar10_lt,
    "isic2019": load_isic2019,
    "embeddings": load_embeddings,
    "imagefolder": load_imagefolder,
}


def dataset_loader(name: str) -> Callable[..., Dataset]:
    """The loader of ``name``; an unknown name lists the valid ones."""
    return lookup(DATASETS, name, "dataset")


def check_dataset_options(name: str, options: dict[str, Any]) -> None:
    """An unknown dataset, or an option its loader does not take, is an InputError listing the
    valid ones (the option's value is the loader's to check, when it loads)."""
    loader = dataset_loader(name)
    if not isinstance(options, dict):
        raise InputError("dataset_options", f"must be a mapping of {name}'s loader options")
    accepted = list(inspect.signature(loader).parameters)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(
            f"dataset_options.{unknown[0]}",
            f"unknown option; {name} takes: {', '.join(accepted) or 'none'}",
        )


def load_dataset(name: str, **options: Any) -> Dataset:
    """The dataset ``name`` with its loader's ``options``; unknown names or options list the
    valid ones."""
    check_dataset_options(name, options)
    return dataset_loader(name)(**options)


__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetUnavailable",
    "check_dataset_options",
    "data_root",
    "dataset_loader",
    "load_dataset",
    "long_tail_counts",
]
