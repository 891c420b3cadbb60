"""Three labeling rounds through a real Label Studio server (1.23.2, in its own venv).

alsys writes the tasks and the labeling config; through Label Studio's REST API the test makes
the project from that config, adds the local-files storage, imports the tasks, fetches every
image URL, annotates, and exports JSON, JSON_MIN and CSV; the exports go back to alsys as
``--labels`` without any conversion. The friction cases are in the same walk: a folder and
file names with spaces and an "é", whole-project exports with unannotated rows, a CSV of
absolute paths, exports read with and without $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from alsys.cli import main
from alsys.label_paths import LS_ROOT_ENV, LS_URL
from tests import labelstudio_server as ls

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLASSES = ",".join(str(c) for c in range(10))
FAST = ["--epochs", "1", "--image-size", "8"]  # the flow, not the representation


def require_label_studio() -> None:
    """CI (and anyone who sets ALSYS_REQUIRE_LABEL_STUDIO) must run this test: a missing
    Label Studio is then a failure; a developer's plain run without it skips, saying why."""
    executable = ls.label_studio_executable()
    if executable.is_file():
        return
    message = f"no Label Studio at {executable}: make it with the .venv-ls lines of .ci/run"
    if os.environ.get("CI") or os.environ.get("ALSYS_REQUIRE_LABEL_STUDIO"):
        pytest.fail(message)
    pytest.skip(message)


def digits_folder(root: Path) -> tuple[Path, dict[str, str]]:
    """300 digits as PNG files in "my imgs é/part A" and ".../partB", every seventh file name
    with a space and an "é"; each image's true label by relative path."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = root / "my imgs é"
    truth = {}
    for i in range(300):
        name = f"{i:04d} é x.png" if i % 7 == 0 else f"{i:04d}.png"
        relative = f"{'part A' if i % 2 else 'partB'}/{name}"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(digits.images[i] * 16, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / relative)
        truth[relative] = str(digits.target[i])
    return folder, truth


def select(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["select", *argv])
    err = capsys.readouterr().err
    assert code == 0, err
    return err


def check_tasks(
    server: ls.LabelStudio, project: int, folder: Path, tasks_file: Path, predicted: bool
) -> list[dict[str, object]]:
    """The tasks just imported, each image served with the file's exact bytes, the
    explanation in data, and the probe's guess as a prediction in model-based rounds."""
    written = json.loads(tasks_file.read_text(encoding="utf-8"))
    imported = [t for t in server.tasks(project) if t["data"] in [w["data"] for w in written]]
    assert len(imported) == len(written) == 10
    for task in imported:
        data = task["data"]
        status, body = server.get_status(data["image"])
        assert status == 200, data["image"]
        assert body == (folder / data["path"]).read_bytes()
        assert unquote(data["image"].removeprefix(LS_URL)) == f"{folder.name}/{data['path']}"
        assert {"rank", "strategy"} <= set(data) and ({"typicality", "score"} & set(data))
        assert task["meta"]["alsys"]["document_root"] == str(folder.parent)
        assert task["total_predictions"] == (1 if predicted else 0)
        if predicted:
            (guess,) = server.call("GET", f"/api/predictions?task={task['id']}")
            assert guess["model_version"].startswith(f"alsys {data['strategy']}, linear probe")
            assert 0 < guess["score"] <= 1
            assert guess["result"][0]["value"]["choices"][0] in CLASSES.split(",")
    return imported


def annotate(
    server: ls.LabelStudio, tasks: list[dict[str, object]], truth: dict[str, str], leave: int
) -> set[str]:
    """Labels all but the last ``leave`` tasks with their true digit; the paths labeled."""
    done = set()
    for task in tasks[: len(tasks) - leave]:
        path = task["data"]["path"]  # type: ignore[index]
        server.annotate(int(task["id"]), truth[path])  # type: ignore[call-overload]
        done.add(path)
    return done


def round_labels(tasks_file: Path) -> tuple[list[str], str]:
    """The paths a round chose, and the model_version of its guesses ("" for none)."""
    tasks = json.loads(tasks_file.read_text(encoding="utf-8"))
    versions = {p["model_version"] for t in tasks for p in t.get("predictions", [])}
    return [t["data"]["path"] for t in tasks], ",".join(sorted(versions))


