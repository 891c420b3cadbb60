"""`alsys select --images DIR` and `--features/--paths`: three labeling rounds on a folder of
the digits as PNG files (with a text file, a CSV and a corrupt PNG among them), real SimCLR
(one epoch) and the real linear probe; and the one-line errors of bad input."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from alsys.cli import main
from alsys.data import load_dataset
from alsys.label_paths import LS_ROOT_ENV, LS_URL

BUDGET = 10
# Tiny and fast: SimCLR on 8 px images for one epoch (the flow, not the representation).
FAST = ["--epochs", "1", "--image-size", "8"]


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """scikit-learn's 1,797 digits as 8x8 PNG files in two subfolders, plus two files that are
    not images and one corrupt PNG; and each image's true label by relative path."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = tmp_path_factory.mktemp("pool") / "digits"
    truth = {}
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        relative = f"{'a' if i % 2 else 'b'}/{i:04d}.png"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(np.clip(pixels * 16, 0, 255).astype(np.uint8), mode="L")
        image.save(folder / relative)
        truth[relative] = str(label)
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "a" / "meta.csv").write_text("x,y\n1,2\n")
    (folder / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return folder, truth


def select(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["select", *argv])
    return code, capsys.readouterr().err


def label_round(selection: Path, truth: dict[str, str]) -> list[dict[str, str]]:
    """Fills in the selection CSV's label column with the true labels (what a person does)."""
    with selection.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with selection.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "label": truth[row["path"]]})
    return rows


def check_rows(rows: list[dict[str, str]], strategy: str, labeled: set[str]) -> set[str]:
    paths = [row["path"] for row in rows]
    assert len(paths) == BUDGET and len(set(paths)) == BUDGET
    assert not set(paths) & labeled, "an already-labeled image was selected again"
    assert [row["rank"] for row in rows] == [str(r) for r in range(1, BUDGET + 1)]
    assert {row["strategy"] for row in rows} == {strategy}
    return set(paths)


def three_rounds(
    strategy: str,
    pool: list[str],
    truth: dict[str, str],
    work: Path,
    capsys: pytest.CaptureFixture[str],
) -> list[tuple[list[dict[str, str]], str]]:
    """Three rounds: select, label the CSV, select again with every labeled CSV so far."""
    labeled: set[str] = set()
    label_files: list[str] = []
    rounds = []
    for round_number in (1, 2, 3):
        out = work / f"{strategy}-round{round_number}.csv"
        labels = [arg for file in label_files for arg in ("--labels", file)]
        argv = [*pool, "--budget", str(BUDGET), "--strategy", strategy, "--out", str(out)]
        code, err = select([*argv, *labels], capsys)
        assert code == 0, err
        rows = label_round(out, truth)
        labeled |= check_rows(rows, strategy, labeled)
        label_files.append(str(out))
        rounds.append((rows, err))
    return rounds


