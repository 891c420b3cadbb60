"""Selection spaces: where clustering strategies select (no torch here; see alsys.embed.hvae).

``simclr`` is the SimCLR embedding at D_clst/D_typ. An HVAE latent (thesis chapter 3) is named
``<model>:z<layer>:<mode>``: ``hvae`` is trained on the images, ``hvae-emb`` on the SimCLR
embeddings ("e-z_i"); z0 is the lowest layer, z2 the top; ``mean`` takes z = mu, ``rp`` one
reparameterised sample z = mu + sigma * eps, drawn once with the HVAE's seed.

Two representation baselines need no model: ``pixels``, the flattened images, and ``pca:D``,
their projection on the train pool's top D principal components (:func:`baseline_features`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from alsys.errors import InputError

if TYPE_CHECKING:
    from alsys.data import Dataset

LAYERS = 3
MODELS = {"hvae": "images", "hvae-emb": "embeddings"}  # HVAE space prefix -> what it reads
MODES = ("mean", "rp")
BASELINES = ("pixels", "pca")  # spaces computed from the images alone
VALID = "simclr, pixels, pca:<D>, or <hvae|hvae-emb>:z<0|1|2>:<mean|rp>, e.g. hvae:z2:mean"


@dataclass(frozen=True)
class Space:
    """Where clustering strategies select: SimCLR (``model`` None), an HVAE latent
    (``model`` "hvae" or "hvae-emb", with ``layer`` and ``mode``), or a baseline on the raw
    images (``model`` "pixels", or "pca" with ``dim`` components)."""

    model: str | None = None
    layer: int = 0
    mode: str = "mean"  # "mean": z = mu; "rp": z = mu + sigma * eps, drawn once (seeded)
    dim: int | None = None  # pca's number of components D

    @property
    def is_hvae(self) -> bool:
        return self.model in MODELS

    @property
    def is_baseline(self) -> bool:
        return self.model in BASELINES

    def __str__(self) -> str:
        if self.model is None:
            return "simclr"
        if self.model == "pixels":
            return "pixels"
        if self.model == "pca":
            return f"pca:{self.dim}"
        return f"{self.model}:z{self.layer}:{self.mode}"


def parse_space(text: str) -> Space:
    """``simclr``, ``pixels``, ``pca:<D>`` such as ``pca:32``, or
    ``<hvae|hvae-emb>:z<0|1|2>:<mean|rp>`` such as ``hvae:z2:mean``."""
    text = str(text)
    if text == "simclr":
        return Space()
    if text == "pixels":
        return Space("pixels")
    parts = text.split(":")
    if parts[0] == "pca":
        # One spelling per D ("pca:32", not "pca:032"): the name keys runs and shared data.
        if len(parts) != 2 or not re.fullmatch(r"[1-9][0-9]*", parts[1]):
            raise InputError("space", f"pca takes D >= 1 components, e.g. pca:32; got {text!r}")
        return Space("pca", dim=int(parts[1]))
    if (
        len(parts) != 3
        or parts[0] not in MODELS
        or parts[1] not in {f"z{j}" for j in range(LAYERS)}
        or parts[2] not in MODES
    ):
        raise InputError("space", f"expected {VALID}; got {text!r}")
    return Space(parts[0], int(parts[1][1:]), parts[2])


def check_baseline(space: Space, dataset: Dataset) -> None:
    """A baseline space the dataset can give: it needs images, and ``pca:D`` at most as many
    components as the pool has images or pixel values."""
    images = dataset.train_images
    if images is None:
        raise InputError("space", f"{space} reads images; the {dataset.name} dataset has none")
    n, n_values = images.shape[0], int(np.prod(images.shape[1:]))
    if space.model == "pca" and space.dim is not None and space.dim > min(n, n_values):
        raise InputError(
            "space",
            f"{space} asks for {space.dim} components; {dataset.name} has {n_values} pixel "
            f"values per image and {n} pool images, so D <= {min(n, n_values)}",
        )


def baseline_features(space: Space, dataset: Dataset) -> np.ndarray:
    """(n, d) float32 features of the train pool in a baseline space, not yet normalised
    (checked first by :func:`check_baseline`).

    ``pixels``: the images flattened, scaled to [0, 1] (d = H * W * C). ``pca:D``: their
    projection on the top D principal components of the pool, fitted on the pool alone (d = D).
    PCA is exact and has no randomness: the eigenvectors of the smaller Gram matrix (X^T X, or
    X X^T when the pool has fewer images than pixel values), each component's sign fixed so that
    its largest projection is positive.
    """
    images = dataset.train_images
    if images is None or space.model not in BASELINES:
        raise ValueError(f"{space} is not a baseline space of {dataset.name}")
    n = images.shape[0]
    x = images.reshape(n, -1).astype(np.float64) / 255.0
    if space.model == "pixels":
        return x.astype(np.float32)
    assert space.dim is not None
    n_values = x.shape[1]
    x -= x.mean(axis=0)
    if n >= n_values:
        _, vectors = np.linalg.eigh(x.T @ x)  # ascending eigenvalues
        projected = x @ vectors[:, ::-1][:, : space.dim]
    else:
        values, vectors = np.linalg.eigh(x @ x.T)
        top = values[::-1][: space.dim]
        projected = vectors[:, ::-1][:, : space.dim] * np.sqrt(np.maximum(top, 0.0))
    largest = projected[np.abs(projected).argmax(axis=0), np.arange(space.dim)]
    signed: np.ndarray = (projected * np.where(largest < 0, -1.0, 1.0)).astype(np.float32)
    return signed


# Rows per block when features are normalised (a bounded temporary, whatever n is).
ROW_BLOCK = 16_384


def unit_rows(x: np.ndarray, name: str = "features") -> np.ndarray:
    """(n, d) rows scaled to unit L2 norm, as a new float32 array: the one row normaliser,
    used where features enter (the loop's spaces, a strategy's ``normalize``).

    Zero-row rule: a row of zero norm has no direction, so it cannot be put on the unit sphere
    and its cosine to every other row is undefined. It is refused, an InputError naming
    ``name`` and the row, rather than kept at zero, where every distance-based strategy would
    see a point at distance 1 from all others.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(name, f"must be 2-D (n, d), got shape {x.shape}")
    out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, x.shape[0], ROW_BLOCK):
        block = out[start : start + ROW_BLOCK]
        block[...] = x[start : start + ROW_BLOCK]
        norms = np.linalg.norm(block, axis=1)
        zero = norms == 0
        if zero.any():
            row = start + int(np.flatnonzero(zero)[0])
            raise InputError(name, f"row {row} has zero norm and cannot be normalised")
        block /= norms[:, None]
    return out
