"""D_clst x D_typ grid (thesis chapter 4): ``ray job submit -- python sweeps/dim_grid.py``.

Runs anywhere: joins the Ray cluster when there is one, else starts Ray locally; MLflow writes
to sqlite:///<cwd>/mlflow.db unless --tracking-uri says otherwise. See --help.
"""

from pathlib import Path

from alsys.tune_adapter import sweep_main

if __name__ == "__main__":
    raise SystemExit(sweep_main(Path(__file__).with_suffix(".yaml")))
