"""Sweep specs, and the dim_grid smoke sweep on a real local Ray with a real MLflow store."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from alsys.errors import InputError
from alsys.sweep import Sweep, SweepSpec, load_sweep

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"


def configs(sweep: Sweep) -> list[Any]:
    return [t.config for t in sweep.trials]


def test_dim_grid_default_is_the_embedded_one() -> None:
    trials = [t.config for t in load_sweep(SWEEPS / "dim_grid.yaml").trials]
    # strategies x D_clst x D_typ x seeds, + Random per seed (TypiClust 64/64 is a grid trial)
    assert len(trials) == 2 * 4 * 4 * 3 + 3
    assert {t.dataset for t in trials} == {"digits"} and {t.setting for t in trials} == {"ssl"}
    assert len(load_sweep(SWEEPS / "dim_grid.yaml", smoke=True).trials) == 8 + 1


@pytest.mark.parametrize(("smoke", "top", "seeds"), [(False, 64, 3), (True, 16, 1)])
def test_dim_grid_runs_random_and_typiclust_at_the_largest_pair_as_baselines(
    smoke: bool, top: int, seeds: int
) -> None:
    sweep = load_sweep(SWEEPS / "dim_grid.yaml", smoke=smoke)
    named = {t.name: t.config for t in sweep.trials}
    baselines = {t.name for t in sweep.trials if t.baseline}
    random = {name for name, c in named.items() if c.strategy == "random"}
    assert len(random) == seeds, "Random once per seed, not once per D pair"
    assert all(named[n].d_clst is None and named[n].d_typ is None for n in random)
    typiclust = {n for n in baselines if named[n].strategy == "typiclust"}
    assert {(named[n].d_clst, named[n].d_typ) for n in typiclust} == {(top, top)}
    assert len(typiclust) == seeds and baselines == random | typiclust
    grid = {n for n, c in named.items() if c.d_clst is not None}
    assert typiclust <= grid, "the TypiClust baseline is the grid's own trial, run once"
    assert len(named) == len(grid) + seeds


@pytest.mark.parametrize(
    ("baselines", "field"),
    [
        ("[{strategy: random, d_clst: 8}]", r"baselines\[0\]\.d_clst"),
        ("[{strategy: typiclust, d_typ: max}]", r"baselines\[0\]\.d_typ: max needs"),
        ("[{strategy: random}, {strategy: nope}]", "strategy"),
        ("[{strategy: random, colour: blue}]", r"baselines\[0\]\.colour"),
        ("[random]", r"baselines\[0\]"),
        ("random", "baselines"),
    ],
)
def test_bad_baselines_fail_naming_the_field(tmp_path: Path, baselines: str, field: str) -> None:
    text = f"name: x\nstrategies: [typiclust]\nseeds: [0]\nbaselines: {baselines}\n"
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(InputError, match=field) as error:
        load_sweep(tmp_path / "bad.yaml")
    assert "\n" not in str(error.value)


def test_parameter_sets_of_one_strategy_are_separate_trials_with_separate_names() -> None:
    spec = SweepSpec(
        name="x",
        axes={"strategy": ["supclust", "random"], "seed": [0]},
        strategy_params={"supclust": [{"temperature": 0.5, "typ_ratio": 0.2}, {}]},
    )
    trials = spec.expand()
    assert sorted(t.name for t in trials) == [
        "random-digits-tiny-ssl-s0",
        "supclust-digits-tiny-ssl-s0",
        "supclust-digits-tiny-ssl-s0-temperature0.5-typ_ratio0.2",
    ]
    # The configuration (what a mean over seeds is taken over) is the name without the seed.
    assert {t.configuration for t in trials} == {
        "random-digits-tiny-ssl",
        "supclust-digits-tiny-ssl",
        "supclust-digits-tiny-ssl-temperature0.5-typ_ratio0.2",
    }


def _rows(sweep: Sweep, rounds: int) -> list[dict[str, object]]:
    """Made-up results of every trial of a sweep, as the collect stage makes its rows."""
    from alsys.sweep.collect import trial_rows

    def value(config: Any, r: int) -> float:
        return float(0.1 * r + 0.01 * config.seed + (0.05 if config.strategy == "random" else 0))

    return [
        row
        for t in sweep.trials
        for row in trial_rows(t, [(r, value(t.config, r)) for r in range(1, rounds + 1)])
    ]


def test_summary_is_a_grid_per_strategy_with_the_baselines_beside_it() -> None:
    from alsys.sweep import results_table, summary_text

    rows = _rows(load_sweep(SWEEPS / "dim_grid.yaml"), rounds=5)
    text = summary_text(rows)
    for strategy in ("typiclust", "supclust"):
        assert f"{strategy}, digits tiny ssl: D_clst (rows) x D_typ (columns)" in text
    assert "D_clst\\D_typ      8     16     32     64" in text
    # Mean over rounds of 0.1 r (0.3) plus 0.01 x seed, mean over seeds 0-2 (0.01).
    assert "          64  0.310  0.310  0.310  0.310" in text
    assert "typiclust 64/64 (baseline)   0.310 ± 0.006" in text
    assert "random (baseline)            0.360 ± 0.006" in text
    assert len(text.splitlines()) < 25, "no line per round"
    table = results_table(rows)  # the long table (the CSV): one row per configuration x round
    assert len(table) == (2 * 4 * 4 + 1) * 5 and set(table.seeds) == {3}
    assert table[table.baseline].strategy.value_counts().to_dict() == {"typiclust": 5, "random": 5}


@pytest.mark.parametrize("name", ["main_results", "ablation", "hvae"])
def test_summary_of_the_other_sweeps_is_one_line_per_configuration(name: str) -> None:
    from alsys.sweep import configuration_means, summary_text

    rows = _rows(load_sweep(SWEEPS / f"{name}.yaml", smoke=True), rounds=2)
    text = summary_text(rows)
    assert "D_clst (rows)" not in text and "Mean ± s.e. over seeds:" in text
    means = configuration_means(rows)
    assert all(strategy in text for strategy in means.strategy)
    # A line per configuration, a column per dataset/budget/setting (main_results: SSL, FSL).
    configurations = means.drop_duplicates(["strategy", "space", "params"])
    assert len(text.splitlines()) == 4 + len(configurations)


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
        # Checked with the YAML too, not once the cluster has started (they used to be):
        ("embed_mode: sideways", "bad.yaml: embed_mode: must be one of nested, separate"),
        ("dataset_options: {colour: 1}", "bad.yaml: dataset_options.colour: unknown option"),
        ("ssl: {steps: 0}", "bad.yaml: ssl.steps"),
        ("fsl: {backbone: vgg}", "bad.yaml: fsl.backbone"),
        ("embed_epochs: 0", "bad.yaml: embed_epochs"),
        ("spaces: [pca:032]", "bad.yaml: space"),
        # The claim the sweep's end judges (alsys.verdict; tests/test_verdict.py has the rest):
        ("claim: nope", "bad.yaml: claim: unknown claim 'nope'; valid: d_typ_over_d_clst"),
        ("claim: tuned_beats_default", "bad.yaml: claim: tuned_beats_default is not a claim"),
        ("d_typ: [16]", "bad.yaml: claim: d_typ_over_d_clst needs a d_typ axis"),
    ],
)
def test_bad_sweep_configs_fail_naming_the_field(tmp_path: Path, line: str, field: str) -> None:
    base = (SWEEPS / "dim_grid.yaml").read_text().split("\nsmoke:")[0]
    key = line.split(":")[0]
    kept = [row for row in base.splitlines() if not row.startswith(f"{key}:")]
    (tmp_path / "bad.yaml").write_text("\n".join([*kept, line]) + "\n")
    with pytest.raises(InputError, match=field) as error:
        load_sweep(tmp_path / "bad.yaml")
    assert "\n" not in str(error.value)


@pytest.mark.integration
def test_dim_grid_smoke_logs_every_trial_once_and_resume_reruns_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray
    from mlflow import MlflowClient

    from alsys.sweep.cli import sweep_main

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
        # The progress bar, not a table per trial: 9 trials (8 + Random) x 2 rounds, all done.
        assert "18/18" in printed.err and "trials 9/9 done, 0 failed, 0 retried" in printed.err
        assert "started with configuration" not in printed.out + printed.err
        # It ends with the compact summary, where the long table went, and the next commands.
        out = printed.out
        for strategy in ("typiclust", "supclust"):
            assert f"{strategy}, digits tiny ssl: D_clst (rows) x D_typ (columns)" in out
        assert re.search(r"typiclust 16/16 \(baseline\) +0\.\d{3} \(1 seed\)", out)
        assert re.search(r"random \(baseline\) +0\.\d{3} \(1 seed\)", out)
        csv = tmp_path / "ray" / "dim_grid_smoke" / "results.csv"
        assert f"Per configuration and round (mean, seeds, s.e.): {csv}" in out
        store = tmp_path / "store"
        assert (
            f"alsys report --experiment dim_grid_smoke --tracking-uri {uri} "
            f"--out report/dim_grid_smoke --store {store}"
        ) in out
        assert f"mlflow ui --backend-store-uri {uri}" in out
        summary = out.split("\nVerdict on the claim")[0]  # the verdict names its claim
        assert "d_clst" not in summary and " sem" not in out, "the long table is in the CSV only"
        # Then its verdict on its claim (docs/verdicts.md), last: one seed cannot tell.
        assert out.index("  mlflow ui ") < out.index("Verdict on the claim 'd_typ_over_d_clst'")
        assert "typiclust, digits/tiny/ssl: not enough seeds to tell" in out
        verdict = tmp_path / "ray" / "dim_grid_smoke" / "verdict.md"
        assert out.rstrip().splitlines()[-1].startswith(f"Verdict in full: {verdict} ")
        assert "because one seed leaves no error within a grid point" in verdict.read_text()
        import pandas as pd

        table = pd.read_csv(csv)
        assert len(table) == 9 * 2 and set(table["round"]) == {1, 2}  # configurations x rounds
        assert set(table[table.baseline].strategy) == {"random", "typiclust"}
        assert sweep_main(SWEEPS / "dim_grid.yaml", [*argv, "--resume"]) == 0
        # Resumed with every trial finished: the bar starts (and stays) full.
        assert "18/18" in capsys.readouterr().err
    finally:
        ray.shutdown()
    # Tune keeps a small record per trial: its name as config, the round's summary metrics in
    # result.json and progress.csv, no TensorBoard files; the driver's environment is restored.
    experiment_dir = tmp_path / "ray" / "dim_grid_smoke"
    trial_dirs = [d for d in experiment_dir.iterdir() if (d / "result.json").is_file()]
    records = [json.loads(line) for d in trial_dirs for line in (d / "result.json").open()]
    assert len(trial_dirs) == 9 == len({r["config"]["trial"] for r in records})
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
    assert parents[0].data.tags["alsys_claim"] == "d_typ_over_d_clst"
    assert parents[0].data.tags["alsys_verdict"].startswith("typiclust, digits/tiny/ssl: not")
    logged = {a.path for a in client.list_artifacts(parents[0].info.run_id, "verdict")}
    assert "verdict/verdict.md" in logged and "verdict/verdict_anova.csv" in logged
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 9 == len(runs) - 1
    assert len({r.info.run_name for r in children}) == 9
    assert sum(r.data.params["strategy"] == "random" for r in children) == 1
    for child in children:
        assert child.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "accuracy")]
        assert steps == [1, 2]  # each round exactly once, also after --resume
        assert len(client.get_metric_history(child.info.run_id, "recall_class_9")) == 2


@pytest.mark.integration
def test_main_results_smoke_runs_the_frontier_strategies_on_ray_and_logs_each_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], warm_store: Path
) -> None:
    import ray
    from mlflow import MlflowClient

    from alsys.sweep.cli import sweep_main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["--smoke", "--storage-path", str(tmp_path / "ray"), "--tracking-uri", uri]
    try:
        assert sweep_main(SWEEPS / "main_results.yaml", [*argv, "--store", str(warm_store)]) == 0
    finally:
        ray.shutdown()
    printed = capsys.readouterr()
    assert "trials 18/18 done, 0 failed, 0 retried" in printed.err
    # Its verdict: the strategies ranked over its two cells (SSL, FSL), with their CD diagram.
    assert "Verdict on the claim 'ranking'" in printed.out
    assert "all strategies: over 2 blocks (cells (dataset/budget/setting)" in printed.out
    assert (tmp_path / "ray" / "main_results_smoke" / "verdict_cd.png").stat().st_size > 10_000
    frontier = ("badge", "maxherding", "uherding", "tcm", "supclust_la")
    for strategy in frontier:  # a line each, SSL and FSL columns, a number in each
        assert re.search(
            rf"^{strategy} +0\.\d{{3}} \(1 seed\) +0\.\d{{3}} \(1 seed\)$", printed.out, re.M
        )
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("main_results_smoke")
    runs = client.search_runs([experiment.experiment_id], "tags.mlflow.parentRunId != ''")
    assert len(runs) == 18 and all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "accuracy")]
        assert steps == [1, 2], run.info.run_name


@pytest.mark.parametrize(
    ("name", "full", "smoke"), [("main_results", 2560, 18), ("ablation", 40, 4)]
)
def test_other_sweeps_expand_to_their_spaces(name: str, full: int, smoke: int) -> None:
    assert len(configs(load_sweep(SWEEPS / f"{name}.yaml"))) == full
    smoke_trials = configs(load_sweep(SWEEPS / f"{name}.yaml", smoke=True))
    assert len(smoke_trials) == smoke
    assert {t.dataset for t in smoke_trials} == {"digits"}


@pytest.mark.integration
def test_tune_supclust_smoke_prints_best_parameters_and_stores_the_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], warm_store: Path
) -> None:
    import optuna
    import ray
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from tests.sweep_scripts import tune_main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [
        "--smoke",
        "--storage-path",
        str(tmp_path / "ray"),
        "--tracking-uri",
        uri,
        "--store",
        str(warm_store),
    ]
    try:
        assert tune_main(SWEEPS / "tune_supclust.yaml", argv) == 0
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    assert "best: temperature=" in out and "typ_ratio=" in out
    # Then the held-out table: the tuned parameters, default SUPClust and TypiClust on seeds
    # the tuning never saw, each mean +- s.e. over those seeds, and the tuning value disowned.
    held_out = out[out.index("Held-out seeds 2, 3 (tuned on seeds 0, 1)") :]
    assert re.search(
        r"\nsupclust tuned: temperature=[\d.e-]+ typ_ratio=[\d.e-]+ +0\.\d{3} ± ", held_out
    )
    assert re.search(r"\nsupclust default: temperature=1 typ_ratio=0\.1 +0\.\d{3} ± ", held_out)
    assert re.search(r"\ntypiclust +0\.\d{3} ± 0\.\d{3} +2\n", held_out)
    assert "not a result" in held_out
    # Then the verdict on the claim, paired over the 2 held-out seeds.
    assert "Verdict on the claim 'tuned_beats_default'" in held_out
    assert "over 2 held-out seeds" in held_out
    assert (tmp_path / "ray" / "tune_supclust_smoke_holdout" / "verdict.md").is_file()
    from mlflow import MlflowClient

    from tests.sweep_scripts import load_tuning_spec

    tuning = load_tuning_spec(SWEEPS / "tune_supclust.yaml", smoke=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tune_supclust_smoke")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "sweep-tune_supclust_smoke_holdout"]
    assert parent.data.tags["alsys_claim"] == "tuned_beats_default"
    held = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(held) == 3 * 2 and all(r.info.status == "FINISHED" for r in held)
    assert {int(r.data.params["seed"]) for r in held} == set(tuning.holdout_seeds) == {2, 3}
    assert not set(tuning.holdout_seeds) & set(tuning.seeds)
    # The search ran through the shared engine: its parent run, one child run per candidate
    # (its parameters, its value per seed done), and each candidate's trials under it, each
    # tracked as every trial is (its rounds, exactly once).
    (search,) = [r for r in runs if r.info.run_name == "sweep-tune_supclust_smoke"]
    assert search.info.status == "FINISHED" and search.data.tags["optuna_journal"]
    candidates = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == search.info.run_id]
    assert len(candidates) == 4 and all(r.info.status == "FINISHED" for r in candidates)
    assert all(json.loads(r.data.params["seeds"]) == tuning.seeds for r in candidates)
    for candidate in candidates:
        steps = client.get_metric_history(candidate.info.run_id, "auc")
        assert [m.step for m in steps] == [1, 2]
        trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == candidate.info.run_id]
        assert sorted(int(r.data.params["seed"]) for r in trials) == tuning.seeds
        for trial in trials:
            history = client.get_metric_history(trial.info.run_id, "balanced_accuracy")
            assert [m.step for m in history] == [1, 2]
            assert float(trial.data.params["strategy_params.temperature"]) == pytest.approx(
                float(candidate.data.params["temperature"])
            )
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
    # Its learning curves: tuned and default SUPClust are two configurations, two curves, and
    # the search's trials (tuning seeds) are not among them.
    from alsys.report_sections import trial_frame
    from alsys.tracking import read_experiment

    frame = trial_frame(read_experiment(uri, "tune_supclust_smoke")["runs"])
    curves = sorted(frame.strategy.unique())
    assert len(curves) == 3 and curves[0] == "supclust" and curves[-1] == "typiclust"
    assert curves[1].startswith("supclust temperature=") and set(frame.seed) == {2, 3}
    # --resume with everything done runs nothing again and logs nothing twice.
    try:
        assert tune_main(SWEEPS / "tune_supclust.yaml", [*argv, "--resume"]) == 0
    finally:
        ray.shutdown()
    again = client.search_runs([experiment.experiment_id])
    assert len(again) == len(runs)
    for run in again:
        history = client.get_metric_history(run.info.run_id, "balanced_accuracy")
        assert len(history) == len({m.step for m in history})


def test_tuning_spec_rejects_bad_ranges(tmp_path: Path) -> None:
    from tests.sweep_scripts import load_tuning_spec

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


def test_held_out_seeds_must_be_disjoint_from_the_tuning_seeds(tmp_path: Path) -> None:
    from tests.sweep_scripts import load_tuning_spec

    text = (SWEEPS / "tune_supclust.yaml").read_text().split("\nsmoke:")[0]
    for line, problem in (
        ("holdout_seeds: [2, 3]", "disjoint from the tuning seeds; both hold 2"),
        ("holdout_seeds: []", "needs a list of integers >= 0"),
        ("holdout_seeds: [x]", "needs a list of integers >= 0"),
        ("", "holdout_seeds: needs seeds disjoint from seeds"),
    ):
        kept = [row for row in text.splitlines() if not row.startswith("holdout_seeds:")]
        (tmp_path / "t.yaml").write_text("\n".join([*kept, line]) + "\n")
        with pytest.raises(InputError, match="holdout_seeds") as error:
            load_tuning_spec(tmp_path / "t.yaml")
        assert problem in str(error.value) and "\n" not in str(error.value)


def test_held_out_evaluation_is_three_trials_per_held_out_seed() -> None:
    from tests.sweep_scripts import load_tuning_spec

    tuning = load_tuning_spec(SWEEPS / "tune_supclust.yaml")
    assert tuning.seeds == [0, 1, 2] and len(tuning.holdout_seeds) == 10
    spec = tuning.holdout_spec("h", {"temperature": 0.25, "typ_ratio": 0.5})
    trials = {t.name: t.config for t in spec.expand()}
    assert len(trials) == 3 * 10
    assert {c.seed for c in trials.values()} == set(tuning.holdout_seeds)
    params = {(c.strategy, json.dumps(c.strategy_params)) for c in trials.values()}
    assert params == {
        ("supclust", json.dumps({"temperature": 0.25, "typ_ratio": 0.5})),
        ("supclust", "{}"),
        ("typiclust", "{}"),
    }
    assert {c.episodes for c in trials.values()} == {tuning.base.episodes}


def test_trial_progress_round_trips_and_a_damaged_file_is_not_used(tmp_path: Path) -> None:
    import numpy as np

    from alsys.loop import RoundResult, TrialState
    from alsys.sweep.trainable import load_state, save_state

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
    from alsys.sweep.launch import restorable

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
    trials = configs(load_sweep(SWEEPS / "hvae.yaml"))
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
    assert len(configs(load_sweep(SWEEPS / "hvae.yaml", smoke=True))) == 6


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
        load_sweep(tmp_path / "bad.yaml")


@pytest.mark.integration
def test_hvae_smoke_sweep_tracks_every_trial_and_draws_the_figures(
    tmp_path: Path, warm_store: Path
) -> None:
    """The real script, in its own process: local Ray, SQLite MLflow, figures on disk and in
    MLflow."""
    import subprocess
    import sys

    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [sys.executable, str(SWEEPS / "hvae.py"), "--smoke", "--tracking-uri", uri]
    argv += ["--storage-path", str(tmp_path / "ray"), "--store", str(warm_store)]
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


BASELINE_SWEEP = """name: baselines
dataset: digits
setting: fsl
budget: tiny
strategies: [random, typiclust]
seeds: [0]
spaces: [pixels, pca:16]
episodes: 2
fsl: {epochs: 2}
resources: {cpu: 1, gpu: 0}
"""


def test_baseline_spaces_are_a_sweep_axis(tmp_path: Path) -> None:
    (tmp_path / "baselines.yaml").write_text(BASELINE_SWEEP)
    trials = configs(load_sweep(tmp_path / "baselines.yaml"))
    assert sorted(t.run_name() for t in trials) == [
        "random-digits-tiny-fsl-s0",
        "typiclust-digits-tiny-fsl-s0-pca-16",
        "typiclust-digits-tiny-fsl-s0-pixels",
    ]


@pytest.mark.parametrize(
    ("spaces", "message"),
    [
        ("[pca:0]", "pca takes D >= 1"),
        ("[pca:x]", "pca takes D >= 1"),
        ("[pixel]", "expected simclr, pixels, pca:<D>"),
    ],
)
def test_bad_baseline_spaces_in_a_sweep_are_named(
    tmp_path: Path, spaces: str, message: str
) -> None:
    text = BASELINE_SWEEP.replace("[pixels, pca:16]", spaces)
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(InputError, match=message) as error:
        load_sweep(tmp_path / "bad.yaml")
    assert error.value.field == "bad.yaml: space"


@pytest.mark.integration
def test_baseline_space_sweep_tracks_each_space_on_a_real_ray(tmp_path: Path) -> None:
    import ray
    from mlflow import MlflowClient

    from alsys.sweep.cli import sweep_main

    # Without random, which would read SimCLR: FSL in a baseline space trains no embedding.
    (tmp_path / "baselines.yaml").write_text(BASELINE_SWEEP.replace("random, ", ""))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["--storage-path", str(tmp_path / "ray"), "--tracking-uri", uri]
    argv += ["--store", str(tmp_path / "store")]
    try:
        assert sweep_main(tmp_path / "baselines.yaml", argv) == 0
    finally:
        ray.shutdown()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("baselines")
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
    assert {r.data.params["space"] for r in trials} == {"pixels", "pca:16"}
    assert {r.info.run_name for r in trials} == {
        "typiclust-digits-tiny-fsl-s0-pixels",
        "typiclust-digits-tiny-fsl-s0-pca-16",
    }
    for trial in trials:
        steps = [m.step for m in client.get_metric_history(trial.info.run_id, "accuracy")]
        assert steps == [1, 2]


def test_digits_lt_is_a_sweep_dataset_with_its_ratio(tmp_path: Path) -> None:
    text = BASELINE_SWEEP.replace("dataset: digits", "dataset: digits_lt")
    (tmp_path / "lt.yaml").write_text(text + "dataset_options: {imbalance_ratio: 20}\n")
    trials = configs(load_sweep(tmp_path / "lt.yaml"))
    assert {t.dataset for t in trials} == {"digits_lt"}
    assert {t.dataset_options["imbalance_ratio"] for t in trials} == {20}


@pytest.mark.integration
@pytest.mark.parametrize("script", ["dim_grid", "tune_supclust"])
def test_a_failed_prepare_stage_closes_the_parent_run_as_failed_with_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], script: str
) -> None:
    """The prepare stage fails for real (the embedding store is a file, so nothing can be read
    or written there) after the parent run exists: the parent ends FAILED, its error tagged,
    and the script says so in one line."""
    import ray
    from mlflow import MlflowClient

    from alsys.sweep.cli import sweep_main
    from tests.sweep_scripts import tune_main

    store = tmp_path / "store"
    store.write_text("not a folder")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["--smoke", "--storage-path", str(tmp_path / "ray"), "--tracking-uri", uri]
    argv += ["--store", str(store)]
    main = sweep_main if script == "dim_grid" else tune_main
    try:
        assert main(SWEEPS / f"{script}.yaml", argv) == 1
    finally:
        ray.shutdown()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"{script}: error: ") and str(store) in err[-1]
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(f"{script}_smoke")
    (parent,) = client.search_runs([experiment.experiment_id])
    assert parent.info.run_name == f"sweep-{script}_smoke"
    assert parent.info.status == "FAILED"
    assert str(store) in parent.data.tags["error"]
