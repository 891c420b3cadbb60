"""A real sweep interrupted on its driver, then resumed; and a sweep of three temperatures.

The sweep runs as a subprocess (``python sweeps/dim_grid.py --config ...``), as a user starts
it; the interrupt is sent to the driver's pid only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_faults import end_session
from tests.test_identity import TEMPERATURES

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "sweeps" / "dim_grid.py"
TUNE = ROOT / "sweeps" / "tune_supclust.py"

pytestmark = pytest.mark.integration

# Rounds of about a second each, so the interrupt lands while trials run.
SPEC = """\
name: interrupted
dataset: digits
setting: ssl
budget: tiny
strategies: [supclust]
seeds: [0, 1, 2, 3]
d_clst: [16]
d_typ: [16]
episodes: 4
embed_epochs: 3
ssl: {steps: 3000}
resources: {cpu: 1}
"""


def _progress(folder: Path) -> dict[str, Any]:
    import numpy as np

    out = {}
    for file in folder.glob("*.npz"):
        try:
            with np.load(file, allow_pickle=False) as saved:
                out[file.stem] = json.loads(saved["record"].tobytes().decode())
        except (OSError, ValueError, KeyError, EOFError):
            continue
    return out


def _run(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        end_session(proc.pid)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130)])
def test_sigint_mid_sweep_prints_the_resume_line_and_resume_finishes_once(
    tmp_path: Path,
    signum: int,
    code: int,
    warm_store: Path,
) -> None:
    (tmp_path / "interrupted.yaml").write_text(SPEC)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [sys.executable, str(SWEEP), "--config", str(tmp_path / "interrupted.yaml")]
    argv += ["--storage-path", str(tmp_path / "ray"), "--tracking-uri", uri]
    argv += ["--store", str(tmp_path / "store")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    driver = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    progress = tmp_path / "ray" / "interrupted" / "alsys_progress"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        if any(len(r["rounds"]) >= 2 for r in _progress(progress).values()):
            break
        time.sleep(0.1)
    assert driver.poll() is None, "the sweep ended before it could be interrupted"
    os.kill(driver.pid, signum)
    try:
        _, err = driver.communicate(timeout=180)
    finally:
        end_session(driver.pid)
    print(f"--- interrupted driver (exit {driver.returncode}), stderr tail:\n{err[-1500:]}")
    assert driver.returncode == code, err[-3000:]
    assert "Traceback" not in err and "KeyError" not in err, err[-3000:]
    (line,) = [row for row in err.splitlines() if "Resume with: " in row]
    assert re.match(r"dim_grid: interrupted: \d of 4 trials finished, \d stopped mid-way, ", line)
    resume = shlex.split(line.split("Resume with: ", 1)[1])
    assert resume[0] == "python" and resume[-1] == "--resume"
    assert resume[1:-1] == argv[1:], "the exact command, plus --resume"

    done = _run([sys.executable, *resume[1:]], tmp_path, 600)
    print(f"--- resumed (exit {done.returncode}), stdout tail:\n{done.stdout[-800:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("interrupted")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "sweep-interrupted"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 == len(runs) - 1, "one MLflow run per trial"
    for child in children:
        assert child.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "accuracy")]
        assert sorted(steps) == [1, 2, 3, 4], f"{child.info.run_name}: {steps}"
    # The parent holds the configuration's learning curve, a point per round.
    curve = client.get_metric_history(parent.info.run_id, "supclust-digits-tiny-ssl-c16-t16/mean")
    assert sorted({m.step for m in curve}) == [1, 2, 3, 4]
    assert (
        parent.info.status == "FINISHED"
        or client.get_run(parent.info.run_id).info.status == "FINISHED"
    )


def test_three_temperatures_are_three_runs_with_their_names_and_params(
    tmp_path: Path, warm_store: Path
) -> None:
    (tmp_path / "t.yaml").write_text(TEMPERATURES)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [sys.executable, str(SWEEP), "--config", str(tmp_path / "t.yaml")]
    argv += ["--storage-path", str(tmp_path / "ray"), "--tracking-uri", uri]
    argv += ["--store", str(tmp_path / "store")]
    done = _run(argv, tmp_path, 600)
    assert done.returncode == 0, done.stderr[-3000:]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("temperatures")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3
    assert sorted(r.info.run_name for r in children) == [
        "supclust-digits-tiny-ssl-s0",  # T = 1 is the default: the name spells no parameter
        "supclust-digits-tiny-ssl-s0-temperature0.1",
        "supclust-digits-tiny-ssl-s0-temperature10",
    ]
    params = sorted(float(r.data.params["strategy_params.temperature"]) for r in children)
    assert params == [0.1, 1.0, 10.0]
    # Every hyperparameter the strategy ran with, defaults included, under one scheme.
    assert {r.data.params["strategy_params.typ_ratio"] for r in children} == {"0.1"}
    assert {r.data.params["strategy_params.k_neighbors"] for r in children} == {"20"}
    (parent,) = [r for r in runs if r.info.run_name == "sweep-temperatures"]
    assert {
        "supclust-digits-tiny-ssl-temperature0.1/mean",
        "supclust-digits-tiny-ssl/mean",
        "supclust-digits-tiny-ssl-temperature10/mean",
    } <= set(parent.data.metrics)


# A search long enough to be interrupted mid-way: 8 candidates of 2 seeds x 4 rounds.
SEARCH = """\
name: searched
dataset: digits
setting: ssl
budget: tiny
seeds: [0, 1]
holdout_seeds: [2]
episodes: 4
embed_epochs: 3
search:
  temperature: {low: 0.01, high: 10.0}
  typ_ratio: {low: 0.02, high: 1.0}
