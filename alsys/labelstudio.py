"""``--format labelstudio``: Label Studio's task import and a labeling config to go with it.

Each task names its image by a local-files URL (``/data/local-files/?d=<path below the
document root>``, percent-encoded), holds the selection's explanation in ``data`` (rank,
strategy, cluster, typicality or score: columns of Label Studio's data manager), records the
document root in ``meta`` (so ``--labels`` reads the export back wherever the server's root
was), and, for a model-based round, carries the probe's guess as a prediction. The labeling
config's names (``image``, ``label``) are the ones the predictions and ``--labels`` use.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from alsys.errors import InputError
from alsys.label_files import DATA_IMAGE, DEFAULT_LABEL_FIELD, LS_COLUMNS, META_KEY
from alsys.label_paths import LS_ROOT_ENV, LS_URL, below

# data keys Label Studio's flat exports add themselves, and the ones alsys fills.
_RESERVED = LS_COLUMNS | {DATA_IMAGE, "path", "rank", "strategy"}


@dataclass(frozen=True)
class Guesses:
    """The probe's guess for each pool row: ``probs`` (n, classes), the class names, and the
    ``model_version`` Label Studio shows (the strategy and how many labels trained it)."""

    probs: np.ndarray
    classes: tuple[str, ...]
    model_version: str


def document_root() -> Path | None:
    """``$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``, absolute; ``None`` when unset."""
    value = os.environ.get(LS_ROOT_ENV, "").strip()
    if not value:
        return None
    root = Path(os.path.abspath(Path(value).expanduser()))
    if not root.is_dir():
        raise InputError(LS_ROOT_ENV, f"no such folder: {value}")
    return root


def local_files_url(file: Path, root: Path) -> str:
    """The URL Label Studio serves ``file`` at, below its document root ``root``."""
    relative = below(file, root) or below(file.parent.resolve() / file.name, root.resolve())
    if relative is None:
        raise InputError(
            "--format", f"{file} is not below the Label Studio root {root} ({LS_ROOT_ENV})"
        )
    return LS_URL + quote(relative, safe="/")


def tasks_json(
    rows: Sequence[int],
    names: Sequence[str],
    files: Sequence[Path],
    root: Path,
    strategy: str,
    details: Sequence[Mapping[str, Any]],
    guesses: Guesses | None = None,
) -> str:
    """The task import for the selected pool ``rows`` (in the order chosen)."""
    tasks = []
    for rank, (row, why) in enumerate(zip(rows, details, strict=True), start=1):
        data: dict[str, Any] = {
            DATA_IMAGE: local_files_url(files[row], root),
            "path": names[row],
            "rank": rank,
            "strategy": strategy,
        }
        for key, value in why.items():
            if value is not None:
                data[f"alsys_{key}" if key in _RESERVED else key] = _column(value)
        task: dict[str, Any] = {"data": data, "meta": {META_KEY: {"document_root": str(root)}}}
        if guesses is not None:
            task["predictions"] = [_prediction(guesses, row)]
        tasks.append(task)
    return json.dumps(tasks, indent=2, ensure_ascii=False) + "\n"


def _column(value: Any) -> Any:
    """A data manager cell: numbers (6 significant digits) and text; lists and dicts as JSON
    text; infinities and NaN as text (JSON has none)."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | np.floating):
        value = float(value)
        return float(f"{value:.6g}") if math.isfinite(value) else str(value)
    if isinstance(value, np.integer):
        return int(value)
    return json.dumps(value, default=str)


def _prediction(guesses: Guesses, row: int) -> dict[str, Any]:
    """The probe's top class as a pre-annotation of the config's ``label`` control."""
    top = int(np.argmax(guesses.probs[row]))
    return {
        "model_version": guesses.model_version,
        "score": round(float(guesses.probs[row, top]), 6),
        "result": [
            {
                "from_name": DEFAULT_LABEL_FIELD,
                "to_name": DATA_IMAGE,
                "type": "choices",
                "value": {"choices": [guesses.classes[top]]},
            }
        ],
    }


def labeling_config(classes: Sequence[str]) -> str:
    """An image classification config whose choices are ``classes``; its names match the
    tasks' ``$image`` and the predictions' ``label``/``image``."""
    choices = "".join(f"    <Choice value={quoteattr(c)}/>\n" for c in classes)
    return (
        "<View>\n"
        f'  <Image name="{DATA_IMAGE}" value="${DATA_IMAGE}"/>\n'
        f'  <Choices name="{DEFAULT_LABEL_FIELD}" toName="{DATA_IMAGE}" choice="single" '
        'showInline="true">\n'
        f"{choices}"
        "  </Choices>\n"
        "</View>\n"
    )


def config_path(out: Path) -> Path:
    """Where the labeling config goes: beside the tasks file (``round3.json`` ->
    ``round3.labeling.xml``)."""
    return out.with_name(f"{out.stem}.labeling.xml")