def test_three_rounds_through_a_real_label_studio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_label_studio()
    root = tmp_path / "root"
    folder, truth = digits_folder(root)
    pool = ["--images", str(folder), "--store", str(tmp_path / "store"), *FAST]
    ask = ["--budget", "10", "--format", "labelstudio", "--classes", CLASSES]
    monkeypatch.setenv(LS_ROOT_ENV, str(root))
    server = ls.start(tmp_path, root)
    pgid = server.process.pid
    seconds: dict[str, float] = {"Label Studio start": server.start_seconds}
    try:
        # Round 1: nothing labeled; the config alsys wrote makes the project.
        began = time.monotonic()
        r1 = tmp_path / "round1.json"
        select([*pool, *ask, "--strategy", "typiclust", "--out", str(r1)], capsys)
        project = server.create_project(
            "alsys walk", (tmp_path / "round1.labeling.xml").read_text()
        )
        server.add_local_storage(project, folder)
        assert server.import_tasks(project, r1) == 10
        tasks = check_tasks(server, project, folder, r1, predicted=False)
        labeled = annotate(server, tasks, truth, leave=2)
        (tmp_path / "r1-all.json").write_bytes(server.export(project, "JSON", all_tasks=True))
        (tmp_path / "r1.txt").write_bytes(server.export(project, "CSV", all_tasks=False))
        seconds["round 1"] = time.monotonic() - began

        # Round 2: the exports as they are, read without the environment's root (the JSON
        # has its root in meta; the CSV's URLs are matched to the folder); a model round.
        began = time.monotonic()
        monkeypatch.delenv(LS_ROOT_ENV)
        r2 = tmp_path / "round2.json"
        labels = ["--labels", str(tmp_path / "r1-all.json"), "--labels", str(tmp_path / "r1.txt")]
        err = select([*pool, *ask, "--strategy", "margin", *labels, "--out", str(r2)], capsys)
        assert "--labels: skipped 2 rows without a label" in err  # the whole-project export
        chosen, version = round_labels(r2)
        assert not set(chosen) & labeled
        assert version == f"alsys margin, linear probe on {len(labeled)} labels"
        config = (tmp_path / "round2.labeling.xml").read_text()
        server.call("PATCH", f"/api/projects/{project}", {"label_config": config})
        assert server.import_tasks(project, r2) == 10
        tasks = check_tasks(server, project, folder, r2, predicted=True)
        labeled |= annotate(server, tasks, truth, leave=0)
        (tmp_path / "r2-min.json").write_bytes(server.export(project, "JSON_MIN", all_tasks=True))
        seconds["round 2"] = time.monotonic() - began

        # Round 3: one whole-project JSON_MIN export (rows without a label among them) and a
        # CSV of absolute paths that repeats three labels; the environment's root set again.
        began = time.monotonic()
        monkeypatch.setenv(LS_ROOT_ENV, str(root))
        absolute = "".join(f"{folder / p},{truth[p]}\n" for p in sorted(labeled)[:3])
        (tmp_path / "absolute.csv").write_text(absolute, encoding="utf-8")
        labels = [
            "--labels",
            str(tmp_path / "r2-min.json"),
            "--labels",
            str(tmp_path / "absolute.csv"),
        ]
        r3 = tmp_path / "round3.json"
        err = select([*pool, *ask, "--strategy", "entropy", *labels, "--out", str(r3)], capsys)
        chosen, version = round_labels(r3)
        assert not set(chosen) & labeled
        assert version == f"alsys entropy, linear probe on {len(labeled)} labels"
        assert server.import_tasks(project, r3) == 10
        check_tasks(server, project, folder, r3, predicted=True)
        assert len(server.tasks(project)) == 30
        columns = {
            c["id"] for c in server.call("GET", f"/api/dm/columns?project={project}")["columns"]
        }
        assert {"rank", "strategy", "path"} <= {c.removeprefix("data.") for c in columns}
        seconds["round 3"] = time.monotonic() - began
        for kind in ("JSON", "JSON_MIN", "CSV"):  # every export reads back, the same labels
            export, report = tmp_path / f"final-{kind}", tmp_path / f"final-{kind}.out"
            export.write_bytes(server.export(project, kind, all_tasks=True))
            argv = ["--budget", "5", "--strategy", "typiclust", "--labels", str(export)]
            select([*pool, *argv, "--format", "json", "--out", str(report)], capsys)
            read = json.loads(report.read_text())
            assert read["labeled"] == len(labeled), kind
            assert read["classes"] == sorted({truth[p] for p in labeled}), kind
    finally:
        ls.stop(server)
    assert not ls.group_alive(pgid), "a Label Studio process is still running"
    print("seconds:", {k: round(v, 1) for k, v in seconds.items()})
