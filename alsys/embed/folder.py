"""Embeddings of a folder of your own images, computed once per folder content.

- ``simclr`` (the default): SimCLR trained on the folder itself, offline, 512 features.
- a pretrained encoder (:mod:`alsys.embed.encoders`): its own preprocessing, in batches with a
  progress bar, on the GPU when there is one.

The store entry is keyed by the folder's fingerprint (relative names, sizes and mtimes of its
image files, :func:`alsys.data.imagefolder.scan_folder`), the image size, the encoder (SimCLR's
settings and seed, or the pretrained encoder's name, weights SHA-256 and library version) and
the code version; not by where the folder lies, so a moved folder is not embedded again. An
entry holds the embeddings (n, d), the relative paths of their rows and the image files that
could not be decoded, so a later round decodes nothing.

Imports torch; ``import alsys`` does not import this module.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from alsys.data.imagefolder import (
    READER_VERSION,
    FolderScan,
    check_image_size,
    check_not_empty,
    open_upright,
    read_images,
)
from alsys.embed import code_version
from alsys.embed.encoders import Loaded, get_encoder, weights_file, weights_sha256
from alsys.embed.simclr import SimCLRConfig, embed_images, preset, train_simclr
from alsys.embed.store import EmbeddingStore
from alsys.errors import InputError

EMBEDDING_DIM = 512  # the backbone's features, as the SSL linear probe reads them
SEED = 0  # one representation per folder, whatever seed the selection uses


@dataclass(frozen=True)
class FolderEmbeddings:
    """``embeddings`` (n, d) float32, row i the image at ``paths[i]`` (relative to the
    folder); ``unreadable`` the image files skipped; ``trained`` whether this call computed
    the embeddings (else it read the store), in ``seconds``; ``entry`` the store folder;
    ``config`` SimCLR's settings, or ``encoder`` the pretrained encoder's one-line title."""

    paths: tuple[str, ...]
    embeddings: np.ndarray
    unreadable: tuple[str, ...]
    trained: bool
    seconds: float
    entry: Path
    config: SimCLRConfig | None = None
    encoder: str = ""


@cache
def encoders_version() -> str:
    """alsys's version plus a hash of the code that loads and runs the pretrained encoders."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in ("encoders.py", "folder.py"):
        digest.update((here / name).read_bytes())
    return f"{code_version()}+{digest.hexdigest()[:12]}"


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

    return _from_store(store, spec, train, config=config)


def _from_store(
    store: EmbeddingStore,
    spec: dict[str, Any],
    compute: Callable[[], dict[str, np.ndarray]],
    config: SimCLRConfig | None = None,
    encoder: str = "",
) -> FolderEmbeddings:
    before, start = store.computed, time.perf_counter()
    arrays = store.get_or_compute(spec, compute)
    seconds = time.perf_counter() - start
    return FolderEmbeddings(
        paths=tuple(str(p) for p in arrays["paths"]),
        embeddings=np.asarray(arrays["embeddings"], dtype=np.float32),
        unreadable=tuple(str(p) for p in arrays["unreadable"]),
        trained=store.computed > before,
        seconds=seconds,
        entry=store.path(spec),
        config=config,
        encoder=encoder,
    )


def pretrained_embeddings(
    scan: FolderScan,
    name: str,
    weights: str | None = None,
    store: EmbeddingStore | None = None,
    show_progress: bool = False,
    batch_size: int = 32,
) -> FolderEmbeddings:
    """The folder's embeddings by a pretrained encoder, from the store or computed now."""
    encoder = get_encoder(name)
    file = weights_file(encoder, weights)
    store = store or EmbeddingStore()
    spec = {
        "dataset": "imagefolder",
        "folder": scan.fingerprint,
        "reader": READER_VERSION,
        "encoder": encoder.name,
        "weights_sha256": weights_sha256(file, store.root),
        "image_size": encoder.image_size,
        "library": f"{encoder.package} {version(encoder.package)}",
        "code": encoders_version(),
    }

    def compute() -> dict[str, np.ndarray]:
        loaded = encoder.build(file)
        paths, embeddings, unreadable = embed_files(
            scan, loaded, encoder.image_size, batch_size, show_progress
        )
        check_not_empty(scan, len(paths))
        return {
            "embeddings": embeddings,
            "paths": np.asarray(paths, dtype=str),
            "unreadable": np.asarray(unreadable, dtype=str).reshape(-1),
        }

    title = f"{encoder.title}, {encoder.image_size} px, weights {file.name}"
    return _from_store(store, spec, compute, encoder=title)


def embed_files(
    scan: FolderScan, loaded: Loaded, size: int, batch_size: int, show_progress: bool
) -> tuple[list[str], np.ndarray, list[str]]:
    """Every image file of ``scan`` through the encoder, ``batch_size`` at a time: the paths
    read, their features (n, d) float32, and the files Pillow could not decode."""
    import torch
    from tqdm import tqdm

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loaded.modules.to(device).eval()
    paths: list[str] = []
    unreadable: list[str] = []
    blocks: list[np.ndarray] = []
    files = scan.image_files
    with tqdm(
        total=len(files),
        desc="embedding images",
        unit="img",
        file=sys.stderr,
        disable=not show_progress,
    ) as bar:
        for start in range(0, len(files), batch_size):
            batch = []
            for relative in files[start : start + batch_size]:
                image = open_upright(scan.root / relative, size)
                if image is None:
                    unreadable.append(relative)
                    continue
                paths.append(relative)
                batch.append(loaded.transform(image))
            if batch:
                with torch.inference_mode():
                    out = loaded.features(torch.stack(batch).to(device))
                blocks.append(out.float().cpu().numpy().reshape(len(batch), -1))
            bar.update(min(batch_size, len(files) - start))
    width = blocks[0].shape[1] if blocks else 0
    stacked = np.concatenate(blocks) if blocks else np.zeros((0, width), np.float32)
    return paths, stacked.astype(np.float32, copy=False), unreadable


def describe(found: FolderEmbeddings, image_size: int) -> str:
    """The one line saying whether the embeddings were computed or the store answered."""
    n = len(found.paths)
    if found.config is None:
        if found.trained:
            return (
                f"embeddings: {found.encoder} on {n:,} images in {found.seconds:.1f} s; "
                f"stored in {found.entry}"
            )
        return f"embeddings: read from the store ({found.entry}, {n:,} images); nothing embedded"
    config = found.config
    if found.trained:
        return (
            f"embeddings: trained SimCLR ({config.backbone}, {config.epochs} epochs, "
            f"{image_size} px) on {n:,} images in {found.seconds:.1f} s; stored in {found.entry}"
        )
    return f"embeddings: read from the store ({found.entry}, {n:,} images); SimCLR not trained"


__all__ = [
    "FolderEmbeddings",
    "describe",
    "folder_config",
    "folder_embeddings",
    "pretrained_embeddings",
]
