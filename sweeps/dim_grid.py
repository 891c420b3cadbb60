"""D_clst x D_typ grid (thesis chapter 4): ``ray job submit -- python sweeps/dim_grid.py``.

Runs anywhere: joins the Ray cluster when there is one, else starts Ray locally; MLflow writes
to sqlite:///<cwd>/mlflow.db unless --tracking-uri says otherwise. Beside the grid it runs the
chapter's baselines (sweeps/dim_grid.yaml, ``baselines:``: Random, TypiClust at the largest D
pair). It ends with a D_clst x D_typ grid per strategy with the baselines beside it, the CSV
that holds the table per configuration and round, and the `alsys report` and MLflow UI commands
for this sweep. See --help.
"""

from pathlib import Path

from alsys.sweep.cli import sweep_main

if __name__ == "__main__":
    raise SystemExit(sweep_main(Path(__file__).with_suffix(".yaml")))
