#!/usr/bin/env bash
# Set up (once) and run alsys's main job on its embedded default.
# The main job is the D_clst x D_typ sweep (thesis chapter 4) on its embedded default: digits
# (1,797 real 8x8 images that ship with scikit-learn), SSL, tiny budget, dimensions up to 64,
# 3 seeds = 96 grid trials + Random per seed = 99 trials on a local Ray, logged to MLflow in
# ./mlflow.db (2-4 minutes on 2 cores by the machine, SimCLR's one-off training included).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/alsys ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e ".[dev]"
fi
.venv/bin/python sweeps/dim_grid.py "$@"
