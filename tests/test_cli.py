"""`alsys select`: the happy path, and every bad input in one table."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from alsys.cli import main


@pytest.fixture
def pool_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16)) * 5
    x = centres[np.repeat(np.arange(5), 40)] + rng.normal(size=(200, 16))
    np.save(tmp_path / "pool.npy", x.astype(np.float32))
    np.save(tmp_path / "pool_typ.npy", rng.normal(size=(200, 4)).astype(np.float32))
    (tmp_path / "labeled.txt").write_text("3\n17, 44  # bought last week\n")
    (tmp_path / "empty.txt").write_text("")
    return tmp_path


def base_args(d: Path, **overrides: str) -> list[str]:
    args = {
        "--embeddings": str(d / "pool.npy"),
        "--labeled": str(d / "labeled.txt"),
        "--budget": "5",
        "--strategy": "supclust",
    }
    args.update(overrides)
    out: list[str] = ["select"]
    for flag, value in args.items():
        if value is not None:
            out += [flag, value]
    return out


def test_select_writes_indices_and_reasons(pool_dir: Path) -> None:
    out = pool_dir / "selection.json"
    argv = [
        *base_args(pool_dir),
        "--typ-embeddings",
        str(pool_dir / "pool_typ.npy"),
        "--param",
        "temperature=0.5",
        "--param",
        "typ_ratio=0.2",
        "--seed",
        "3",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert len(report["selected"]) == 5
    assert not {3, 17, 44} & set(report["selected"])
    assert report["params"]["temperature"] == 0.5
    first = report["explanations"][0]
    assert {"cluster", "cluster_size", "typicality", "sup"} <= set(first)
    assert main(argv) == 0
    assert json.loads(out.read_text())["selected"] == report["selected"]


def test_select_prints_json_to_stdout_with_an_empty_labeled_file(
    pool_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = base_args(
        pool_dir, **{"--labeled": str(pool_dir / "empty.txt"), "--strategy": "typiclust"}
    )
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labeled"] == 0 and len(report["selected"]) == 5


def test_model_based_strategy_reads_probs_and_mc_samples(
    pool_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200)
    np.save(pool_dir / "probs.npy", probs)
    np.save(pool_dir / "mc.npy", rng.dirichlet(np.ones(4), size=(8, 200)))
    assert (
        main(
            base_args(pool_dir, **{"--strategy": "margin", "--probs": str(pool_dir / "probs.npy")})
        )
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)["selected"]) == 5
    assert (
        main(base_args(pool_dir, **{"--strategy": "bald", "--probs": str(pool_dir / "mc.npy")}))
        == 0
    )
    assert json.loads(capsys.readouterr().out)["explanations"][0]["reason"] == "bald"


def _write(name: str, array: object) -> Callable[[Path], str]:
    def make(d: Path) -> str:
        path = d / name
        if isinstance(array, bytes):
            path.write_bytes(array)
        else:
            np.save(path, array, allow_pickle=True)
        return str(path)

    return make


def _nan_pool(d: Path) -> str:
    x = np.load(d / "pool.npy")
    x[7, 2] = np.nan
    np.save(d / "nan.npy", x)
    return str(d / "nan.npy")


def _inf_pool(d: Path) -> str:
    x = np.load(d / "pool.npy")
    x[0, 0] = np.inf
    np.save(d / "inf.npy", x)
    return str(d / "inf.npy")


def _text(name: str, content: str) -> Callable[[Path], str]:
    def make(d: Path) -> str:
        (d / name).write_text(content)
        return str(d / name)

    return make


def _npz(d: Path) -> str:
    np.savez(d / "arch.npz", a=np.ones((3, 3)))
    return str(d / "arch.npz")


BAD_INPUTS: list[tuple[str, dict[str, object], list[str], str]] = [
    # (case, flag -> value or maker, extra argv, text the one-line error must contain)
    ("missing file", {"--embeddings": "nowhere.npy"}, [], "--embeddings: no such file"),
    ("corrupt file", {"--embeddings": _write("bad.npy", b"\x93NUMPY garbage")}, [], "--embeddings"),
    (
        "pickled objects",
        {"--embeddings": _write("obj.npy", np.array([{"a": 1}], dtype=object))},
        [],
        "Python objects",
    ),
    ("npz archive", {"--embeddings": _npz}, [], ".npz"),
    ("NaN values", {"--embeddings": _nan_pool}, [], "NaN or infinite"),
    ("infinite values", {"--embeddings": _inf_pool}, [], "NaN or infinite"),
    ("1-D array", {"--embeddings": _write("flat.npy", np.ones(200))}, [], "must be 2-D"),
    ("index out of range", {"--labeled": _text("l.txt", "1\n200\n")}, [], "out of range"),
    ("negative index", {"--labeled": _text("l.txt", "-1\n")}, [], "out of range"),
    ("duplicated index", {"--labeled": _text("l.txt", "4\n4\n")}, [], "more than once"),
    ("non-integer index", {"--labeled": _text("l.txt", "4\nfive\n")}, [], "not an integer"),
    ("budget beyond pool", {"--budget": "198"}, [], "larger than the unlabeled pool"),
    ("budget zero", {"--budget": "0"}, [], "at least 1"),
    ("budget not a number", {"--budget": "ten"}, [], "invalid int value"),
    ("negative seed", {"--seed": "-3"}, [], "--seed: must be a non-negative integer"),
    ("temperature zero", {}, ["--param", "temperature=0"], "supclust.temperature"),
    ("temperature negative", {}, ["--param", "temperature=-2"], "supclust.temperature"),
    ("typ_ratio zero", {}, ["--param", "typ_ratio=0"], "supclust.typ_ratio"),
    ("typ_ratio above one", {}, ["--param", "typ_ratio=1.5"], "supclust.typ_ratio"),
    ("param not a number", {}, ["--param", "temperature=hot"], "must be a number"),
    ("param without value", {}, ["--param", "temperature"], "name=value"),
    ("unknown strategy", {"--strategy": "typiclus"}, [], "unknown strategy 'typiclus'; valid:"),
    ("unknown parameter", {}, ["--param", "temp=1"], "unknown parameter; supclust takes:"),
    (
        "typ embeddings of other length",
        {"--typ-embeddings": _write("t.npy", np.ones((10, 3)))},
        [],
        "disagree",
    ),
    (
        "probs not summing to one",
        {"--strategy": "margin", "--probs": _write("p.npy", np.ones((200, 3)))},
        [],
        "sum to 1",
    ),
    (
        "single probs for bald",
        {
            "--strategy": "bald",
            "--labeled": _text("l.txt", "1"),
            "--probs": _write("p.npy", np.full((200, 2), 0.5)),
        },
        [],
        "T_mc",
    ),
    ("model strategy without probs", {"--strategy": "entropy"}, [], "--probs"),
    ("missing output folder", {"--out": "no/such/dir/out.json"}, [], "--out"),
]


@pytest.mark.parametrize(
    ("flags", "extra", "message"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_one_clear_line_and_no_output(
    pool_dir: Path,
    capsys: pytest.CaptureFixture[str],
    flags: dict[str, object],
    extra: list[str],
    message: str,
) -> None:
    out = pool_dir / "out.json"
    overrides = {"--out": str(out)}
    for flag, value in flags.items():
        overrides[flag] = value(pool_dir) if callable(value) else str(value)
    with pytest.raises(SystemExit) if flags.get("--budget") == "ten" else _no_raise():
        code = main(base_args(pool_dir, **overrides) + extra)
        assert code != 0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("alsys")
    assert message in lines[0]
    assert "Traceback" not in err
    assert not out.exists()
    assert list(pool_dir.glob(".out.json*")) == []


class _no_raise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


@pytest.mark.integration
@pytest.mark.parametrize(
    "case", ["corrupt file", "unknown strategy", "budget beyond pool", "pickled objects"]
)
def test_installed_command_fails_without_traceback(pool_dir: Path, case: str) -> None:
    """The real console script, in its own process."""
    alsys = shutil.which("alsys", path=str(Path(sys.executable).parent))
    assert alsys, "the alsys console script is not installed next to this interpreter"
    flags, extra, message = next(c[1:] for c in BAD_INPUTS if c[0] == case)
    overrides = {k: (v(pool_dir) if callable(v) else str(v)) for k, v in flags.items()}
    result = subprocess.run(
        [alsys, *base_args(pool_dir, **overrides), *extra], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_pickle_is_never_enabled(pool_dir: Path) -> None:
    """A pickled payload inside a .npy must not run: loading refuses it before unpickling."""
    marker = pool_dir / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(marker), "w"))

    np.save(pool_dir / "evil.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    assert pickle.dumps  # the payload really is pickled content
    code = main(base_args(pool_dir, **{"--embeddings": str(pool_dir / "evil.npy")}))
    assert code == 2
    assert not marker.exists()


@pytest.mark.integration
def test_embed_trains_once_then_reads_the_store(tmp_path: Path) -> None:
    alsys = shutil.which("alsys", path=str(Path(sys.executable).parent))
    assert alsys
    argv = [
        alsys,
        "embed",
        "--dataset",
        "digits",
        "--dims",
        "8,16",
        "--epochs",
        "1",
        "--store",
        str(tmp_path),
        "--quiet",
    ]
    first = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert "1 trained now" in first.stdout
    assert "D=16   train (1437, 16)  test (360, 16)" in first.stdout
    second = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert "0 trained now" in second.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "digits", "--dims", "8,x"], "--dims: expected comma-separated integers"),
        (["--dataset", "digits", "--dims", "0"], "--dims: dimensions must be positive"),
        (["--dataset", "mnist", "--dims", "8"], "--dataset: unknown dataset 'mnist'"),
        (["--dataset", "embeddings", "--dims", "8"], "SimCLR does not apply"),
        (["--dataset", "digits", "--dims", "8", "--epochs", "0"], "--epochs: must be at least 1"),
    ],
)
def test_embed_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["embed", *extra, "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "supclust", "--d-clst", "10"], "--d-clst: SimCLR embeddings come in"),
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (
            ["--strategy", "random", "--dataset", "embeddings", "--setting", "fsl"],
            "--setting: fsl trains on images",
        ),
        (["--strategy", "random", "--episodes", "0"], "--episodes: must be an integer >= 1"),
        (["--strategy", "supclust", "--param", "temperature=-1"], "supclust.temperature"),
    ],
)
def test_run_bad_input_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code = main(["run", *extra, "--store", str(tmp_path), "--no-track", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not any(p.is_dir() for p in tmp_path.iterdir())  # nothing was trained


@pytest.mark.integration
def test_run_prints_rounds_and_logs_to_mlflow(tmp_path: Path) -> None:
    alsys = shutil.which("alsys", path=str(Path(sys.executable).parent))
    assert alsys
    result = subprocess.run(
        [
            alsys,
            "run",
            "--strategy",
            "typiclust",
            "--episodes",
            "2",
            "--embed-epochs",
            "2",
            "--store",
            str(tmp_path / "store"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("trial typiclust-digits-tiny-ssl-s0")
    assert [line.split()[:2] for line in lines[2:4]] == [["1", "10"], ["2", "20"]]
    assert f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}" in lines[-1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "strategy", "setting", "space", "name"),
    [
        ("digits", "typiclust", "ssl", "pixels", "typiclust-digits-tiny-ssl-s0-pixels"),
        ("digits", "supclust", "fsl", "pca:16", "supclust-digits-tiny-fsl-s0-pca-16"),
        ("digits_lt", "typiclust", "ssl", "pca:8", "typiclust-digits_lt-tiny-ssl-s0-pca-8"),
    ],
)
def test_run_selects_in_a_baseline_space(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    dataset: str,
    strategy: str,
    setting: str,
    space: str,
    name: str,
) -> None:
    argv = ["run", "--dataset", dataset, "--strategy", strategy, "--setting", setting]
    argv += ["--space", space, "--episodes", "2", "--embed-epochs", "2"]
    assert main([*argv, "--store", str(tmp_path), "--no-track", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"trial {name}: b = 10 a round")
    assert [line.split()[:2] for line in lines[2:4]] == [["1", "10"], ["2", "20"]]
    assert "random" not in lines[2] + lines[3]  # selected in the space, not drawn at random


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--space", "pca:0"], "--space: pca takes D >= 1 components"),
        (["--space", "pca:x"], "--space: pca takes D >= 1 components"),
        (["--space", "pca:9999"], "--space: pca:9999 asks for 9999 components"),
        (["--space", "pixels", "--d-clst", "8"], "--space: pixels is not SimCLR"),
        (["--space", "pixels", "--dataset", "embeddings"], "the embeddings dataset has none"),
    ],
)
def test_run_bad_baseline_space_fails_in_one_line_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code = main(["run", "--strategy", "typiclust", *extra, "--store", str(tmp_path), "--no-track"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not list(tmp_path.iterdir())  # nothing was trained
