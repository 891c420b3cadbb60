# ruff: noqa: E501  (the catalogue tables keep one case per line)
"""The bad-input catalogue: every surface (alsys select/run/embed/report, the sweep YAMLs, the
Python API), one table. Each CLI or sweep case runs the real command in its own process and
must give a non-zero exit, one line on stderr naming the field, no traceback, and leave the
working folder exactly as it was (no partial outputs, no store entries, no MLflow file).
Each Python API case must raise InputError naming the field.

(The CLI's in-process table in tests/test_cli.py covers more ``alsys select`` inputs, and
tests/test_select_fuzz.py throws hypothesis at it.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alsys.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
ALSYS = str(Path(sys.executable).parent / "alsys")
SWEEP = [sys.executable, str(ROOT / "sweeps" / "dim_grid.py")]
SELECT = [ALSYS, "select", "--labeled", "none.txt"]  # none.txt: an empty labeled set

SWEEP_BASE = "name: bad\ndataset: digits\nstrategies: [typiclust]\nseeds: [0]\n"

# (case, argv after the command, files to write first {name: text or array}, text on the line)
CLI_CASES: list[tuple[str, list[str], dict[str, Any], str]] = [
    ("select: missing embeddings", [*SELECT, "--strategy", "typiclust", "--embeddings", "no.npy", "--budget", "2"], {}, "--embeddings"),
    ("select: ood_llr without scores", [*SELECT, "--strategy", "ood_llr", "--embeddings", "x.npy", "--budget", "2"], {"x.npy": "pool"}, "scores"),
    ("select: scores of another length", [*SELECT, "--strategy", "ood_llr", "--embeddings", "x.npy", "--scores", "s.npy", "--budget", "2"], {"x.npy": "pool", "s.npy": np.ones(7)}, "pool"),
    ("select: NaN scores", [*SELECT, "--strategy", "ood_llr", "--embeddings", "x.npy", "--scores", "s.npy", "--budget", "2"], {"x.npy": "pool", "s.npy": np.full(60, np.nan)}, "scores"),
    ("select: ood_llr k=3", [*SELECT, "--strategy", "ood_llr", "--param", "k=3", "--embeddings", "x.npy", "--budget", "2"], {"x.npy": "pool"}, "ood_llr.k"),
    ("select: budget beyond pool", [*SELECT, "--strategy", "typiclust", "--embeddings", "x.npy", "--budget", "61"], {"x.npy": "pool"}, "--budget"),
    ("run: unknown strategy", [ALSYS, "run", "--strategy", "nope"], {}, "strategy"),
    ("run: D_clst not a SimCLR size", [ALSYS, "run", "--strategy", "typiclust", "--d-clst", "10"], {}, "--d-clst"),
    ("run: zero episodes", [ALSYS, "run", "--strategy", "random", "--episodes", "0"], {}, "--episodes"),
    ("run: negative seed", [ALSYS, "run", "--strategy", "random", "--seed", "-1"], {}, "--seed"),
    ("run: bad SUPClust temperature", [ALSYS, "run", "--strategy", "supclust", "--param", "temperature=-1"], {}, "supclust.temperature"),
    ("run: FSL on feature vectors", [ALSYS, "run", "--strategy", "random", "--dataset", "embeddings", "--setting", "fsl"], {}, "--setting"),
    ("run: dataset not on disk", [ALSYS, "run", "--strategy", "random", "--dataset", "cifar10"], {}, "cifar10"),
    ("run: unknown budget", [ALSYS, "run", "--strategy", "random", "--budget", "huge"], {}, "--budget"),
    ("run: bad HVAE space", [ALSYS, "run", "--strategy", "typiclust", "--space", "hvae:z9:mean"], {}, "--space"),
    ("run: HVAE space with D_clst", [ALSYS, "run", "--strategy", "typiclust", "--space", "hvae:z0:mean", "--d-clst", "8"], {}, "--space"),
    ("run: zero HVAE epochs", [ALSYS, "run", "--strategy", "typiclust", "--space", "hvae:z0:mean", "--hvae-epochs", "0"], {}, "--hvae-epochs"),
    ("run: ood_llr on an unknown model", [ALSYS, "run", "--strategy", "ood_llr", "--param", "model=vae"], {}, "ood_llr.model"),
    ("run: more rounds than the pool holds", [ALSYS, "run", "--strategy", "random", "--budget", "small", "--episodes", "40"], {}, "--episodes"),
    ("embed: dims not integers", [ALSYS, "embed", "--dataset", "digits", "--dims", "8,x"], {}, "--dims"),
    ("embed: unknown dataset", [ALSYS, "embed", "--dataset", "mnist", "--dims", "8"], {}, "--dataset"),
    ("embed: zero epochs", [ALSYS, "embed", "--dataset", "digits", "--dims", "8", "--epochs", "0"], {}, "--epochs"),
    ("report: missing experiment", [ALSYS, "report", "--experiment", "nope", "--tracking-uri", "sqlite:///{tmp}/m.db", "--out", "r"], {}, "m.db"),
    ("sweep: unknown field", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + "colour: blue\n"}, "colour"),
    ("sweep: unknown strategy", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + "strategies: [nope]\n"}, "strategy"),
    ("sweep: D_clst not a SimCLR size", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + "d_clst: [10]\n"}, "d_clst"),
    ("sweep: unknown budget", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + "budget: huge\n"}, "budget"),
    ("sweep: not YAML", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": "name: [unclosed\n"}, "--config"),
    ("sweep: not a mapping", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": "- a list\n"}, "--config"),
    ("sweep: missing config", [*SWEEP, "--config", "none.yaml"], {}, "--config"),
    ("sweep: bad HVAE space", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + 'spaces: ["hvae:z2:avg"]\n'}, "space"),
    ("sweep: spaces for a strategy not swept", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + "spaces: {margin: [simclr]}\n"}, "spaces"),
    ("sweep: parameter sets not mappings", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + "strategies: [ood_llr]\nstrategy_params: {ood_llr: [invert]}\n"}, "strategy_params.ood_llr"),
    ("sweep: bad SUPClust parameter", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + "strategies: [supclust]\nstrategy_params: {supclust: {typ_ratio: 2}}\n"}, "supclust.typ_ratio"),
    ("sweep: unknown embed_mode", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + "embed_mode: sideways\n"}, "embed_mode"),
    ("sweep: unknown dataset option", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + "dataset_options: {colour: 1}\n"}, "dataset_options.colour"),
    ("sweep: more rounds than the pool holds", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + "budget: small\nepisodes: 40\n"}, "episodes"),
    ("sweep: pca:D beyond the images", [*SWEEP, "--config", "bad.yaml"], {"bad.yaml": SWEEP_BASE + 'spaces: ["pca:100"]\n'}, "space"),
]  # fmt: skip


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("argv", "files", "field"),
    [case[1:] for case in CLI_CASES],
    ids=[case[0] for case in CLI_CASES],
)
def test_cli_and_sweep_bad_input_is_one_line_and_leaves_nothing(
    tmp_path: Path, argv: list[str], files: dict[str, Any], field: str
) -> None:
    pool = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    (tmp_path / "none.txt").write_text("")
    for name, content in files.items():
        if isinstance(content, str) and content == "pool":
            np.save(tmp_path / name, pool)
        elif isinstance(content, np.ndarray):
            np.save(tmp_path / name, content)
        else:
            (tmp_path / name).write_text(content)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[1] in ("run", "embed"):
        argv += ["--store", str(tmp_path / "store"), "--quiet"]
    if argv[1] == "run":
        argv += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    if argv[0] == sys.executable:
        argv += ["--store", str(tmp_path / "store"), "--storage-path", str(tmp_path / "ray")]
        argv += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    (tmp_path / "store").mkdir()
    before = _snapshot(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("ALSYS_DEBUG", "RAY_ADDRESS")}
    env["ALSYS_DATA"] = str(tmp_path / "data")  # no CIFAR here, whatever this machine holds
    result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert field in lines[0], lines[0]
    assert _snapshot(tmp_path) == before, "the failed command left files behind"
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*"))


def _pool(**arrays: Any) -> Any:
    from alsys.strategies import Pool

    return Pool(**arrays)


def _simclr(dims: Any) -> Any:
    from alsys.embed import simclr_embeddings

    return simclr_embeddings("digits", dims)


API_CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("make_strategy: unknown", lambda: __import__("alsys.strategies", fromlist=["x"]).make_strategy("typiclus"), "strategy"),
    ("make_strategy: k_neighbors 0", lambda: __import__("alsys.strategies", fromlist=["x"]).make_strategy("typiclust", k_neighbors=0), "typiclust.k_neighbors"),
    ("make_strategy: ood_llr invert not bool", lambda: __import__("alsys.strategies", fromlist=["x"]).make_strategy("ood_llr", invert=1), "ood_llr.invert"),
    ("Pool: 1-D embeddings", lambda: _pool(embeddings=np.ones(5)), "embeddings"),
    ("Pool: empty", lambda: _pool(), "pool"),
    ("Pool: scores of another length", lambda: _pool(embeddings=np.ones((5, 2)), scores=np.ones(4)), "pool"),
    ("Pool: 2-D scores", lambda: _pool(embeddings=np.ones((5, 2)), scores=np.ones((5, 1))), "scores"),
    ("TrialConfig: negative seed", lambda: __import__("alsys.config", fromlist=["x"]).TrialConfig("random", seed=-1), "seed"),
    ("TrialConfig: bad space", lambda: __import__("alsys.config", fromlist=["x"]).TrialConfig("typiclust", space="z2"), "space"),
    ("simclr_embeddings: zero dimension", lambda: _simclr([0]), "dims"),
    ("hvae_preset: zero epochs", lambda: __import__("alsys.embed.hvae", fromlist=["x"]).hvae_preset("digits", "images", 0), "hvae_epochs"),
    ("HVAEConfig: two layers", lambda: __import__("alsys.embed.hvae", fromlist=["x"]).HVAEConfig(latent_dims=(4, 2)), "hvae.latent_dims"),
    ("HVAEConfig: unknown estimator", lambda: __import__("alsys.embed.hvae", fromlist=["x"]).HVAEConfig(estimator="max"), "hvae.estimator"),
    ("load_sweep: missing file", lambda: __import__("alsys.sweep", fromlist=["x"]).load_sweep("/nonexistent.yaml"), "--config"),
    ("load_dataset: unknown", lambda: __import__("alsys.data", fromlist=["x"]).load_dataset("mnist"), "dataset"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "field"), [case[1:] for case in API_CASES], ids=[case[0] for case in API_CASES]
)
def test_python_api_bad_input_raises_input_error_naming_the_field(
    call: Callable[[], Any], field: str
) -> None:
    with pytest.raises(InputError) as error:
        call()
    assert error.value.field == field, str(error.value)
    assert "\n" not in str(error.value)
