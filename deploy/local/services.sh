#!/usr/bin/env bash
# Start, stop and report the four Pigeonhole services as background processes.
#   services.sh up | down | status [publisher|sync|scheduler|delivery]...  (default: all four)
# Logs: $PIGEONHOLE_STATE_DIR/logs/<process>.log (JSON lines); pids in .../run/<process>.pid.
# `up` leaves a healthy process alone and returns once every process answers /readyz.
#
# How many processes, from the settings (shared/settings.py; environment variables only):
# PIGEONHOLE_DELIVERY_WORKERS=N (default 1) runs N delivery workers in the one consumer
# group: "delivery" on $PIGEONHOLE_DELIVERY_WEB_PORT (9102), "delivery-2" on the next port,
# ..., each with its own faust data dir ($PIGEONHOLE_STATE_DIR/<process>). `up` with fewer
# than are running stops the extra ones; `down` stops them all.
# PIGEONHOLE_SYNC_WORKERS=M (default 1) runs sync as M processes sharing its port, with
# prometheus-client's multiprocess metrics in $PIGEONHOLE_STATE_DIR/run/sync-metrics; `up`
# restarts a sync that runs another count.
# Prometheus (deploy/local/stack.sh) reads the delivery ports from the targets file that
# `up` and `down` write: $PIGEONHOLE_STATE_DIR/prometheus/targets/delivery.json.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${PIGEONHOLE_STATE_DIR:-$REPO_DIR/.stack}"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"
TARGETS_DIR="$STATE_DIR/prometheus/targets"
PYTHON="${PIGEONHOLE_PYTHON:-$REPO_DIR/.venv/bin/python}"
READY_TIMEOUT="${PIGEONHOLE_READY_TIMEOUT:-90}"
DELIVERY_PORT="${PIGEONHOLE_DELIVERY_WEB_PORT:-9102}"

