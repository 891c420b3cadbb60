#!/usr/bin/env bash
# Set up (once) and run alsys's main job on its embedded default.
# Until the sweep system lands (sweeps/dim_grid.py), the main job is one `alsys select`
# round on the digits pool that ships with scikit-learn: 1,797 real 8x8 images, 10 classes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/alsys ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e ".[dev]"
fi
work=$(mktemp -d)
.venv/bin/python - "$work" <<'PY'
import sys
import numpy as np
from sklearn.datasets import load_digits
out = sys.argv[1]
np.save(f"{out}/digits.npy", load_digits().data.astype(np.float32))
open(f"{out}/labeled.txt", "w").close()
PY
.venv/bin/alsys select --embeddings "$work/digits.npy" --labeled "$work/labeled.txt" \
  --budget 10 --strategy supclust --seed 0 --out "$work/selection.json"
.venv/bin/python -c "import json,sys; r=json.load(open(sys.argv[1])); print('selected rows:', r['selected'])" "$work/selection.json"
echo "full report: $work/selection.json"
