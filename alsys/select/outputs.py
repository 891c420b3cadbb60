"""What ``alsys select`` writes for a pool given by path: the CSV (one row per chosen path, an
empty ``label`` column to fill in) and Label Studio's tasks with their labeling config."""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alsys.label_paths import Labels

if TYPE_CHECKING:
    from alsys.select.paths import PathPool


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


def csv_text(strategy: str, paths: Sequence[str], details: Sequence[dict[str, Any]]) -> str:
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


def label_studio_text(
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
