#!/usr/bin/env bash
# The selection benchmarks on a machine with a GPU, as one run that fits a short loan: the
# machine, the kNN engines (benchmarks/knn_devices.py), benchmarks/scale.py --shapes and
# benchmarks/peers.py, each under its own time limit (seconds), their output in OUTDIR.
#   bash benchmarks/gpu_selection.sh OUTDIR [SCALE_S PEERS20K_S PEERS50K_S]
set -u
out=${1:?usage: gpu_selection.sh OUTDIR [SCALE_S PEERS20K_S PEERS50K_S]}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
here=$(cd "$(dirname "$0")" && pwd)
{
  date -u; nvidia-smi -L; nproc; free -g | head -2
  python3 -c "import numpy, sklearn, torch, faiss, threadpoolctl; print('numpy', numpy.__version__, 'sklearn', sklearn.__version__, 'torch', torch.__version__, 'faiss', faiss.__version__); print(threadpoolctl.threadpool_info())"
  timeout 120 python3 "$here/knn_devices.py"
} > "$out/env.txt" 2>&1
cd "$here"
timeout "${2:-250}" python3 scale.py --shapes --only typiclust supclust probcover coreset batchbald badge 2>&1 | tee "$out/scale.txt"
timeout "${3:-120}" python3 peers.py --pools 20000x128 --runs 3 2>&1 | tee "$out/peers20k.txt"
timeout "${4:-150}" python3 peers.py --pools 50000x512 --runs 3 --only typiclust badge batchbald coreset 2>&1 | tee "$out/peers50k.txt"
