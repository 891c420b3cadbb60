"""``alsys report``: one MLflow experiment as a self-contained HTML page, its plots also as PNG.

Sections (each says plainly what it lacks instead of failing):

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
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alsys.errors import InputError

ABLATION = ("supclust", "supclust_no_sup", "supclust_no_typicality", "typiclust")
DIM_STRATEGIES = ("typiclust", "supclust", "supclust_no_sup", "supclust_no_typicality")
ALPHA = 0.05


def _template_dir() -> Path:
    """dashboards/ of the checkout (or $ALSYS_DASHBOARDS), where the page template lives."""
    chosen = os.environ.get("ALSYS_DASHBOARDS")
    return Path(chosen) if chosen else Path(__file__).resolve().parents[1] / "dashboards"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _value(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def trial_frame(runs: list[dict[str, Any]]) -> Any:
    """A pandas frame, one row per (trial run, round), with effective D_clst/D_typ.

    A trial that selects outside SimCLR is its own line everywhere: its ``strategy`` carries
    the space, as in ``typiclust [pca:32]`` (``space`` holds the name alone).
    """
    import pandas as pd

    rows = []
    for run in runs:
        params = run["params"]
        if "strategy" not in params:  # the sweep's parent run, or a tuning candidate
            continue
        d_clst = _value(params.get("d_clst")) or _value(params.get("ssl.embedding_dim")) or 512
        d_typ = _value(params.get("d_typ")) or d_clst
        labels = dict(run["history"].get("n_labeled", []))
        space = params.get("space") or "simclr"
        strategy = params["strategy"] if space == "simclr" else f"{params['strategy']} [{space}]"
        for step, value in run["history"].get("balanced_accuracy", []):
            rows.append(
                {
                    "run_id": run["run_id"],
                    "strategy": strategy,
                    "space": space,
                    "dataset": params.get("dataset"),
                    "budget": params.get("budget"),
                    "setting": params.get("setting"),
                    "seed": _value(params.get("seed")),
                    "d_clst": int(d_clst),
                    "d_typ": int(d_typ),
                    "round": int(step),
                    "n_labeled": labels.get(step, math.nan),
                    "balanced_accuracy": value,
                }
            )
    return pd.DataFrame(rows)


@dataclass
class Section:
    title: str
    text: str = ""
    images: list[tuple[str, str]] = field(default_factory=list)  # (png file name, caption)
    table: str = ""  # HTML


@dataclass
class Report:
    experiment: str
    out: Path
    sections: list[Section] = field(default_factory=list)

    def figure(self, fig: Any, name: str) -> str:
        fig.savefig(self.out / name, dpi=110, bbox_inches="tight")
        _pyplot().close(fig)
        return name


def _sem(values: Any) -> float:
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def _largest_dims(frame: Any) -> Any:
    """Per strategy, only its largest (D_clst, D_typ): the thesis's default configuration."""
    keep = []
    for _, group in frame.groupby("strategy"):
        best = max(set(zip(group.d_clst, group.d_typ, strict=True)))
        keep.append(group[(group.d_clst == best[0]) & (group.d_typ == best[1])])
    import pandas as pd

    return pd.concat(keep)


