"""The sweep's collect stage: from each trial's rounds to the results table, the compact
summary, and the learning curves on the sweep's MLflow parent run.

No Ray here. Rows are one dict per (trial, round): the configuration's key
(:class:`alsys.stats.Configuration`), ``embed_seed`` and ``seed`` (a replicate),
``baseline``, ``round`` and ``balanced_accuracy``. Every mean, standard error and area under
the curve is alsys.stats's.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from alsys.stats import REPLICATE, Configuration, auc, mean_sem_text, seeds_text, sem
from alsys.sweep.spec import Trial

# The columns of a configuration's key (alsys.stats.Configuration.fields), in table order.
CONFIG_KEYS = ("strategy", "params", "space", "dataset", "budget", "setting", "d_clst", "d_typ")


def _frame(rows: list[dict[str, Any]]) -> Any:
    """The rows as a frame; an unset D (a strategy without one) reads ``-``."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for key in ("d_clst", "d_typ"):
        if key in frame:
            frame[key] = ["-" if pd.isna(v) else int(v) for v in frame[key]]
    if "baseline" not in frame:
        frame["baseline"] = False
    return frame


def results_table(rows: list[dict[str, Any]]) -> Any:
    """Mean and standard error over seeds, per configuration and round (a pandas DataFrame).

    rows: one dict per (trial, round) with the config fields, ``seed``, ``baseline`` (whether
    the trial is one of the sweep's baselines), ``round`` and ``balanced_accuracy``.
    """
    frame = _frame(rows)
    if frame.empty:
        return frame
    keys = [k for k in (*CONFIG_KEYS, "baseline", "round") if k in frame]
    grouped = frame.groupby(keys, dropna=False, sort=False)["balanced_accuracy"]
    table = grouped.agg(["mean", "count", sem]).reset_index()
    return table.rename(columns={"count": "seeds"})


def configuration_means(rows: list[dict[str, Any]]) -> Any:
    """Per configuration, the mean balanced accuracy over rounds (the area under the learning
    curve) of each seed, then its mean and standard error over seeds (columns ``mean``,
    ``sem``, ``seeds``), in the order the configurations first appear."""
    frame = _frame(rows)
    if frame.empty:
        return frame
    keys = [k for k in (*CONFIG_KEYS, "baseline") if k in frame]
    replicate = [k for k in REPLICATE if k in frame]
    per_seed = frame.groupby([*keys, *replicate], sort=False).balanced_accuracy.agg(auc)
    per_seed = per_seed.reset_index()
    grouped = per_seed.groupby(keys, sort=False).balanced_accuracy
    table = grouped.agg(["mean", "count", sem]).reset_index()  # sem: NaN for one seed
    return table.rename(columns={"count": "seeds"})


def _config_label(row: Any, dims: bool = True, mark: bool = True) -> str:
    """``typiclust 64/64 [hvae:z2:mean] invert=True``: the configuration's description
    (:meth:`alsys.stats.Configuration.describe`), marked when it is a baseline."""
    key = Configuration(
        strategy=str(row.strategy),
        params=tuple(sorted(json.loads(row.params or "{}").items())),
        space=str(row.space),
        d_clst=None if row.d_clst == "-" else int(row.d_clst),
        d_typ=None if row.d_typ == "-" else int(row.d_typ),
        dataset=str(row.dataset),
        budget=str(row.budget),
        setting=str(row.setting),
    )
    return key.describe(dims) + (" (baseline)" if mark and row.baseline else "")


