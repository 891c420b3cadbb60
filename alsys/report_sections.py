"""The report's sections on learning curves, dimensions, the ablation and the statistics: each
a function of the runs' frame that draws its figures into the report (alsys.report builds the
page)."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alsys.stats import (
    REPLICATE,
    Configuration,
    configuration_of_params,
    effective_dims,
    param_value,
    seeds_text,
    sem,
)
from alsys.strategies import ABLATION, DIM_STRATEGIES, RANDOM, TYPICLUST
from alsys.verdict.paired import ALPHA, wilcoxon_min_pairs, wilcoxon_paired
from alsys.verdict.representation import replicates, trainings_of


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trial_frame(runs: list[dict[str, Any]]) -> Any:
    """A pandas frame, one row per (trial run, round), with effective D_clst/D_typ.

    ``strategy`` is the run's configuration as :meth:`alsys.stats.Configuration.describe`
    writes it without its D pair: a trial that selects outside SimCLR, or with other parameters
    than the defaults, is its own line everywhere (``typiclust [pca:32]``, ``supclust
    temperature=0.25``); ``kind`` is the strategy's name alone, ``configuration`` the whole
    description (with the D pair the trial set), ``params`` the parameters that differ from
    the defaults (sorted JSON) and ``parent`` the run's parent (its sweep). The trials of a
    search's candidates are left out: the Optuna section shows the search.
    """
    import pandas as pd

    from alsys.config import SSLClassifierConfig
    from alsys.tracking import CANDIDATE_TAG, CONFIGURATION_TAG

    searched = {r["run_id"] for r in runs if CANDIDATE_TAG in r.get("tags", {})}
    rows = []
    for run in runs:
        params = run["params"]
        if "strategy" not in params or run.get("parent") in searched:
            continue  # the sweep's parent run, a candidate, or a candidate's trial
        tagged = run.get("tags", {}).get(CONFIGURATION_TAG)
        key = Configuration.from_json(tagged) if tagged else configuration_of_params(params)
        embedding = (
            param_value(params.get("ssl.embedding_dim")) or SSLClassifierConfig().embedding_dim
        )
        dims = effective_dims(
            param_value(params.get("d_clst")), param_value(params.get("d_typ")), embedding
        )
        labels = dict(run["history"].get("n_labeled", []))
        for step, value in run["history"].get("balanced_accuracy", []):
            rows.append(
                {
                    "run_id": run["run_id"],
                    "parent": run.get("parent"),
                    "strategy": key.describe(dims=False),
                    "configuration": key.describe(),
                    "params": json.dumps(dict(key.params), sort_keys=True),
                    "kind": key.strategy,
                    "space": key.space,
                    "dataset": key.dataset,
                    "budget": key.budget,
                    "setting": key.setting,
                    "embed_seed": param_value(params.get("embed_seed")) or 0,
                    "seed": param_value(params.get("seed")),
                    "d_clst": int(dims[0]),
                    "d_typ": int(dims[1]),
                    "round": int(step),
                    "n_labeled": labels.get(step, math.nan),
                    "balanced_accuracy": value,
                }
            )
    return pd.DataFrame(rows)


def over_seeds(frame: Any) -> str:
    """``over 3 seeds`` (or ``2-10 seeds``) for a caption; one seed has no standard error. On
    several SimCLR trainings a replicate is a (training, seed) pair: ``over 9 seeds x trainings
    (3 SimCLR trainings)``."""
    trainings = len(trainings_of(frame))
    by = replicates(frame).groupby(["strategy", "dataset", "budget", "setting"])
    counts = sorted(set(by.seed.nunique()))
    if counts == [1]:
        return f"over {seeds_text(1)} (no standard error)"
    text = seeds_text(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]} seeds"
    if trainings > 1:
        text = f"{text.replace('seeds', 'seeds x trainings')} ({trainings} SimCLR trainings)"
    return f"over {text}"


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
            error = per_round.balanced_accuracy.agg(sem)
            x = per_round.n_labeled.mean().to_numpy()
            colour = cmap(strategies.index(strategy) % cmap.N)
            style = "-" if setting == "ssl" else "--"
            ax.plot(x, mean, style, marker="o", ms=3, color=colour, label=f"{strategy} ({setting})")
            ax.fill_between(x, mean - error, mean + error, color=colour, alpha=0.15)
        ax.set_title(f"{dataset}, {budget} budget")
        ax.set_xlabel("number of labels")
        ax.set_ylabel("balanced accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    name = report.figure(fig, "learning_curves.png")
    caption = f"Mean ± standard error {over_seeds(data)}; SSL solid, FSL dashed."
    # Only strategies that ran at several D pairs: one without a D (Random, Coreset) runs at none.
    several = [
        s for s, g in frame.groupby("strategy") if len(set(zip(g.d_clst, g.d_typ, strict=True))) > 1
    ]
    if several:
        drawn = data[data.strategy.isin(several)].groupby("strategy")[["d_clst", "d_typ"]].first()
        caption += " Strategies run at several dimensions are drawn at their largest: "
        caption += ", ".join(f"{s} {r.d_clst}/{r.d_typ}" for s, r in drawn.iterrows()) + "."
    section.images.append((name, caption))
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
    random = frame[frame.strategy == RANDOM]
    if not random.empty:
        found.append(("Random", random))
    typiclust = data[data.strategy == TYPICLUST]
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
    """The D_clst x D_typ heatmaps per round, then their difference to TypiClust at the largest
    D pair present (chapter 4), each with the chapter's baselines beside it."""
    section = Section("D_clst x D_typ")
    data = (
        frame[frame.kind.isin(DIM_STRATEGIES) & (frame.space == "simclr")] if len(frame) else frame
    )
    if data.empty or (data.d_clst.nunique() < 2 and data.d_typ.nunique() < 2):
        section.text = (
            "This experiment does not vary D_clst or D_typ (run sweeps/dim_grid.py for this study)."
        )
        return section
    baselines = _dim_baselines(frame, data)
    labels = [label for label, _ in baselines]
    named = " and ".join(label.replace("\n", " at ") for label in labels)
    beside_note = (
        f"; beside each grid, on its colour scale, the baselines: {named}." if labels else "."
    )
    section.images.append(
        (
            _heatmaps_per_round(report, data, baselines),
            "Mean balanced accuracy over seeds per round" + beside_note,
        )
    )
    reference = data[(data.strategy == TYPICLUST)]
    if reference.empty:
        section.text = "No TypiClust runs: the difference to TypiClust cannot be drawn."
        return section
    top = (int(reference.d_clst.max()), int(reference.d_typ.max()))
    note = "" if top == (512, 512) else " (512/512 is not in this experiment: its largest)"
    section.images.append(
        (
            _difference_to_typiclust(report, data, reference, top, baselines),
            f"Mean balanced accuracy over rounds and seeds minus TypiClust at "
            f"{top[0]}/{top[1]}{note}: blue is better than that TypiClust" + beside_note,
        )
    )
    return section