def learning_curves(report: Report, frame: Any) -> Section:
    section = Section("Learning curves")
    if frame.empty:
        section.text = "No trial has logged a round yet: nothing to draw."
        return section
    plt = _pyplot()
    data = _largest_dims(frame)
    panels = sorted(data.groupby(["dataset", "budget"]).groups)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    strategies = sorted(data.strategy.unique())
    cmap = plt.get_cmap("tab10" if len(strategies) <= 10 else "tab20")
    for ax, (dataset, budget) in zip(axes[0], panels, strict=True):
        here = data[(data.dataset == dataset) & (data.budget == budget)]
        for (strategy, setting), group in here.groupby(["strategy", "setting"]):
            per_round = group.groupby("round")
            mean = per_round.balanced_accuracy.mean()
            sem = per_round.balanced_accuracy.agg(_sem)
            x = per_round.n_labeled.mean().to_numpy()
            colour = cmap(strategies.index(strategy) % cmap.N)
            style = "-" if setting == "ssl" else "--"
            ax.plot(x, mean, style, marker="o", ms=3, color=colour, label=f"{strategy} ({setting})")
            ax.fill_between(x, mean - sem, mean + sem, color=colour, alpha=0.15)
        ax.set_title(f"{dataset}, {budget} budget")
        ax.set_xlabel("number of labels")
        ax.set_ylabel("balanced accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    name = report.figure(fig, "learning_curves.png")
    varied = data.groupby("strategy")[["d_clst", "d_typ"]].first()
    section.images.append(
        (
            name,
            "Mean ± standard error over seeds; SSL solid, FSL dashed. Strategies run at several "
            "dimensions are drawn at their largest: "
            + ", ".join(f"{s} {r.d_clst}/{r.d_typ}" for s, r in varied.iterrows()),
        )
    )
    return section


def _annotate(ax: Any, image: Any, values: Any, fmt: str) -> None:
    """Write each finite cell's value on a heatmap, black on light cells and white on dark."""
    for (a, b), v in np.ndenumerate(values):
        if np.isfinite(v):
            red, green, blue, _ = image.cmap(image.norm(v))
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
            colour = "black" if light else "white"
            ax.text(b, a, fmt.format(v), ha="center", va="center", fontsize=6, color=colour)


def _dim_baselines(frame: Any, data: Any) -> list[tuple[str, Any]]:
    """Chapter 4's baselines in the experiment, as (label, their rows): Random, and TypiClust
    at the largest (D_clst, D_typ) it ran (512/512 in the thesis)."""
    found = []
    random = frame[frame.strategy == "random"]
    if not random.empty:
        found.append(("Random", random))
    typiclust = data[data.strategy == "typiclust"]
    if not typiclust.empty:
        top = (int(typiclust.d_clst.max()), int(typiclust.d_typ.max()))
        at_top = typiclust[(typiclust.d_clst == top[0]) & (typiclust.d_typ == top[1])]
        if not at_top.empty:
            found.append((f"TypiClust\n{top[0]}/{top[1]}", at_top))
    return found


def _beside(
    fig: Any, ax: Any, image: Any, labels: list[str], values: list[float], fmt: str
) -> None:
    """The baselines as a column of cells right of a heatmap, on its colour scale (which stays
    the grid's: a baseline beyond it takes the end colour, and the colorbar an arrow), each
    with its name and value; then the colorbar."""
    from mpl_toolkits.axes_grid1 import make_axes_locatable  # type: ignore[import-untyped]

    divider = make_axes_locatable(ax)
    if labels:
        strip = divider.append_axes("right", size="30%", pad=0.06)
        strip.imshow(np.asarray(values, dtype=float)[:, None], cmap=image.cmap, norm=image.norm)
        strip.set_aspect("auto")
        for row, (label, value) in enumerate(zip(labels, values, strict=True)):
            finite = bool(np.isfinite(value))
            red, green, blue, _ = image.cmap(image.norm(value)) if finite else (1, 1, 1, 1)
            colour = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
            text = f"{label}\n{fmt.format(value) if finite else 'n/a'}"
            strip.text(0, row, text, ha="center", va="center", fontsize=6, color=colour)
        strip.set_xticks([])
        strip.set_yticks([])
    low = any(v < image.norm.vmin for v in values if np.isfinite(v))
    high = any(v > image.norm.vmax for v in values if np.isfinite(v))
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}
    bar = fig.colorbar(
        image,
        cax=divider.append_axes("right", size="8%", pad=0.06),
        extend=extend.get((low, high), "neither"),
    )
    bar.ax.tick_params(labelsize=6)
    bar.ax.yaxis.set_major_locator(_pyplot().MaxNLocator(4))


