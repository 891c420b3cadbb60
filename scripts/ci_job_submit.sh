#!/usr/bin/env bash
# The headline path, for real: a token-auth Ray head and an `mlflow server`, both on 127.0.0.1;
# `ray job submit -- python sweeps/dim_grid.py --smoke` against them; then a check that the job
# succeeded and every trial logged exactly once; then both are stopped and nothing is left.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"  # the job's `python` is the head's, started from here
work=$(mktemp -d)
RAY_PORT=${RAY_PORT:-6390}
DASHBOARD_PORT=${DASHBOARD_PORT:-8270}
MLFLOW_PORT=${MLFLOW_PORT:-5055}

stop_all() {
  ray stop --force >/dev/null 2>&1 || true
  if [ -s "$work/mlflow.pgid" ]; then
    group=$(cat "$work/mlflow.pgid")
    kill -TERM -- "-$group" 2>/dev/null || true
    for _ in $(seq 1 30); do pgrep -g "$group" >/dev/null || break; sleep 1; done
    kill -KILL -- "-$group" 2>/dev/null || true
  fi
}
trap stop_all EXIT

ray start --head --node-ip-address 127.0.0.1 --port "$RAY_PORT" --dashboard-host 127.0.0.1 \
  --dashboard-port "$DASHBOARD_PORT" --num-cpus 2 --disable-usage-stats >"$work/ray.log" 2>&1
# The server in its own process group (it starts uvicorn and job-consumer helpers).
setsid sh -c "echo \$\$ > '$work/mlflow.pgid'; exec mlflow server --host 127.0.0.1 \
  --port $MLFLOW_PORT --backend-store-uri sqlite:///$work/mlflow.db \
  --artifacts-destination $work/artifacts" >"$work/mlflow.log" 2>&1 </dev/null &
for _ in $(seq 1 90); do
  curl -sf "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null && break
  sleep 1
done
curl -sf "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null || { cat "$work/mlflow.log"; exit 1; }

# Token auth stays on: the client says so and finds the token ray start wrote to ~/.ray.
RAY_AUTH_MODE=token RAY_API_SERVER_ADDRESS="http://127.0.0.1:$DASHBOARD_PORT" \
  ray job submit --working-dir . -- python sweeps/dim_grid.py --smoke \
  --tracking-uri "http://127.0.0.1:$MLFLOW_PORT" --storage-path "$work/ray_results" \
  --store "$work/store" >"$work/job.log" 2>&1 || { tail -50 "$work/job.log"; exit 1; }
grep -q "succeeded" "$work/job.log" || { tail -50 "$work/job.log"; exit 1; }

python - "http://127.0.0.1:$MLFLOW_PORT" <<'PY'
import sys
from mlflow import MlflowClient

client = MlflowClient(tracking_uri=sys.argv[1])
experiment = client.get_experiment_by_name("dim_grid_smoke")
runs = client.search_runs([experiment.experiment_id])
parents = [r for r in runs if r.info.run_name == "sweep-dim_grid_smoke"]
assert len(parents) == 1 and parents[0].info.status == "FINISHED", parents
children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
assert len(children) == 8 == len(runs) - 1, [r.info.run_name for r in runs]
for child in children:
    steps = [m.step for m in client.get_metric_history(child.info.run_id, "accuracy")]
    assert steps == [1, 2], (child.info.run_name, steps)
    assert {a.path for a in client.list_artifacts(child.info.run_id)} == {
        "config.json", "learning_curve.png", "selections.json"}
print(f"ray job submit: succeeded; {len(children)} trials, each logged once")
PY
stop_all
trap - EXIT
leftover=$(pgrep -f "raylet|gcs_server|mlflow server|huey_consumer" || true)
[ -z "$leftover" ] || { echo "processes left behind: $leftover"; exit 1; }
echo "head and MLflow server stopped; nothing left running"
