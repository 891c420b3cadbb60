"""``alsys select --embeddings``: your pool as arrays (embeddings, and the model outputs a
strategy reads, if you bring them), the labeled rows as indices, the selection as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

import numpy as np
import numpy.typing as npt

from alsys.errors import InputError
from alsys.files import load_array, read_indices
from alsys.select.common import (
    PATHS_ONLY,
    check_seed,
    output_path,
    parse_param,
    selection_report,
    wants_progress,
    write_output,
)


def check_embeddings_flags(args: argparse.Namespace) -> None:
    """The flags of ``--images``/``--features`` are refused with an ``--embeddings`` pool."""
    for name, flag in PATHS_ONLY.items():
        if getattr(args, name) not in (None, []):
            raise InputError(flag, "applies to --images or --features/--paths pools")
    if args.format not in (None, "json"):
        raise InputError("--format", "an --embeddings pool is written as JSON (row indices)")
    if args.labeled is None:
        raise InputError("--labeled", "give the labeled row indices (an empty file for none)")


def _labeled_classes(
    args: argparse.Namespace, labeled_rows: npt.NDArray[np.int64], n: int
) -> npt.NDArray[np.int64]:
    """(n,) the class of each labeled row, -1 elsewhere, from --labeled-classes: one class id
    per row of --labeled, in the same order."""
    classes = read_indices(args.labeled_classes, "--labeled-classes")
    if classes.shape != labeled_rows.shape:
        raise InputError(
            "--labeled-classes",
            f"holds {classes.size} classes for the {labeled_rows.size} rows of --labeled",
        )
    if classes.size and classes.min() < 0:
        raise InputError("--labeled-classes", f"class ids are non-negative, got {classes.min()}")
    labels = np.full(n, -1, dtype=np.int64)
    labels[labeled_rows] = classes
    return labels


def run_embeddings(args: argparse.Namespace) -> int:
    """Selects from an ``--embeddings`` pool and writes its JSON report."""
    from alsys.strategies import Pool, labeled_mask_from_indices, make_strategy

    check_embeddings_flags(args)
    check_seed(args)
    params = dict(parse_param(p) for p in args.param)
    strategy = make_strategy(args.strategy, **params)
    out = output_path(args)

    arrays: dict[str, Any] = {}
    if args.embeddings:
        arrays["embeddings"] = load_array(args.embeddings, "--embeddings")
    if args.typ_embeddings:
        arrays["typ_embeddings"] = load_array(args.typ_embeddings, "--typ-embeddings")
    if args.probs:
        probs = load_array(args.probs, "--probs")
        arrays["mc_probs" if probs.ndim == 3 else "probs"] = probs
    if args.dropout_probs:
        arrays["dropout_probs"] = load_array(args.dropout_probs, "--dropout-probs")
    if args.clusters:
        arrays["clusters"] = load_array(args.clusters, "--clusters")
    if args.scores:
        arrays["scores"] = load_array(args.scores, "--scores")
    if not arrays:
        raise InputError("--embeddings", "give the pool as --embeddings (or --probs)")
    pool = Pool(**arrays)
    labeled_rows = read_indices(args.labeled, "--labeled")
    labeled = labeled_mask_from_indices(labeled_rows, pool.n)
    if args.labeled_classes:
        pool = dataclasses.replace(pool, labels=_labeled_classes(args, labeled_rows, pool.n))

    show_progress = wants_progress(args)
    selection = strategy.select(
        pool, labeled, args.budget, np.random.default_rng(args.seed), show_progress=show_progress
    )
    report = selection_report(args, params, pool.n, labeled, selection, pool.embeddings)
    if not args.quiet:
        print(f"alsys select: {report['stopping']['line']}", file=sys.stderr)
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    write_output(out, text, args.quiet, f"{len(selection.indices)} points")
    return 0
