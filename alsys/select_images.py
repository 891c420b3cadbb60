"""``alsys select --images DIR`` and ``alsys select --features F --paths P``: choose which of
your own images (or rows of your own embedding) to label next, by file path.

- ``--images``: the folder is embedded once (SimCLR trained on it, or a pretrained
  ``--encoder``; :mod:`alsys.embed.folder`) and read from the embedding store in every later
  round.
- ``--features``/``--paths``: your own embedding (DINOv2, CLIP, ...) with one path per row.
- ``--labels``: ``path,label`` CSVs or Label Studio's exports (repeatable;
  :mod:`alsys.label_files`, :mod:`alsys.label_paths`). Model-based strategies get the
  probabilities and MC-dropout samples of the SSL linear probe trained on them; a labeled
  path is never selected.
- Output: a CSV with one row per selected path (``--format csv``, the default), the JSON of
  ``alsys select`` with the paths (``json``), or Label Studio tasks and a labeling config
  (``labelstudio``, :mod:`alsys.labelstudio`).
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

import numpy as np

from alsys.data.imagefolder import (
    DEFAULT_IMAGE_SIZE,
    FolderScan,
    check_image_size,
    scan_folder,
    skipped_line,
)
from alsys.embed.encoders import ENCODER_NAMES, SIMCLR
from alsys.errors import InputError
from alsys.label_paths import LS_ROOT_ENV, LS_URL, Labels, PoolIndex, normalize_path, read_labels

FORMATS = ("csv", "json", "labelstudio")
# What only an --embeddings pool takes, and what only --images/--features take.
EMBEDDINGS_ONLY = {
    "embeddings": "--embeddings",
    "typ_embeddings": "--typ-embeddings",
    "probs": "--probs",
    "labeled": "--labeled",
    "clusters": "--clusters",
    "scores": "--scores",
}
IMAGES_ONLY = {
    "image_size": "--image-size",
    "epochs": "--epochs",
    "store": "--store",
    "encoder": "--encoder",
    "weights": "--weights",
}
PATHS_ONLY = {
    "labels": "--labels",
    "label_field": "--label-field",
    "classes": "--classes",
    **IMAGES_ONLY,
}
__all__ = ["LS_ROOT_ENV", "LS_URL", "add_path_arguments", "run_select_paths"]


@dataclass(frozen=True)
class PathPool:
    """The pool by path: ``features`` (n, d), ``index`` (each row's path as the user names
    it and where it lies on disk) and the Label Studio document root to assume when none is
    set."""

    features: np.ndarray
    index: PoolIndex
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
        help="with --images/--features: a path,label CSV or a Label Studio export (JSON, "
        "JSON_MIN, CSV, TSV); repeatable",
    )
    select.add_argument(
        "--label-field",
        help="--labels: the Label Studio choice control holding the label (default: the only "
        "one; 'label' in flat exports)",
    )
    select.add_argument(
        "--encoder",
        choices=ENCODER_NAMES,
        help="--images: simclr (default, trained on the folder) or a pretrained encoder",
    )
    select.add_argument(
        "--weights", help="--images with a pretrained --encoder: its weights file (no download)"
    )
    select.add_argument(
        "--image-size",
        type=int,
        help=f"--images with simclr: side in pixels (default {DEFAULT_IMAGE_SIZE})",
    )
    select.add_argument(
        "--epochs", type=int, help="--images with simclr: epochs (default: the preset's)"
    )
    select.add_argument("--store", help="--images: embedding store (default $ALSYS_STORE or cache)")
    select.add_argument(
        "--format",
        choices=FORMATS,
        help="--images/--features output: csv (default), json, or labelstudio (tasks and a "
        "labeling config)",
    )
    select.add_argument(
        "--classes",
        help="--format labelstudio: the labels you will use, comma-separated, added to those "
        "seen so far in the labeling config",
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
    pretrained = (args.encoder or SIMCLR) != SIMCLR
    for name, flag in (("image_size", "--image-size"), ("epochs", "--epochs")):
        if pretrained and getattr(args, name) is not None:
            raise InputError(flag, f"applies to --encoder simclr; {args.encoder} has its own")
    if args.weights is not None and not pretrained:
        raise InputError("--weights", "applies to a pretrained --encoder (SimCLR is trained here)")
    if args.label_field is not None and not args.labels:
        raise InputError("--label-field", "applies to --labels")
    if args.classes is not None and args.format != "labelstudio":
        raise InputError("--classes", "applies to --format labelstudio (the labeling config)")
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
    from alsys.embed.folder import describe, folder_embeddings, pretrained_embeddings
    from alsys.embed.store import EmbeddingStore

    pretrained = (args.encoder or SIMCLR) != SIMCLR
    size = check_image_size(DEFAULT_IMAGE_SIZE if args.image_size is None else args.image_size)
    scan = scan_folder(args.images)
    _check_labels_early(args, scan)
    store = EmbeddingStore(args.store)
    if pretrained:
        found = pretrained_embeddings(scan, args.encoder, args.weights, store, show_progress)
    else:
        found = folder_embeddings(scan, size, args.epochs, store, show_progress)
    line = skipped_line(scan, found.unreadable)
    if line:
        say(line)
    say(describe(found, size))
    index = _folder_index(scan, found.paths, found.unreadable)
    # Label Studio's document root is a parent of its storage folders.
    return PathPool(found.embeddings, index, scan.root.parent)


def _check_labels_early(args: argparse.Namespace, scan: FolderScan) -> None:
    """Every labels row checked before any embedding, the labeled images decoded (a labeled
    file Pillow cannot read is an error, not a skip)."""
    from alsys.data.imagefolder import open_upright

    early = read_labels(args.labels, _folder_index(scan, scan.image_files), args.label_field)
    labeled = [scan.image_files[row] for row in np.flatnonzero(early.labels >= 0)]
    unreadable = {p for p in labeled if open_upright(scan.root / p, 8) is None}
    if unreadable:  # read again without them: the error names the first such row
        readable = [p for p in scan.image_files if p not in unreadable]
        read_labels(
            args.labels, _folder_index(scan, readable, sorted(unreadable)), args.label_field
        )


def _folder_index(
    scan: FolderScan, paths: Sequence[str], unreadable: Sequence[str] = ()
) -> PoolIndex:
    why_not = dict.fromkeys(scan.other_files, "not an image file")
    why_not.update(dict.fromkeys(unreadable, "Pillow cannot read it"))
    where = f"the folder {scan.root}"
    return PoolIndex(paths, [scan.root / p for p in paths], where, scan.root, why_not)


def _feature_pool(args: argparse.Namespace) -> PathPool:
    from alsys.files import load_array

    features = load_array(args.features, "--features")
    if features.ndim != 2 or 0 in features.shape:
        raise InputError("--features", f"must be a 2-D array (n, d), got shape {features.shape}")
    paths = read_paths(args.paths, features.shape[0], args.features)
    files = [Path(os.path.abspath(Path(p).expanduser())) for p in paths]
    return PathPool(features, PoolIndex(paths, files, f"the paths of {args.paths}"), Path.cwd())


def run_select_paths(args: argparse.Namespace) -> int:
    from alsys.cli import output_path, parse_param, wants_progress, write_output
    from alsys.labelstudio import document_root
    from alsys.strategies import get_inputs, make_strategy, with_n_classes

    _check_flags(args)
    params = dict(parse_param(p) for p in args.param)
    make_strategy(args.strategy, **with_n_classes(args.strategy, params, 2))  # fails early
    if get_inputs(args.strategy).scores is not None:
        raise InputError(
            "--strategy", f"{args.strategy} ranks by HVAE scores; use --embeddings with --scores"
        )
    output_format = args.format or "csv"
    out = output_path(args)
    ls_root = document_root() if output_format == "labelstudio" else None

    def say(line: str) -> None:
        if not args.quiet:
            print(f"alsys select: {line}", file=sys.stderr, flush=True)

    show_progress = wants_progress(args)
    pool_rows = _image_pool(args, say, show_progress) if args.images else _feature_pool(args)
    labels = read_labels(args.labels, pool_rows.index, args.label_field)
    if labels.skipped_line():
        say(labels.skipped_line())
    selection, report, probs = _select(args, params, pool_rows, labels, say, show_progress)
    chosen, names = [int(i) for i in selection.indices], pool_rows.index.names
    if output_format == "csv":
        stop = {"stop_coverage": report["stopping"]["coverage_after"]}
        details = [{**why, **stop} for why in selection.details]
        text = _csv(args.strategy, [names[i] for i in chosen], details)
    elif output_format == "json":
        report["classes"] = list(labels.classes)
        report["paths"] = [names[i] for i in chosen]
        for why, i in zip(report["explanations"], chosen, strict=True):
            why["path"] = names[i]
        text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    else:
        root = ls_root or pool_rows.default_ls_root.resolve()
        details = selection.details
        text = _label_studio(args, pool_rows, chosen, details, root, labels, probs, say, out)
        if ls_root is None:
            say(f"Label Studio: serve the files with {LS_ROOT_ENV}={root}")
    write_output(out, text, args.quiet, f"{len(chosen)} paths")
    return 0


def _select(
    args: argparse.Namespace,
    params: dict[str, Any],
    pool_rows: PathPool,
    labels: Labels,
    say: Any,
    show_progress: bool,
) -> tuple[Any, dict[str, Any], np.ndarray | None]:
    """The strategy's :class:`~alsys.strategies.Selection` on the pool, the report of ``alsys
    select`` and the probe's probabilities (n, classes) when the strategy trained one."""
    from alsys.cli import selection_report
    from alsys.spaces import unit_rows
    from alsys.strategies import Pool, get_inputs, make_strategy, with_n_classes

    labeled, classes, inputs = labels.labels >= 0, labels.classes, get_inputs(args.strategy)
    if len(classes) >= 2:
        params = with_n_classes(args.strategy, params, len(classes))
    strategy = make_strategy(args.strategy, **params)
    x = unit_rows(pool_rows.features)  # as the loop: L2-normalised rows for probe and strategy
    arrays: dict[str, Any] = {"embeddings": x}
    rng = np.random.default_rng(args.seed)
    if (inputs.probs or inputs.mc_samples) and labeled.any():
        arrays.update(_model_outputs(args, x, labels.labels, classes, strategy, params, rng))
        say(f"model: linear probe on {int(labeled.sum())} labels ({len(classes)} classes)")
    if inputs.labels:
        arrays["labels"] = labels.labels
    try:
        pool = Pool(**arrays)
    except InputError as error:
        if error.field != "embeddings" or args.images:
            raise
        raise InputError("--features", error.problem) from None
    selection = strategy.select(pool, labeled, args.budget, rng, show_progress=show_progress)
    for note in selection.notes:  # e.g. a cold start's random draw
        say(f"note: {note}")
    report = selection_report(args, params, pool.n, labeled, selection, x)
    say(report["stopping"]["line"])
    return selection, report, pool.class_probs()


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
        probe,
        x,
        TrialConfig.mc_passes,
        strategy=strategy,
        params=everything,
        fit=fit,
        labeled=labeled,
        n_classes=len(classes),
        rng=rng,
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


