#!/usr/bin/env bash
# One machine, set up like a cluster: a Ray head and an `mlflow server` (SQLite backend, local
# artifact root), both bound to 127.0.0.1, Ray token auth on. Every process is started in a
# session of its own and its pid recorded, so stop.sh ends exactly these and nothing else.
#
#   bash cluster/local/start.sh          # then: source "$ALSYS_LOCAL_DIR/env"
#   bash cluster/local/stop.sh
#
# Settings (environment): ALSYS_LOCAL_DIR (state, logs, the MLflow store; default
# ~/.alsys/local), RAY_PORT (6390), DASHBOARD_PORT (8265), MLFLOW_PORT (5000), NUM_CPUS
# (all), HOST (127.0.0.1; anything else exposes the job server and MLflow to that network),
# AGENT_PORT (52365, the head's dashboard agent, which runs submitted jobs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ -x "$root/.venv/bin/ray" ] && export PATH="$root/.venv/bin:$PATH"
dir=${ALSYS_LOCAL_DIR:-$HOME/.alsys/local}
RAY_PORT=${RAY_PORT:-6390}
DASHBOARD_PORT=${DASHBOARD_PORT:-8265}
MLFLOW_PORT=${MLFLOW_PORT:-5000}
HOST=${HOST:-127.0.0.1}
AGENT_PORT=${AGENT_PORT:-52365}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

for name in ray mlflow; do
  if [ -s "$dir/$name.pid" ] && kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
    echo "start.sh: $name already running (pid $(cat "$dir/$name.pid")); stop.sh first" >&2
    exit 1
  fi
done
rm -f "$dir"/*.pid

fail() {
  echo "start.sh: $1; the log follows" >&2
  tail -40 "$2" >&2 || true
  bash "$here/stop.sh" >/dev/null 2>&1 || true
  exit 1
}

# Another Ray on this machine may hold the agent's port (52365 is every Ray's default); ours
# would then start without one and refuse every job. Say so now rather than after a minute.
if curl -s -o /dev/null "http://127.0.0.1:$AGENT_PORT/"; then
  echo "start.sh: port $AGENT_PORT (the dashboard agent's) is taken by another process;" \
    "set AGENT_PORT to a free port" >&2
  exit 1
fi

# Ray's temp dir is short (unix socket paths are limited to 107 bytes) and ours alone.
temp=$(mktemp -d /tmp/alsys-ray-XXXXXX)
echo "$temp" >"$dir/ray.temp"
cpus=()
[ -n "${NUM_CPUS:-}" ] && cpus=(--num-cpus "$NUM_CPUS")
# --block keeps `ray start` in the foreground as the parent of the head's processes; setsid
# gives them a session of their own (its id is the recorded pid).
setsid ray start --head --block --node-ip-address "$HOST" --port "$RAY_PORT" \
  --dashboard-host "$HOST" --dashboard-port "$DASHBOARD_PORT" --temp-dir "$temp" \
  --dashboard-agent-listen-port "$AGENT_PORT" \
  --disable-usage-stats "${cpus[@]}" >"$dir/ray.log" 2>&1 </dev/null &
echo $! >"$dir/ray.pid"

setsid mlflow server --host "$HOST" --port "$MLFLOW_PORT" \
  --backend-store-uri "sqlite:///$dir/mlflow.db" --artifacts-destination "$dir/artifacts" \
  >"$dir/mlflow.log" 2>&1 </dev/null &
echo $! >"$dir/mlflow.pid"

# Ready means: MLflow answers, the head answers, and the head's dashboard agent answers. The
# job server hands every submitted job to that agent and, without it, refuses the job after
# 10 s ("No available agent to submit job"). An agent that lost its port to another process
# stays alive with no HTTP service, so its log is read too.
agent_log="$temp/session_latest/logs/dashboard_agent.log"
agent_ready() { curl -s -o /dev/null "http://$HOST:$AGENT_PORT/api/local_raylet_healthz"; }
for _ in $(seq 1 120); do
  grep -qs "failed to bind" "$agent_log" &&
    fail "the dashboard agent could not bind port $AGENT_PORT; set AGENT_PORT" "$agent_log"
  if curl -sf "http://$HOST:$MLFLOW_PORT/health" >/dev/null &&
    RAY_AUTH_MODE=token ray status --address "$HOST:$RAY_PORT" >/dev/null 2>&1 && agent_ready; then
    break
  fi
  kill -0 "$(cat "$dir/ray.pid")" 2>/dev/null || fail "the Ray head exited" "$dir/ray.log"
  kill -0 "$(cat "$dir/mlflow.pid")" 2>/dev/null || fail "mlflow server exited" "$dir/mlflow.log"
  sleep 1
done
curl -sf "http://$HOST:$MLFLOW_PORT/health" >/dev/null || fail "MLflow did not answer" "$dir/mlflow.log"
RAY_AUTH_MODE=token ray status --address "$HOST:$RAY_PORT" >/dev/null 2>&1 ||
  fail "the Ray head did not answer" "$dir/ray.log"
agent_ready || fail "the head's dashboard agent did not answer on port $AGENT_PORT" "$dir/ray.log"

cat >"$dir/env" <<ENV
# source this: the clients then reach the head (token auth on) and the MLflow server
export RAY_AUTH_MODE=token
export RAY_API_SERVER_ADDRESS=http://$HOST:$DASHBOARD_PORT
export ALSYS_TRACKING_URI=http://$HOST:$MLFLOW_PORT
ENV
cat <<MSG
Ray head      $HOST:$RAY_PORT (dashboard and job server http://$HOST:$DASHBOARD_PORT, token auth on)
MLflow server http://$HOST:$MLFLOW_PORT (store $dir/mlflow.db, artifacts $dir/artifacts)
pids          ray $(cat "$dir/ray.pid"), mlflow $(cat "$dir/mlflow.pid"); logs in $dir
next:         source $dir/env
              ray job submit --working-dir . -- python sweeps/dim_grid.py --tracking-uri \$ALSYS_TRACKING_URI
stop:         bash cluster/local/stop.sh
MSG