# service:port of the endpoint serving /healthz, /readyz and /metrics (delivery: the first)
SERVICES=(
  "publisher:${PIGEONHOLE_PUBLISHER_PORT:-8080}"
  "sync:${PIGEONHOLE_SYNC_PORT:-8081}"
  "scheduler:${PIGEONHOLE_SCHEDULER_METRICS_PORT:-9101}"
  "delivery:$DELIVERY_PORT"
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

counts() { # -> "DELIVERY_WORKERS SYNC_WORKERS", validated by the settings classes
  local out
  if ! out="$(cd "$REPO_DIR" && "$PYTHON" -c 'from shared.settings import DeliverySettings as D, SyncSettings as S
print(D().workers, S().workers)' 2>&1)"; then
    echo "services: ERROR: the process counts in the settings are not valid:" >&2
    echo "$out" | grep -v '^Traceback\|^  File\|^    ' >&2
    exit 2
  fi
  echo "$out"
}

process_name() { # delivery index -> delivery, delivery-2, ...
  if (($1 == 1)); then echo delivery; else echo "delivery-$1"; fi
}

delivery_port() { # delivery, delivery-2, ... -> its web port
  if [[ $1 == delivery ]]; then echo "$DELIVERY_PORT"; else echo $((DELIVERY_PORT + ${1#delivery-} - 1)); fi
}

# process:port of every process the settings ask for, in start order
processes() { # delivery_workers services...
  local workers=$1 entry name i; shift
  for entry in "${SERVICES[@]}"; do
    name=${entry%%:*}
    [[ " $* " == *" $name "* ]] || continue
    if [[ $name == delivery ]]; then
      for ((i = 1; i <= workers; i++)); do echo "$(process_name "$i"):$((DELIVERY_PORT + i - 1))"; done
    else
      echo "$entry"
    fi
  done
}

running_extra_deliveries() { # process names of delivery-K with a pid file, K ascending
  local file
  for file in "$RUN_DIR"/delivery-*.pid; do
    [[ -e "$file" ]] || continue
    file=${file##*/}
    echo "${file%.pid}"
  done | sort -t- -k2 -n
}

env_for() { # process port -> the environment variables that set its port (and processes)
  case "$1" in
    publisher) # webhooks to this machine (the tests' receiver), retried within seconds
      printf '%s\n' "PIGEONHOLE_PORT=$2" PIGEONHOLE_WEBHOOK_ALLOW_PRIVATE_URLS=true \
        PIGEONHOLE_WEBHOOK_BACKOFF_BASE_SECONDS=0.5 PIGEONHOLE_WEBHOOK_BACKOFF_MAX_SECONDS=2 \
        PIGEONHOLE_WEBHOOK_MAX_ATTEMPTS=60
      ;;
    sync)
      echo "PIGEONHOLE_PORT=$2"
      if ((SYNC_WORKERS > 1)); then
        echo "PIGEONHOLE_SYNC_WORKERS=$SYNC_WORKERS"
        echo "PROMETHEUS_MULTIPROC_DIR=$RUN_DIR/sync-metrics" # emptied by sync at start
      fi
      ;;
    scheduler) echo "PIGEONHOLE_METRICS_PORT=$2" ;;
    delivery*) echo "PIGEONHOLE_WEB_PORT=$2" ;;
  esac
}

start_one() { # process port
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
  env -u PROMETHEUS_MULTIPROC_DIR -u PIGEONHOLE_SYNC_WORKERS -u PIGEONHOLE_DELIVERY_WORKERS \
    "${settings[@]}" PIGEONHOLE_DATA_DIR="$STATE_DIR/$name" \
    nohup "$PYTHON" -m "services.${name%%-*}" >>"$LOG_DIR/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$pidfile"
  say "$name starting (pid $(cat "$pidfile"))"
}

wait_one() { # process port
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

stop_one() { # process
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

write_delivery_targets() { # the delivery processes Prometheus scrapes (file_sd), atomically
  local targets=() name
  for name in delivery $(running_extra_deliveries); do
    targets+=("\"127.0.0.1:$(delivery_port "$name")\"")
  done
  mkdir -p "$TARGETS_DIR"
  local IFS=,
  echo "[{\"targets\": [${targets[*]}]}]" >"$TARGETS_DIR/.delivery.json.new"
  mv "$TARGETS_DIR/.delivery.json.new" "$TARGETS_DIR/delivery.json"
}

sync_processes() { # how many processes serve the running sync (its children, else itself)
  local pid children
  pid=$(cat "$RUN_DIR/sync.pid")
  children=$(wc -w <"/proc/$pid/task/$pid/children" 2>/dev/null || echo 0)
  echo $((children > 0 ? children : 1))
}

status_line() { # process port
  local name=$1 port=$2 state extra=""
  if ready "$port"; then state=ready; elif pid_alive "$RUN_DIR/$name.pid"; then state="running, not ready"; else state=stopped; fi
  if [[ $name == sync ]] && pid_alive "$RUN_DIR/sync.pid"; then
    local running; running=$(sync_processes)
    if ((running > 1)); then extra="  ($running processes)"; fi
  fi
  printf '%-11s %-20s 127.0.0.1:%s%s\n' "$name" "$state" "$port" "$extra"
}

cmd=${1:-}
shift || true
wanted=("$@")
((${#wanted[@]})) || wanted=(publisher sync scheduler delivery)
for name in "${wanted[@]}"; do
  [[ " publisher sync scheduler delivery " == *" $name "* ]] || { echo "services: unknown service '$name'" >&2; exit 2; }
done
mkdir -p "$LOG_DIR" "$RUN_DIR"
# One `up` or `down` at a time: two overlapping runs would start a service twice and
# lose track of one of them. (The services are started with the lock's descriptor closed.)
if [[ "$cmd" == up || "$cmd" == down ]]; then
  exec 9>"$RUN_DIR/services.lock"
  flock 9
fi
case "$cmd" in
  up)
    read -r DELIVERY_WORKERS SYNC_WORKERS < <(counts)
    [[ -n "${SYNC_WORKERS:-}" ]] || exit 2
    mapfile -t PROCS < <(processes "$DELIVERY_WORKERS" "${wanted[@]}")
    if [[ " ${wanted[*]} " == *" delivery "* ]]; then # scaled down: the extra ones stop
      for name in $(running_extra_deliveries); do
        if ((${name#delivery-} > DELIVERY_WORKERS)); then stop_one "$name"; fi
      done
    fi
    if [[ " ${wanted[*]} " == *" sync "* ]] && pid_alive "$RUN_DIR/sync.pid" &&
      ready "${SERVICES[1]##*:}" && (($(sync_processes) != SYNC_WORKERS)); then
      say "sync runs $(sync_processes) processes, the settings ask for $SYNC_WORKERS: restarting it"
      stop_one sync
    fi
    for entry in "${PROCS[@]}"; do start_one "${entry%%:*}" "${entry##*:}"; done
    write_delivery_targets
    for entry in "${PROCS[@]}"; do wait_one "${entry%%:*}" "${entry##*:}"; done
    ;;
  down)
    for name in "${wanted[@]}"; do
      if [[ $name == delivery ]]; then
        for extra in $(running_extra_deliveries); do stop_one "$extra"; done
      fi
      stop_one "$name"
    done
    write_delivery_targets
    ;;
  status)
    for entry in "${SERVICES[@]}"; do
      name=${entry%%:*}
      [[ " ${wanted[*]} " == *" $name "* ]] || continue
      status_line "$name" "${entry##*:}"
      if [[ $name == delivery ]]; then
        for extra in $(running_extra_deliveries); do
          status_line "$extra" "$(delivery_port "$extra")"
        done
      fi
    done
    ;;
  *)
    echo "usage: $0 up|down|status [publisher|sync|scheduler|delivery]..." >&2
    exit 2
    ;;
esac
