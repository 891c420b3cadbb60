"""Every strategy for 5 rounds on digits (SSL, tiny budget) over a few seeds: time and scores.

Embeddings come from the store (trained once with the digits preset). Prints, per strategy,
the median wall time of one trial and the mean +- standard error of the balanced accuracy
after round 1 and round 5.

    .venv/bin/python benchmarks/trials.py [--seeds 3] [--budget tiny]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from alsys.config import TrialConfig
from alsys.loop import prepare_data, run_trial
from alsys.strategies import REGISTRY

PARAMS = {"probcover": {"n_classes": 10}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", default="tiny", choices=["tiny", "small"])
    args = parser.parse_args()
    print(f"digits, ssl, {args.budget} budget, 5 rounds, seeds 0..{args.seeds - 1}")
    print(f"{'strategy':<24} {'trial s':>8} {'bal.acc r1':>14} {'bal.acc r5':>14}")
    for name in sorted(REGISTRY):
        seconds, first, last = [], [], []
        for seed in range(args.seeds):
            config = TrialConfig(
                strategy=name, seed=seed, budget=args.budget, strategy_params=PARAMS.get(name, {})
            )
            data = prepare_data(config)
            start = time.perf_counter()
            state = run_trial(config, data)
            seconds.append(time.perf_counter() - start)
            first.append(state.rounds[0].balanced_accuracy)
            last.append(state.rounds[-1].balanced_accuracy)

        def fmt(values: list[float]) -> str:
            sem = np.std(values, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
            return f"{np.mean(values):.3f} +- {sem:.3f}"

        print(f"{name:<24} {statistics.median(seconds):>8.1f} {fmt(first):>14} {fmt(last):>14}")


if __name__ == "__main__":
    main()
