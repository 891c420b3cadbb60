"""imagefolder: a folder of your own images, read recursively, with optional ``path,label`` CSV.

- Images: ``.png``, ``.jpg``/``.jpeg`` and ``.webp`` files anywhere under the folder, in sorted
  order of their paths relative to it (POSIX separators), each decoded with Pillow, turned
  upright by its EXIF orientation, converted to RGB and resized to ``image_size`` x
  ``image_size``.
- Skipped, and counted on one line of stderr: files with another suffix ("not images") and
  image files Pillow cannot decode ("unreadable"). Hidden files and folders (a leading dot,
  like ``.DS_Store`` or ``.ipynb_checkpoints``) are not looked at.
- A folder without one readable image is an InputError.
- Labels: any file ``--labels`` reads (:mod:`alsys.label_files`): a ``path,label`` CSV with
  paths relative to the folder, or a Label Studio export.

The folder's fingerprint (relative names, sizes and modification times of its image files)
lets the embedding store key an embedding by the folder's content without decoding anything.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alsys.data.base import Dataset, ImageArray
from alsys.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
DEFAULT_IMAGE_SIZE = 32  # CIFAR's side: small enough for SimCLR on a CPU
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 512
# Bumped whenever decoding or resizing changes: part of every embedding key of a folder.
READER_VERSION = 1
# A fixed, seeded split for the Dataset loader (as digits).
TEST_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True)
class FolderScan:
    """What a folder holds, from names and ``stat`` alone (nothing decoded).

    Attributes:
        root: the folder, absolute.
        image_files: relative POSIX paths of the files with an image suffix, sorted.
        other_files: relative paths of the other (non-hidden) files, sorted.
        fingerprint: SHA-256 over each image file's relative path, size and mtime (ns).
    """

    root: Path
    image_files: tuple[str, ...]
    other_files: tuple[str, ...]
    fingerprint: str


@dataclass(frozen=True)
class ImageFolder:
    """The readable images of a folder: ``images`` (n, S, S, 3) uint8 in the order of
    ``paths`` (relative POSIX paths), and the image files that could not be decoded."""

    root: Path
    paths: tuple[str, ...]
    images: ImageArray
    unreadable: tuple[str, ...]


def check_image_size(size: int, flag: str = "--image-size") -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise InputError(flag, f"must be an integer, got {size!r}")
    if not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise InputError(
            flag, f"must lie in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}] pixels, got {size}"
        )
    return size


def scan_folder(folder: str | os.PathLike[str], flag: str = "--images") -> FolderScan:
    """Walks ``folder`` recursively (hidden entries skipped, symlinked folders not followed)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(flag, f"no such folder: {folder}")
    root = root.resolve()
    images: list[tuple[str, os.stat_result]] = []
    others: list[str] = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            full = Path(here) / name
            relative = full.relative_to(root).as_posix()
            if name.lower().endswith(IMAGE_SUFFIXES):
                try:
                    images.append((relative, full.stat()))
                except OSError:  # vanished or a dangling link: cannot be read
                    others.append(relative)
            else:
                others.append(relative)
    images.sort(key=lambda item: item[0])
    digest = hashlib.sha256()
    for relative, stat in images:
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return FolderScan(root, tuple(r for r, _ in images), tuple(sorted(others)), digest.hexdigest())


