"""``--labels``: the files labeling tools write, read into rows of (path, label).

The format is found from the content, never from the file's name:

- a ``path,label`` CSV (a header naming ``path`` and ``label`` is optional; other columns are
  then ignored, so an ``alsys select`` CSV with its ``label`` column filled in is one);
- Label Studio's JSON export (a list of tasks with their ``annotations``): the label is the
  ``choices`` result of the control named by ``--label-field``, or of the only choice control
  the file holds;
- Label Studio's JSON_MIN, CSV and TSV exports (one flat record per annotation, the task's data
  beside the controls): the label is the column named by ``--label-field`` (default ``label``,
  the name of the control in the labeling config alsys writes).

A row without an annotation (a whole-project export holds every task) has no label: the caller
skips and counts it. Paths stay as written here (a path or a local-files URL); resolving them
against the pool is :mod:`alsys.label_paths`'s job.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alsys.errors import InputError

FLAG = "--labels"
# The names in the labeling config alsys writes (alsys.labelstudio): <Image name="image"
# value="$image"/> and <Choices name="label" ...>.
DATA_IMAGE = "image"
DEFAULT_LABEL_FIELD = "label"
# Label Studio's own columns in its flat exports (its CSV, TSV and JSON_MIN converters).
LS_COLUMNS = frozenset(
    {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement"}
)
META_KEY = "alsys"  # each task's meta: {"alsys": {"document_root": ...}}


@dataclass(frozen=True)
class LabelRow:
    """One labeled (or unlabeled) row: ``at`` names it in messages ("file:line", "file: task
    12"), ``path`` is as written (a path or a Label Studio local-files URL), ``label`` is
    ``None`` when the row holds no annotation, ``root`` the document root recorded by alsys in
    the task (Label Studio's JSON export keeps it)."""

    at: str
    path: str
    label: str | None
    root: str | None = None


@dataclass(frozen=True)
class LabelFile:
    """A file read: its format's name and its rows."""

    kind: str
    rows: tuple[LabelRow, ...]


def read_label_file(file: str, label_field: str | None = None, flag: str = FLAG) -> LabelFile:
    """The rows of one labels file, whatever tool wrote it (see the module's docstring)."""
    source = Path(file)
    if not source.is_file():
        raise InputError(flag, f"no such file: {file}")
    try:
        text = source.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(flag, f"cannot read {file} as UTF-8 text ({error})") from None
    if text.lstrip()[:1] in ("[", "{"):
        return _read_json(file, text, label_field, flag)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    try:
        rows = list(_csv_rows(text, delimiter))
    except csv.Error as error:
        raise InputError(flag, f"cannot read {file} as CSV ({error})") from None
    header = [cell.strip() for cell in rows[0][1]] if rows else []
    if "annotation_id" in header and DATA_IMAGE in header:
        kind = "Label Studio TSV" if delimiter == "\t" else "Label Studio CSV"
        records = [
            (f"{file}:{line}", dict(zip(header, row, strict=False))) for line, row in rows[1:]
        ]
        return LabelFile(kind, _flat_rows(file, header, records, label_field, flag))
    if label_field is not None:
        raise InputError("--label-field", f"applies to Label Studio exports; {file} is path,label")
    return LabelFile("path,label CSV", _path_label_rows(file, rows, flag))


def _csv_rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, cells) of each non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    for row in reader:
        if any(cell.strip() for cell in row):
            yield start, row
        start = reader.line_num + 1


def _path_label_rows(
    file: str, rows: Sequence[tuple[int, list[str]]], flag: str
) -> tuple[LabelRow, ...]:
    path_col, label_col, width = 0, 1, 2
    header = [cell.strip().lower() for cell in rows[0][1]] if rows else []
    if "path" in header and "label" in header:
        path_col, label_col, width = header.index("path"), header.index("label"), len(header)
        rows = rows[1:]
    out = []
    for line, row in rows:
        at = f"{file}:{line}"
        if len(row) != width:
            raise InputError(flag, f"{at}: expected {width} columns (path,label), got {len(row)}")
        out.append(LabelRow(at, row[path_col].strip(), row[label_col].strip() or None))
    return tuple(out)


def _read_json(file: str, text: str, label_field: str | None, flag: str) -> LabelFile:
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(flag, f"{file} is not valid JSON ({error})") from None
    if not isinstance(loaded, list) or not all(isinstance(item, dict) for item in loaded):
        raise InputError(
            flag, f"{file}: expected a list of tasks (Label Studio's JSON or JSON_MIN export)"
        )
    if any(isinstance(item.get("data"), dict) for item in loaded):
        return LabelFile("Label Studio JSON", _task_rows(file, loaded, label_field, flag))
    records = [(f"{file}: item {i}", item) for i, item in enumerate(loaded, start=1)]
    keys = list(dict.fromkeys(key for item in loaded for key in item))
    return LabelFile("Label Studio JSON_MIN", _flat_rows(file, keys, records, label_field, flag))


def _task_rows(
    file: str, tasks: Sequence[Mapping[str, Any]], label_field: str | None, flag: str
) -> tuple[LabelRow, ...]:
    """One row per annotation (a cancelled one counts as none), one for a task without any."""
    field = _choice_field(file, tasks, label_field)
    out = []
    for number, task in enumerate(tasks, start=1):
        at = f"{file}: task {task.get('id', f'#{number}')}"
        data = task.get("data")
        if not isinstance(data, dict) or not isinstance(data.get(DATA_IMAGE), str):
            raise InputError(flag, f"{at}: no data.{DATA_IMAGE} (the image's path or URL)")
        root = _recorded_root(task.get("meta"))
        annotations = [
            a
            for a in task.get("annotations") or []
            if isinstance(a, dict) and not a.get("was_cancelled")
        ]
        if not annotations:
            out.append(LabelRow(at, data[DATA_IMAGE], None, root))
        for annotation in annotations:
            here = f"{at} annotation {annotation.get('id')}"
            label = _annotation_label(here, annotation, field, flag)
            out.append(LabelRow(here, data[DATA_IMAGE], label, root))
    return tuple(out)


def _recorded_root(meta: Any) -> str | None:
    """The document root alsys wrote the task's URL against (its ``meta``), if any."""
    ours = meta.get(META_KEY) if isinstance(meta, dict) else None
    root = ours.get("document_root") if isinstance(ours, dict) else None
    return root if isinstance(root, str) else None


def _choice_field(
    file: str, tasks: Sequence[Mapping[str, Any]], label_field: str | None
) -> str | None:
    """The control whose choices are the label: the one asked for, or the only one."""
    fields = sorted(
        {
            str(result.get("from_name"))
            for task in tasks
            for annotation in task.get("annotations") or []
            if isinstance(annotation, dict)
            for result in annotation.get("result") or []
            if isinstance(result, dict) and result.get("type") == "choices"
        }
    )
    if label_field is not None:
        if fields and label_field not in fields:
            raise InputError(
                "--label-field",
                f"{file} has no choices named {label_field!r}; it has {_names(fields)}",
            )
        return label_field
    if len(fields) > 1:
        raise InputError(
            FLAG,
            f"{file} has {len(fields)} choice controls ({_names(fields)}); "
            "pick one with --label-field",
        )
    return fields[0] if fields else None


def _annotation_label(
    at: str, annotation: Mapping[str, Any], field: str | None, flag: str
) -> str | None:
    chosen: list[str] = []
    for result in annotation.get("result") or []:
        if isinstance(result, dict) and result.get("from_name") == field:
            value = result.get("value")
            choices = value.get("choices") if isinstance(value, dict) else None
            chosen += [str(c) for c in choices or []]
    return _one_choice(at, chosen, flag)


def _one_choice(at: str, chosen: Sequence[str], flag: str) -> str | None:
    chosen = [c.strip() for c in chosen if c.strip()]
    if len(set(chosen)) > 1:
        raise InputError(flag, f"{at}: several choices {_names(chosen)}; alsys takes one per image")
    return chosen[0] if chosen else None


def _flat_rows(
    file: str,
    columns: Sequence[str],
    records: Sequence[tuple[str, Mapping[str, Any]]],
    label_field: str | None,
    flag: str,
) -> tuple[LabelRow, ...]:
    """Label Studio's flat exports: the task's data and each control side by side."""
    field = label_field or DEFAULT_LABEL_FIELD
    if DATA_IMAGE not in columns:
        raise InputError(flag, f"{file} has no {DATA_IMAGE!r} column (the image's path or URL)")
    if field not in columns:
        others = [c for c in columns if c not in LS_COLUMNS and c != DATA_IMAGE]
        raise InputError(
            "--label-field" if label_field else flag,
            f"{file} has no column {field!r}; name the label's column with --label-field "
            f"(its columns besides Label Studio's own: {_names(others)})",
        )
    out = []
    for at, record in records:
        path = record.get(DATA_IMAGE)
        if not isinstance(path, str) or not path.strip():
            raise InputError(flag, f"{at}: no {DATA_IMAGE!r} (the image's path or URL)")
        out.append(LabelRow(at, path, _flat_label(at, record.get(field), flag)))
    return tuple(out)


def _flat_label(at: str, value: Any, flag: str) -> str | None:
    """A flat export's cell: one choice as text; several as ``{"choices": [...]}`` (JSON in a
    CSV cell); nothing for a task without an annotation."""
    if isinstance(value, str) and value.lstrip().startswith('{"choices"'):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if isinstance(value, dict):
        choices = value.get("choices")
        return _one_choice(at, [str(c) for c in choices] if isinstance(choices, list) else [], flag)
    if value is None:
        return None
    return str(value).strip() or None


def _names(names: Sequence[str], shown: int = 8) -> str:
    more = f", +{len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(n) for n in names[:shown]) + more