def dim_heatmaps(report: Report, frame: Any) -> Section:
    section = Section("D_clst x D_typ")
    data = frame[frame.strategy.isin(DIM_STRATEGIES)] if not frame.empty else frame
    if data.empty or (data.d_clst.nunique() < 2 and data.d_typ.nunique() < 2):
        section.text = (
            "This experiment does not vary D_clst or D_typ (run sweeps/dim_grid.py for this study)."
        )
        return section
    plt = _pyplot()
    strategies = sorted(data.strategy.unique())
    rounds = sorted(data["round"].unique())
    clst, typ = sorted(data.d_clst.unique()), sorted(data.d_typ.unique())
    baselines = _dim_baselines(frame, data)
    labels = [label for label, _ in baselines]
    wide = 0.8 if baselines else 0.0  # room for the baselines' column
    fig, axes = plt.subplots(
        len(strategies),
        len(rounds),
        figsize=((2.6 + wide) * len(rounds) + 1, 2.4 * len(strategies) + 0.5),
        squeeze=False,
    )
    for i, strategy in enumerate(strategies):
        for j, r in enumerate(rounds):
            cell = data[(data.strategy == strategy) & (data["round"] == r)]
            grid = cell.pivot_table(
                index="d_clst", columns="d_typ", values="balanced_accuracy", aggfunc="mean"
            ).reindex(index=clst, columns=typ)
            beside = [rows[rows["round"] == r].balanced_accuracy.mean() for _, rows in baselines]
            ax = axes[i][j]
            image = ax.imshow(grid.to_numpy(), cmap="viridis", origin="lower")
            _annotate(ax, image, grid.to_numpy(), "{:.2f}")
            ax.set_xticks(range(len(typ)), [str(t) for t in typ], fontsize=6)
            ax.set_yticks(range(len(clst)), [str(c) for c in clst], fontsize=6)
            ax.set_title(f"{strategy}, round {r}", fontsize=8)
            if j == 0:
                ax.set_ylabel("D_clst")
            if i == len(strategies) - 1:
                ax.set_xlabel("D_typ")
            _beside(fig, ax, image, labels, beside, "{:.2f}")
    fig.tight_layout()
    named = " and ".join(label.replace("\n", " at ") for label in labels)
    beside_note = f"; beside each grid, on its colour scale, the baselines: {named}."
    section.images.append(
        (
            report.figure(fig, "dims_per_round.png"),
            "Mean balanced accuracy over seeds per round" + (beside_note if labels else "."),
        )
    )
    reference = data[(data.strategy == "typiclust")]
    if reference.empty:
        section.text = "No TypiClust runs: the difference to TypiClust cannot be drawn."
        return section
    top = (int(reference.d_clst.max()), int(reference.d_typ.max()))
    base = reference[(reference.d_clst == top[0]) & (reference.d_typ == top[1])]
    base_auc = base.balanced_accuracy.mean()
    beside = [rows.balanced_accuracy.mean() - base_auc for _, rows in baselines]
    fig, axes = plt.subplots(
        1, len(strategies), figsize=((4.4 + wide) * len(strategies), 3.4), squeeze=False
    )
    for ax, strategy in zip(axes[0], strategies, strict=True):
        cell = data[data.strategy == strategy]
        grid = cell.pivot_table(
            index="d_clst", columns="d_typ", values="balanced_accuracy", aggfunc="mean"
        ).reindex(index=clst, columns=typ)
        diff = grid.to_numpy() - base_auc
        bound = float(np.nanmax(np.abs(diff))) or 1e-3
        image = ax.imshow(diff, cmap="RdBu", vmin=-bound, vmax=bound, origin="lower")
        _annotate(ax, image, diff, "{:+.3f}")
        ax.set_xticks(range(len(typ)), [str(t) for t in typ], fontsize=6)
        ax.set_yticks(range(len(clst)), [str(c) for c in clst], fontsize=6)
        ax.set_title(strategy, fontsize=8)
        ax.set_xlabel("D_typ")
        ax.set_ylabel("D_clst")
        _beside(fig, ax, image, labels, beside, "{:+.3f}")
    fig.tight_layout()
    note = "" if top == (512, 512) else " (512/512 is not in this experiment: its largest)"
    section.images.append(
        (
            report.figure(fig, "dims_vs_typiclust.png"),
            f"Mean balanced accuracy over rounds and seeds minus TypiClust at "
            f"{top[0]}/{top[1]}{note}: blue is better than that TypiClust"
            + (beside_note if labels else "."),
        )
    )
    return section


