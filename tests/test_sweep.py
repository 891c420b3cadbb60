"""Sweep specs, and the dim_grid smoke sweep on a real local Ray with a real MLflow store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from alsys.errors import InputError
from alsys.sweep import load_spec

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"


def test_dim_grid_default_is_the_embedded_one() -> None:
    spec = load_spec(SWEEPS / "dim_grid.yaml")
    trials = spec.trials()
    assert len(trials) == 2 * 4 * 4 * 3  # strategies x D_clst x D_typ x seeds
    assert {t.dataset for t in trials} == {"digits"} and {t.setting for t in trials} == {"ssl"}
    assert len(load_spec(SWEEPS / "dim_grid.yaml", smoke=True).trials()) == 8


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("strategies: [typiclust, nope]", "strategy"),
        ("budget: huge", "budget"),
        ("d_clst: [8, 10]", "d_clst"),
        ("strategy_params: {supclust: {temperature: -1}}", "supclust.temperature"),
        ("strategy_params: {supclust: {typ_ratio: 2}}", "supclust.typ_ratio"),
        ("dataset: mnist", "dataset"),
        ("colour: blue", "colour"),
    ],
)
def test_bad_sweep_configs_fail_naming_the_field(tmp_path: Path, line: str, field: str) -> None:
    base = (SWEEPS / "dim_grid.yaml").read_text().split("\nsmoke:")[0]
    key = line.split(":")[0]
    kept = [row for row in base.splitlines() if not row.startswith(f"{key}:")]
    (tmp_path / "bad.yaml").write_text("\n".join([*kept, line]) + "\n")
    with pytest.raises(InputError, match=field):
        load_spec(tmp_path / "bad.yaml")


@pytest.mark.integration
def test_dim_grid_smoke_logs_every_trial_once_and_resume_reruns_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray
    from mlflow import MlflowClient

    from alsys.tune_adapter import sweep_main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [
        "--smoke",
        "--storage-path",
        str(tmp_path / "ray"),
        "--tracking-uri",
        uri,
        "--store",
        str(tmp_path / "store"),
    ]
    try:
        assert sweep_main(SWEEPS / "dim_grid.yaml", argv) == 0
        printed = capsys.readouterr()
        assert "supclust" in printed.out and "typiclust" in printed.out
        # The progress bar, not a table per trial: 8 trials x 2 rounds, all done.
        assert "16/16" in printed.err and "trials 8/8 done, 0 failed, 0 retried" in printed.err
        assert "started with configuration" not in printed.out + printed.err
        assert sweep_main(SWEEPS / "dim_grid.yaml", [*argv, "--resume"]) == 0
        # Resumed with every trial finished: the bar starts (and stays) full.
        assert "16/16" in capsys.readouterr().err
    finally:
        ray.shutdown()
    # Tune keeps a small record per trial: its name as config, the round's summary metrics in
    # result.json and progress.csv, no TensorBoard files; the driver's environment is restored.
    experiment_dir = tmp_path / "ray" / "dim_grid_smoke"
    trial_dirs = [d for d in experiment_dir.iterdir() if (d / "result.json").is_file()]
    records = [json.loads(line) for d in trial_dirs for line in (d / "result.json").open()]
    assert len(trial_dirs) == 8 == len({r["config"]["trial"] for r in records})
    assert all(list(r["config"]) == ["trial"] for r in records)
    assert all("balanced_accuracy" in r and "recall_class_0" not in r for r in records)
    assert all((d / "progress.csv").is_file() for d in trial_dirs)
    assert not list((tmp_path / "ray").rglob("events.out.tfevents*"))
    assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("dim_grid_smoke")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.info.run_name == "sweep-dim_grid_smoke"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 8 == len(runs) - 1
    assert len({r.info.run_name for r in children}) == 8
    for child in children:
        assert child.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "accuracy")]
        assert steps == [1, 2]  # each round exactly once, also after --resume
        assert len(client.get_metric_history(child.info.run_id, "recall_class_9")) == 2


@pytest.mark.parametrize(
    ("name", "full", "smoke"), [("main_results", 1760, 8), ("ablation", 40, 4)]
)
def test_other_sweeps_expand_to_their_spaces(name: str, full: int, smoke: int) -> None:
    assert len(load_spec(SWEEPS / f"{name}.yaml").trials()) == full
    smoke_trials = load_spec(SWEEPS / f"{name}.yaml", smoke=True).trials()
    assert len(smoke_trials) == smoke
    assert {t.dataset for t in smoke_trials} == {"digits"}


@pytest.mark.integration
def test_tune_supclust_smoke_prints_best_parameters_and_stores_the_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna
    import ray
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from alsys.tune_adapter import tune_main

    argv = [
        "--smoke",
        "--storage-path",
        str(tmp_path / "ray"),
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--store",
        str(tmp_path / "s"),
    ]
    try:
        assert tune_main(SWEEPS / "tune_supclust.yaml", argv) == 0
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    assert "best: temperature=" in out and "typ_ratio=" in out
    journal = tmp_path / "ray" / "tune_supclust_smoke" / "optuna_journal.log"
    study = optuna.load_study(
        study_name="tune_supclust_smoke", storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4
    assert all(
        0.01 <= t.params["temperature"] <= 10 and 0.02 <= t.params["typ_ratio"] <= 1
        for t in complete
    )
    # The report finds the study through the parent run's tag and draws it.
    from alsys.report import build_report

    page = build_report(
        "tune_supclust_smoke", tmp_path / "report", f"sqlite:///{tmp_path / 'mlflow.db'}"
    ).read_text()
    assert "<h2>Optuna study" in page and "Best of 4 trials" in page
    assert (tmp_path / "report" / "optuna_history.png").stat().st_size > 10_000
    assert (tmp_path / "report" / "optuna_importances.png").is_file()


def test_tuning_spec_rejects_bad_ranges(tmp_path: Path) -> None:
    from alsys.sweep import load_tuning_spec

    text = (SWEEPS / "tune_supclust.yaml").read_text()
    (tmp_path / "t.yaml").write_text(
        text.replace("{low: 0.02, high: 1.0}", "{low: 0.5, high: 1.5}")
    )
    with pytest.raises(InputError, match=r"search\.typ_ratio"):
        load_tuning_spec(tmp_path / "t.yaml")
    (tmp_path / "t.yaml").write_text(
        text.replace("{low: 0.01, high: 10.0}", "{low: 0, high: 10.0}")
    )
    with pytest.raises(InputError, match=r"search\.temperature"):
        load_tuning_spec(tmp_path / "t.yaml")


def test_trial_progress_round_trips_and_a_damaged_file_is_not_used(tmp_path: Path) -> None:
    import numpy as np

    from alsys.loop import RoundResult, TrialState
    from alsys.tune_adapter import load_state, save_state

    state = TrialState(np.array([-1, 1, 2, -1, 1]))
    state.rounds = [
        RoundResult(r, 2 * r, 0.5, 0.4, [0.4, 0.4], [r, r], [1], [0], 0.1, 0.2, False, ["n"])
        for r in (1, 2)
    ]
    file = tmp_path / "trial.npz"
    save_state(file, state, "run123", "cfg-a")
    loaded, run_id = load_state(file, "cfg-a")  # type: ignore[misc]
    assert run_id == "run123" and loaded.rounds == state.rounds
    assert load_state(file, "cfg-b") is None  # progress of another config is not resumed
    np.testing.assert_array_equal(loaded.bought_round, state.bought_round)
    assert list(tmp_path.iterdir()) == [file]  # no temporary left behind
    file.write_bytes(file.read_bytes()[:40])  # truncated, as by a full disk
    assert load_state(file) is None
    assert load_state(tmp_path / "absent.npz") is None


def test_damaged_tune_state_is_not_restored(tmp_path: Path) -> None:
    from alsys.tune_adapter import restorable

    assert not restorable(tmp_path)  # nothing saved
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    (tmp_path / "tuner.pkl").write_bytes(b"x")
    (tmp_path / "basic-variant-state-2026-01-01_00-00-00.json").write_bytes(b"")
    assert not restorable(tmp_path)  # an empty file, as a killed driver's copy leaves
    (tmp_path / "basic-variant-state-2026-01-01_00-00-00.json").write_bytes(b"x")
    assert restorable(tmp_path)
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": [')
    assert not restorable(tmp_path)


def test_hvae_sweep_expands_to_the_chapter_3_grid() -> None:
    trials = load_spec(SWEEPS / "hvae.yaml").trials()
    assert len(trials) == 3 * (1 + 13 + 4)  # seeds x (random, typiclust spaces, ood variants)
    typiclust = {t.space for t in trials if t.strategy == "typiclust"}
    assert typiclust == {"simclr"} | {
        f"{m}:z{j}:{mode}"
        for m in ("hvae", "hvae-emb")
        for j in range(3)
        for mode in ("rp", "mean")
    }
    ood = {(t.space, t.strategy_params["invert"]) for t in trials if t.strategy == "ood_llr"}
    assert ood == {(s, inv) for s in ("hvae:z2:mean", "simclr") for inv in (False, True)}
    assert {t.space for t in trials if t.strategy == "random"} == {"simclr"}
    assert len({t.run_name() for t in trials}) == len(trials)
    assert len(load_spec(SWEEPS / "hvae.yaml", smoke=True).trials()) == 6


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("spaces: {typiclust: [simclr], margin: [simclr]}", "spaces"),
        ('spaces: ["hvae:z9:mean"]', "space"),
        ("strategy_params: {ood_llr: [invert]}", "strategy_params.ood_llr"),
        ("hvae_epochs: -1", "hvae_epochs"),
    ],
)
def test_bad_hvae_sweep_fields_are_named(tmp_path: Path, extra: str, field: str) -> None:
    base = "name: x\nstrategies: [typiclust, ood_llr]\nseeds: [0]\n"
    (tmp_path / "bad.yaml").write_text(base + extra + "\n")
    with pytest.raises(InputError, match=field):
        load_spec(tmp_path / "bad.yaml")


@pytest.mark.integration
def test_hvae_smoke_sweep_tracks_every_trial_and_draws_the_figures(tmp_path: Path) -> None:
    """The real script, in its own process: local Ray, SQLite MLflow, figures on disk and in
    MLflow."""
    import subprocess
    import sys

    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [sys.executable, str(SWEEPS / "hvae.py"), "--smoke", "--tracking-uri", uri]
    argv += ["--storage-path", str(tmp_path / "ray"), "--store", str(tmp_path / "store")]
    argv += ["--figures", str(tmp_path / "figures")]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "hvae:z2:mean" in result.stdout and "hvae-emb:z0:rp" in result.stdout
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("hvae_smoke")
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trials) == 6 and all(r.info.status == "FINISHED" for r in trials)
    assert {r.data.params["space"] for r in trials} == {"simclr", "hvae:z2:mean", "hvae-emb:z0:rp"}
    (figures_run,) = [r for r in runs if r.info.run_name == "figures"]
    logged = {Path(a.path).name for a in client.list_artifacts(figures_run.info.run_id, "figures")}
    expected = {f"tsne_{m}_z{j}.png" for m in ("hvae", "hvae-emb") for j in range(3)}
    expected |= {f"{kind}_{m}.png" for kind in ("kl", "llr2") for m in ("hvae", "hvae-emb")}
    assert logged == expected
    for name in expected:
        assert (tmp_path / "figures" / name).stat().st_size > 10_000, name
