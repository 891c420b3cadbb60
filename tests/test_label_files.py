"""`--labels` reads what labeling tools write: path,label CSVs and Label Studio's JSON,
JSON_MIN, CSV and TSV exports (in the shapes Label Studio 1.23.2 writes them; the integration
test in test_labelstudio.py gets them from a real server), whatever the file is called; paths
relative, absolute or as local-files URLs; known-answer tests on hand-built files."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from alsys.cli import main
from alsys.errors import InputError
from alsys.label_paths import LS_ROOT_ENV, LS_URL, PoolIndex, read_labels

NAMES = ("part A/0.png", "part A/é 1.png", "b/2+x.png", "b/3.png")
LABELS = {"part A/0.png": "cat", "part A/é 1.png": "dog", "b/2+x.png": "dog"}


@pytest.fixture
def pool(tmp_path: Path) -> PoolIndex:
    """Four image files under root/imgs (names with a space, an "é" and a "+")."""
    folder = tmp_path / "root" / "imgs"
    for name in NAMES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"png")
    return PoolIndex(NAMES, [folder / n for n in NAMES], f"the folder {folder}", folder)


def url(name: str) -> str:
    return LS_URL + quote(f"imgs/{name}", safe="/")


def ls_task(
    task_id: int, name: str, label: str | None, root: str | None, field: str = "label"
) -> dict[str, object]:
    """A task of Label Studio's JSON export (the keys alsys reads, as 1.23.2 writes them)."""
    annotations = []
    if label is not None:
        result = {"from_name": field, "to_name": "image", "type": "choices"}
        result["value"] = {"choices": [label]}  # type: ignore[assignment]
        annotations.append({"id": 10 + task_id, "result": [result], "was_cancelled": False})
    task: dict[str, object] = {
        "id": task_id,
        "annotations": annotations,
        "predictions": [],
        "data": {"image": url(name), "rank": task_id, "strategy": "margin", "path": name},
    }
    if root is not None:
        task["meta"] = {"alsys": {"document_root": root}}
    return task


def as_map(pool: PoolIndex, labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, str]:
    return {pool.names[i]: classes[c] for i, c in enumerate(labels) if c >= 0}


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_label_studio_json_with_the_recorded_root(pool: PoolIndex, tmp_path: Path) -> None:
    root = str(tmp_path / "root")
    tasks = [ls_task(i, n, LABELS.get(n), root) for i, n in enumerate(NAMES, start=1)]
    tasks[0]["annotations"].append(  # type: ignore[attr-defined]
        {"id": 99, "result": [], "was_cancelled": True}  # a skipped annotation: no label
    )
    file = write(tmp_path / "export.csv", json.dumps(tasks))  # named .csv: content decides
    read = read_labels([file], pool)
    assert as_map(pool, read.labels, read.classes) == LABELS
    assert read.classes == ("cat", "dog")
    assert read.skipped == (f"{file}: task 4",)  # the task without an annotation
    assert read.skipped_line().startswith("--labels: skipped 1 rows without a label")