def _dim_grid(rows: Any, clst: list[int], typ: list[int]) -> Any:
    """Mean balanced accuracy per (D_clst, D_typ) of ``rows``, every pair of the axes present."""
    grid = rows.pivot_table(
        index="d_clst", columns="d_typ", values="balanced_accuracy", aggfunc="mean"
    )
    return grid.reindex(index=clst, columns=typ).to_numpy()


def _axes_ticks(ax: Any, clst: list[int], typ: list[int]) -> None:
    ax.set_xticks(range(len(typ)), [str(t) for t in typ], fontsize=6)
    ax.set_yticks(range(len(clst)), [str(c) for c in clst], fontsize=6)


def _heatmaps_per_round(report: Report, data: Any, baselines: list[tuple[str, Any]]) -> str:
    plt = _pyplot()
    strategies = sorted(data.strategy.unique())
    rounds = sorted(data["round"].unique())
    clst, typ = sorted(data.d_clst.unique()), sorted(data.d_typ.unique())
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
            grid = _dim_grid(data[(data.strategy == strategy) & (data["round"] == r)], clst, typ)
            beside = [rows[rows["round"] == r].balanced_accuracy.mean() for _, rows in baselines]
            ax = axes[i][j]
            image = ax.imshow(grid, cmap="viridis", origin="lower")
            _annotate(ax, image, grid, "{:.2f}")
            _axes_ticks(ax, clst, typ)
            ax.set_title(f"{strategy}, round {r}", fontsize=8)
            if j == 0:
                ax.set_ylabel("D_clst")
            if i == len(strategies) - 1:
                ax.set_xlabel("D_typ")
            _beside(fig, ax, image, labels, beside, "{:.2f}")
    fig.tight_layout()
    return report.figure(fig, "dims_per_round.png")


