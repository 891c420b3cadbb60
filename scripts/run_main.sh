#!/usr/bin/env bash
# Set up (once) and run alsys's main job on its embedded default.
# Until the sweep system lands (sweeps/dim_grid.py), the main job is one SUPClust trial on the
# digits pool that ships with scikit-learn (1,797 real 8x8 images, 10 classes): SimCLR
# embeddings (trained once, then cached), 5 rounds of select/label/train/evaluate, logged to
# MLflow in ./mlflow.db.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/alsys ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e ".[dev]"
fi
.venv/bin/alsys run --dataset digits --strategy supclust --budget tiny --setting ssl --seed 0
