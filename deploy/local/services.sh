#!/usr/bin/env bash
# Start, stop and report the four Pigeonhole services as background processes.
#   services.sh up | down | status
# Logs: $PIGEONHOLE_STATE_DIR/logs/<service>.log (JSON lines); pids in .../run/.
# `up` leaves a healthy service alone and returns once every service answers /readyz.
# PIGEONHOLE_SYNC_WORKERS=N (default 1) runs sync as N processes sharing its port, with
# prometheus-client's multiprocess metrics in $PIGEONHOLE_STATE_DIR/run/sync-metrics.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${PIGEONHOLE_STATE_DIR:-$REPO_DIR/.stack}"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"
PYTHON="${PIGEONHOLE_PYTHON:-$REPO_DIR/.venv/bin/python}"
READY_TIMEOUT="${PIGEONHOLE_READY_TIMEOUT:-90}"

# name:port of the endpoint serving /healthz, /readyz and /metrics
SERVICES=(
  "publisher:${PIGEONHOLE_PUBLISHER_PORT:-8080}"
  "sync:${PIGEONHOLE_SYNC_PORT:-8081}"
  "scheduler:${PIGEONHOLE_SCHEDULER_METRICS_PORT:-9101}"
  "delivery:${PIGEONHOLE_DELIVERY_WEB_PORT:-9102}"
)

say() { echo "services: $*"; }

# alive = exists and is not a zombie (a killed service may wait to be reaped by an init
# that is slow to do it; it must not count as a running service)
pid_alive() {
  [[ -f "$1" ]] || return 1
  local pid; pid="$(cat "$1")"
  kill -0 "$pid" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$pid/status"
}

ready() { # port
  python3 - "$1" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

env_for() { # service port -> the environment variables that set its port (and processes)
  case "$1" in
    publisher) echo "PIGEONHOLE_PORT=$2" ;;
    sync)
      echo "PIGEONHOLE_PORT=$2"
      if ((${PIGEONHOLE_SYNC_WORKERS:-1} > 1)); then
        echo "PIGEONHOLE_SYNC_WORKERS=$PIGEONHOLE_SYNC_WORKERS"
        echo "PROMETHEUS_MULTIPROC_DIR=$RUN_DIR/sync-metrics" # emptied by sync at start
      fi
      ;;
    scheduler) echo "PIGEONHOLE_METRICS_PORT=$2" ;;
    delivery) echo "PIGEONHOLE_WEB_PORT=$2" ;;
  esac
}

start_one() { # name port
  local name=$1 port=$2 pidfile="$RUN_DIR/$1.pid"
  if pid_alive "$pidfile" && ready "$port"; then
    say "$name already running on 127.0.0.1:$port"
    return
  fi
  if pid_alive "$pidfile"; then
    return # started but not ready yet; wait_one decides
  fi
  cd "$REPO_DIR"
  local settings; mapfile -t settings < <(env_for "$name" "$port")
  env -u PROMETHEUS_MULTIPROC_DIR -u PIGEONHOLE_SYNC_WORKERS "${settings[@]}" PIGEONHOLE_DATA_DIR="$STATE_DIR/delivery" \
    nohup "$PYTHON" -m "services.$name" >>"$LOG_DIR/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$pidfile"
  say "$name starting (pid $(cat "$pidfile"))"
}

wait_one() { # name port
  local name=$1 port=$2 pidfile="$RUN_DIR/$1.pid" waited=0
  until ready "$port"; do
    if ! pid_alive "$pidfile"; then
      echo "services: ERROR: $name exited while starting; last lines of $LOG_DIR/$name.log:" >&2
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      exit 1
    fi
    if ((waited >= READY_TIMEOUT * 2)); then
      echo "services: ERROR: $name not ready on 127.0.0.1:$port after ${READY_TIMEOUT}s; /readyz says:" >&2
      curl -s "http://127.0.0.1:$port/readyz" >&2 || true
      echo >&2
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      exit 1
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  say "$name ready on 127.0.0.1:$port"
}

stop_one() { # name
  local name=$1 pidfile="$RUN_DIR/$1.pid" pid waited=0
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return
  fi
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= 40)); then
      say "$name did not stop in 20s; killing"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  rm -f "$pidfile"
  say "$name stopped"
}

cmd=${1:-}
mkdir -p "$LOG_DIR" "$RUN_DIR"
# One `up` or `down` at a time: two overlapping runs would start a service twice and
# lose track of one of them. (The services are started with the lock's descriptor closed.)
if [[ "$cmd" == up || "$cmd" == down ]]; then
  exec 9>"$RUN_DIR/services.lock"
  flock 9
fi
case "$cmd" in
  up)
    for entry in "${SERVICES[@]}"; do start_one "${entry%%:*}" "${entry##*:}"; done
    for entry in "${SERVICES[@]}"; do wait_one "${entry%%:*}" "${entry##*:}"; done
    ;;
  down)
    for entry in "${SERVICES[@]}"; do stop_one "${entry%%:*}"; done
    ;;
  status)
    for entry in "${SERVICES[@]}"; do
      name=${entry%%:*} port=${entry##*:}
      if ready "$port"; then state=ready; elif pid_alive "$RUN_DIR/$name.pid"; then state="running, not ready"; else state=stopped; fi
      printf '%-10s %-20s 127.0.0.1:%s\n' "$name" "$state" "$port"
    done
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