def open_upright(path: Path, size: int) -> Any:
    """The image at ``path`` as an upright RGB PIL image (EXIF orientation applied), decoded
    at a reduced scale when JPEG allows one at least ``size`` px; ``None`` when Pillow cannot
    decode it."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def read_image(path: Path, size: int) -> np.ndarray | None:
    """(size, size, 3) uint8, or ``None`` when Pillow cannot decode the file."""
    from PIL import Image

    rgb = open_upright(path, size)
    if rgb is None:
        return None
    return np.asarray(rgb.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def read_images(
    scan: FolderScan, size: int, show_progress: bool = False
) -> tuple[tuple[str, ...], ImageArray, tuple[str, ...]]:
    """The readable images of ``scan``: their paths, pixels (n, size, size, 3), and the paths
    of the image files that could not be decoded."""
    from tqdm import tqdm

    paths: list[str] = []
    pixels: list[np.ndarray] = []
    unreadable: list[str] = []
    for relative in tqdm(
        scan.image_files, desc="reading images", file=sys.stderr, disable=not show_progress
    ):
        image = read_image(scan.root / relative, size)
        if image is None:
            unreadable.append(relative)
        else:
            paths.append(relative)
            pixels.append(image)
    stacked = np.stack(pixels) if pixels else np.zeros((0, size, size, 3), dtype=np.uint8)
    return tuple(paths), stacked, tuple(unreadable)


def skipped_line(scan: FolderScan, unreadable: Iterable[str], flag: str = "--images") -> str:
    """One line counting what was skipped (with a few names), or "" when nothing was."""
    unreadable = list(unreadable)
    parts = []
    if scan.other_files:
        parts.append(f"{len(scan.other_files)} not images ({_examples(scan.other_files)})")
    if unreadable:
        parts.append(f"{len(unreadable)} unreadable ({_examples(unreadable)})")
    if not parts:
        return ""
    total = len(scan.other_files) + len(unreadable)
    return f"{flag}: skipped {total} files in {scan.root}: {'; '.join(parts)}"


def _examples(names: Iterable[str], shown: int = 3) -> str:
    names = list(names)
    more = f", +{len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def check_not_empty(scan: FolderScan, n_readable: int, flag: str = "--images") -> None:
    if n_readable == 0:
        found = (
            f"{len(scan.image_files)} image files, none readable"
            if scan.image_files
            else f"no {'/'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} files"
        )
        raise InputError(flag, f"{scan.root} holds no readable image ({found})")


def read_image_folder(
    folder: str | os.PathLike[str],
    image_size: int = DEFAULT_IMAGE_SIZE,
    show_progress: bool = False,
    report_skipped: bool = True,
) -> ImageFolder:
    """The folder's readable images; what was skipped is counted on one line of stderr."""
    check_image_size(image_size)
    scan = scan_folder(folder)
    paths, images, unreadable = read_images(scan, image_size, show_progress)
    line = skipped_line(scan, unreadable)
    if line and report_skipped:
        print(f"alsys: {line}", file=sys.stderr)
    check_not_empty(scan, len(paths))
    return ImageFolder(scan.root, paths, images, unreadable)


def load_imagefolder(
    folder: str | None = None, labels: str | None = None, image_size: int = DEFAULT_IMAGE_SIZE
) -> Dataset:
    """A Dataset from a fully labeled folder: every readable image needs a row in ``labels``;
    a fixed seeded 80/20 split (stratified when every class has two images). To choose which
    images to label first, use ``alsys select --images`` instead."""
    from sklearn.model_selection import train_test_split

    if folder is None or labels is None:
        raise InputError(
            "imagefolder", "needs the options folder=<images folder> and labels=<path,label CSV>"
        )
    from alsys.label_paths import PoolIndex, read_labels

    data = read_image_folder(folder, image_size)
    pool = PoolIndex(
        data.paths, [data.root / p for p in data.paths], f"the folder {data.root}", data.root
    )
    try:
        read = read_labels([labels], pool)
    except InputError as error:
        raise InputError("imagefolder.labels", error.problem) from None
    missing = [p for p, c in zip(data.paths, read.labels, strict=True) if c < 0]
    if missing:
        raise InputError(
            "imagefolder.labels",
            f"{len(missing)} images have no label (first: {missing[0]}); a dataset needs all",
        )
    classes, y = read.classes, read.labels
    if len(y) < 2:
        raise InputError("imagefolder", "a dataset needs at least two images")
    n_test = int(np.ceil(TEST_FRACTION * len(y)))
    stratify = y if np.bincount(y).min() >= 2 and n_test >= len(classes) else None
    train_x, test_x, train_y, test_y = train_test_split(
        data.images, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=stratify
    )
    return Dataset(
        name="imagefolder",
        classes=classes,
        train_labels=train_y,
        test_labels=test_y,
        train_images=np.ascontiguousarray(train_x),
        test_images=np.ascontiguousarray(test_x),
        options={"folder": str(data.root), "image_size": image_size},
    )