def _difference_to_typiclust(
    report: Report,
    data: Any,
    reference: Any,
    top: tuple[int, int],
    baselines: list[tuple[str, Any]],
) -> str:
    plt = _pyplot()
    strategies = sorted(data.strategy.unique())
    clst, typ = sorted(data.d_clst.unique()), sorted(data.d_typ.unique())
    labels = [label for label, _ in baselines]
    wide = 0.8 if baselines else 0.0
    base = reference[(reference.d_clst == top[0]) & (reference.d_typ == top[1])]
    base_auc = base.balanced_accuracy.mean()
    beside = [rows.balanced_accuracy.mean() - base_auc for _, rows in baselines]
    fig, axes = plt.subplots(
        1, len(strategies), figsize=((4.4 + wide) * len(strategies), 3.4), squeeze=False
    )
    for ax, strategy in zip(axes[0], strategies, strict=True):
        diff = _dim_grid(data[data.strategy == strategy], clst, typ) - base_auc
        bound = float(np.nanmax(np.abs(diff))) or 1e-3
        image = ax.imshow(diff, cmap="RdBu", vmin=-bound, vmax=bound, origin="lower")
        _annotate(ax, image, diff, "{:+.3f}")
        _axes_ticks(ax, clst, typ)
        ax.set_title(strategy, fontsize=8)
        ax.set_xlabel("D_typ")
        ax.set_ylabel("D_clst")
        _beside(fig, ax, image, labels, beside, "{:+.3f}")
    fig.tight_layout()
    return report.figure(fig, "dims_vs_typiclust.png")


def auc_frame(frame: Any) -> Any:
    """Area under the learning curve (mean balanced accuracy over rounds) per run."""
    from alsys.stats import auc

    keys = ["run_id", "strategy", "dataset", "budget", "setting", *REPLICATE, "d_clst", "d_typ"]
    return frame.groupby(keys, as_index=False).balanced_accuracy.agg(auc)


def ablation(report: Report, frame: Any) -> Section:
    section = Section("Ablation")
    kept = frame[frame.kind.isin(ABLATION) & (frame.space == "simclr")] if len(frame) else frame
    present = sorted(set(kept.strategy)) if len(kept) else []
    if len(present) < 2:
        section.text = (
            "Needs at least two of SUPClust, its two ablations and TypiClust (run "
            f"sweeps/ablation.py); this experiment has {', '.join(present) or 'none'}."
        )
        return section
    plt = _pyplot()
    auc = auc_frame(_largest_dims(kept))
    groups = sorted(auc.groupby(["dataset", "budget", "setting"]).groups)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.5), squeeze=False)
    for ax, key in zip(axes[0], groups, strict=True):
        here = auc[(auc.dataset == key[0]) & (auc.budget == key[1]) & (auc.setting == key[2])]
        stats = here.groupby("strategy").balanced_accuracy.agg(["mean", sem]).reindex(present)
        ax.bar(range(len(present)), stats["mean"], yerr=stats["sem"], capsize=4, color="C0")
        ax.set_xticks(range(len(present)), present, rotation=30, ha="right", fontsize=7)
        low = float(np.nanmin(stats["mean"] - stats["sem"].fillna(0.0)))
        ax.set_ylim(max(0.0, low - 0.05), None)
        ax.set_ylabel("area under the learning curve")
        ax.set_title(" / ".join(key), fontsize=9)
    caption = f"Mean ± standard error {over_seeds(kept)}."
    section.images.append((report.figure(fig, "ablation.png"), caption))
    return section


def statistics(frame: Any) -> Section:
    """Each strategy against Random and TypiClust: AUC paired by replicate (SimCLR training and
    seed), Wilcoxon signed-rank (the verdicts' test, alsys.verdict.paired)."""
    section = Section("Statistics")
    if frame.empty:
        section.text = "No finished rounds: no statistics."
        return section
    auc = auc_frame(_largest_dims(frame))
    rows = []
    for key, group in auc.groupby(["dataset", "budget", "setting"]):
        by = {
            s: g.set_index(list(REPLICATE)).balanced_accuracy for s, g in group.groupby("strategy")
        }
        for baseline in (RANDOM, TYPICLUST):
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
                    p = wilcoxon_paired(a.to_numpy(), b.to_numpy()).p
                    if p < ALPHA:
                        verdict = "better" if diff.mean() > 0 else "worse"
                    else:
                        verdict = "within the noise"
                        if len(diff) < wilcoxon_min_pairs():
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
        "AUC: the mean balanced accuracy over rounds of each run; pairs share the seed and the "
        "SimCLR training. "
        f"A difference counts only at p < {ALPHA}; otherwise it is within the noise."
    )
    return section