def summary_text(rows: list[dict[str, Any]]) -> str:
    """The end of a sweep in a few lines: per dataset/budget/setting, a D_clst x D_typ grid of
    the mean over rounds (mean over seeds) for each strategy run at several D pairs; then every
    other configuration and the baselines, mean +- s.e. over seeds, a column per
    dataset/budget/setting."""
    import pandas as pd

    means = configuration_means(rows)
    if means.empty:
        return "No trial finished a round: nothing to summarise."
    counts = sorted(set(means.seeds))
    seeds = seeds_text(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]} seeds"
    trainings = {row.get("embed_seed", 0) for row in rows}
    if len(trainings) > 1:  # a replicate is a (training, seed) pair
        seeds = f"{seeds.replace('seeds', 'runs')}: seeds x {len(trainings)} SimCLR trainings"
    lines = [
        "Mean balanced accuracy over rounds (the area under the learning curve), mean over "
        f"seeds ({seeds} per configuration):"
    ]
    means["group"] = means.dataset + " " + means.budget + " " + means.setting
    keys = ["group", "strategy", "space", "params"]
    with_dims = means.d_clst != "-"
    listed = [means[~with_dims | means.baseline]]
    for (group, *_), block in means[with_dims].groupby(keys, sort=False):
        if len(block) < 2:  # one D pair is no grid: it is listed with the others
            listed.append(block)
            continue
        title = _config_label(block.iloc[0], dims=False, mark=False)
        lines += ["", f"{title}, {group}: D_clst (rows) x D_typ (columns)", *_grid_lines(block)]
    table = pd.concat(listed).drop_duplicates(subset=[*keys, "d_clst", "d_typ"])
    if table.empty:
        return "\n".join(lines)
    table = table.sort_values("baseline", kind="stable")  # baselines last, beside the grids
    table["label"] = [_config_label(row) for row in table.itertuples()]
    table["cell"] = [mean_sem_text(m, e) for m, e in zip(table["mean"], table["sem"], strict=True)]
    pivot = table.pivot(index="label", columns="group", values="cell")
    pivot = pivot.reindex(index=table.label.unique(), columns=means.group.unique()).fillna("")
    pivot.index.name = pivot.columns.name = None
    lines += ["", "Mean ± s.e. over seeds:", pivot.to_string(line_width=100)]
    return "\n".join(lines)


def _grid_lines(block: Any) -> list[str]:
    """One strategy's D_clst x D_typ grid of means, as text rows."""
    grid = block.pivot_table(index="d_clst", columns="d_typ", values="mean", aggfunc="mean")
    grid = grid.reindex(index=sorted(grid.index), columns=sorted(grid.columns))
    head = "D_clst\\D_typ"
    lines = [f"{head:>12}" + "".join(f"{c:>7}" for c in grid.columns)]
    for d_clst, values in grid.iterrows():
        cells = "".join(f"{v:7.3f}" if v == v else f"{'':>7}" for v in values)
        lines.append(f"{d_clst:>12}{cells}")
    return lines


def trial_rows(trial: Trial, rounds: list[tuple[int, float]]) -> list[dict[str, Any]]:
    """One row per round of one trial; each round once (the last value reported wins: a
    trial resumed from an older checkpoint reports some rounds again)."""
    config = trial.config
    fields = {
        **config.configuration().fields(),
        "embed_seed": config.embed_seed,
        "seed": config.seed,
        "baseline": trial.baseline,
    }
    last = dict(rounds)
    return [{**fields, "round": r, "balanced_accuracy": last[r]} for r in sorted(last)]


def curves(
    trials: list[Trial], rounds: dict[str, list[tuple[int, float]]]
) -> dict[str, list[tuple[int, float, float]]]:
    """Per configuration of ``trials`` (those with rounds), ``(round, mean, s.e.)`` of balanced
    accuracy over its seeds; ``rounds`` maps a trial's name to its ``(round, value)`` pairs."""
    by_configuration: dict[str, dict[int, list[float]]] = {}
    for trial in trials:
        for step, value in dict(rounds.get(trial.name, [])).items():
            by_configuration.setdefault(trial.configuration, {}).setdefault(step, []).append(value)
    return {
        label: [(int(s), float(np.mean(steps[s])), sem(steps[s])) for s in sorted(steps)]
        for label, steps in by_configuration.items()
    }


def print_results(
    rows: list[dict[str, Any]],
    csv: Path,
    tracking_uri: str,
    experiment: str,
    store_root: str | None,
) -> None:
    """The end of every sweep, printed here and only here: the compact summary, the file that
    holds the long table (one row per configuration and round), and the next two commands."""
    from alsys.tracking import experiment_id

    csv.parent.mkdir(parents=True, exist_ok=True)
    results_table(rows).to_csv(csv, index=False)
    print(summary_text(rows))
    print(f"\nPer configuration and round (mean, seeds, s.e.): {csv}")
    found = experiment_id(tracking_uri, experiment)
    runs = "/#/experiments/{}/runs?workflowType=machine_learning".format(found or "<id>")
    report = ["alsys", "report", "--experiment", experiment, "--tracking-uri", tracking_uri]
    report += ["--out", f"report/{experiment}", *(["--store", store_root] if store_root else [])]
    if tracking_uri.startswith(("http://", "https://")):  # the server serves the UI itself
        ui = f"open {tracking_uri.rstrip('/')}{runs}"
    else:
        ui = f"{shlex.join(['mlflow', 'ui', '--backend-store-uri', tracking_uri])}"
        ui += f"  # then open http://127.0.0.1:5000{runs}"
    print(f"\nNext:\n  {shlex.join(report)}\n  {ui}")
