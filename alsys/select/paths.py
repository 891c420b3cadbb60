"""``alsys select --images DIR`` and ``alsys select --features F --paths P``: choose which of
your own images (or rows of your own embedding) to label next, by file path.

- ``--images``: the folder is embedded once (SimCLR trained on it, or a pretrained
  ``--encoder``; :mod:`alsys.embed.folder`) and read from the embedding store in every later
  round.
- ``--features``/``--paths``: your own embedding (DINOv2, CLIP, ...) with one path per row.
- ``--labels``: ``path,label`` CSVs or Label Studio's exports (repeatable;
  :mod:`alsys.label_files`, :mod:`alsys.label_paths`). Model-based strategies get the
  probabilities and MC-dropout samples of the SSL linear probe trained on them (the loop's
  :func:`alsys.pool.pool_for` assembles the pool); a labeled path is never selected.
- Output (:mod:`alsys.select.outputs`): a CSV with one row per selected path (``--format
  csv``, the default), the JSON of ``alsys select`` with the paths (``json``), or Label Studio
  tasks and a labeling config (``labelstudio``, :mod:`alsys.labelstudio`).
"""

from __future__ import annotations

import argparse
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
from alsys.embed.encoders import SIMCLR
from alsys.errors import InputError
from alsys.label_paths import LS_ROOT_ENV, Labels, PoolIndex, normalize_path, read_labels
from alsys.select.common import (
    EMBEDDINGS_ONLY,
    IMAGES_ONLY,
    check_seed,
    output_path,
    parse_param,
    selection_report,
    wants_progress,
    write_output,
)
from alsys.select.outputs import csv_text, label_studio_text


@dataclass(frozen=True)
class PathPool:
    """The pool by path: ``features`` (n, d), ``index`` (each row's path as the user names
    it and where it lies on disk) and the Label Studio document root to assume when none is
    set."""

    features: np.ndarray
    index: PoolIndex
    default_ls_root: Path


def _check_flags(args: argparse.Namespace) -> None:
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


def run_paths(args: argparse.Namespace) -> int:
    """Selects from an ``--images`` or ``--features``/``--paths`` pool and writes the chosen
    paths as CSV, JSON or Label Studio tasks."""
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
        text = csv_text(args.strategy, [names[i] for i in chosen], details)
    elif output_format == "json":
        report["classes"] = list(labels.classes)
        report["paths"] = [names[i] for i in chosen]
        for why, i in zip(report["explanations"], chosen, strict=True):
            why["path"] = names[i]
        text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    else:
        root = ls_root or pool_rows.default_ls_root.resolve()
        details = selection.details
        text = label_studio_text(args, pool_rows, chosen, details, root, labels, probs, say, out)
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
    from alsys.config import TrialConfig
    from alsys.pool import pool_for
    from alsys.spaces import unit_rows
    from alsys.strategies import effective_params, get_inputs, make_strategy, with_n_classes

    labeled, classes, inputs = labels.labels >= 0, labels.classes, get_inputs(args.strategy)
    if len(classes) >= 2:
        params = with_n_classes(args.strategy, params, len(classes))
    strategy = make_strategy(args.strategy, **params)
    x = unit_rows(pool_rows.features)  # as the loop: L2-normalised rows for probe and strategy
    probe = None
    if (inputs.probs or inputs.mc_samples) and labeled.any():
        probe = _probe(args, x, labels.labels, classes)
        say(f"model: linear probe on {int(labeled.sum())} labels ({len(classes)} classes)")
    rng = np.random.default_rng(args.seed)
    try:
        pool = pool_for(
            inputs,
            space=x,
            model=probe,
            model_inputs=x,
            mc_passes=TrialConfig.mc_passes,
            labels=labels.labels,
            strategy=strategy,
            params=effective_params(args.strategy, params, len(classes)),
            labeled=labeled,
            targets=labels.labels,
            n_classes=len(classes),
            rng=rng,
        )
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


def _probe(
    args: argparse.Namespace, x: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]
) -> Any:
    """The SSL linear probe (the loop's SSL head) trained on the labeled rows of ``x``."""
    from alsys.classifiers import SSLClassifier
    from alsys.config import SSLClassifierConfig

    if len(classes) < 2:
        raise InputError(
            "--labels",
            f"{args.strategy} trains a classifier on the labels, which needs two classes; "
            f"they hold only {classes[0]!r} (label more, or start with typiclust)",
        )
    rows = np.flatnonzero(labels >= 0)
    return SSLClassifier(SSLClassifierConfig(), len(classes)).fit(x[rows], labels[rows], args.seed)