num_samples: 4
sampler_seed: 0
resources: {cpu: 1}
"""


def test_sigint_mid_search_then_resume_finishes_the_search_once(
    tmp_path: Path, warm_store: Path
) -> None:
    """tune_supclust runs on the shared engine: Ctrl-C stops it with the resume line, and
    --resume finishes the search (Optuna's state restored with Tune's) and the held-out
    sweep, every candidate and trial in one MLflow run, every round logged once."""
    import optuna
    from mlflow import MlflowClient
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    (tmp_path / "search.yaml").write_text(SEARCH)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [sys.executable, str(TUNE), "--config", str(tmp_path / "search.yaml")]
    argv += ["--storage-path", str(tmp_path / "ray"), "--tracking-uri", uri]
    argv += ["--store", str(tmp_path / "store")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    driver = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    progress = tmp_path / "ray" / "searched" / "alsys_progress"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        if sum(len(r["rounds"]) for r in _progress(progress).values()) >= 6:
            break
        time.sleep(0.1)
    assert driver.poll() is None, "the search ended before it could be interrupted"
    os.kill(driver.pid, signal.SIGINT)
    try:
        _, err = driver.communicate(timeout=180)
    finally:
        end_session(driver.pid)
    assert driver.returncode == 130, err[-3000:]
    (line,) = [row for row in err.splitlines() if "Resume with: " in row]
    assert re.match(r"tune_supclust: interrupted: \d+ of 8 trials finished", line), line
    assert "Traceback" not in err
    resume = shlex.split(line.split("Resume with: ", 1)[1])
    done = _run([sys.executable, *resume[1:]], tmp_path, 900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Held-out seeds 2 (tuned on seeds 0, 1)" in done.stdout
    journal = tmp_path / "ray" / "searched" / "optuna_journal.log"
    study = optuna.load_study(
        study_name="searched", storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    states = [t.state.name for t in study.trials]
    print(f"--- interrupted: {line}\n--- the study's trials after --resume: {states}")
    # One complete trial per candidate; those the interrupted driver left running are failed
    # (their candidates ran again, as new trials with the same parameters).
    assert states.count("COMPLETE") == 4 and "RUNNING" not in states, states
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("searched").experiment_id])
    (search,) = [r for r in runs if r.info.run_name == "sweep-searched"]
    assert search.info.status == "FINISHED"
    candidates = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == search.info.run_id]
    assert len(candidates) == 4 and all(r.info.status == "FINISHED" for r in candidates)
    assert len({r.data.tags["alsys_candidate"] for r in candidates}) == 4, "one run each"
    for candidate in candidates:
        trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == candidate.info.run_id]
        assert sorted(int(r.data.params["seed"]) for r in trials) == [0, 1]
        for trial in trials:
            steps = [m.step for m in client.get_metric_history(trial.info.run_id, "accuracy")]
            assert sorted(steps) == [1, 2, 3, 4], f"{trial.info.run_name}: {steps}"
