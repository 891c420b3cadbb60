"""``alsys select --images DIR`` and ``alsys select --features F --paths P``: choose which of
your own images (or rows of your own embedding) to label next, by file path.

- ``--images``: the folder is embedded with SimCLR once (:mod:`alsys.embed.folder`) and read
  from the embedding store in every later round.
- ``--features``/``--paths``: your own embedding (DINOv2, CLIP, ...) with one path per row.
- ``--labels``: CSV files of ``path,label`` (repeatable). Model-based strategies get the
  probabilities and MC-dropout samples of the SSL linear probe trained on them; a labeled
  path is never selected.
- Output: a CSV with one row per selected path (``--format csv``, the default), the JSON of
  ``alsys select`` with the paths (``json``), or Label Studio tasks (``labelstudio``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from alsys.data.imagefolder import (
    DEFAULT_IMAGE_SIZE,
    check_image_size,
    normalize_path,
    read_labels_csv,
    scan_folder,
    skipped_line,
)
from alsys.errors import InputError

FORMATS = ("csv", "json", "labelstudio")
# Label Studio serves local files below this folder (its local-files storage guide).
LS_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
LS_URL = "/data/local-files/?d="
# What only an --embeddings pool takes, and what only --images/--features take.
EMBEDDINGS_ONLY = {
    "embeddings": "--embeddings",
    "typ_embeddings": "--typ-embeddings",
    "probs": "--probs",
    "labeled": "--labeled",
    "clusters": "--clusters",
    "scores": "--scores",
}
IMAGES_ONLY = {"image_size": "--image-size", "epochs": "--epochs", "store": "--store"}
PATHS_ONLY = {"labels": "--labels", **IMAGES_ONLY}


@dataclass(frozen=True)
class PathPool:
    """The pool by path: ``features`` (n, d), ``paths`` (n,) as the user names them,
    ``files`` (n,) where each lies on disk, ``where`` (the pool's name in errors) and the
    Label Studio document root to assume when none is set."""

    features: np.ndarray
    paths: tuple[str, ...]
    files: tuple[Path, ...]
    where: str
    default_ls_root: Path


def add_path_arguments(select: argparse.ArgumentParser) -> None:
    """The flags of ``alsys select`` for pools given by path."""
    select.add_argument(
        "--images", help="a folder of images (png, jpg, webp; recursive), embedded with SimCLR"
    )
    select.add_argument("--features", help="your own embedding of images, .npy (n, d)")
    select.add_argument("--paths", help="with --features: one image path per row, a text file")
    select.add_argument(
        "--labels",
        action="append",
        default=[],
        help="with --images/--features: a CSV of path,label (repeatable)",
    )
    select.add_argument(
        "--image-size", type=int, help=f"--images: side in pixels (default {DEFAULT_IMAGE_SIZE})"
    )
    select.add_argument(
        "--epochs", type=int, help="--images: SimCLR epochs (default: the preset's)"
    )
    select.add_argument("--store", help="--images: embedding store (default $ALSYS_STORE or cache)")
    select.add_argument(
        "--format",
        choices=FORMATS,
        help="--images/--features output: csv (default), json, or labelstudio (task import)",
    )


def uses_paths(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) is not None for name in ("images", "features", "paths"))


def check_embeddings_flags(args: argparse.Namespace) -> None:
    """The flags of ``--images``/``--features`` are refused with an ``--embeddings`` pool."""
    for name, flag in PATHS_ONLY.items():
        if getattr(args, name) not in (None, []):
            raise InputError(flag, "applies to --images or --features/--paths pools")
    if args.format not in (None, "json"):
        raise InputError("--format", "an --embeddings pool is written as JSON (row indices)")
    if args.labeled is None:
        raise InputError("--labeled", "give the labeled row indices (an empty file for none)")


def _check_flags(args: argparse.Namespace) -> None:
    from alsys.cli import check_seed

    if args.images is not None and (args.features is not None or args.paths is not None):
        raise InputError("--images", "give either --images or --features with --paths")
    if args.images is None and (args.features is None or args.paths is None):
        missing = "--paths" if args.paths is None else "--features"
        raise InputError(missing, "--features and --paths go together (one path per row)")
    for name, flag in EMBEDDINGS_ONLY.items():
        if getattr(args, name) is not None:
            instead = "; --labels gives the labels by path" if name == "labeled" else ""
            raise InputError(flag, f"applies to --embeddings pools{instead}")
    if args.images is None:
        for name, flag in IMAGES_ONLY.items():
            if getattr(args, name) is not None:
                raise InputError(flag, "applies to --images (SimCLR on the folder)")
    check_seed(args)


def read_paths(file: str, n: int, features: str) -> tuple[str, ...]:
    """One path per line for each of the ``n`` feature rows; blank lines only at the end."""
    source = Path(file)
    if not source.is_file():
        raise InputError("--paths", f"no such file: {file}")
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError("--paths", f"cannot read {file} ({error})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    first: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        path = normalize_path(line)
        if not path:
            raise InputError("--paths", f"{file}:{number}: empty line (one path per row)")
        if path in first:
            raise InputError(
                "--paths", f"{file}:{number}: {path!r} listed again (first at line {first[path]})"
            )
        first[path] = number
    if len(first) != n:
        raise InputError("--paths", f"{file} lists {len(first)} paths; {features} has {n} rows")
    return tuple(first)


def _image_pool(args: argparse.Namespace, say: Any, show_progress: bool) -> PathPool:
    from alsys.embed.folder import describe, folder_embeddings
    from alsys.embed.store import EmbeddingStore

    size = check_image_size(DEFAULT_IMAGE_SIZE if args.image_size is None else args.image_size)
    scan = scan_folder(args.images)
    files = {p: i for i, p in enumerate(scan.image_files)}
    seen: dict[str, str] = {}
    for file in args.labels:  # early: a bad row fails before any training
        read_labels_csv(file, files, _where(scan.root), seen=seen)
    found = folder_embeddings(scan, size, args.epochs, EmbeddingStore(args.store), show_progress)
    line = skipped_line(scan, found.unreadable)
    if line:
        say(line)
    say(describe(found, size))
    return PathPool(
        found.embeddings,
        found.paths,
        tuple(scan.root / p for p in found.paths),
        f"the readable images of the folder {scan.root} (paths relative to it)",
        scan.root.parent,  # Label Studio's document root is a parent of its storage folders
    )


def _where(root: Path) -> str:
    return f"the folder {root} (paths relative to it)"


def _feature_pool(args: argparse.Namespace) -> PathPool:
    from alsys.files import load_array

    features = load_array(args.features, "--features")
    if features.ndim != 2 or 0 in features.shape:
        raise InputError("--features", f"must be a 2-D array (n, d), got shape {features.shape}")
    paths = read_paths(args.paths, features.shape[0], args.features)
    files = tuple(Path(os.path.abspath(Path(p).expanduser())) for p in paths)
    return PathPool(features, paths, files, f"{args.paths}", Path.cwd())


def read_labels(
    files: Sequence[str], paths: Sequence[str], where: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """(n,) class index of each labeled row, -1 elsewhere, and the classes (sorted)."""
    known = {path: i for i, path in enumerate(paths)}
    seen: dict[str, str] = {}
    named: dict[int, str] = {}
    for file in files:
        named.update(read_labels_csv(file, known, where, seen=seen))
    classes = tuple(sorted(set(named.values())))
    index = {name: c for c, name in enumerate(classes)}
    labels = np.full(len(paths), -1, dtype=np.int64)
    for row, name in named.items():
        labels[row] = index[name]
    return labels, classes


def run_select_paths(args: argparse.Namespace) -> int:
    from alsys.cli import output_path, parse_param, selection_report, wants_progress, write_output
    from alsys.spaces import unit_rows
    from alsys.strategies import Pool, get_inputs, make_strategy, with_n_classes

    _check_flags(args)
    params = dict(parse_param(p) for p in args.param)
    make_strategy(args.strategy, **with_n_classes(args.strategy, params, 2))  # fails early
    inputs = get_inputs(args.strategy)
    if inputs.scores is not None:
        raise InputError(
            "--strategy", f"{args.strategy} ranks by HVAE scores; use --embeddings with --scores"
        )
    output_format = args.format or "csv"
    out = output_path(args)
    ls_root = _ls_root() if output_format == "labelstudio" else None

    def say(line: str) -> None:
        if not args.quiet:
            print(f"alsys select: {line}", file=sys.stderr, flush=True)

    show_progress = wants_progress(args)
    pool_rows = _image_pool(args, say, show_progress) if args.images else _feature_pool(args)
    labels, classes = read_labels(args.labels, pool_rows.paths, pool_rows.where)
    labeled = labels >= 0
    if len(classes) >= 2:
        params = with_n_classes(args.strategy, params, len(classes))
    strategy = make_strategy(args.strategy, **params)

    x = unit_rows(pool_rows.features)  # as the loop: L2-normalised rows for probe and strategy
    arrays: dict[str, Any] = {"embeddings": x}
    rng = np.random.default_rng(args.seed)
    if (inputs.probs or inputs.mc_samples) and labeled.any():
        arrays.update(_model_outputs(args, x, labels, classes, strategy, params, rng))
        say(f"model: linear probe on {int(labeled.sum())} labels ({len(classes)} classes)")
    if inputs.labels:
        arrays["labels"] = labels
    try:
        pool = Pool(**arrays)
    except InputError as error:
        if error.field != "embeddings" or args.images:
            raise
        raise InputError("--features", error.problem) from None
    selection = strategy.select(pool, labeled, args.budget, rng, show_progress=show_progress)
    for note in selection.notes:  # e.g. a cold start's random draw
        say(f"note: {note}")
    chosen = [int(i) for i in selection.indices]
    report = selection_report(args, params, pool.n, labeled, selection, x)
    say(report["stopping"]["line"])
    if output_format == "csv":
        stop = {"stop_coverage": report["stopping"]["coverage_after"]}
        details = [{**why, **stop} for why in selection.details]
        text = _csv(args.strategy, [pool_rows.paths[i] for i in chosen], details)
    elif output_format == "json":
        report["classes"] = list(classes)
        report["paths"] = [pool_rows.paths[i] for i in chosen]
        for why, i in zip(report["explanations"], chosen, strict=True):
            why["path"] = pool_rows.paths[i]
        text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    else:
        root = ls_root or pool_rows.default_ls_root.resolve()
        text = _label_studio([pool_rows.files[i] for i in chosen], root)
        if ls_root is None:
            say(f"Label Studio: serve the files with {LS_ROOT_ENV}={root}")
    write_output(out, text, args.quiet, f"{len(chosen)} paths")
    return 0


def _model_outputs(
    args: argparse.Namespace,
    x: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...],
    strategy: Any,
    params: dict[str, Any],
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The SSL linear probe on the labeled rows and the outputs the strategy declares
    (alsys.model_inputs: probabilities, MC-dropout or feature-dropout samples, a held-out
    calibration split)."""
    from alsys.classifiers import SSLClassifier
    from alsys.config import SSLClassifierConfig, TrialConfig
    from alsys.model_inputs import model_outputs
    from alsys.strategies import effective_params, get_inputs

    if len(classes) < 2:
        raise InputError(
            "--labels",
            f"{args.strategy} trains a classifier on the labels, which needs two classes; "
            f"they hold only {classes[0]!r} (label more, or start with typiclust)",
        )
    labeled = labels >= 0

    def fit(rows: np.ndarray, seed: int) -> SSLClassifier:
        return SSLClassifier(SSLClassifierConfig(), len(classes)).fit(x[rows], labels[rows], seed)

    probe = fit(np.flatnonzero(labeled), args.seed)
    everything = effective_params(args.strategy, params, len(classes))
    inputs = get_inputs(args.strategy)
    return model_outputs(
        inputs,
        strategy,
        everything,
        probe,
        fit,
        x,
        labeled,
        len(classes),
        rng,
        TrialConfig.mc_passes,
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"  # a person reads these; the JSON format keeps every digit
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def _csv(strategy: str, paths: Sequence[str], details: Sequence[dict[str, Any]]) -> str:
    """``path,rank,strategy``, the union of the explanations' keys (first seen first), and an
    empty ``label`` column to fill in (the file is then a ``--labels`` file)."""
    keys: list[str] = []
    for why in details:
        keys += [k for k in why if k not in keys and k not in ("path", "rank", "strategy", "label")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "rank", "strategy", *keys, "label"])
    for rank, (path, why) in enumerate(zip(paths, details, strict=True), start=1):
        writer.writerow([path, rank, strategy, *(_cell(why.get(k)) for k in keys), ""])
    return buffer.getvalue()


def _ls_root() -> Path | None:
    value = os.environ.get(LS_ROOT_ENV, "").strip()
    if not value:
        return None
    root = Path(os.path.abspath(Path(value).expanduser()))
    if not root.is_dir():
        raise InputError(LS_ROOT_ENV, f"no such folder: {value}")
    return root


def _label_studio(files: Sequence[Path], root: Path) -> str:
    """Label Studio's task import: ``[{"data": {"image": "/data/local-files/?d=<path>"}}]``,
    each path relative to the local-files document root (percent-encoded, as a URL query)."""
    tasks = []
    for file in files:
        relative = _below(file, root) or _below(file.parent.resolve() / file.name, root.resolve())
        if relative is None:
            raise InputError(
                "--format", f"{file} is not below the Label Studio root {root} ({LS_ROOT_ENV})"
            )
        tasks.append({"data": {"image": LS_URL + quote(relative, safe="/")}})
    return json.dumps(tasks, indent=2) + "\n"


def _below(file: Path, root: Path) -> str | None:
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return None
