"""``alsys report``: one MLflow experiment as a self-contained HTML page, its plots also as PNG.

Sections (each says plainly what it lacks instead of failing):

- the verdicts: each sweep's answer to the claim its YAML names (alsys.verdict), with the
  statistics behind it and, for a ranking, its critical-difference diagram;
- learning curves, balanced accuracy against labels, mean +- s.e. over seeds, a line per
  strategy, a panel per dataset x budget; SSL solid, FSL dashed (thesis Fig. 5.10);
- the D_clst x D_typ heatmaps of mean accuracy per round, and the difference to TypiClust at
  the largest dimensions present (512/512 in the thesis; chapter 4);
- ablation bars of the area under the learning curve (Fig. 5.3);
- statistics: each strategy against Random and TypiClust, the area under the learning curve
  paired over seeds, Wilcoxon's signed-rank test;
- one chosen run: typicality against SUP for one cluster's candidates (Fig. 5.8/5.9) and a
  t-SNE of its embedding with the selected points marked (Fig. 5.4/5.5);
- the Optuna study, when the experiment has one: optimisation history and importances;
- failed and incomplete trials, with their errors.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alsys.errors import InputError
from alsys.report_sections import (
    Report,
    Section,
    _pyplot,
    ablation,
    dim_heatmaps,
    learning_curves,
    statistics,
    trial_frame,
)


def _template_dir() -> Path:
    """dashboards/ of the checkout (or $ALSYS_DASHBOARDS), where the page template lives."""
    chosen = os.environ.get("ALSYS_DASHBOARDS")
    return Path(chosen) if chosen else Path(__file__).resolve().parents[1] / "dashboards"


def _scatter_rank(strategy: str) -> int:
    """Which runs show the typicality vs SUP figure best: SUPClust's kind (it records SUP),
    then the other clustering strategies (typicality only), then the rest."""
    from alsys.strategies import get_strategy_class
    from alsys.strategies.clustering import ClusterStrategy
    from alsys.strategies.supclust import SUPScore

    try:
        cls = get_strategy_class(strategy)
    except InputError:
        return 3
    return 0 if issubclass(cls, SUPScore) else 1 if issubclass(cls, ClusterStrategy) else 2


def chosen_run(
    report: Report,
    runs: list[dict[str, Any]],
    run_id: str | None,
    tracking_uri: str | None,
    store: str | None,
) -> Section:
    """Typicality vs SUP of one cluster's candidates, and the t-SNE with the selections."""
    from alsys.config import TrialConfig
    from alsys.embed.store import EmbeddingStore, MissingEntry
    from alsys.loop import prepare_data
    from alsys.plots import tsne_scatter
    from alsys.tracking import download_artifact

    section = Section("One run")
    finished = [r for r in runs if r["status"] == "FINISHED" and "strategy" in r["params"]]
    if run_id is not None:
        pick = [r for r in runs if r["run_id"] == run_id]
        if not pick:
            raise InputError("--run", f"no run {run_id} in experiment {report.experiment!r}")
    else:
        pick = sorted(finished, key=lambda r: (_scatter_rank(r["params"]["strategy"]), r["name"]))
    if not pick:
        section.text = "No finished trial run to show."
        return section
    run = pick[0]
    section.title = f"One run: {run['name']}"
    with tempfile.TemporaryDirectory() as tmp:
        config_file = download_artifact(tracking_uri, run["run_id"], "config.json", Path(tmp))
        selections_file = download_artifact(
            tracking_uri, run["run_id"], "selections.json", Path(tmp)
        )
        if config_file is None or selections_file is None:
            section.text = "The run has no config.json / selections.json artifact."
            return section
        config = TrialConfig.from_dict(json.loads(config_file.read_text()))
        selections = json.loads(selections_file.read_text())
    # Drawn from the run's own record, so it needs no embeddings.
    scatter = _typicality_vs_sup(report, config, selections)
    if isinstance(scatter, str):
        section.text = scatter
    try:
        data = prepare_data(config, EmbeddingStore(store, compute=False))
    except (MissingEntry, InputError) as error:
        missing = (
            "Its embeddings are not in the embedding store here (give --store, the store the "
            "sweep used); the t-SNE needs them."
            if isinstance(error, MissingEntry)
            else f"Its data cannot be loaded here: {error}"
        )
        section.text = " ".join(t for t in (missing, section.text) if t)
        if not isinstance(scatter, str):
            section.images.append(scatter)
        return section
    selected = np.asarray([i for s in selections for i in s["indices"]], dtype=np.int64)
    dataset = data.dataset
    tsne = tsne_scatter(
        data.clst,
        dataset.train_labels,
        dataset.classes,
        report.out / "tsne_selected.png",
        selected=selected,
        seed=config.seed,
        title=f"t-SNE of {_space_name(config)}, {len(selected)} selected (+)",
    )
    section.images.append((tsne.name, "Every selection of the run, all rounds, on the t-SNE."))
    if not isinstance(scatter, str):
        section.images.append(scatter)
    return section


