#!/usr/bin/env bash
# Pigeonhole local infrastructure without Docker: PostgreSQL, Redis, Kafka (KRaft),
# Prometheus (scraping the four services, with the alert rules loaded), and a small
# 3-master Redis Cluster that only the tests use (tests/cluster.py).
#
#   bash deploy/local/stack.sh up       # install if needed, start, wait until healthy
#   bash deploy/local/stack.sh down     # stop everything (keeps data)
#   bash deploy/local/stack.sh status   # one line per component
#   bash deploy/local/stack.sh install prometheus   # only install (make lint needs promtool)
#   bash deploy/local/stack.sh install browser      # chromium + chromedriver (make test needs them)
#
# All state (data, logs, pid files, config) lives in $PIGEONHOLE_STATE_DIR
# (default <repo>/.stack). See deploy/local/README.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"

STATE_DIR="${PIGEONHOLE_STATE_DIR:-$REPO_DIR/.stack}"
PG_PORT="${PIGEONHOLE_PG_PORT:-5432}"
REDIS_PORT="${PIGEONHOLE_REDIS_PORT:-6379}"
REDIS_CLUSTER_PORTS="${PIGEONHOLE_REDIS_CLUSTER_PORTS:-7001,7002,7003}"
KAFKA_PORT="${PIGEONHOLE_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${PIGEONHOLE_KAFKA_CONTROLLER_PORT:-9093}"
PROM_PORT="${PIGEONHOLE_PROMETHEUS_PORT:-9090}"

PG_WAIT_S=60
REDIS_WAIT_S=30
KAFKA_WAIT_S=120
PROM_WAIT_S=60

LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"
REDIS_DIR="$STATE_DIR/redis"
KAFKA_DIR="$STATE_DIR/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_POM="$REPO_DIR/deploy/kafka/pom.xml"
KAFKA_PID="$RUN_DIR/kafka.pid"
REDIS_PID="$RUN_DIR/redis.pid"
REDIS_CLUSTER_DIR="$STATE_DIR/redis-cluster"
PROM_DIR="$STATE_DIR/prometheus"
PROM_PID="$RUN_DIR/prometheus.pid"
PROM_RULES="$REPO_DIR/deploy/prometheus/alerts.yml"

export DEBIAN_FRONTEND=noninteractive

say() { echo "stack: $*"; }
die() { echo "stack: ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1fs", e - s }'; }

show_log() { # file
  local f="$1"
  if [[ -f "$f" ]]; then
    echo "----- last 30 lines of $f -----" >&2
    tail -n 30 "$f" >&2 || true
    echo "-----" >&2
  else
    echo "(no log file at $f)" >&2
  fi
}

port_open() { # port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_alive() { # pidfile
  local pid
  [[ -f "$1" ]] || return 1
  pid="$(cat "$1" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null
}

need_root_for() {
  [[ "$(id -u)" == 0 ]] || die "$1 needs root (apt-get / runuser); run as root or install it yourself"
}

APT_UPDATED=0
apt_install() { # packages...
  need_root_for "installing $*"
  # Keep Debian's maintainer scripts from auto-starting the distro services
  # (default postgres cluster on 5432, redis on 6379): we run our own instances.
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  {
    if [[ "$APT_UPDATED" == 0 ]]; then
      apt-get update -q >"$LOG_DIR/apt.log" 2>&1 && APT_UPDATED=1
    fi
    apt-get install -y -q --no-install-recommends "$@" >>"$LOG_DIR/apt.log" 2>&1
  } || rc=$?
  if [[ "$made_policy" == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
  if [[ "$rc" != 0 ]]; then
    show_log "$LOG_DIR/apt.log"
    die "apt-get install $* failed"
  fi
}

# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------
PG_BIN=""
PG_BASE=""   # directory holding the cluster (data/ + socket); reachable by the postgres user
PG_DATA=""
PG_LOG=""
PG_SOCK=""

pg_find_bin() {
  # numerically highest /usr/lib/postgresql/<ver>/bin that has a server binary
  PG_BIN="$( (for d in /usr/lib/postgresql/*/bin; do
      if [[ -x "$d/postgres" ]]; then echo "$d"; fi
    done) | sort -t/ -k5,5n | tail -n1 || true)"
}

as_pg() { # run a command as the postgres OS user, from a directory it can read
  (cd / && runuser -u postgres -- "$@")
}

