#!/usr/bin/env bash
# The headline path, for real, through cluster/local: a token-auth Ray head and an `mlflow
# server`, both on 127.0.0.1; `ray job submit -- python sweeps/dim_grid.py --smoke` against
# them; a check that the job succeeded and every trial logged exactly once; then
# cluster/local/stop.sh ends both by their recorded pids and nothing of them may be left.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"  # the job's `python` is the head's, started from here
work=$(mktemp -d)
export ALSYS_LOCAL_DIR="$work/local" RAY_PORT=${RAY_PORT:-6390} DASHBOARD_PORT=${DASHBOARD_PORT:-8270}
export MLFLOW_PORT=${MLFLOW_PORT:-5055} AGENT_PORT=${AGENT_PORT:-52390} NUM_CPUS=2
trap 'bash cluster/local/stop.sh >/dev/null 2>&1 || true' EXIT
bash cluster/local/start.sh >"$work/start.log" || { cat "$work/start.log"; exit 1; }
source "$ALSYS_LOCAL_DIR/env"
[ "$RAY_AUTH_MODE" = token ]

# start.sh waited for the head's agent; should the job server still not see it (the agent
# answers HTTP a moment before it registers), the job was refused, not created: try again.
for attempt in 1 2 3; do
  if ray job submit --working-dir . -- python sweeps/dim_grid.py --smoke \
    --tracking-uri "$ALSYS_TRACKING_URI" --storage-path "$work/ray_results" \
    --store "$work/store" >"$work/job.log" 2>&1; then
    break
  fi
  grep -q "No available agent to submit job" "$work/job.log" && [ "$attempt" -lt 3 ] ||
    { tail -50 "$work/job.log"; exit 1; }
  echo "ray job submit: no agent yet (attempt $attempt); again in 5 s"
  sleep 5
done
grep -q "succeeded" "$work/job.log" || { tail -50 "$work/job.log"; exit 1; }

python - "$ALSYS_TRACKING_URI" <<'PY'
import sys
from mlflow import MlflowClient

client = MlflowClient(tracking_uri=sys.argv[1])
experiment = client.get_experiment_by_name("dim_grid_smoke")
runs = client.search_runs([experiment.experiment_id])
parents = [r for r in runs if r.info.run_name == "sweep-dim_grid_smoke"]
assert len(parents) == 1 and parents[0].info.status == "FINISHED", parents
children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
assert len(children) == 9 == len(runs) - 1, [r.info.run_name for r in runs]  # 8 + Random
for child in children:
    steps = [m.step for m in client.get_metric_history(child.info.run_id, "accuracy")]
    assert steps == [1, 2], (child.info.run_name, steps)
    assert {a.path for a in client.list_artifacts(child.info.run_id)} == {
        "config.json", "learning_curve.png", "selections.json"}
print(f"ray job submit: succeeded; {len(children)} trials, each logged once")
PY
ray_sid=$(cat "$ALSYS_LOCAL_DIR/ray.pid") mlflow_sid=$(cat "$ALSYS_LOCAL_DIR/mlflow.pid")
bash cluster/local/stop.sh
trap - EXIT
left=$(ps -eo sid=,stat=,pid= | awk -v a="$ray_sid" -v b="$mlflow_sid" \
  '($1 == a || $1 == b) && $2 !~ /^Z/ {print $3}')
[ -z "$left" ] || { echo "processes left behind: $left"; exit 1; }
echo "head and MLflow server stopped by pid; nothing of them left running"