def _label_studio(
    args: argparse.Namespace,
    pool_rows: PathPool,
    chosen: Sequence[int],
    details: Sequence[dict[str, Any]],
    root: Path,
    labels: Labels,
    probs: np.ndarray | None,
    say: Any,
    out: Path | None,
) -> str:
    """The tasks (with the probe's guesses when it ran) and, beside ``out``, the labeling
    config for the classes seen so far and those of ``--classes``."""
    from alsys.files import write_atomically
    from alsys.labelstudio import Guesses, config_path, labeling_config, tasks_json

    guesses = None
    if probs is not None:
        n_labels = int((labels.labels >= 0).sum())
        version = f"alsys {args.strategy}, linear probe on {n_labels} labels"
        guesses = Guesses(probs, labels.classes, version)
    index = pool_rows.index
    text = tasks_json(chosen, index.names, index.files, root, args.strategy, details, guesses)
    extra = [c.strip() for c in (args.classes or "").split(",") if c.strip()]
    classes = sorted(set(labels.classes) | set(extra))
    if not classes:
        say("Label Studio: no classes yet; --classes a,b,c writes the labeling config")
    elif out is None:
        say("Label Studio: give --out to have the labeling config written beside the tasks")
    else:
        write_atomically(config_path(out), labeling_config(classes))
        say(f"Label Studio: labeling config ({len(classes)} classes) -> {config_path(out)}")
    return text