def test_json_min_csv_and_tsv_exports(
    pool: PoolIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(LS_ROOT_ENV, raising=False)  # the root is found from the folder itself
    records = []
    for i, name in enumerate(NAMES, start=1):
        record: dict[str, object] = {"image": url(name), "rank": i, "id": i}
        if name in LABELS:
            record.update(label=LABELS[name], annotator=1, annotation_id=i)
        else:  # a whole-project export: the task is there, without an annotation
            record.update(annotator=None, annotation_id=None)
        records.append(record)
    json_min = write(tmp_path / "min.json", json.dumps(records))
    header = '"annotation_id","annotator","id","image","label","rank"'
    lines = [
        f'{r.get("annotation_id") or ""},"1",{r["id"]},"{r["image"]}",'
        f'"{r.get("label", "")}",{r["rank"]}'
        for r in records
    ]
    csv_file = write(tmp_path / "export.txt", "\n".join([header, *lines]) + "\n")
    tsv_file = write(tmp_path / "export.tsv", "\n".join([header, *lines]).replace(",", "\t") + "\n")
    for file in (json_min, csv_file, tsv_file):
        read = read_labels([file], pool)
        assert as_map(pool, read.labels, read.classes) == LABELS, file
        assert len(read.skipped) == 1


def test_path_label_rows_relative_absolute_and_repeated(pool: PoolIndex, tmp_path: Path) -> None:
    folder = pool.folder
    assert folder is not None
    text = "path,rank,label\npart A/0.png,1,cat\n" + f"{folder / 'part A/é 1.png'},2,dog\n"
    text += "b/2+x.png,3,dog\nb/3.png,4,\npart A/0.png,5,cat\n"  # empty: skipped; same: fine
    read = read_labels([write(tmp_path / "round1.csv", text)], pool)
    assert as_map(pool, read.labels, read.classes) == LABELS
    assert read.skipped == (f"{tmp_path / 'round1.csv'}:5",)
    headerless = read_labels([write(tmp_path / "plain.csv", "b/3.png,cat\n")], pool)
    assert as_map(pool, headerless.labels, headerless.classes) == {"b/3.png": "cat"}


def test_the_environment_root_and_its_failure_are_true(
    pool: PoolIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LS_ROOT_ENV, str(tmp_path / "root"))
    tasks = [ls_task(1, "b/3.png", "cat", None)]
    read = read_labels([write(tmp_path / "a.json", json.dumps(tasks))], pool)
    assert as_map(pool, read.labels, read.classes) == {"b/3.png": "cat"}
    tasks = [ls_task(1, "b/missing.png", "cat", None)]
    with pytest.raises(InputError) as error:
        read_labels([write(tmp_path / "b.json", json.dumps(tasks))], pool)
    assert "task 1 annotation 11" in error.value.problem
    assert "is in the folder" in error.value.problem and "no such file" in error.value.problem


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("two-labels", ["b.csv:2 labels 'b/3.png' as 'dog'", "a.csv:2 labels it 'cat'"]),
        ("outside", ["lies outside the folder"]),
        ("two-controls", ["2 choice controls ('label', 'quality')", "--label-field"]),
        ("several-choices", ["several choices 'cat', 'dog'"]),
        ("no-label-column", ["has no column 'label'", "'quality'"]),
        ("not-a-list", ["expected a list of tasks"]),
    ],
)
def test_bad_label_files_are_one_true_line(
    case: str, expected: list[str], pool: PoolIndex, tmp_path: Path
) -> None:
    files = []
    if case == "two-labels":
        files = [write(tmp_path / "a.csv", "path,label\nb/3.png,cat\n")]
        files.append(write(tmp_path / "b.csv", "path,label\nb/3.png,dog\n"))
    elif case == "outside":
        files = [write(tmp_path / "a.csv", f"{tmp_path / 'elsewhere.png'},cat\n")]
    elif case == "two-controls":
        tasks = [ls_task(1, "b/3.png", "cat", None), ls_task(2, "b/2+x.png", "ok", None, "quality")]
        files = [write(tmp_path / "a.json", json.dumps(tasks))]
    elif case == "several-choices":
        records = [
            {
                "image": url("b/3.png"),
                "id": 1,
                "annotation_id": 1,
                "label": {"choices": ["cat", "dog"]},
            }
        ]
        files = [write(tmp_path / "a.json", json.dumps(records))]
    elif case == "no-label-column":
        files = [write(tmp_path / "a.csv", '"annotation_id","id","image","quality"\n1,1,x,ok\n')]
    else:
        files = [write(tmp_path / "a.json", '{"image": "x"}')]
    with pytest.raises(InputError) as error:
        read_labels(files, pool)
    for text in expected:
        assert text in error.value.problem, error.value.problem


def test_label_field_picks_a_control(pool: PoolIndex, tmp_path: Path) -> None:
    tasks = [ls_task(1, "b/3.png", "cat", None), ls_task(2, "b/2+x.png", "ok", None, "quality")]
    file = write(tmp_path / "a.json", json.dumps(tasks))
    read = read_labels([file], pool, label_field="quality")
    assert as_map(pool, read.labels, read.classes) == {"b/2+x.png": "ok"}
    with pytest.raises(InputError, match="no choices named 'size'"):
        read_labels([file], pool, label_field="size")


def test_the_command_line_counts_skipped_rows_and_writes_nothing_on_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "f.npy", np.random.default_rng(0).normal(size=(6, 3)))
    (tmp_path / "p.txt").write_text("".join(f"{tmp_path}/i{k}.png\n" for k in range(6)))
    labels = write(tmp_path / "l.csv", f"path,label\n{tmp_path}/i0.png,a\n{tmp_path}/i1.png,\n")
    pool = ["--features", str(tmp_path / "f.npy"), "--paths", str(tmp_path / "p.txt")]
    argv = ["select", *pool, "--budget", "2", "--strategy", "typiclust", "--labels", labels]
    out = tmp_path / "next.csv"
    assert main([*argv, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"--labels: skipped 1 rows without a label ({labels}:3)" in err
    bad = write(tmp_path / "bad.csv", f"{tmp_path}/i0.png,b\n")
    out.unlink()
    assert main([*argv, "--labels", bad, "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "bad.csv:1 labels" in lines[0] and f"{labels}:2" in lines[0]
    assert not out.exists()