def _space_name(config: Any) -> str:
    """What a run's clustering space is called in titles: D_clst for SimCLR, else its name."""
    return f"D_clst={config.clustering_dim}" if config.space == "simclr" else config.space


@dataclass(frozen=True)
class VisitScatter:
    """What the typicality vs SUP figure plots: one visit of a round, from its record.

    candidates, typicality, sup, kept: (m,) arrays over the visit's candidates (pool rows,
    their typicality and SUP, whether the typicality filter kept them); pick: the position
    of the chosen candidate.
    """

    cluster: int
    candidates: Any
    typicality: Any
    sup: Any
    kept: Any
    pick: int


def visit_scatter(record: dict[str, Any] | None, strategy: str | None = None) -> VisitScatter | str:
    """The first visit of a round's ``Selection.record`` with typicality and SUP for at least
    three candidates, as arrays to plot; or, as a string, why there is none. ``strategy``
    (the run's) tells a strategy that keeps no such record from a run older than the records."""
    if record is None and strategy is not None and _scatter_rank(strategy) == 2:
        return (
            f"Typicality vs SUP is not drawn: {strategy} computes neither (only the clustering "
            "strategies, TypiClust, SUPClust and their kin, record them)."
        )
    if record is None:
        return (
            "Typicality vs SUP is not drawn: round 1 of this run kept no record of what the "
            "strategy saw (runs from before records were kept)."
        )
    for visit in record.get("visits", []):
        typ, sup = visit.get("typicality"), visit.get("sup")
        if typ is None or sup is None or len(typ) < 3 or None in typ or None in sup:
            continue
        candidates = np.asarray(visit["candidates"], dtype=np.int64)
        kept = visit.get("kept")
        return VisitScatter(
            cluster=int(visit["cluster"]),
            candidates=candidates,
            typicality=np.asarray(typ, dtype=np.float64),
            sup=np.asarray(sup, dtype=np.float64),
            kept=np.isin(candidates, kept if kept is not None else []),
            pick=int(np.flatnonzero(candidates == visit["pick"])[0]),
        )
    return (
        "Typicality vs SUP is not drawn: no visit of round 1 has both for three candidates "
        "(the strategy computes only one of them, or its clusters are tiny)."
    )


def _typicality_vs_sup(
    report: Report, config: Any, selections: list[dict[str, Any]]
) -> tuple[str, str] | str:
    """Round 1 as the strategy saw it (its record): one visited cluster's candidates, the
    typicality filter's kept set and the pick. Recomputes nothing; a string says why no figure."""
    from alsys.strategies import strategy_params

    points = visit_scatter(selections[0].get("record") if selections else None, config.strategy)
    if isinstance(points, str):
        return points
    params = {**strategy_params(config.strategy), **config.strategy_params}
    typ, sup, kept = points.typicality, points.sup, points.kept
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter(typ[~kept], sup[~kept], s=10, color="0.6", label="candidates")
    if kept.any():
        label = f"kept: top {params['typ_ratio']:.0%} typical" if "typ_ratio" in params else "kept"
        ax.scatter(typ[kept], sup[kept], s=14, color="C0", label=label)
    pick = points.pick
    ax.scatter(typ[pick], sup[pick], s=120, marker="*", color="C3", label="selected")
    ax.set_xlabel("typicality (D_typ)")
    ax.set_ylabel("SUP (D_clst)")
    title = f"cluster {points.cluster} of round 1 ({points.candidates.shape[0]} candidates)"
    if "temperature" in params:
        title += f", T={params['temperature']}"
    ax.set_title(title)
    ax.legend(fontsize=7)
    name = report.figure(fig, "typicality_vs_sup.png")
    caption = (
        "Round 1 as the strategy saw it (its record in selections.json, nothing recomputed): "
        "the candidates of its first visited cluster with both scores, the ones its typicality "
        "filter kept, and its pick there (star)."
    )
    return name, caption


def verdicts(report: Report, runs: list[dict[str, Any]], frame: Any) -> Section:
    """Each sweep's verdict on the claim its parent run names (``alsys_claim``), on the trial
    runs under that parent, as the sweep's end computes it (same statistics, same seed)."""
    from alsys.verdict import CLAIM_TAG, seed_table, verdict_of, verdict_seed
    from alsys.verdict.ranks import cd_diagram

    section = Section("Verdicts")
    parents = sorted((r for r in runs if CLAIM_TAG in r["tags"]), key=lambda r: r["name"] or "")
    if not parents:
        section.text = (
            "No verdict: no sweep in this experiment names a claim (the claim: field of its "
            "YAML; see docs/verdicts.md)."
        )
        return section
    parts = []
    for index, parent in enumerate(parents):
        claim, sweep = parent["tags"][CLAIM_TAG], parent["tags"].get("sweep", parent["name"])
        trials = frame[frame.parent == parent["run_id"]] if len(frame) else frame
        title = f"{parent['name']}: {claim}"
        if trials.empty:
            parts.append(f"<h3>{html.escape(title)}</h3><p>No trial of it has logged a round.</p>")
            continue
        rng = np.random.default_rng(verdict_seed(str(sweep)))
        verdict = verdict_of(claim, seed_table(trials.assign(label=trials.strategy)), rng)
        parts.append(verdict.html(title))
        if verdict.diagram is not None:
            name = f"verdict_cd{'' if index == 0 else index}.png"
            cd_diagram(verdict.diagram, report.out / name, f"{parent['name']}: {claim}")
            section.images.append((name, f"Critical-difference diagram of {parent['name']}."))
    section.text = (
        "What each sweep was run to test, answered from its trial runs here (docs/verdicts.md "
        "says how)."
    )
    section.table = "".join(parts)
    return section


