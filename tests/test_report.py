"""`alsys report` on a real smoke sweep, checked in headless Chromium; the MLflow UI on the same
store, served by a real `mlflow server`; and the report's behaviour on empty, partial and
missing experiments."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import browser
from tests.servers import serve_mlflow

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory: pytest.TempPathFactory, digits_store: Path) -> Path:
    """A finished `dim_grid --smoke`: its MLflow SQLite store and its embedding store (a copy
    of the session's, so the sweep trains no SimCLR)."""
    import shutil

    import ray

    from alsys.sweep.cli import sweep_main

    folder = tmp_path_factory.mktemp("smoke")
    shutil.copytree(digits_store, folder / "s", ignore=shutil.ignore_patterns("*.lock"))
    argv = ["--smoke", "--storage-path", str(folder / "ray")]
    argv += ["--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", "--store", str(folder / "s")]
    try:
        assert sweep_main(ROOT / "sweeps" / "dim_grid.yaml", argv) == 0
    finally:
        ray.shutdown()
    return folder


def alsys(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alsys.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_report_shows_every_plot_in_a_browser(smoke_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    uri = f"sqlite:///{smoke_sweep / 'mlflow.db'}"
    done = alsys("report", "--experiment", "dim_grid_smoke", "--tracking-uri", uri)
    assert done.returncode == 2 and "--out" in done.stderr  # required, named
    done = alsys(
        "report", "--experiment", "dim_grid_smoke", "--tracking-uri", uri,
        "--out", str(out), "--store", str(smoke_sweep / "s"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [
        "ablation.png",
        "dims_per_round.png",
        "dims_vs_typiclust.png",
        "learning_curves.png",
        "tsne_selected.png",
        "typicality_vs_sup.png",
    ]
    page = browser.dom((out / "index.html").as_uri(), tmp=tmp_path)
    assert 'data-plots="6/6"' in page, "every plot decoded by the browser"
    sizes = re.findall(r'data-rendered="(\d+)x(\d+)"', page)
    assert len(sizes) == 6 and all(int(w) > 100 and int(h) > 100 for w, h in sizes)
    for title in ("Learning curves", "D_clst x D_typ", "Ablation", "Statistics", "One run"):
        assert f"<h2>{title}" in page
    # It opens with the sweep's verdict on its claim: one seed cannot tell.
    assert page.index("<h2>Verdicts") < page.index("<h2>Learning curves")
    assert "sweep-dim_grid_smoke: d_typ_over_d_clst" in page
    assert "typiclust, digits/tiny/ssl</b>: not enough seeds to tell" in page
    # Only the strategies run at several D pairs are named as drawn at their largest.
    assert "drawn at their largest: supclust 16/16, typiclust 16/16." in page
    assert "9 trial runs (9 finished)" in page  # the 2 x 2 x 2 grid and Random
    assert "too few seeds" in page  # one seed: the statistics say so rather than guess
    assert "None: all 9 trial runs finished." in page
    assert "the baselines: Random and TypiClust at 16/16" in page
    browser.screenshot((out / "index.html").as_uri(), "report.png")
    # self-contained: no file or network reference besides the embedded images
    assert not re.search(r'src="(?!data:)', (out / "index.html").read_text())


def test_report_of_an_empty_or_partial_experiment_says_what_is_missing(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "e"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("empty")
    done = alsys("report", "--experiment", "empty", "--tracking-uri", uri, "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = (out / "index.html").read_text()
    assert "no trial runs yet" in text and "No trial has logged a round yet" in text
    run = client.create_run(experiment, run_name="supclust-digits-tiny-ssl-s0")
    client.log_param(run.info.run_id, "strategy", "supclust")
    client.set_tag(run.info.run_id, "error", "RuntimeError: worker died")
    client.set_terminated(run.info.run_id, status="FAILED")
    done = alsys("report", "--experiment", "empty", "--tracking-uri", uri, "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = (out / "index.html").read_text()
    assert "RuntimeError: worker died" in text and "FAILED" in text
    assert "1 trial runs (0 finished)" in text


def test_report_of_a_missing_experiment_fails_in_one_line_and_writes_nothing(
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    db = tmp_path / "mlflow.db"
    out = str(tmp_path / "r")
    done = alsys("report", "--experiment", "x", "--tracking-uri", f"sqlite:///{db}", "--out", out)
    assert done.returncode == 2 and "--tracking-uri: no MLflow store" in done.stderr
    assert not db.exists(), "reading created no store"
    MlflowClient(tracking_uri=f"sqlite:///{db}").create_experiment("there")
    uri = f"sqlite:///{db}"
    done = alsys("report", "--experiment", "nope", "--tracking-uri", uri, "--out", out)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "--experiment" in done.stderr and "nope" in done.stderr and "there" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".r.tmp")]


@pytest.fixture(scope="module")
def mlflow_ui(smoke_sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An `mlflow server` on a copy of the smoke sweep's store, shared by the tests that only
    read it through the UI (one server start, about 10 s, instead of one per test)."""
    folder = tmp_path_factory.mktemp("mlflow_ui")
    db = folder / "server.db"
    shutil.copy(smoke_sweep / "mlflow.db", db)
    with serve_mlflow(folder, backend=f"sqlite:///{db}") as url:
        yield url


def test_mlflow_ui_shows_the_sweep_its_runs_and_their_metrics(
    mlflow_ui: str, tmp_path: Path
) -> None:
    """What the README tells a researcher to open: the runs table (the parent with its
    children nested under it), one run, the compare view and a metric over rounds."""
    import json
    import urllib.parse

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_ui)
    experiment = client.get_experiment_by_name("dim_grid_smoke")
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    children = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId")), key=lambda r: r.info.run_name
    )
    assert len(runs) == 10 and len(children) == 9
    exp = experiment.experiment_id
    runs_page = f"{mlflow_ui}/#/experiments/{exp}/runs?workflowType=machine_learning"
    page = browser.dom(runs_page, budget_ms=15000, tmp=tmp_path)
    assert "sweep-dim_grid_smoke" in page, "the parent run is listed"
    assert re.search(r"10(</\w+>)? matching runs", page), "all 10 runs found"
    assert not any(c.info.run_name in page for c in children), "children nest under the parent"
    browser.screenshot(runs_page, "mlflow_runs.png", budget_ms=15000, size="1600,1000")

    child = next(c for c in children if c.info.run_name == "supclust-digits-tiny-ssl-s0-c16-t16")
    run_page = f"{mlflow_ui}/#/experiments/{exp}/runs/{child.info.run_id}"
    page = browser.dom(run_page, budget_ms=15000, tmp=tmp_path)
    assert "supclust-digits-tiny-ssl-s0-c16-t16" in page
    assert "balanced_accuracy" in page, "the run's metrics are shown"
    assert "sweep-dim_grid_smoke" in page, "its parent run is linked"
    browser.screenshot(run_page, "mlflow_run.png", budget_ms=15000, size="1600,1200")

    picked = [c for c in children if c.info.run_name.startswith("supclust")][:3]
    ids = json.dumps([c.info.run_id for c in picked])
    compare = f"{mlflow_ui}/#/compare-runs?runs={ids}&experiments={json.dumps([exp])}"
    page = browser.dom(compare, budget_ms=15000, tmp=tmp_path)
    assert all(c.info.run_name in page for c in picked), "the compared runs side by side"
    for name in ("d_clst", "d_typ", "strategy", "balanced_accuracy"):
        assert name in page, f"{name} compared"
    browser.screenshot(compare, "mlflow_compare.png", budget_ms=15000, size="1600,2000")

    key = urllib.parse.quote(json.dumps("balanced_accuracy"))
    keys = urllib.parse.quote(json.dumps(["balanced_accuracy"]))
    metric = (
        f"{mlflow_ui}/#/metric/balanced_accuracy?runs={ids}&metric={key}"
        f"&experiments={json.dumps([exp])}&plot_metric_keys={keys}&x_axis=step"
    )
    page = browser.dom(metric, budget_ms=15000, tmp=tmp_path)
    assert all(c.info.run_name in page for c in picked)
    assert "(step=1)" in page and "(step=2)" in page, "balanced accuracy plotted over rounds"
    assert "<svg" in page or "<canvas" in page
    browser.screenshot(metric, "mlflow_metric.png", budget_ms=15000, size="1600,1000")


def test_dimension_heatmaps_draw_the_baselines_beside_each_grid(tmp_path: Path) -> None:
    """Chapter 4's panels on made-up results: beside each grid, Random and TypiClust at the
    largest D pair, named and with their values."""
    from typing import Any

    import pandas as pd

    from alsys.report import Report, dim_heatmaps

    rows = []
    for strategy, d_clst, d_typ, value in [
        *[("typiclust", c, t, 0.60 + 0.001 * t) for c in (8, 16, 32) for t in (8, 16, 32)],
        *[("supclust", c, t, 0.62 + 0.001 * t) for c in (8, 16, 32) for t in (8, 16, 32)],
        ("random", 512, 512, 0.40),
    ]:
        for seed in (0, 1):
            for r in (1, 2):
                rows.append(
                    {
                        "run_id": f"{strategy}{d_clst}{d_typ}{seed}",
                        "strategy": strategy,  # the configuration's label, as trial_frame's
                        "kind": strategy,
                        "space": "simclr",
                        "dataset": "digits",
                        "budget": "tiny",
                        "setting": "ssl",
                        "seed": seed,
                        "d_clst": d_clst,
                        "d_typ": d_typ,
                        "round": r,
                        "n_labeled": 10 * r,
                        "balanced_accuracy": value + 0.1 * r,
                    }
                )
    frame = pd.DataFrame(rows)
    texts: dict[str, list[str]] = {}

    class Drawn(Report):
        def figure(self, fig: Any, name: str) -> str:
            texts[name] = [t.get_text() for ax in fig.axes for t in ax.texts]
            return super().figure(fig, name)

    section = dim_heatmaps(Drawn("x", tmp_path), frame)
    assert [name for name, _ in section.images] == ["dims_per_round.png", "dims_vs_typiclust.png"]
    assert all("the baselines: Random and TypiClust at 32/32." in c for _, c in section.images)
    per_round = texts["dims_per_round.png"]
    for r in (1, 2):  # once beside each strategy's grid of that round
        assert per_round.count(f"Random\n{0.40 + 0.1 * r:.2f}") == 2
        assert per_round.count(f"TypiClust\n32/32\n{0.632 + 0.1 * r:.2f}") == 2
    # Over rounds, against TypiClust at 32/32: Random 0.55 - 0.782.
    assert texts["dims_vs_typiclust.png"].count("Random\n-0.232") == 2
    assert texts["dims_vs_typiclust.png"].count("TypiClust\n32/32\n+0.000") == 2
    # Without Random runs, only TypiClust stands beside the grids.
    (tmp_path / "y").mkdir()
    section = dim_heatmaps(Drawn("y", tmp_path / "y"), frame[frame.strategy != "random"])
    assert all(c.endswith("the baselines: TypiClust at 32/32.") for _, c in section.images)
    assert not any(t.startswith("Random") for t in texts["dims_per_round.png"])


def test_statistics_pair_runs_on_their_training_and_seed() -> None:
    """On several SimCLR trainings a pair is one training's seed: 2 trainings x 4 seeds are 8
    pairs, never seed 0 of one training against seed 0 of the other."""
    import pandas as pd

    from alsys.report_sections import over_seeds, statistics

    rows = [
        {
            "run_id": f"{strategy}{training}{seed}",
            "strategy": strategy,
            "dataset": "digits",
            "budget": "tiny",
            "setting": "ssl",
            "embed_seed": training,
            "seed": seed,
            "d_clst": 512,
            "d_typ": 512,
            "round": step,
            # TypiClust is 0.01 above Random on its own training, 0.09 below the other one's.
            "balanced_accuracy": base + 0.1 * training + 0.001 * seed,
        }
        for strategy, base in (("random", 0.8), ("typiclust", 0.81))
        for training in (0, 1)
        for seed in range(4)
        for step in (1, 2)
    ]
    frame = pd.DataFrame(rows)
    section = statistics(frame)
    assert "<td>typiclust</td><td>random</td><td>8</td><td>+0.0100</td>" in section.table
    assert "better" in section.table, "8 pairs, each +0.01: Wilcoxon p = 0.004"
    assert over_seeds(frame) == "over 8 seeds x trainings (2 SimCLR trainings)"
    assert over_seeds(frame[frame.embed_seed == 0]) == "over 4 seeds"


def test_typicality_vs_sup_plots_the_strategys_own_record() -> None:
    """The scatter's data is the selection's record as it is: the star is the pick, inside the
    kept set, with the typicality and SUP the strategy computed."""
    import numpy as np

    from alsys.report import visit_scatter
    from alsys.strategies import Pool, make_strategy
    from tests.conftest import blobs

    x, _ = blobs(np.random.default_rng(0), n_per_blob=60, n_blobs=4, dim=8)
    selection = make_strategy("supclust").select(
        Pool(embeddings=x), np.zeros(len(x), bool), 4, np.random.default_rng(0)
    )
    assert selection.record is not None
    points = visit_scatter(selection.record)
    assert not isinstance(points, str)
    first = selection.record["visits"][0]
    assert points.candidates[points.pick] == selection.indices[0] == first["pick"]
    assert points.kept[points.pick], "the star sits inside the kept set"
    assert points.kept.sum() == selection.details[0]["kept_by_typicality"]
    assert points.typicality.tolist() == first["typicality"]
    assert points.sup.tolist() == first["sup"]
    assert points.sup[points.pick] == points.sup[points.kept].max()
    for missing in (None, {"visits": [{**first, "sup": None}]}):
        why = visit_scatter(missing)
        assert isinstance(why, str) and "\n" not in why and why.startswith("Typicality vs SUP")


def test_the_smoke_sweeps_scatter_shows_its_supclust_pick_inside_the_kept_set(
    smoke_sweep: Path, tmp_path: Path
) -> None:
    import json

    from mlflow import MlflowClient

    from alsys.report import visit_scatter
    from alsys.tracking import download_artifact

    uri = f"sqlite:///{smoke_sweep / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("dim_grid_smoke")
    runs = client.search_runs([experiment.experiment_id], "params.strategy = 'supclust'")
    assert runs
    for run in runs:
        file = download_artifact(
            uri, run.info.run_id, "selections.json", tmp_path / run.info.run_id
        )
        assert file is not None
        selections = json.loads(file.read_text())
        assert "kmeans_inertia" in selections[0]["metrics"]
        assert selections[0]["notes"][0].startswith("k-means: 10 restarts")
        points = visit_scatter(selections[0]["record"])
        assert not isinstance(points, str)
        assert points.candidates[points.pick] == selections[0]["indices"][0]
        assert points.kept[points.pick]


def test_mlflow_chart_view_of_the_sweep_draws_its_learning_curves(
    mlflow_ui: str, tmp_path: Path
) -> None:
    """The runs page in chart mode, the parent collapsed: its per-configuration curves (mean
    and s.e. over seeds, step = round) are the charts."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_ui)
    experiment = client.get_experiment_by_name("dim_grid_smoke")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "sweep-dim_grid_smoke"]
    curves = sorted(k for k in parent.data.metrics if k.endswith("/mean"))
    assert "supclust-digits-tiny-ssl-c16-t16/mean" in curves and len(curves) == 9
    history = client.get_metric_history(parent.info.run_id, curves[0])
    assert sorted(m.step for m in history) == [1, 2]
    exp = experiment.experiment_id
    runs = f"{mlflow_ui}/#/experiments/{exp}/runs?workflowType=machine_learning"
    charts = runs + "&compareRunsMode=CHART&isComparingRuns=true"
    # The first load of a fresh profile on a cold server settles the view's state and fetches
    # the metric histories; a later one is what a user sees once the page has loaded. On a
    # busy machine the histories can arrive after the virtual-time budget: reload, as a user
    # would, up to three times (seen once in CI, passing on its rerun).
    browser.dom(charts, budget_ms=20000, tmp=tmp_path)
    for _ in range(3):
        page = browser.dom(charts, budget_ms=20000, tmp=tmp_path)
        shown = [c for c in curves if c in page]
        if shown:
            break
    assert "Model metrics (0)" not in page
    assert shown, "the chart view lists the sweep's curves"
    browser.screenshot(charts, "mlflow_charts.png", budget_ms=20000, size="1600,1400")


@pytest.mark.integration
def test_report_of_strategies_without_dimensions_or_records_says_only_what_is_true(
    tmp_path: Path,
) -> None:
    """Random, Margin, Entropy and Coreset, one real trial each: none uses a D_clst or D_typ,
    and none records typicality or SUP, so the report says neither that they were drawn at a
    dimension nor that their runs predate the records."""
    from alsys.config import TrialConfig
    from alsys.embed.store import EmbeddingStore
    from alsys.loop import prepare_data
    from alsys.report import build_report
    from alsys.runner import tracked_trial

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = EmbeddingStore(tmp_path / "store")
    for strategy in ("random", "margin", "entropy", "coreset"):
        config = TrialConfig(strategy=strategy, episodes=2, embed_epochs=3)
        tracked_trial(config, prepare_data(config, store), uri, "no_dims")
    page = build_report("no_dims", tmp_path / "r", uri, store=str(tmp_path / "store")).read_text()
    assert "4 trial runs (4 finished)" in page
    assert "at several dimensions" not in page and "512/512" not in page
    assert "One run: coreset-digits-tiny-ssl-s0" in page
    assert "Typicality vs SUP is not drawn: coreset computes neither" in page
    assert "before records were kept" not in page
    assert page.index("<h2>Verdicts") < page.index("<h2>Learning curves")
    assert "No verdict: no sweep in this experiment names a claim" in page
