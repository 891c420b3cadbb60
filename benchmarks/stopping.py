"""Does the stopping signal say when the learning curve flattens? digits and digits_lt, SSL.

Runs the loop (alsys.loop, as ``alsys run``) for more rounds than a trial usually has, with
random, margin and typiclust, 10 seeds, the tiny and small budgets, and reads the signal the
loop computes after every round (alsys.stopping). The truth is the mean learning curve of each
(dataset, budget, strategy) over the seeds, in two readings of "it flattens (gain < 0.5
points)": the first round whose next round gains less than 0.5 points of balanced accuracy
("first"), and the first round from which no later round gains 0.5 points over the one before
("for good"). Each estimator's rule stops a trial at the first round where it fires; the table
gives how often that is within one round of the flattening, how often earlier or later, and
what stopping there cost (points of balanced accuracy below the trial's last round) and saved
(labels not bought before the last round).

    .venv/bin/python benchmarks/stopping.py                 # the whole grid, prints the table
    .venv/bin/python benchmarks/stopping.py --seeds 3 --strategies random

The rules are the ones alsys ships (alsys.stopping), fixed before this was run; the lower
table varies their thresholds to show whether any threshold would have done better (a
threshold chosen on these curves would be tuned to them, so it is shown, not adopted).
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FLAT_GAIN = 0.005  # the "gain < 0.5 points"
# Rounds per budget: tiny (b = #classes) to 200 labels; small (b = 5 x #classes) to 500.
ROUNDS = {"tiny": 20, "small": 10}


def _one_thread() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


_DATA: dict[str, Any] = {}


def run_cell(cell: tuple[str, str, str, int]) -> dict[str, Any]:
    """One trial: its balanced accuracy and stopping signal per round."""
    from alsys.config import TrialConfig
    from alsys.loop import prepare_data, run_trial

    dataset, budget, strategy, seed = cell
    config = TrialConfig(
        strategy=strategy, dataset=dataset, budget=budget, seed=seed, episodes=ROUNDS[budget]
    )
    if dataset not in _DATA:
        _DATA[dataset] = prepare_data(config)
    state = run_trial(config, _DATA[dataset])
    return {
        "cell": cell,
        "bal_acc": [r.balanced_accuracy for r in state.rounds],
        "n_labeled": [r.n_labeled for r in state.rounds],
        "signal": [r.stopping for r in state.rounds],
    }


def flat_round(curve: np.ndarray) -> int | None:
    """1-based round whose next round gains less than FLAT_GAIN; None if none does."""
    flat = np.flatnonzero(np.diff(curve) < FLAT_GAIN)
    return int(flat[0]) + 1 if flat.size else None


def flat_for_good(curve: np.ndarray) -> int | None:
    """1-based round from which every later round gains less than FLAT_GAIN; None if the last
    step still gains that much."""
    rising = np.flatnonzero(np.diff(curve) >= FLAT_GAIN)
    if rising.size and rising[-1] == curve.size - 2:
        return None
    return int(rising[-1]) + 2 if rising.size else 1


Rule = Callable[[list[dict[str, float]]], int | None]


def agreement_rule(threshold: float, window: int) -> Rule:
    def stop(signal: list[dict[str, float]]) -> int | None:
        kappas: list[float] = []
        for r, s in enumerate(signal, start=1):
            if "agreement" in s:
                kappas.append(s["agreement"])
            if len(kappas) >= window and np.mean(kappas[-window:]) >= threshold:
                return r
        return None

    return stop


def coverage_rule(threshold: float) -> Rule:
    def stop(signal: list[dict[str, float]]) -> int | None:
        for r, s in enumerate(signal, start=1):
            if s["coverage_gain"] < threshold:
                return r
        return None

    return stop


Truth = dict[tuple[str, str, str], int | None]


def verdict(stop: int | None, flat: int | None) -> str:
    """ "hit" within one round of the flattening, else "early" or "late" (never stopping is
    late; when the curve never flattens, never stopping is the hit)."""
    if flat is None:
        return "hit" if stop is None else "early"
    if stop is not None and abs(stop - flat) <= 1:
        return "hit"
    return "early" if stop is not None and stop < flat else "late"


def score(trials: list[dict[str, Any]], truths: list[Truth], rule: Rule) -> list[float]:
    """Per truth: the shares of hit, early, late; then the mean cost (points of balanced
    accuracy below the trial's last round) and labels saved by stopping where the rule says."""
    counts = [dict.fromkeys(("hit", "early", "late"), 0) for _ in truths]
    cost, saved = [], []
    for t in trials:
        stop = rule(t["signal"])
        at = len(t["bal_acc"]) if stop is None else stop
        cost.append(100 * (t["bal_acc"][-1] - t["bal_acc"][at - 1]))
        saved.append(t["n_labeled"][-1] - t["n_labeled"][at - 1])
        for count, truth in zip(counts, truths, strict=True):
            count[verdict(stop, truth[t["cell"][:3]])] += 1
    shares = [c[k] / len(trials) for c in counts for k in ("hit", "early", "late")]
    return [*shares, float(np.mean(cost)), float(np.mean(saved))]


def main() -> None:
    from alsys import stopping

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="digits,digits_lt")
    parser.add_argument("--budgets", default="tiny,small")
    parser.add_argument("--strategies", default="random,margin,typiclust")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="benchmarks/out/stopping")
    args = parser.parse_args()
    datasets, budgets = args.datasets.split(","), args.budgets.split(",")
    strategies = args.strategies.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cells = [
        (dataset, budget, strategy, seed)
        for dataset in datasets
        for budget in budgets
        for strategy in strategies
        for seed in range(args.seeds)
    ]
    from alsys.config import TrialConfig
    from alsys.loop import prepare_data

    for dataset in datasets:  # embeddings once, before the workers start
        prepare_data(TrialConfig(strategy="random", dataset=dataset))

    import multiprocessing

    from tqdm import tqdm

    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, initializer=_one_thread) as pool:
        trials = list(tqdm(pool.imap_unordered(run_cell, cells), total=len(cells), desc="trials"))
    seconds = time.perf_counter() - start

    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in trials:
        groups[t["cell"][:3]].append(t)
    mean_curve = {k: np.mean([t["bal_acc"] for t in v], axis=0) for k, v in groups.items()}
    truths = [
        {k: flat_round(c) for k, c in mean_curve.items()},
        {k: flat_for_good(c) for k, c in mean_curve.items()},
    ]
    with (out / "trials.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        keys = ["coverage", "coverage_gain", "agreement", "agreement_mean"]
        writer.writerow(["dataset", "budget", "strategy", "seed", "round", "bal_acc", *keys])
        for t in sorted(trials, key=lambda t: t["cell"]):
            for r, (acc, s) in enumerate(zip(t["bal_acc"], t["signal"], strict=True), start=1):
                writer.writerow([*t["cell"], r, f"{acc:.4f}", *(s.get(k, "") for k in keys)])

    print(
        f"stopping signal vs the true learning curve: SSL, {args.seeds} seeds, strategies "
        f"{', '.join(strategies)}; rounds: tiny {ROUNDS['tiny']}, small {ROUNDS['small']}; "
        f"{len(trials)} trials in {seconds:.0f} s on {args.workers} workers"
    )
    print("\nwhere the mean curve flattens (gain < 0.5 points): first, for good")
    for key in sorted(mean_curve):
        curve = mean_curve[key]
        at = [
            "never" if flat is None else f"round {flat} ({curve[flat - 1]:.3f})"
            for flat in (truth[key] for truth in truths)
        ]
        print(f"  {' '.join(key):<28} {at[0]:<20} {at[1]:<20} last round {curve[-1]:.3f}")

    shipped: dict[str, Rule] = {
        f"agreement: mean kappa of last {stopping.AGREEMENT_WINDOW} >= "
        f"{stopping.AGREEMENT_THRESHOLD}": agreement_rule(
            stopping.AGREEMENT_THRESHOLD, stopping.AGREEMENT_WINDOW
        ),
        f"coverage: gain < {stopping.COVERAGE_GAIN_THRESHOLD:g}": coverage_rule(
            stopping.COVERAGE_GAIN_THRESHOLD
        ),
    }
    varied: dict[str, Rule] = {
        **{
            f"agreement: last {w} >= {th}": agreement_rule(th, w)
            for th in (0.9, 0.95, 0.99)
            for w in (1, 3)
        },
        **{f"coverage: gain < {th:g}": coverage_rule(th) for th in (0.005, 0.01, 0.02, 0.04)},
    }
    for title, rules in (
        ("the shipped rules", shipped),
        ("other thresholds (not adopted)", varied),
    ):
        print(f"\n{title}: shares of trials stopped within one round of the flattening (hit)")
        print(
            f"{'rule':<38} {'dataset':<9} {'budget':<6} "
            f"{'first: hit':>10} {'early':>5} {'late':>5} {'for good: hit':>13} {'early':>5} "
            f"{'late':>5} {'cost pts':>8} {'saved':>5}"
        )
        for name, rule in rules.items():
            for dataset in datasets:
                for budget in budgets:
                    chosen = [t for t in trials if t["cell"][:2] == (dataset, budget)]
                    v = score(chosen, truths, rule)
                    print(
                        f"{name:<38} {dataset:<9} {budget:<6} {v[0]:>10.2f} {v[1]:>5.2f} "
                        f"{v[2]:>5.2f} {v[3]:>13.2f} {v[4]:>5.2f} {v[5]:>5.2f} {v[6]:>8.2f} "
                        f"{v[7]:>5.0f}"
                    )
    print(f"\nwrote {out / 'trials.csv'}")


if __name__ == "__main__":
    main()