def optuna_section(report: Report, runs: list[dict[str, Any]]) -> Section | None:
    journals = {r["tags"].get("optuna_journal") for r in runs} - {None}
    if not journals:
        return None
    section = Section("Optuna study")
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.visualization import matplotlib as optuna_plots

    journal = Path(sorted(journals)[0])
    if not journal.is_file():
        section.text = f"The study's journal {journal} is not reachable from here."
        return section
    storage = JournalStorage(JournalFileBackend(str(journal)))
    (summary,) = optuna.get_all_study_summaries(storage=storage)[:1]
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        section.text = "The study has no completed trial yet."
        return section
    plt = _pyplot()
    ax = optuna_plots.plot_optimization_history(study)
    section.images.append((report.figure(ax.figure, "optuna_history.png"), "Objective by trial."))
    try:
        ax = optuna_plots.plot_param_importances(study)
        section.images.append(
            (report.figure(ax.figure, "optuna_importances.png"), "fANOVA importances.")
        )
    except (RuntimeError, ValueError) as error:
        section.text = f"Importances not computable: {error}"
    plt.close("all")
    best = study.best_trial
    section.text += (
        f" Best of {len(done)} trials: value {best.value:.4f} with "
        + ", ".join(f"{k}={v:.4g}" for k, v in best.params.items())
        + "."
    )
    return section


def failures(runs: list[dict[str, Any]]) -> Section:
    section = Section("Failed or incomplete trials")
    bad = [r for r in runs if "strategy" in r["params"] and r["status"] != "FINISHED"]
    if not bad:
        trials = sum("strategy" in r["params"] for r in runs)
        section.text = f"None: all {trials} trial runs finished."
        return section
    rows = "".join(
        f"<tr><td>{html.escape(r['name'] or r['run_id'])}</td><td>{r['status']}</td>"
        f"<td>{len(r['history'].get('balanced_accuracy', []))}</td>"
        f"<td>{html.escape(r['tags'].get('error', '(no error recorded: still running or killed)'))}"
        "</td></tr>"
        for r in bad
    )
    section.table = (
        "<table><tr><th>run</th><th>status</th><th>rounds logged</th><th>error</th></tr>"
        f"{rows}</table>"
    )
    return section


def render(report: Report, summary: str) -> Path:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(_template_dir()), autoescape=select_autoescape(["html", "j2"])
    )
    sections = []
    for section in report.sections:
        images = [
            {
                "name": name,
                "caption": caption,
                "data": base64.b64encode((report.out / name).read_bytes()).decode(),
            }
            for name, caption in section.images
        ]
        sections.append({**vars(section), "images": images})
    page = env.get_template("report.html.j2").render(
        experiment=report.experiment, summary=summary, sections=sections
    )
    path = report.out / "index.html"
    path.write_text(page)
    return path


def build_report(
    experiment: str,
    out: str | Path,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    store: str | None = None,
) -> Path:
    """Writes ``out/index.html`` (self-contained) and the plots as PNG; returns the page.

    The page is built in a temporary folder beside ``out`` and moved into place at the end, so
    a failure leaves no half-written report.
    """
    from alsys.tracking import read_experiment

    target = Path(out).resolve()
    if target.exists() and not target.is_dir():
        raise InputError("--out", f"{out} exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    data = read_experiment(tracking_uri, experiment, ("balanced_accuracy", "n_labeled"))
    runs = data["runs"]
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        report = Report(experiment, staging)
        frame = trial_frame(runs)
        trials = [r for r in runs if "strategy" in r["params"]]
        finished = sum(r["status"] == "FINISHED" for r in trials)
        summary = f"{len(trials)} trial runs ({finished} finished) in experiment {experiment!r}" + (
            f"; {frame.shape[0]} logged rounds" if not frame.empty else ""
        )
        if not trials:
            summary += ". It holds no trial runs yet: every section below is empty."
        report.sections += [
            verdicts(report, runs, frame),
            learning_curves(report, frame),
            dim_heatmaps(report, frame),
            ablation(report, frame),
            statistics(frame),
            chosen_run(report, runs, run_id, tracking_uri, store),
        ]
        study = optuna_section(report, runs)
        if study is not None:
            report.sections.append(study)
        report.sections.append(failures(runs))
        render(report, summary)
        staging.chmod(0o755)  # mkdtemp makes it private; a report is for sharing
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target / "index.html"
