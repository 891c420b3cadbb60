#!/usr/bin/env bash
# Stops what cluster/local/start.sh started, by its recorded pids (each the id of a session
# holding that component's processes): SIGTERM, up to 30 s to exit, then SIGKILL for whatever
# of that session is left. Then checks that nothing of it runs. Other Ray or MLflow
# processes on the machine are not touched.
set -euo pipefail
dir=${ALSYS_LOCAL_DIR:-$HOME/.alsys/local}

session() {  # pids of the processes in session $1 (none once it is gone)
  local sid=$1
  for stat in /proc/[0-9]*/stat; do
    fields=$(sed 's/.*) //' "$stat" 2>/dev/null) || continue
    # fields: state ppid pgrp session ...
    set -- $fields
    [ "${4:-}" = "$sid" ] && [ "$1" != Z ] && basename "$(dirname "$stat")"
  done
  return 0
}

status=0
for name in ray mlflow; do
  file="$dir/$name.pid"
  [ -s "$file" ] || continue
  sid=$(cat "$file")
  pids=$(session "$sid")
  if [ -n "$pids" ]; then
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 30); do
      [ -z "$(session "$sid")" ] && break
      sleep 1
    done
    left=$(session "$sid")
    if [ -n "$left" ]; then
      echo "stop.sh: $name: SIGKILL for $(echo $left | wc -w) process(es) still up after 30 s"
      kill -KILL $left 2>/dev/null || true
      sleep 1
    fi
  fi
  if [ -n "$(session "$sid")" ]; then
    echo "stop.sh: $name: processes left: $(session "$sid")" >&2
    status=1
  else
    echo "stopped $name (session $sid)"
    rm -f "$file"
  fi
done
if [ -s "$dir/ray.temp" ]; then
  rm -rf "$(cat "$dir/ray.temp")" && rm -f "$dir/ray.temp"
fi
exit $status
