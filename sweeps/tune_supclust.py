"""Tune SUPClust's temperature and typ_ratio with Optuna TPE through Ray Tune's OptunaSearch.

Tunes on the YAML's ``seeds``, then runs the best parameters, TypiClust and SUPClust with its
default parameters on the held-out seeds (``holdout_seeds``, disjoint) as ordinary trials, and
ends with their table: mean balanced accuracy over rounds, mean +- s.e. over the held-out
seeds. Also prints the parameter importances; the study is stored beside Tune's results (an
Optuna journal file) so it can be inspected or extended. See --help.
"""

from pathlib import Path

from alsys.tune_adapter import tune_main

if __name__ == "__main__":
    raise SystemExit(tune_main(Path(__file__).with_suffix(".yaml")))