@pytest.mark.parametrize("strategy", ["typiclust", "margin"])
def test_three_rounds_on_an_image_folder(
    strategy: str,
    digits_folder: tuple[Path, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, truth = digits_folder
    store = tmp_path / "store"
    pool = ["--images", str(folder), "--store", str(store), *FAST]
    rounds = three_rounds(strategy, pool, truth, tmp_path, capsys)
    for round_number, (rows, err) in enumerate(rounds, start=1):
        for row in rows:
            assert (folder / row["path"]).is_file()
        # The corrupt PNG and the two other files are counted on one line, not fatal.
        skipped = [line for line in err.splitlines() if "skipped" in line]
        assert len(skipped) == 1 and "skipped 3 files" in skipped[0]
        assert "2 not images" in skipped[0] and "1 unreadable (b/broken.png)" in skipped[0]
        trained = "embeddings: trained SimCLR" in err
        from_store = "embeddings: read from the store" in err
        assert (trained, from_store) == ((True, False) if round_number == 1 else (False, True))
        model_line = "model: linear probe on" in err
        assert model_line == (strategy == "margin" and round_number > 1)
    assert len([entry for entry in store.iterdir() if entry.is_dir()]) == 1
    first, later = rounds[0][0][0], rounds[1][0][0]
    if strategy == "typiclust":
        assert {"cluster", "cluster_size", "typicality"} <= set(first)
    else:  # round 1 has no labels (random, said so), then the probe's margin scores
        assert first["reason"] == "random" and "score" in later and later["reason"] == "margin"


def test_label_studio_and_json_outputs(
    digits_folder: tuple[Path, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, truth = digits_folder
    pool = ["--images", str(folder), "--store", str(tmp_path / "store"), *FAST]
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{p},{truth[p]}\n" for p in sorted(truth)[:30]))
    common = [*pool, "--labels", str(labels), "--budget", "5", "--strategy", "entropy"]

    tasks_file = tmp_path / "tasks.json"
    code, err = select([*common, "--format", "labelstudio", "--out", str(tasks_file)], capsys)
    assert code == 0, err
    assert f"{LS_ROOT_ENV}={folder.parent}" in err  # unset: the folder's parent is the root
    tasks = json.loads(tasks_file.read_text())
    assert isinstance(tasks, list) and len(tasks) == 5
    classes = sorted({truth[p] for p in sorted(truth)[:30]})
    for rank, task in enumerate(tasks, start=1):
        url = task["data"]["image"]
        assert url.startswith(LS_URL)
        relative = unquote(url.removeprefix(LS_URL))
        assert relative.startswith(f"{folder.name}/") and (folder.parent / relative).is_file()
        assert task["data"]["path"] == relative.removeprefix(f"{folder.name}/")
        assert task["data"]["rank"] == rank and task["data"]["strategy"] == "entropy"
        assert isinstance(task["data"]["score"], float)
        assert task["meta"] == {"alsys": {"document_root": str(folder.parent)}}
        (guess,) = task["predictions"]  # the probe's top class, its probability as the score
        assert guess["model_version"] == "alsys entropy, linear probe on 30 labels"
        assert 0 < guess["score"] <= 1
        (result,) = guess["result"]
        assert (result["from_name"], result["to_name"], result["type"]) == (
            "label",
            "image",
            "choices",
        )
        assert result["value"]["choices"][0] in classes
    config = (tmp_path / "tasks.labeling.xml").read_text()
    assert f"labeling config ({len(classes)} classes) -> {tmp_path / 'tasks.labeling.xml'}" in err
    assert '<Image name="image" value="$image"/>' in config
    assert [f'<Choice value="{c}"/>' in config for c in classes] == [True] * len(classes)

    root = folder.parent.parent
    monkeypatch.setenv(LS_ROOT_ENV, str(root))
    code, err = select([*common, "--format", "labelstudio", "--out", str(tasks_file)], capsys)
    assert code == 0, err
    for task in json.loads(tasks_file.read_text()):
        relative = unquote(task["data"]["image"].removeprefix(LS_URL))
        assert relative.startswith(f"{folder.parent.name}/{folder.name}/")
        assert (root / relative).is_file()
    monkeypatch.setenv(LS_ROOT_ENV, str(tmp_path))  # the images lie outside it: refused
    code, err = select([*common, "--format", "labelstudio", "--out", str(tasks_file)], capsys)
    assert code == 2 and "is not below the Label Studio root" in err

    report_file = tmp_path / "next.json"
    code, err = select([*common, "--format", "json", "--out", str(report_file)], capsys)
    assert code == 0, err
    report = json.loads(report_file.read_text())
    assert report["labeled"] == 30 and len(report["paths"]) == 5
    assert [why["path"] for why in report["explanations"]] == report["paths"]
    assert not set(report["paths"]) & set(sorted(truth)[:30])
    assert report["classes"] == sorted({truth[p] for p in sorted(truth)[:30]})


@pytest.mark.parametrize("strategy", ["typiclust", "margin", "supclust_la", "badge", "uherding"])
def test_three_rounds_with_your_own_features(
    strategy: str,
    digits_folder: tuple[Path, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bring your own model: features (here the raw pixels) and a path per row, relative to
    the current folder."""
    folder, truth = digits_folder
    monkeypatch.chdir(folder.parent)
    paths = sorted(truth)
    pixels = np.stack([np.asarray(_png(folder / p), dtype=np.float32).ravel() for p in paths])
    np.save(tmp_path / "feats.npy", pixels + 1.0)
    (tmp_path / "paths.txt").write_text("".join(f"{folder.name}/{p}\n" for p in paths))
    by_path = {f"{folder.name}/{p}": label for p, label in truth.items()}
    pool = ["--features", str(tmp_path / "feats.npy"), "--paths", str(tmp_path / "paths.txt")]
    rounds = three_rounds(strategy, pool, by_path, tmp_path, capsys)
    for rows, err in rounds:
        assert "SimCLR" not in err
        assert all(Path(row["path"]).is_file() for row in rows)
    if strategy == "supclust_la":  # the classes bought reach it from the labels CSVs
        assert all(row["looks_like"] for rows, _ in rounds[1:] for row in rows)
    tasks_file = tmp_path / "tasks.json"
    argv = [*pool, "--budget", "3", "--strategy", strategy, "--format", "labelstudio"]
    code, err = select([*argv, "--out", str(tasks_file)], capsys)
    assert code == 0, err
    for task in json.loads(tasks_file.read_text()):
        assert Path(unquote(task["data"]["image"].removeprefix(LS_URL))).is_file()


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


def test_imagefolder_is_a_dataset(
    digits_folder: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, truth = digits_folder
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{p},{label}\n" for p, label in truth.items()))
    data = load_dataset("imagefolder", folder=str(folder), labels=str(labels), image_size=8)
    assert data.classes == tuple(str(c) for c in range(10))
    assert data.n_train + len(data.test_labels) == len(truth)
    assert data.train_images is not None and data.train_images.shape[1:] == (8, 8, 3)


# --- bad input: one line on stderr, exit code 2, nothing written ---------------------------


def one_line_error(code: int, err: str, *expected: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alsys select: error:"), err
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            "b/0000.png,0\nb/missing.png,3\n",
            ["labels.csv:2", "'b/missing.png' is not among the readable images", "no such file"],
        ),
        ("b/0000.png,0\nb/broken.png,3\n", ["labels.csv:2", "'b/broken.png'", "not among"]),
        ("a/meta.csv,0\n", ["labels.csv:1", "not an image file"]),
        ("b/0000.png,0\na/0001.png,1\nb/0000.png,5\n", ["labels.csv:3", "as '5'", "labels.csv:1"]),
        ("b/0000.png,0,extra\n", ["labels.csv:1", "expected 2 columns"]),
        ("/etc/hostname,0\n", ["labels.csv:1", "'/etc/hostname' lies outside the folder"]),
        ("FOLDER/b/nope.png,0\n", ["labels.csv:1", "is in the folder", "no such file"]),
    ],
    ids=[
        "not-in-folder",
        "unreadable",
        "not-an-image",
        "two-labels",
        "three-columns",
        "absolute-outside",
        "absolute-inside-missing",
    ],
)
def test_bad_label_rows_fail_before_any_training(
    rows: str,
    expected: list[str],
    digits_folder: tuple[Path, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, _ = digits_folder
    labels = tmp_path / "labels.csv"
    labels.write_text(rows.replace("FOLDER", str(folder)))
    store, out = tmp_path / "store", tmp_path / "next.csv"
    argv = ["--images", str(folder), "--store", str(store), *FAST, "--labels", str(labels)]
    code, err = select(
        [*argv, "--budget", "5", "--strategy", "typiclust", "--out", str(out)], capsys
    )
    one_line_error(code, err, "--labels", *expected)
    assert not out.exists()
    assert not store.exists()  # failed before any training


@pytest.mark.parametrize("content", ["nothing", "only-corrupt"])
def test_a_folder_without_readable_images_is_one_line(
    content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello\n")
    if content == "only-corrupt":
        (folder / "x.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    argv = ["--images", str(folder), "--store", str(tmp_path / "store"), *FAST]
    code, err = select([*argv, "--budget", "1", "--strategy", "typiclust"], capsys)
    one_line_error(code, err, "--images", "holds no readable image")


def features_pool(tmp_path: Path, rows: int, paths: Sequence[str]) -> list[str]:
    np.save(tmp_path / "feats.npy", np.random.default_rng(0).normal(size=(rows, 4)))
    (tmp_path / "paths.txt").write_text("".join(f"{p}\n" for p in paths))
    return ["--features", str(tmp_path / "feats.npy"), "--paths", str(tmp_path / "paths.txt")]


@pytest.mark.parametrize(
    ("rows", "paths", "expected"),
    [
        (6, [f"img{i}.png" for i in range(5)], ["--paths", "lists 5 paths", "has 6 rows"]),
        (3, ["a.png", "b.png", "a.png"], ["--paths", "paths.txt:3", "listed again"]),
        (3, ["a.png", "", "c.png"], ["--paths", "paths.txt:2", "empty line"]),
    ],
    ids=["count-mismatch", "duplicate", "blank-line"],
)
def test_bad_paths_are_one_line(
    rows: int,
    paths: list[str],
    expected: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pool = features_pool(tmp_path, rows, paths)
    code, err = select([*pool, "--budget", "1", "--strategy", "typiclust"], capsys)
    one_line_error(code, err, *expected)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--embeddings", "x.npy"], ["--embeddings", "applies to --embeddings pools"]),
        (["--epochs", "3"], ["--epochs", "applies to --images"]),
        (["--strategy", "ood_llr"], ["--strategy", "HVAE scores"]),
        (["--labels", "LABELS"], ["--labels", "margin", "two classes"]),
    ],
    ids=["embeddings-flag", "epochs-without-images", "scores-strategy", "one-class"],
)
def test_bad_combinations_are_one_line(
    extra: list[str], expected: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = features_pool(tmp_path, 4, ["a.png", "b.png", "c.png", "d.png"])
    (tmp_path / "labels.csv").write_text("a.png,cat\nb.png,cat\n")
    extra = [str(tmp_path / "labels.csv") if arg == "LABELS" else arg for arg in extra]
    argv = [*pool, "--budget", "1", "--strategy", "margin", *extra]
    code, err = select(argv, capsys)
    one_line_error(code, err, *expected)


def test_embeddings_pools_refuse_the_path_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "pool.npy", np.random.default_rng(0).normal(size=(20, 4)))
    (tmp_path / "labeled.txt").write_text("")
    base = ["--embeddings", str(tmp_path / "pool.npy"), "--budget", "2", "--strategy", "random"]
    code, err = select(
        [*base, "--format", "csv", "--labeled", str(tmp_path / "labeled.txt")], capsys
    )
    one_line_error(code, err, "--format")
    code, err = select(base, capsys)
    one_line_error(code, err, "--labeled")
