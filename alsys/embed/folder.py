"""SimCLR embeddings of a folder of your own images, trained once per folder content.

The store entry is keyed by the folder's fingerprint (relative names, sizes and mtimes of its
image files, :func:`alsys.data.imagefolder.scan_folder`), the image size, the SimCLR settings,
the seed and the code version; not by where the folder lies, so a moved folder is not trained
again. An entry holds the embeddings (n, 512), the relative paths of their rows and the image
files that could not be decoded, so a later round decodes nothing.

Imports torch; ``import alsys`` does not import this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alsys.data.imagefolder import (
    READER_VERSION,
    FolderScan,
    check_image_size,
    check_not_empty,
    read_images,
)
from alsys.embed import code_version
from alsys.embed.simclr import SimCLRConfig, embed_images, preset, train_simclr
from alsys.embed.store import EmbeddingStore
from alsys.errors import InputError

EMBEDDING_DIM = 512  # the backbone's features, as the SSL linear probe reads them
SEED = 0  # one representation per folder, whatever seed the selection uses


@dataclass(frozen=True)
class FolderEmbeddings:
    """``embeddings`` (n, 512) float32, row i the image at ``paths[i]`` (relative to the
    folder); ``unreadable`` the image files skipped; ``trained`` whether this call trained
    SimCLR (else it read the store), in ``seconds``; ``entry`` the store folder."""

    paths: tuple[str, ...]
    embeddings: np.ndarray
    unreadable: tuple[str, ...]
    trained: bool
    seconds: float
    entry: Path
    config: SimCLRConfig


def folder_config(epochs: int | None = None) -> SimCLRConfig:
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)):
        raise InputError("--epochs", f"must be an integer, got {epochs!r}")
    if epochs is not None and epochs < 1:
        raise InputError("--epochs", f"must be at least 1, got {epochs}")
    return preset("imagefolder", epochs)


def folder_embeddings(
    scan: FolderScan,
    image_size: int,
    epochs: int | None = None,
    store: EmbeddingStore | None = None,
    show_progress: bool = False,
) -> FolderEmbeddings:
    """The folder's SimCLR embeddings, from the store or trained now (and stored)."""
    check_image_size(image_size)
    config = folder_config(epochs)
    store = store or EmbeddingStore()
    spec = {
        "dataset": "imagefolder",
        "folder": scan.fingerprint,
        "reader": READER_VERSION,
        "image_size": image_size,
        "simclr": config.as_dict(),
        "dims": [EMBEDDING_DIM],
        "seed": SEED,
        "code": code_version(),
    }

    def train() -> dict[str, np.ndarray]:
        # An InputError here leaves nothing in the store.
        paths, images, unreadable = read_images(scan, image_size, show_progress)
        check_not_empty(scan, len(paths))
        if len(paths) < 2:
            raise InputError("--images", f"{scan.root} holds one readable image; SimCLR needs two")
        model, losses = train_simclr(images, config, [EMBEDDING_DIM], SEED, True, show_progress)
        return {
            "embeddings": embed_images(model, images, config),
            "paths": np.asarray(paths, dtype=str),
            "unreadable": np.asarray(unreadable, dtype=str).reshape(-1),
            "loss": np.asarray(losses),
        }

    before, start = store.computed, time.perf_counter()
    arrays = store.get_or_compute(spec, train)
    seconds = time.perf_counter() - start
    return FolderEmbeddings(
        paths=tuple(str(p) for p in arrays["paths"]),
        embeddings=np.asarray(arrays["embeddings"], dtype=np.float32),
        unreadable=tuple(str(p) for p in arrays["unreadable"]),
        trained=store.computed > before,
        seconds=seconds,
        entry=store.path(spec),
        config=config,
    )


def describe(found: FolderEmbeddings, image_size: int) -> str:
    """The one line saying whether SimCLR trained or the store answered."""
    config, n = found.config, len(found.paths)
    if found.trained:
        return (
            f"embeddings: trained SimCLR ({config.backbone}, {config.epochs} epochs, "
            f"{image_size} px) on {n:,} images in {found.seconds:.1f} s; stored in {found.entry}"
        )
    return f"embeddings: read from the store ({found.entry}, {n:,} images); SimCLR not trained"


__all__ = ["FolderEmbeddings", "describe", "folder_config", "folder_embeddings"]
