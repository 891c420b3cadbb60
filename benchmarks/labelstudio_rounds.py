"""Three labeling rounds of the README's walk against a real Label Studio server, timed.

The digits are written as 1,797 PNG files under ``digits/part1`` and ``digits/part 2`` (with a
``notes.txt``, a ``meta.csv`` and one corrupt PNG). Each round runs ``alsys select`` as a whole
process, then does through Label Studio's REST API what a user does in its UI: round 1 makes
the project from the labeling config alsys wrote and adds the local-files storage; every
round imports the tasks, labels them (here with the true digit: the script plays the
labeler), and exports, and the export goes back to the next round as ``--labels`` as it is.
It prints alsys's lines, the seconds of each step, and what Label Studio shows: tasks,
predictions and the data manager's columns.

Needs Label Studio in ``.venv-ls`` (see .ci/run) or ``$ALSYS_LABEL_STUDIO``.

    .venv/bin/python benchmarks/labelstudio_rounds.py [--work /tmp/walk-ls]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from alsys.label_paths import LS_ROOT_ENV  # noqa: E402
from tests import labelstudio_server as ls  # noqa: E402

CLASSES = ",".join(str(c) for c in range(10))
ROUNDS = [  # (strategy, the export of the round before: kind, whole project)
    ("typiclust", None),
    ("typiclust", ("JSON", False)),
    ("margin", ("JSON_MIN", True)),
]


def write_digits(walk: Path) -> dict[str, str]:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = walk / "digits"
    truth = {}
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        relative = f"{'part1' if i % 2 else 'part 2'}/{i:04d}.png"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels * 16, 0, 255).astype(np.uint8), mode="L").save(
            folder / relative
        )
        truth[relative] = str(label)
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "meta.csv").write_text("x,y\n1,2\n")
    (folder / "part1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return truth


def alsys_select(walk: Path, argv: list[str]) -> tuple[float, str]:
    env = {**os.environ, "ALSYS_STORE": str(walk / "store"), "PYTHONPATH": str(REPO)}
    env[LS_ROOT_ENV] = str(walk)  # the server's document root: the walk's folder
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "alsys.cli", "select", *argv],
        cwd=walk,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return seconds, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/walk-ls", help="a folder to create (emptied)")
    walk = Path(parser.parse_args().work).resolve()
    shutil.rmtree(walk, ignore_errors=True)
    walk.mkdir(parents=True)
    truth = write_digits(walk)
    began = time.perf_counter()
    server = ls.start(walk / "server", walk)
    print(
        f"Label Studio {ls.label_studio_executable()} answered after {server.start_seconds:.1f} s"
    )
    project, labels = 0, []
    try:
        for number, (strategy, export) in enumerate(ROUNDS, start=1):
            times: dict[str, float] = {}
            if export is not None:
                kind, whole = export
                t = time.perf_counter()
                name = f"export{number - 1}{'-min' if kind == 'JSON_MIN' else ''}.json"
                (walk / name).write_bytes(server.export(project, kind, all_tasks=whole))
                times[f"export {kind}{' (all tasks)' if whole else ''}"] = time.perf_counter() - t
                labels = ["--labels", name]  # each export holds the rounds before it
            out = f"round{number}.json"
            argv = ["--images", "digits", "--budget", "10", "--strategy", strategy, *labels]
            argv += ["--format", "labelstudio", "--classes", CLASSES, "--out", out]
            times["alsys select"], err = alsys_select(walk, argv)
            print(f"\n## round {number}: alsys select {' '.join(argv)}\n{err.rstrip()}")
            t = time.perf_counter()
            config = (walk / f"round{number}.labeling.xml").read_text()
            if number == 1:
                project = server.create_project("digits", config)
                server.add_local_storage(project, walk / "digits")
            else:
                server.call("PATCH", f"/api/projects/{project}", {"label_config": config})
            imported = server.import_tasks(project, walk / out)
            times["import"] = time.perf_counter() - t
            t = time.perf_counter()
            tasks = server.tasks(project)
            new = [task for task in tasks if task["total_annotations"] == 0]
            served = [server.get_status(task["data"]["image"])[0] for task in new]
            for task in new:
                server.annotate(int(task["id"]), truth[task["data"]["path"]])
            times["label (API)"] = time.perf_counter() - t
            predictions = sum(task["total_predictions"] for task in new)
            columns = server.call("GET", f"/api/dm/columns?project={project}")["columns"]
            data_columns = [c["id"] for c in columns if c.get("parent") == "data"]
            data_columns = data_columns or [c["id"] for c in columns]
            print(
                f"Label Studio: {imported} tasks imported ({len(tasks)} in the project), "
                f"images served {served.count(200)}/{len(served)}, predictions {predictions}, "
                f"data columns {data_columns}"
            )
            print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
    finally:
        ls.stop(server)
    print(
        f"\nwhole walk {time.perf_counter() - began:.1f} s; server stopped: "
        f"{not ls.group_alive(server.process.pid)}"
    )


if __name__ == "__main__":
    main()