stop_debian_clusters() {
  # The Debian package may have created and started a default cluster (e.g.
  # 15/main on 5432). Stop it and make it manual so it never grabs our port.
  command -v pg_lsclusters >/dev/null 2>&1 || return 0
  local ver name port status
  while read -r ver name port status _; do
    [[ "$ver" =~ ^[0-9]+$ ]] || continue
    if [[ "$status" == online* ]]; then
      say "stopping Debian default cluster $ver/$name (port $port)"
      pg_ctlcluster "$ver" "$name" stop -m fast >/dev/null 2>&1 || service postgresql stop >/dev/null 2>&1 || true
    fi
    if [[ -w "/etc/postgresql/$ver/$name/start.conf" ]] && ! grep -qx manual "/etc/postgresql/$ver/$name/start.conf"; then
      echo manual >"/etc/postgresql/$ver/$name/start.conf"
    fi
  done < <(pg_lsclusters --no-header 2>/dev/null || true)
}

pg_resolve_paths() {
  # The server runs as the `postgres` OS user, which must be able to traverse
  # every directory down to its data dir. If it can reach $STATE_DIR we keep the
  # cluster in $STATE_DIR/postgres. Otherwise (e.g. repo under a 0700 home dir)
  # we do not chmod directories we do not own: the cluster goes to
  # /var/lib/pigeonhole/<hash-of-state-dir>/ and $STATE_DIR/postgres becomes a
  # symlink to it (as does logs/postgres.log).
  if runuser -u postgres -- test -x "$STATE_DIR" 2>/dev/null; then
    PG_BASE="$STATE_DIR/postgres"
    PG_LOG="$LOG_DIR/postgres.log"
  else
    local h
    h="$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-12)"
    PG_BASE="/var/lib/pigeonhole/$h"
    PG_LOG="$PG_BASE/postgres.log"
  fi
  PG_DATA="$PG_BASE/data"
  # unix socket path must stay below ~107 bytes
  if (( ${#PG_BASE} + 20 < 100 )); then PG_SOCK="$PG_BASE"; else PG_SOCK="/tmp"; fi
}

pg_prepare_dirs() {
  if [[ "$PG_BASE" == "$STATE_DIR/postgres" ]]; then
    [[ -L "$PG_BASE" ]] && rm -f "$PG_BASE"
    mkdir -p "$PG_BASE"
  else
    say "postgres user cannot traverse to $STATE_DIR; using $PG_BASE (symlinked as $STATE_DIR/postgres)"
    if [[ ! -L "$STATE_DIR/postgres" ]]; then
      # state dir was wiped (or never existed): start from a clean cluster
      rm -rf "$PG_BASE" "$STATE_DIR/postgres"
    fi
    mkdir -p "$PG_BASE"
    ln -sfn "$PG_BASE" "$STATE_DIR/postgres"
    ln -sfn "$PG_LOG" "$LOG_DIR/postgres.log"
  fi
  chown postgres:postgres "$PG_BASE"
  chmod 700 "$PG_BASE"
  touch "$PG_LOG"
  chown postgres:postgres "$PG_LOG"
}

pg_running() {
  [[ -n "$PG_BIN" && -f "$PG_DATA/postmaster.pid" ]] || return 1
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

pg_ready() {
  pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1
}

pg_write_conf() {
  cat >"$PG_DATA/pigeonhole.conf" <<EOF
# Written by deploy/local/stack.sh on every 'up' - edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 200
# Durable tuning: every setting and why in deploy/README.md (docker-compose.yml has the same).
# Nothing here trades durability: fsync, synchronous_commit and full_page_writes stay on.
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 1GB
wal_buffers = 64MB
max_wal_size = 8GB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
wal_compression = lz4
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
timezone = 'UTC'
EOF
  chown postgres:postgres "$PG_DATA/pigeonhole.conf"
  if ! grep -q "^include_if_exists = 'pigeonhole.conf'" "$PG_DATA/postgresql.conf"; then
    echo "include_if_exists = 'pigeonhole.conf'" >>"$PG_DATA/postgresql.conf"
  fi
  cat >"$PG_DATA/pg_hba.conf" <<'EOF'
# Written by deploy/local/stack.sh.
# Unix socket lives inside the 0700 data dir (only the postgres OS user can reach it).
local   all   all                  trust
host    all   all   127.0.0.1/32   md5
host    all   all   ::1/128        md5
EOF
  chown postgres:postgres "$PG_DATA/pg_hba.conf"
}

pg_up() {
  local t0; t0="$(now)"
  pg_find_bin
  if [[ -z "$PG_BIN" ]]; then
    say "installing postgresql (apt)"
    apt_install postgresql
    pg_find_bin
    [[ -n "$PG_BIN" ]] || die "postgresql installed but no /usr/lib/postgresql/*/bin/postgres found"
    say "postgres installed ($PG_BIN)"
  fi
  need_root_for "running postgres as the postgres OS user"
  id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (should come with the postgresql package)"
  stop_debian_clusters
  pg_resolve_paths
  pg_prepare_dirs

  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    say "initdb $PG_DATA"
    rm -rf "$PG_DATA"
    if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=md5 >"$LOG_DIR/initdb.log" 2>&1; then
      show_log "$LOG_DIR/initdb.log"
      die "postgres: initdb failed"
    fi
  fi
  pg_write_conf

  local started=0
  if pg_running; then
    if pg_ready; then
      say "postgres already running on 127.0.0.1:$PG_PORT"
    else
      die "postgres: a server is running from $PG_DATA but does not answer on 127.0.0.1:$PG_PORT (port changed? run 'down' first)"
    fi
  else
    if pg_ready || port_open "$PG_PORT"; then
      die "postgres: port $PG_PORT is already taken by another process; set PIGEONHOLE_PG_PORT"
    fi
    # stale pid file from an unclean shutdown is handled by postgres itself
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_WAIT_S" \
        -o "-p $PG_PORT" start >"$LOG_DIR/pg_ctl.log" 2>&1; then
      cat "$LOG_DIR/pg_ctl.log" >&2 || true
      show_log "$PG_LOG"
      die "postgres failed to start"
    fi
    started=1
  fi

  local i
  for ((i = 0; i < PG_WAIT_S * 2; i++)); do pg_ready && break; sleep 0.5; done
  if ! pg_ready; then show_log "$PG_LOG"; die "postgres not ready on 127.0.0.1:$PG_PORT after ${PG_WAIT_S}s"; fi

  # role + database (idempotent; changes nothing when they exist)
  local psql_admin=(psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres)
  if ! as_pg "${psql_admin[@]}" >"$LOG_DIR/pg_bootstrap.log" 2>&1 <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pigeonhole') THEN
    CREATE ROLE pigeonhole LOGIN SUPERUSER PASSWORD 'pigeonhole';
  END IF;
END
$$;
SELECT 'CREATE DATABASE pigeonhole OWNER pigeonhole'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'pigeonhole')\gexec
SQL
  then
    show_log "$LOG_DIR/pg_bootstrap.log"
    die "postgres: creating role/database pigeonhole failed"
  fi
  if [[ "$started" == 1 ]]; then say "postgres ready on 127.0.0.1:$PG_PORT ($(elapsed "$t0"))"; fi
}

pg_down() {
  pg_find_bin
  if [[ -z "$PG_BIN" ]] || ! id postgres >/dev/null 2>&1; then
    say "postgres not installed"; return 0
  fi
  pg_resolve_paths
  if pg_running; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null \
      || die "postgres: pg_ctl stop failed"
    say "postgres stopped"
  else
    say "postgres already stopped"
  fi
}

pg_status() {
  pg_find_bin
  if [[ -n "$PG_BIN" ]] && id postgres >/dev/null 2>&1; then pg_resolve_paths; fi
  if pg_running && pg_ready; then
    echo "postgres  running  127.0.0.1:$PG_PORT"
  elif pg_running; then
    echo "postgres  running  (not answering on 127.0.0.1:$PG_PORT)"
  else
    echo "postgres  stopped  127.0.0.1:$PG_PORT"
  fi
}

# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------
redis_ping() {
  [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" == "PONG" ]]
}

redis_ours_running() { pid_alive "$REDIS_PID"; }

stop_debian_redis() {
  # Debian's postinst may have started its own redis (service redis-server) on 6379.
  if [[ -f /run/redis/redis-server.pid ]] && pid_alive /run/redis/redis-server.pid; then
    say "stopping Debian redis-server service"
    service redis-server stop >/dev/null 2>&1 || kill "$(cat /run/redis/redis-server.pid)" 2>/dev/null || true
    sleep 1
  fi
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
}

redis_up() {
  local t0; t0="$(now)"
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    say "installing redis-server (apt)"
    apt_install redis-server redis-tools
    stop_debian_redis
    say "redis installed ($(redis-server --version | awk '{print $3}'))"
  fi
  mkdir -p "$REDIS_DIR"
  cat >"$REDIS_DIR/redis.conf" <<EOF
# Written by deploy/local/stack.sh on every 'up'.
bind 127.0.0.1
protected-mode yes
port $REDIS_PORT
daemonize yes
pidfile $REDIS_PID
logfile $LOG_DIR/redis.log
loglevel notice
dir $REDIS_DIR
# Durable by AOF alone (fsynced every second); no RDB snapshots on top, and the AOF
# rewritten (compacted) less often than by default: deploy/README.md says why.
appendonly yes
appendfsync everysec
appendfilename "appendonly.aof"
save ""
auto-aof-rewrite-min-size 256mb
databases 16
EOF
  if redis_ours_running; then
    if redis_ping; then
      say "redis already running on 127.0.0.1:$REDIS_PORT"; return 0
    fi
    die "redis: our redis (pid $(cat "$REDIS_PID")) runs but does not answer on 127.0.0.1:$REDIS_PORT (port changed? run 'down' first)"
  fi
  if redis_ping || port_open "$REDIS_PORT"; then
    die "redis: port $REDIS_PORT is already taken by another process (Debian's redis-server service? 'service redis-server stop'); or set PIGEONHOLE_REDIS_PORT"
  fi
  rm -f "$REDIS_PID"
  if ! redis-server "$REDIS_DIR/redis.conf" >"$LOG_DIR/redis.out" 2>&1; then
    cat "$LOG_DIR/redis.out" >&2 || true
    show_log "$LOG_DIR/redis.log"
    die "redis failed to start"
  fi
  local i
  for ((i = 0; i < REDIS_WAIT_S * 4; i++)); do redis_ping && break; sleep 0.25; done
  if ! redis_ping; then show_log "$LOG_DIR/redis.log"; die "redis not answering PONG on 127.0.0.1:$REDIS_PORT after ${REDIS_WAIT_S}s"; fi
  say "redis ready on 127.0.0.1:$REDIS_PORT ($(elapsed "$t0"))"
}

redis_down() {
  if redis_ours_running; then
    if redis_ping; then
      redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
    fi
    local i pid
    pid="$(cat "$REDIS_PID" 2>/dev/null || true)"
    for ((i = 0; i < 60; i++)); do
      redis_ours_running || break
      sleep 0.5
    done
    if redis_ours_running; then
      kill -TERM "$pid" 2>/dev/null || true; sleep 1
    fi
    rm -f "$REDIS_PID"
    say "redis stopped"
  else
    say "redis already stopped"
  fi
}

redis_status() {
  if redis_ping; then echo "redis     running  127.0.0.1:$REDIS_PORT"
  elif redis_ours_running; then echo "redis     running  (not answering on 127.0.0.1:$REDIS_PORT)"
  else echo "redis     stopped  127.0.0.1:$REDIS_PORT"; fi
}

# --------------------------------------------------------------------------
# Redis Cluster (tests only): one redis-server per port of REDIS_CLUSTER_PORTS, cluster
# mode, no persistence (a restarted node comes back empty, as after a data loss; its
# nodes.conf keeps its slots), small maxmemory. Created once with redis-cli --cluster
# create; an existing cluster is left as it is.
# --------------------------------------------------------------------------
cluster_ports() { tr ',' ' ' <<<"$REDIS_CLUSTER_PORTS"; }
cluster_pid() { echo "$RUN_DIR/redis-cluster-$1.pid"; }
node_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null || true)" == "PONG" ]]; }
node_info() { # port field
  redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r' | awk -F: -v f="$2" '$1 == f {print $2}'
}

cluster_ok() {
  local port
  for port in $(cluster_ports); do [[ "$(node_info "$port" cluster_state)" == ok ]] || return 1; done
}

cluster_node_up() { # port
  local port=$1 dir="$REDIS_CLUSTER_DIR/$1" pidfile i
  pidfile="$(cluster_pid "$port")"
  if pid_alive "$pidfile" && node_ping "$port"; then return 0; fi
  if port_open "$port"; then die "redis-cluster: port $port is taken by another process; set PIGEONHOLE_REDIS_CLUSTER_PORTS"; fi
  mkdir -p "$dir"
  cat >"$dir/redis.conf" <<EOF
# Written by deploy/local/stack.sh on every 'up'.
bind 127.0.0.1
protected-mode yes
port $port
daemonize yes
pidfile $pidfile
logfile $LOG_DIR/redis-cluster-$port.log
dir $dir
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 5000
appendonly no
save ""
maxmemory 256mb
maxmemory-policy noeviction
EOF
  rm -f "$pidfile"
  redis-server "$dir/redis.conf" >"$LOG_DIR/redis-cluster-$port.out" 2>&1 ||
    { show_log "$LOG_DIR/redis-cluster-$port.log"; die "redis-cluster: node $port failed to start"; }
  for ((i = 0; i < REDIS_WAIT_S * 4; i++)); do node_ping "$port" && return 0; sleep 0.25; done
  show_log "$LOG_DIR/redis-cluster-$port.log"
  die "redis-cluster: node $port not answering after ${REDIS_WAIT_S}s"
}

redis_cluster_up() {
  local t0 port i nodes=() fresh=1; t0="$(now)"
  command -v redis-server >/dev/null 2>&1 || redis_up # installs redis-server and redis-tools
  for port in $(cluster_ports); do
    cluster_node_up "$port"
    nodes+=("127.0.0.1:$port")
    [[ "$(node_info "$port" cluster_known_nodes)" == 1 ]] || fresh=0
  done
  if cluster_ok; then say "redis-cluster already running on ${nodes[*]}"; return 0; fi
  if [[ "$fresh" == 1 ]]; then
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
      >"$LOG_DIR/redis-cluster-create.log" 2>&1 ||
      { show_log "$LOG_DIR/redis-cluster-create.log"; die "redis-cluster: create failed"; }
  fi
  for ((i = 0; i < REDIS_WAIT_S * 4; i++)); do cluster_ok && break; sleep 0.25; done
  cluster_ok || die "redis-cluster: not ok after ${REDIS_WAIT_S}s (to start over: stack.sh stop redis-cluster; rm -r $REDIS_CLUSTER_DIR)"
  say "redis-cluster ready on ${nodes[*]} ($(elapsed "$t0"))"
}

redis_cluster_down() {
  local port pidfile stopped=0
  for port in $(cluster_ports); do
    pidfile="$(cluster_pid "$port")"
    pid_alive "$pidfile" || continue
    redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 ||
      kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    stopped=1
  done
  if [[ "$stopped" == 1 ]]; then say "redis-cluster stopped"; else say "redis-cluster already stopped"; fi
}

redis_cluster_status() {
  if cluster_ok; then echo "redis-cluster running  127.0.0.1:$REDIS_CLUSTER_PORTS (tests only)"
  else echo "redis-cluster stopped  127.0.0.1:$REDIS_CLUSTER_PORTS (tests only)"; fi
}

# --------------------------------------------------------------------------
# Kafka (KRaft, single node broker+controller, jars from Maven Central)
# --------------------------------------------------------------------------
# ApiVersions v0 request over a plain socket (stdlib only): proves the broker
# accepts and answers Kafka protocol requests on the PLAINTEXT listener.
kafka_api_ok() {
  python3 - "$KAFKA_PORT" <<'PY' >/dev/null 2>&1
import socket, struct, sys
port = int(sys.argv[1])
client = b"pigeonhole-stack"
body = struct.pack(">hhih", 18, 0, 4242, len(client)) + client  # ApiVersions v0
with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
    s.settimeout(3)
    s.sendall(struct.pack(">i", len(body)) + body)
    def read(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise SystemExit(1)
            buf += chunk
        return buf
    (size,) = struct.unpack(">i", read(4))
    resp = read(size)
    corr, err = struct.unpack(">ih", resp[:6])
    sys.exit(0 if corr == 4242 and err == 0 else 1)
PY
}

kafka_running() { pid_alive "$KAFKA_PID"; }

kafka_fetch_libs() {
  local want have=""
  [[ -f "$KAFKA_POM" ]] || die "kafka: missing $KAFKA_POM"
  want="$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
  [[ -f "$KAFKA_LIBS/.pom.sha256" ]] && have="$(cat "$KAFKA_LIBS/.pom.sha256")"
  if [[ "$want" == "$have" ]] && compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "kafka: mvn (Maven) is required to fetch the Kafka jars"
  command -v java >/dev/null 2>&1 || die "kafka: java (17+) is required"
  local t0; t0="$(now)"
  say "fetching kafka jars from Maven Central (mvn)"
  rm -rf "$KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$LOG_DIR/mvn-kafka.log" 2>&1; then
    show_log "$LOG_DIR/mvn-kafka.log"
    die "kafka: mvn dependency:copy-dependencies failed"
  fi
  echo "$want" >"$KAFKA_LIBS/.pom.sha256"
  say "kafka jars fetched: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars ($(elapsed "$t0"))"
}

kafka_write_conf() {
  mkdir -p "$KAFKA_DIR/data"
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by deploy/local/stack.sh on every 'up'.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=12
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
# = shared/topics.py MAX_MESSAGE_BYTES (tests/unit/test_message_sizes.py checks it)
message.max.bytes=1048576
num.network.threads=3
num.io.threads=8
log.retention.hours=168
log.segment.bytes=1073741824
EOF
  cat >"$KAFKA_DIR/log4j2.properties" <<EOF
# Written by deploy/local/stack.sh. log4j2 properties format (needs no extra jars).
name = pigeonhole-kafka
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $LOG_DIR/kafka.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
EOF
}

kafka_java_cmd() {
  KAFKA_JAVA=(java -Xms512m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2.properties"
    "-Dkafka.logs.dir=$LOG_DIR"
    -cp "$KAFKA_LIBS/*")
}

kafka_java() { # main class + args (foreground)
  kafka_java_cmd
  "${KAFKA_JAVA[@]}" "$@"
}

kafka_format() {
  if [[ -f "$KAFKA_DIR/data/meta.properties" ]]; then return 0; fi
  if [[ ! -s "$KAFKA_DIR/cluster-id" ]]; then
    kafka_java kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/kafka-format.log" | tail -n1 >"$KAFKA_DIR/cluster-id.tmp" \
      || { show_log "$LOG_DIR/kafka-format.log"; die "kafka: StorageTool random-uuid failed"; }
    [[ -s "$KAFKA_DIR/cluster-id.tmp" ]] || { show_log "$LOG_DIR/kafka-format.log"; die "kafka: empty cluster id"; }
    mv "$KAFKA_DIR/cluster-id.tmp" "$KAFKA_DIR/cluster-id"
  fi
  local cid; cid="$(cat "$KAFKA_DIR/cluster-id")"
  say "formatting kafka storage (cluster id $cid)"
  if ! kafka_java kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_DIR/server.properties" \
      >>"$LOG_DIR/kafka-format.log" 2>&1; then
    show_log "$LOG_DIR/kafka-format.log"
    die "kafka: storage format failed"
  fi
}

kafka_up() {
  local t0; t0="$(now)"
  mkdir -p "$KAFKA_DIR"
  kafka_fetch_libs
  if kafka_running; then
    if kafka_api_ok; then
      say "kafka already running on 127.0.0.1:$KAFKA_PORT"; return 0
    fi
    say "kafka process $(cat "$KAFKA_PID") alive but not answering yet; waiting"
  else
    if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
      die "kafka: port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is already taken by another process; set PIGEONHOLE_KAFKA_PORT / PIGEONHOLE_KAFKA_CONTROLLER_PORT"
    fi
    kafka_write_conf
    kafka_format
    # keep the previous run's log; the readiness check looks at this run's log only
    [[ -f "$LOG_DIR/kafka.log" ]] && mv -f "$LOG_DIR/kafka.log" "$LOG_DIR/kafka.log.1"
    : >"$LOG_DIR/kafka.log"
    kafka_java_cmd
    nohup setsid "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" \
      >"$LOG_DIR/kafka.out" 2>&1 </dev/null &
    echo $! >"$KAFKA_PID"
  fi

  local deadline=$((SECONDS + KAFKA_WAIT_S))
  while ((SECONDS < deadline)); do
    if ! kafka_running; then
      show_log "$LOG_DIR/kafka.out"
      show_log "$LOG_DIR/kafka.log"
      die "kafka process exited during startup"
    fi
    if grep -q "Kafka Server started" "$LOG_DIR/kafka.log" 2>/dev/null && kafka_api_ok; then
      say "kafka ready on 127.0.0.1:$KAFKA_PORT ($(elapsed "$t0"))"
      return 0
    fi
    sleep 0.5
  done
  show_log "$LOG_DIR/kafka.out"
  show_log "$LOG_DIR/kafka.log"
  die "kafka not ready on 127.0.0.1:$KAFKA_PORT after ${KAFKA_WAIT_S}s (pid $(cat "$KAFKA_PID"), still running)"
}

kafka_down() {
  if ! kafka_running; then
    rm -f "$KAFKA_PID"
    say "kafka already stopped"; return 0
  fi
  local pid i
  pid="$(cat "$KAFKA_PID")"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "kafka did not stop within 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$KAFKA_PID"
  say "kafka stopped"
}

kafka_status() {
  if kafka_running && kafka_api_ok; then echo "kafka     running  127.0.0.1:$KAFKA_PORT (pid $(cat "$KAFKA_PID"))"
  elif kafka_running; then echo "kafka     running  (not answering on 127.0.0.1:$KAFKA_PORT yet, pid $(cat "$KAFKA_PID"))"
  else echo "kafka     stopped  127.0.0.1:$KAFKA_PORT"; fi
}

# --------------------------------------------------------------------------
# Prometheus (Debian package, which also ships promtool)
# --------------------------------------------------------------------------
prom_ready() {
  python3 - "$PROM_PORT" <<'PY' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/-/ready", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

prom_reload() { # picks up changed alert rules; a rule file that does not load fails here
  python3 - "$PROM_PORT" <<'PY' >/dev/null 2>&1
import sys, urllib.request
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/-/reload", method="POST")
urllib.request.urlopen(request, timeout=10)
PY
}

prom_running() { pid_alive "$PROM_PID"; }

prom_install() {
  if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then return 0; fi
  say "installing prometheus (apt)"
  apt_install prometheus
  # policy-rc.d kept the package's own service from starting; keep it from booting too
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  say "prometheus installed ($(prometheus --version 2>&1 | awk 'NR == 1 {print $3}'))"
}

# Debian's Chromium and its driver, for the browser tests (tests/browser); only `make test` needs them
browser_install() {
  if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then return 0; fi
  say "installing chromium and chromium-driver (apt)"
  apt_install chromium chromium-driver
  say "browser installed ($(/usr/bin/chromium --version 2>/dev/null))"
}

prom_write_conf() { # the services of deploy/local/services.sh, scraped every 2 s
  mkdir -p "$PROM_DIR/data" "$PROM_DIR/targets"
  # every delivery process: services.sh rewrites this file for the count it runs
  [[ -f "$PROM_DIR/targets/delivery.json" ]] ||
    echo "[{\"targets\": [\"127.0.0.1:${PIGEONHOLE_DELIVERY_WEB_PORT:-9102}\"]}]" >"$PROM_DIR/targets/delivery.json"
  cat >"$PROM_DIR/prometheus.yml" <<EOF
# Written by deploy/local/stack.sh on every 'up'. The docker-compose twin is
# deploy/prometheus/prometheus.yml; both load deploy/prometheus/alerts.yml.
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
rule_files:
  - $PROM_RULES
scrape_configs:
  - job_name: pigeonhole
    static_configs:
      - targets:
          - 127.0.0.1:${PIGEONHOLE_PUBLISHER_PORT:-8080}
          - 127.0.0.1:${PIGEONHOLE_SYNC_PORT:-8081}
          - 127.0.0.1:${PIGEONHOLE_SCHEDULER_METRICS_PORT:-9101}
    file_sd_configs:
      - files: [$PROM_DIR/targets/delivery.json]
EOF
  if ! promtool check config "$PROM_DIR/prometheus.yml" >"$LOG_DIR/promtool.log" 2>&1; then
    show_log "$LOG_DIR/promtool.log"
    die "prometheus: promtool check config $PROM_DIR/prometheus.yml failed"
  fi
}

prom_start() {
  if port_open "$PROM_PORT"; then
    die "prometheus: port $PROM_PORT is already taken by another process; set PIGEONHOLE_PROMETHEUS_PORT"
  fi
  nohup setsid prometheus --config.file="$PROM_DIR/prometheus.yml" \
    --storage.tsdb.path="$PROM_DIR/data" --storage.tsdb.retention.time=7d \
    --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-lifecycle \
    >"$LOG_DIR/prometheus.log" 2>&1 </dev/null &
  echo $! >"$PROM_PID"
}

prom_up() {
  local t0 i; t0="$(now)"
  prom_install
  prom_write_conf
  if prom_running && prom_ready; then
    prom_reload || { show_log "$LOG_DIR/prometheus.log"; die "prometheus: reloading its configuration failed"; }
    say "prometheus already running on 127.0.0.1:$PROM_PORT (configuration reloaded)"; return 0
  fi
  prom_running || prom_start
  for ((i = 0; i < PROM_WAIT_S * 4; i++)); do
    prom_running || break
    if prom_ready; then say "prometheus ready on 127.0.0.1:$PROM_PORT ($(elapsed "$t0"))"; return 0; fi
    sleep 0.25
  done
  show_log "$LOG_DIR/prometheus.log"
  prom_running || die "prometheus process exited during startup"
  die "prometheus not ready on 127.0.0.1:$PROM_PORT after ${PROM_WAIT_S}s"
}

prom_down() {
  if ! prom_running; then rm -f "$PROM_PID"; say "prometheus already stopped"; return 0; fi
  local pid i
  pid="$(cat "$PROM_PID")"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PROM_PID"
  say "prometheus stopped"
}

prom_status() {
  if prom_running && prom_ready; then echo "prometheus running  127.0.0.1:$PROM_PORT (pid $(cat "$PROM_PID"))"
  elif prom_running; then echo "prometheus running  (not answering on 127.0.0.1:$PROM_PORT yet)"
  else echo "prometheus stopped  127.0.0.1:$PROM_PORT"; fi
}

# --------------------------------------------------------------------------
ensure_state_dir() {
  mkdir -p "$STATE_DIR" "$LOG_DIR" "$RUN_DIR"
  # world-traversable (not readable) so the postgres OS user can reach its data dir
  chmod 711 "$STATE_DIR" 2>/dev/null || true
  chmod 755 "$LOG_DIR" 2>/dev/null || true
}

cmd_up() {
  local t0; t0="$(now)"
  ensure_state_dir
  pg_up
  redis_up
  redis_cluster_up
  kafka_up
  prom_up
  say "all up ($(elapsed "$t0")); state in $STATE_DIR"
}

cmd_down() {
  ensure_state_dir
  local rc=0
  prom_down || rc=1
  kafka_down || rc=1
  redis_cluster_down || rc=1
  redis_down || rc=1
  pg_down || rc=1
  return "$rc"
}

cmd_status() {
  pg_status
  redis_status
  redis_cluster_status
  kafka_status
  prom_status
}

cmd_component() { # start|stop|install postgres|redis|kafka|prometheus... (faults stop one)
  local action=$1 part; shift
  ensure_state_dir
  for part in "$@"; do
    case "$part:$action" in
      postgres:start) pg_up ;; postgres:stop) pg_down ;;
      redis:start) redis_up ;; redis:stop) redis_down ;;
      redis-cluster:start) redis_cluster_up ;; redis-cluster:stop) redis_cluster_down ;;
      kafka:start) kafka_up ;; kafka:stop) kafka_down ;;
      prometheus:start) prom_up ;; prometheus:stop) prom_down ;;
      prometheus:install) prom_install ;;
      browser:install) browser_install ;;
      *) die "cannot $action '$part' (start|stop: postgres, redis, redis-cluster, kafka, prometheus; install: prometheus, browser)" ;;
    esac
  done
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  start | stop | install) cmd_component "$@" ;;
  *)
    echo "usage: $0 {up|down|status} | {start|stop} {postgres|redis|redis-cluster|kafka|prometheus}... | install {prometheus|browser}" >&2
    echo "env: PIGEONHOLE_STATE_DIR (default <repo>/.stack), PIGEONHOLE_PG_PORT (5432)," >&2
    echo "     PIGEONHOLE_REDIS_PORT (6379), PIGEONHOLE_REDIS_CLUSTER_PORTS (7001,7002,7003), PIGEONHOLE_KAFKA_PORT (9092), PIGEONHOLE_PROMETHEUS_PORT (9090)" >&2
    exit 2
    ;;
esac
