"""The labels of a pool by path: each ``--labels`` row found among the pool's images.

A row's path may be written

- relative to the images folder (or as ``--paths`` lists it);
- absolute, inside the folder;
- as a Label Studio local-files URL (``/data/local-files/?d=<path below the document root>``,
  percent-encoded), decoded as Label Studio decodes it and joined to the document root that
  the task was written against (recorded in the task's ``meta``), to
  ``$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``, or, when neither finds it, to the one root under
  which the path names exactly one image of the pool.

A path given twice with the same label is accepted, with two labels it is an error naming both
rows; a row without a label is skipped and counted. Every other problem is an
:class:`~alsys.errors.InputError` whose message says what the path is and where it lies.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from alsys.errors import InputError
from alsys.label_files import FLAG, LabelRow, read_label_file

LS_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
LS_URL = "/data/local-files/?d="


def normalize_path(text: str) -> str:
    """A path as written in a list or CSV, compared by its normalised POSIX form."""
    text = text.strip()
    return posixpath.normpath(text) if text else text


def _absolute(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(Path(path).expanduser()))


class PoolIndex:
    """Where each pool row's image lies: ``names`` (n,) as the pool names them (relative to
    ``folder`` for an images folder), ``files`` (n,) absolute. ``folder`` is the images
    folder (``None`` for ``--features``/``--paths``); ``why_not`` says why a path inside it is
    not a row (e.g. "Pillow cannot read it")."""

    def __init__(
        self,
        names: Sequence[str],
        files: Sequence[Path],
        where: str,
        folder: Path | None = None,
        why_not: Mapping[str, str] | None = None,
    ) -> None:
        self.names, self.files, self.where = tuple(names), tuple(files), where
        self.folder, self.why_not = folder, dict(why_not or {})
        self._by_name = {normalize_path(n): i for i, n in enumerate(self.names)}
        self._by_file = {_absolute(f): i for i, f in enumerate(self.files)}

    def find(self, row: LabelRow) -> int:
        """The pool row of ``row.path``; an InputError saying truly where it lies otherwise."""
        written = row.path.strip()
        if LS_URL.split("?")[0] in written and "?" in written:
            return self._find_url(row, written)
        if os.path.isabs(os.path.expanduser(written)):
            found = self._by_file_of(written)
            if found is None:
                raise InputError(FLAG, f"{row.at}: {self._describe(written)}")
            return found
        name = normalize_path(written)
        if name in self._by_name:
            return self._by_name[name]
        if self.folder is not None:
            reason = self.why_not.get(name) or _missing(self.folder / name)
            raise InputError(
                FLAG,
                f"{row.at}: {name!r} is not among the readable images of {self.where} ({reason})",
            )
        raise InputError(FLAG, f"{row.at}: {name!r} is not among {self.where}")

    def _by_file_of(self, path: str | Path) -> int | None:
        absolute = _absolute(path)
        if absolute in self._by_file:
            return self._by_file[absolute]
        try:
            return self._by_file.get(str(Path(absolute).resolve()))
        except OSError:
            return None

    def _describe(self, path: str) -> str:
        """Why an absolute path is no row: outside the folder, or inside and not readable."""
        absolute = Path(_absolute(path))
        if self.folder is None:
            return f"{str(absolute)!r} is not among {self.where}"
        inside = below(absolute, self.folder) or below(_resolved(absolute), self.folder)
        if inside is None:
            return f"{str(absolute)!r} lies outside the folder {self.folder}"
        reason = self.why_not.get(inside) or _missing(absolute)
        return (
            f"{str(absolute)!r} is in the folder {self.folder} but not among its readable "
            f"images ({reason})"
        )

    def _find_url(self, row: LabelRow, url: str) -> int:
        """A local-files URL: its ``d`` below the recorded root, the environment's, or the one
        root that makes it name exactly one image of the pool."""
        relative = _url_path(url)
        if relative is None:
            raise InputError(
                FLAG, f"{row.at}: {url!r} has no d=<path> (a Label Studio local-files URL)"
            )
        roots = [r for r in (row.root, os.environ.get(LS_ROOT_ENV, "").strip()) if r]
        for root in roots:
            found = self._by_file_of(Path(root).expanduser() / relative)
            if found is not None:
                return found
        suffix = "/" + relative.lstrip("/")
        matches = sorted({i for f, i in self._by_file.items() if f.endswith(suffix)})
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InputError(
                FLAG,
                f"{row.at}: {url!r} could be {len(matches)} images of {self.where}; set "
                f"{LS_ROOT_ENV} to Label Studio's document root",
            )
        if roots:
            tried = Path(roots[0]).expanduser() / relative
            raise InputError(
                FLAG, f"{row.at}: {url!r} (document root {roots[0]}): {self._describe(str(tried))}"
            )
        raise InputError(
            FLAG,
            f"{row.at}: {url!r} names {relative!r} below Label Studio's document root, and no "
            f"image of {self.where} lies there under any root ({LS_ROOT_ENV} is not set)",
        )


def _url_path(url: str) -> str | None:
    """The ``d`` parameter of a local-files URL, decoded as Label Studio's server does (a
    query string: percent-escapes and ``+`` for a space)."""
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name == "d" and value.strip():
            return value
    return None


def below(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder`` (POSIX), or ``None`` when it lies elsewhere."""
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return None


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


def _missing(path: Path) -> str:
    return "not an image file" if path.is_file() else "no such file"


@dataclass(frozen=True)
class Labels:
    """``labels`` (n,) the class index of each labeled row, -1 elsewhere; ``classes`` the
    label names in sorted order; ``skipped`` the rows without a label ("file:line")."""

    labels: np.ndarray
    classes: tuple[str, ...]
    skipped: tuple[str, ...]

    def skipped_line(self) -> str:
        """One line counting the rows without a label (with a few of them), or ""."""
        if not self.skipped:
            return ""
        shown = ", ".join(self.skipped[:3]) + (
            f", +{len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
        )
        return f"{FLAG}: skipped {len(self.skipped)} rows without a label ({shown})"


def read_labels(files: Sequence[str], pool: PoolIndex, label_field: str | None = None) -> Labels:
    """The labels of every file, by pool row. The same path twice with the same label is one
    label; with two different labels it is an error naming both rows."""
    named: dict[int, tuple[str, str]] = {}  # row -> (label, where it was given)
    skipped: list[str] = []
    for file in files:
        for row in read_label_file(file, label_field).rows:
            if row.label is None:
                skipped.append(row.at)
                continue
            index = pool.find(row)
            first = named.setdefault(index, (row.label, row.at))
            if first[0] != row.label:
                raise InputError(
                    FLAG,
                    f"{row.at} labels {pool.names[index]!r} as {row.label!r}, but {first[1]} "
                    f"labels it {first[0]!r}",
                )
    classes = tuple(sorted({label for label, _ in named.values()}))
    index_of = {name: c for c, name in enumerate(classes)}
    labels = np.full(len(pool.names), -1, dtype=np.int64)
    for row_index, (label, _) in named.items():
        labels[row_index] = index_of[label]
    return Labels(labels, classes, tuple(skipped))
