"""What both flows of ``alsys select`` share: the ``--param`` reader, the checks of the flags
every pool takes, the output file, the progress switch and the report (JSON) of a selection."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alsys import __version__
from alsys.errors import InputError
from alsys.files import json_safe, write_atomically

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


def parse_param(text: str) -> tuple[str, Any]:
    """``name=value`` with value read as int, float, true/false, none, or else a string."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise InputError("--param", f"expected name=value, got {text!r}")
    raw = raw.strip()
    value: Any
    lowered = raw.lower()
    if lowered in ("true", "false"):
        value = lowered == "true"
    elif lowered in ("none", "null"):
        value = None
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
    return name, value


def check_seed(args: argparse.Namespace) -> None:
    if args.seed < 0:
        raise InputError("--seed", f"must be a non-negative integer, got {args.seed}")


def output_path(args: argparse.Namespace) -> Path | None:
    """``--out`` as a path, its folder checked; ``None`` for standard output."""
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise InputError("--out", f"folder {out.parent} does not exist")
    return out


def wants_progress(args: argparse.Namespace) -> bool:
    """Progress bars on stderr: on a terminal unless --quiet, always with --progress."""
    return bool(args.progress or (sys.stderr.isatty() and not args.quiet))


def selection_report(
    args: argparse.Namespace,
    params: dict[str, Any],
    pool_size: int,
    labeled: npt.NDArray[np.bool_],
    selection: Any,
    embeddings: npt.NDArray[Any] | None = None,
) -> dict[str, Any]:
    """The JSON of ``alsys select``: the selected rows, why each was chosen, and the stopping
    signal."""
    from alsys.stopping import select_signal
    from alsys.strategies import strategy_params

    resolved = {**strategy_params(args.strategy), **params}
    report = {
        "strategy": args.strategy,
        "params": resolved,
        "seed": args.seed,
        "budget": args.budget,
        "pool_size": pool_size,
        "labeled": int(labeled.sum()),
        "selected": [int(i) for i in selection.indices],
        "explanations": [
            {"index": int(i), "order": order, **why}
            for order, (i, why) in enumerate(zip(selection.indices, selection.details, strict=True))
        ],
        "notes": list(selection.notes),
        "metrics": dict(selection.metrics),
        "stopping": select_signal(embeddings, labeled, selection.indices, args.seed),
        "alsys_version": __version__,
    }
    safe: dict[str, Any] = json_safe(report)
    return safe


def write_output(out: Path | None, text: str, quiet: bool, what: str) -> None:
    """``text`` to ``out`` (atomically) or to standard output."""
    if out is None:
        sys.stdout.write(text)
        return
    write_atomically(out, text)
    if not quiet:
        print(f"selected {what} -> {out}", file=sys.stderr)
