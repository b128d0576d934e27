#!/usr/bin/env bash
# Starts a threadline cluster on this machine's PostgreSQL and Redis: N API
# processes (ports BASE_PORT, BASE_PORT+1, ...) and M workers, after one migrate.
# Usage: scripts/cluster.sh [N_API] [M_WORKERS]   (Ctrl-C or SIGTERM stops them all)
# Environment: THREADLINE_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/threadline),
# THREADLINE_REDIS_URL (default redis://127.0.0.1:6379/0), BASE_PORT (8000), LOG_DIR
# (./cluster-logs); every other THREADLINE_* setting is passed on as it is.
set -euo pipefail
N_API="${1:-2}"
M_WORKERS="${2:-2}"
BASE_PORT="${BASE_PORT:-8000}"
LOG_DIR="${LOG_DIR:-cluster-logs}"
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${THREADLINE_BIN:-$here/.venv/bin/threadline}"
# This checkout's source first (the virtual environment may be shared).
export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}"

export THREADLINE_DATABASE_URL="${THREADLINE_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/threadline}"
export THREADLINE_REDIS_URL="${THREADLINE_REDIS_URL:-redis://127.0.0.1:6379/0}"
export THREADLINE_QUEUE=procrastinate
mkdir -p "$LOG_DIR"

pids=()
stop() {
  trap - INT TERM EXIT
  # Workers first get SIGTERM (they hand back what they cannot finish in their grace).
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

"$bin" migrate
for i in $(seq 0 $((M_WORKERS - 1))); do
  "$bin" worker >"$LOG_DIR/worker$i.log" 2>&1 &
  pids+=("$!")
  echo "worker $i: pid $! (log $LOG_DIR/worker$i.log)"
done
for i in $(seq 0 $((N_API - 1))); do
  port=$((BASE_PORT + i))
  "$bin" serve --no-worker --port "$port" >"$LOG_DIR/api$i.log" 2>&1 &
  pids+=("$!")
  echo "api $i: http://127.0.0.1:$port/v1 pid $! (log $LOG_DIR/api$i.log)"
done
for i in $(seq 0 $((N_API - 1))); do
  port=$((BASE_PORT + i))
  for _ in $(seq 1 60); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.5
  done
done
echo "cluster up: $N_API API processes, $M_WORKERS workers"
wait
