#!/usr/bin/env bash
# Stops what quickstart.sh started (SIGTERM: graceful), waiting for each to exit.
set -u
cd "$(dirname "$0")/../.."
run=${CREDITO_RUN_DIR:-$PWD/.credito-run}
for f in "$run"/*.pid; do
  [ -e "$f" ] || continue
  pid=$(cat "$f")
  if kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped $(basename "$f" .pid)"
  fi
  rm -f "$f"
done
