#!/usr/bin/env bash
# A team's tracking server on one machine: a local PostgreSQL 15 (Debian's `postgresql` package) as
# MLflow's backend store, and `mlflow server --serve-artifacts`, so that clients need only
# tracking.uri=http://HOST:PORT (no shared filesystem: artifacts go through the server).
#
#   pip install -e '.[server]'                          # psycopg2, MLflow's PostgreSQL driver
#   scripts/tracking_server.sh start [DIR]              # DIR (default ./tracking-server): pgdata/, artifacts/, logs, pids
#   python -m experiments.run +encoder=bilstm tracking.uri=http://127.0.0.1:5000
#   scripts/tracking_server.sh status [DIR]
#   scripts/tracking_server.sh stop [DIR]
#
# Environment:
#   HOST=127.0.0.1   where mlflow server listens (0.0.0.0 to serve other machines; PostgreSQL stays on loopback)
#   PORT=5000        mlflow server's port
#   PG_PORT=5433     the local PostgreSQL's port
#   BACKEND_URI=...  use an existing database instead of starting one, e.g. postgresql://user:pass@db:5432/mlflow
#   ARTIFACTS=...    where the server stores artifacts: a folder (default DIR/artifacts) or s3://bucket/prefix
#                    (with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / MLFLOW_S3_ENDPOINT_URL for MinIO and others)
#   WORKERS=2        mlflow server's worker processes
# PostgreSQL refuses to run as root: as root, the script runs it as the `postgres` user.
set -euo pipefail

command=${1:-}
dir=$(realpath -m "${2:-tracking-server}")
host=${HOST:-127.0.0.1}
port=${PORT:-5000}
pg_port=${PG_PORT:-5433}
artifacts=${ARTIFACTS:-$dir/artifacts}
workers=${WORKERS:-2}

die() { echo "tracking_server: $*" >&2; exit 1; }

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$bin" ] || die "PostgreSQL is not installed: apt-get install postgresql (or set BACKEND_URI to an existing database)"
  echo "$bin"
}

as_pg() {  # run a PostgreSQL command as its owner (root may not run it)
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local bin
  bin=$(pg_bin)
  mkdir -p "$dir/pgdata" "$dir/pg"  # pg/: PostgreSQL's socket and log, writable by its owner
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir/pgdata" "$dir/pg"; fi
  if [ ! -f "$dir/pgdata/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/pgdata" -U seqlab -A trust --no-instructions >"$dir/pg/initdb.log" 2>&1 \
      || die "initdb failed: see $dir/pg/initdb.log"
  fi
  if ! as_pg "$bin/pg_ctl" -D "$dir/pgdata" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$dir/pgdata" -l "$dir/pg/postgres.log" -w \
      -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1" start >/dev/null \
      || die "PostgreSQL did not start: see $dir/pg/postgres.log"
  fi
  if ! as_pg "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U seqlab -d postgres -tAc \
       "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | grep -q 1; then
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U seqlab mlflow
  fi
  echo "postgresql+psycopg2://seqlab@127.0.0.1:$pg_port/mlflow"
}

start() {
  python -c "import psycopg2" 2>/dev/null || die "psycopg2 is missing: pip install -e '.[server]'"
  mkdir -p "$dir"
  if [ -f "$dir/mlflow.pid" ] && kill -0 "$(cat "$dir/mlflow.pid")" 2>/dev/null; then
    die "already running (pid $(cat "$dir/mlflow.pid")): scripts/tracking_server.sh stop $dir"
  fi
  local backend=${BACKEND_URI:-}
  [ -n "$backend" ] || backend=$(start_postgres)
  [[ "$artifacts" == *://* ]] || mkdir -p "$artifacts"
  MLFLOW_DISABLE_TELEMETRY=${MLFLOW_DISABLE_TELEMETRY:-true} nohup python -m mlflow server --backend-store-uri "$backend" --serve-artifacts \
    --artifacts-destination "$artifacts" --host "$host" --port "$port" --workers "$workers" \
    >"$dir/mlflow.log" 2>&1 &
  echo $! >"$dir/mlflow.pid"
  for _ in $(seq 120); do
    if python -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
         "http://127.0.0.1:$port/health" 2>/dev/null; then
      echo "tracking server: http://$host:$port (backend ${backend%%@*}@..., artifacts $artifacts); logs in $dir"
      echo "clients: tracking.uri=http://$host:$port"
      return 0
    fi
    kill -0 "$(cat "$dir/mlflow.pid")" 2>/dev/null || die "mlflow server exited: see $dir/mlflow.log"
    sleep 0.5
  done
  die "mlflow server did not answer within 60 s: see $dir/mlflow.log"
}

stop() {
  if [ -f "$dir/mlflow.pid" ]; then
    local pid
    pid=$(cat "$dir/mlflow.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do  # its workers finish their requests; then the port is free again
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/mlflow.pid"
  fi
  if [ -f "$dir/pgdata/PG_VERSION" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$dir/pgdata" -m fast stop >/dev/null 2>&1 || true
  fi
  echo "tracking server in $dir stopped"
}

status() {
  if [ -f "$dir/mlflow.pid" ] && kill -0 "$(cat "$dir/mlflow.pid")" 2>/dev/null; then
    echo "mlflow server: running (pid $(cat "$dir/mlflow.pid")), http://$host:$port"
  else
    echo "mlflow server: not running"
  fi
  if [ -f "$dir/pgdata/PG_VERSION" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$dir/pgdata" status | head -1 || true
  fi
}

case "$command" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: scripts/tracking_server.sh start|stop|status [DIR]" ;;
esac