def auc_frame(frame: Any) -> Any:
    """Area under the learning curve (mean balanced accuracy over rounds) per run."""
    keys = ["run_id", "strategy", "dataset", "budget", "setting", "seed", "d_clst", "d_typ"]
    return frame.groupby(keys, as_index=False).balanced_accuracy.mean()


def ablation(report: Report, frame: Any) -> Section:
    section = Section("Ablation")
    present = sorted(set(frame.strategy) & set(ABLATION)) if not frame.empty else []
    if len(present) < 2:
        section.text = (
            "Needs at least two of SUPClust, its two ablations and TypiClust (run "
            f"sweeps/ablation.py); this experiment has {', '.join(present) or 'none'}."
        )
        return section
    plt = _pyplot()
    auc = auc_frame(_largest_dims(frame[frame.strategy.isin(present)]))
    groups = sorted(auc.groupby(["dataset", "budget", "setting"]).groups)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.5), squeeze=False)
    for ax, key in zip(axes[0], groups, strict=True):
        here = auc[(auc.dataset == key[0]) & (auc.budget == key[1]) & (auc.setting == key[2])]
        stats = here.groupby("strategy").balanced_accuracy.agg(["mean", _sem]).reindex(present)
        ax.bar(range(len(present)), stats["mean"], yerr=stats["_sem"], capsize=4, color="C0")
        ax.set_xticks(range(len(present)), present, rotation=30, ha="right", fontsize=7)
        low = float(np.nanmin(stats["mean"] - stats["_sem"]))
        ax.set_ylim(max(0.0, low - 0.05), None)
        ax.set_ylabel("area under the learning curve")
        ax.set_title(" / ".join(key), fontsize=9)
    section.images.append((report.figure(fig, "ablation.png"), "Mean ± standard error over seeds."))
    return section


def statistics(frame: Any) -> Section:
    """Each strategy against Random and TypiClust: AUC paired by seed, Wilcoxon signed-rank."""
    from scipy.stats import wilcoxon

    section = Section("Statistics")
    if frame.empty:
        section.text = "No finished rounds: no statistics."
        return section
    auc = auc_frame(_largest_dims(frame))
    rows = []
    for key, group in auc.groupby(["dataset", "budget", "setting"]):
        by = {s: g.set_index("seed").balanced_accuracy for s, g in group.groupby("strategy")}
        for baseline in ("random", "typiclust"):
            if baseline not in by:
                continue
            for strategy in sorted(by):
                if strategy == baseline:
                    continue
                a, b = by[strategy].align(by[baseline], join="inner")
                diff = (a - b).to_numpy()
                if len(diff) == 0:
                    continue
                if len(diff) < 2 or np.allclose(diff, 0):
                    p, verdict = math.nan, "too few seeds" if len(diff) < 2 else "identical"
                else:
                    p = float(wilcoxon(a, b).pvalue)
                    if p < ALPHA:
                        verdict = "better" if diff.mean() > 0 else "worse"
                    else:
                        verdict = "within the noise"
                        if len(diff) < 6:
                            verdict += f" ({len(diff)} seeds cannot reach p < {ALPHA})"
                rows.append(["/".join(key), strategy, baseline, len(diff), diff.mean(), p, verdict])
    if not rows:
        section.text = "Neither Random nor TypiClust ran with the same seeds as another strategy."
        return section
    head = ["dataset/budget/setting", "strategy", "vs", "seeds", "Δ AUC", "Wilcoxon p", "verdict"]
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(f'{v:+.4f}' if i == 4 else f'{v:.3g}' if i == 5 else str(v))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    section.table = "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{body}</table>"
    section.text = (
        "AUC: the mean balanced accuracy over rounds of each run; pairs share the seed. "
        f"A difference counts only at p < {ALPHA}; otherwise it is within the noise."
    )
    return section


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
        order = {"supclust": 0, "typiclust": 1}
        pick = sorted(finished, key=lambda r: (order.get(r["params"]["strategy"], 2), r["name"]))
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


def visit_scatter(record: dict[str, Any] | None) -> VisitScatter | str:
    """The first visit of a round's ``Selection.record`` with typicality and SUP for at least
    three candidates, as arrays to plot; or, as a string, why there is none."""
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

    points = visit_scatter(selections[0].get("record") if selections else None)
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
