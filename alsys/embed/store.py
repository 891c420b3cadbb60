"""The embedding store: compute once, share everywhere, never read a damaged file.

An entry is a folder named by a hash of everything that determines its arrays (dataset and
subset, model, dimensions, mode, epochs, seed, code version). It holds one ``.npy`` per array
and a ``manifest.json`` with the spec and each file's SHA-256.

- Writes are atomic: the entry is built in a temporary folder and renamed into place.
- Reads verify every checksum; a corrupt or truncated entry is removed and rebuilt.
- A per-key file lock makes concurrent requests (threads, processes, nodes on a shared
  filesystem with working locks) compute an entry once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

MANIFEST = "manifest.json"


def default_root() -> Path:
    """$ALSYS_STORE, else ~/.cache/alsys/embeddings; always absolute."""
    chosen = os.environ.get("ALSYS_STORE") or Path.home() / ".cache" / "alsys" / "embeddings"
    return Path(chosen).expanduser().resolve()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def spec_key(spec: Mapping[str, Any]) -> str:
    """A stable hash of a JSON-able spec."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class StoreWriteError(OSError):
    """An entry could not be written (a full disk, a quota, a read-only folder); nothing of it
    was kept, so no later read can mistake a partial entry for a valid one."""

    def __init__(self, errno: int | None, message: str) -> None:
        super().__init__(message)
        self.errno, self.strerror = errno, message  # str() is the message alone, one line


class MissingEntry(LookupError):
    """A read-only store was asked for an entry it does not hold."""


class EmbeddingStore:
    """``compute=False`` makes a read-only view: a missing entry raises MissingEntry instead of
    being computed (the sweep driver uses it to find out which trainings are still needed)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, compute: bool = True) -> None:
        self.root = Path(root).expanduser().resolve() if root else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.compute = compute
        self.computed = 0  # entries this instance built (not loaded)

    def path(self, spec: Mapping[str, Any]) -> Path:
        return self.root / spec_key(spec)

    def load(self, spec: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
        """The entry's arrays if it exists and every checksum matches; removes a damaged one."""
        folder = self.path(spec)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            arrays = {}
            for name, meta in manifest["files"].items():
                file = folder / f"{name}.npy"
                if _sha256(file) != meta["sha256"]:
                    raise ValueError(f"{file} fails its checksum")
                arrays[name] = np.load(file, allow_pickle=False)
            return arrays
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
            print(f"alsys store: rebuilding damaged entry {folder.name}: {error}", file=sys.stderr)
            shutil.rmtree(folder, ignore_errors=True)
            return None

    def _write(self, spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        folder = self.path(spec)
        try:
            staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{folder.name}.tmp-"))
        except OSError as error:
            raise StoreWriteError(
                error.errno, f"cannot write to the embedding store {self.root}: {error.strerror}"
            ) from error
        try:
            files = {}
            for name, array in arrays.items():
                file = staging / f"{name}.npy"
                np.save(file, np.ascontiguousarray(array), allow_pickle=False)
                files[name] = {
                    "sha256": _sha256(file),
                    "shape": list(array.shape),
                    "dtype": str(array.dtype),
                }
            manifest = {"spec": spec, "files": files, "created": time.time()}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
            shutil.rmtree(folder, ignore_errors=True)  # a damaged leftover, under the lock
            os.replace(staging, folder)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise StoreWriteError(
                error.errno,
                f"could not write embedding entry {folder.name} to {self.root}: "
                f"{error.strerror or f'{error} (is the disk full?)'}; nothing of it was kept",
            ) from error
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def get_or_compute(
        self, spec: Mapping[str, Any], compute: Callable[[], Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """The entry for ``spec``, computing it (once, under a lock) when absent or damaged."""
        found = self.load(spec)
        if found is not None:
            return found
        if not self.compute:
            raise MissingEntry(str(self.path(spec)))
        with FileLock(str(self.path(spec)) + ".lock"):
            found = self.load(spec)  # another caller may have built it while we waited
            if found is not None:
                return found
            arrays = {name: np.asarray(a) for name, a in compute().items()}
            self._write(spec, arrays)
            self.computed += 1
            return arrays
