"""The user's files: arrays and index lists read with one-line errors, outputs written whole.

Every failure is an :class:`~alsys.errors.InputError` naming the command-line flag, so the CLI
prints one line and nothing half-written is left behind.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alsys.errors import InputError


def load_array(path: str, flag: str) -> npt.NDArray[Any]:
    """A .npy array, loaded without pickle; any failure is an InputError naming the flag.

    The array is memory-mapped read-only, not read into memory: a float32, L2-normalised pool
    (1.28M x 512 is 2.6 GB) is then never copied whole (see prepare_features); any other is
    copied once, block by block.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(flag, f"no such file: {path}")
    try:
        try:
            loaded = np.load(file, allow_pickle=False, mmap_mode="r")
        except ValueError:  # e.g. an empty array cannot be mapped: read it (the checks follow)
            loaded = np.load(file, allow_pickle=False, mmap_mode=None)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "python objects" in str(exc).lower():
            raise InputError(
                flag, f"{path} holds Python objects; only plain arrays are read"
            ) from None
        raise InputError(flag, f"{path} is not a readable .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise InputError(flag, f"{path} is not a readable .npy array ({exc})") from None
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise InputError(flag, f"{path} is an .npz archive; give one .npy array")
    return loaded


def read_indices(path: str, flag: str) -> npt.NDArray[np.int64]:
    """Row indices from a text file: integers separated by whitespace or commas; '#' comments."""
    file = Path(path)
    if not file.is_file():
        raise InputError(flag, f"no such file: {path}")
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(flag, f"cannot read {path} ({exc})") from None
    values: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for token in line.split("#", 1)[0].replace(",", " ").split():
            try:
                values.append(int(token))
            except ValueError:
                raise InputError(
                    flag, f"{path} line {number}: {token!r} is not an integer row index"
                ) from None
    return np.asarray(values, dtype=np.int64)


def write_atomically(path: Path, text: str) -> None:
    """Writes the whole file or nothing: a temporary file in the same folder, then a rename."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_safe(value: Any) -> Any:
    """JSON has no inf or NaN: such scores (SUP of a point sitting on a neighbour's centre is
    infinite) are written as the strings "inf", "-inf" and "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
