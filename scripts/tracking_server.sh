#!/usr/bin/env bash
# A team's tracking server on one machine: a local PostgreSQL 15 (Debian's `postgresql` package) as
# MLflow's backend store, and `mlflow server --serve-artifacts`, so that clients need only
# tracking.uri=http://HOST:PORT (no shared filesystem: artifacts go through the server).
#
#   pip install -e '.[server]'                          # psycopg2, MLflow's PostgreSQL driver
#   scripts/tracking_server.sh start [DIR]              # DIR (default ./tracking-server): pgdata/, artifacts/, logs
#   python -m experiments.run +encoder=bilstm tracking.uri=http://127.0.0.1:5000
#   scripts/tracking_server.sh status [DIR]
#   scripts/tracking_server.sh stop [DIR]
#
# Environment:
#   HOST=127.0.0.1   where mlflow server listens (0.0.0.0 to serve other machines; PostgreSQL stays on loopback)
#   PORT=5000        mlflow server's port
#   PG_PORT=5433     the local PostgreSQL's port
#   BACKEND_URI=...  use an existing database instead of starting one, e.g. postgresql+psycopg2://user:pass@db:5432/mlflow
#                    (handed to mlflow server through its environment, never its command line; printed masked)
#   ARTIFACTS=...    where the server stores artifacts: a folder (default DIR/artifacts) or s3://bucket/prefix
#                    (with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / MLFLOW_S3_ENDPOINT_URL for MinIO and others)
#   WORKERS=2        mlflow server's worker processes
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
#                    MLflow 3's job runner (GenAI scorers, trace rollups, which seqlab never uses) stays off: it
#                    starts 8 more processes (~1.8 GiB, ~25 CPU-s at start, docs/tracking.md); true turns it on
#
# Who gets in: PostgreSQL asks every connection for a password (scram-sha-256, on its socket and on
# 127.0.0.1 alike). Two roles: `seqlab_admin`, the superuser, used by this script only, and `mlflow`,
# which owns the `mlflow` database and is no superuser. Their generated passwords live in DIR/secrets/
# (mode 0600, readable by their owner alone) and reach libpq through PGPASSFILE: they never appear on a
# command line (ps), in the environment of another user, in the output or in a log. The socket folder
# DIR/pg is closed to other users. PostgreSQL refuses to run as root: as root, the script runs it as
# the `postgres` user. A start that fails stops everything it started.
set -euo pipefail
umask 077

command=${1:-}
dir=$(realpath -m "${2:-tracking-server}")
host=${HOST:-127.0.0.1}
port=${PORT:-5000}
pg_port=${PG_PORT:-5433}
artifacts=${ARTIFACTS:-$dir/artifacts}
workers=${WORKERS:-2}
secrets=$dir/secrets

started_pg=""
started_mlflow=""
die() { echo "tracking_server: $*" >&2; exit 1; }

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$bin" ] || die "PostgreSQL is not installed: apt-get install postgresql (or set BACKEND_URI to an existing database)"
  echo "$bin"
}

pg_owner() {  # who runs PostgreSQL: `postgres` when we are root, else ourselves
  if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi
}

as_pg() {  # run a PostgreSQL command as its owner (root may not run it), with the admin's password file
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- env PGPASSFILE="$secrets/admin.pgpass" "$@"
  else
    env PGPASSFILE="$secrets/admin.pgpass" "$@"
  fi
}

mask() {  # a database URI with its password replaced by ***
  sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#' <<<"$1"
}

new_password() {
  python -c "import secrets; print(secrets.token_urlsafe(24))"
}

write_secrets() {  # once per DIR: the two roles' passwords, in files only their user can read
  mkdir -p "$secrets"
  chmod 700 "$secrets"
  [ -f "$secrets/admin.pw" ] && return 0
  local admin mlflow owner
  admin=$(new_password)
  mlflow=$(new_password)
  owner=$(pg_owner)
  printf '%s\n' "$admin" >"$secrets/admin.pw"
  printf '127.0.0.1:%s:*:seqlab_admin:%s\n*:%s:*:seqlab_admin:%s\n' "$pg_port" "$admin" "$pg_port" "$admin" >"$secrets/admin.pgpass"
  printf '127.0.0.1:%s:mlflow:mlflow:%s\n' "$pg_port" "$mlflow" >"$secrets/mlflow.pgpass"
  printf '%s\n' "$mlflow" >"$secrets/mlflow.pw"
  chmod 600 "$secrets"/*
  if [ "$(id -u)" = 0 ]; then  # PostgreSQL's owner reads the admin's files; the mlflow files stay root's
    chown "$owner" "$secrets" "$secrets/admin.pw" "$secrets/admin.pgpass"
    chmod 711 "$secrets"  # root (mlflow server) reaches its own file by name; nobody can list the folder
  fi
}

start_postgres() {  # sets `backend` (no password in it: libpq reads it from PGPASSFILE)
  local bin
  bin=$(pg_bin)
  if ! as_pg test -x "$dir" 2>/dev/null; then
    die "PostgreSQL runs as the $(pg_owner) user, who cannot enter $dir (it or a folder above it is closed to other users): choose a folder it can reach, e.g. /srv/seqlab-server"
  fi
  write_secrets
  mkdir -p "$dir/pgdata" "$dir/pg"  # pg/: PostgreSQL's socket and log, open to its owner alone
  chmod 700 "$dir/pgdata" "$dir/pg"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir/pgdata" "$dir/pg"; fi
  if [ ! -f "$dir/pgdata/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/pgdata" -U seqlab_admin --pwfile="$secrets/admin.pw" -A scram-sha-256 \
      --no-instructions >"$dir/pg/initdb.log" 2>&1 || die "initdb failed: see $dir/pg/initdb.log"
  fi
  if ! as_pg "$bin/pg_ctl" -D "$dir/pgdata" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$dir/pgdata" -l "$dir/pg/postgres.log" -w \
      -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c unix_socket_permissions=0700" start >/dev/null \
      || die "PostgreSQL did not start: see $dir/pg/postgres.log"
    started_pg=1
  fi
  local psql=("$bin/psql" -h 127.0.0.1 -p "$pg_port" -U seqlab_admin -d postgres -v ON_ERROR_STOP=1 -qtA)
  if ! as_pg "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'mlflow'" | grep -q 1; then
    # The password goes in on standard input: never on a command line.
    as_pg "${psql[@]}" -f - >/dev/null <<SQL
CREATE ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$(cat "$secrets/mlflow.pw")';
SQL
  fi
  if ! as_pg "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | grep -q 1; then
    as_pg "${psql[@]}" -c "CREATE DATABASE mlflow OWNER mlflow" >/dev/null
    as_pg "${psql[@]}" -c "REVOKE ALL ON DATABASE mlflow FROM PUBLIC" >/dev/null
  fi
  backend="postgresql+psycopg2://mlflow@127.0.0.1:$pg_port/mlflow"
}

stop_started() {  # after a failed start: stop what this start began, nothing else
  if [ -n "$started_mlflow" ]; then
    kill "$started_mlflow" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$started_mlflow" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$started_mlflow" 2>/dev/null || true
    rm -f "$dir/mlflow.pid"
  fi
  if [ -n "$started_pg" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$dir/pgdata" -m fast stop >/dev/null 2>&1 || true
  fi
}

start() {
  python -c "import psycopg2" 2>/dev/null || die "psycopg2 is missing: pip install -e '.[server]'"
  # A new DIR is 0711 (umask 077 would make it 0700): PostgreSQL's user must pass through it to pg/ and pgdata/.
  [ -d "$dir" ] || { mkdir -p "$dir" && chmod 711 "$dir"; }
  if [ -f "$dir/mlflow.pid" ] && kill -0 "$(cat "$dir/mlflow.pid")" 2>/dev/null; then
    die "already running (pid $(cat "$dir/mlflow.pid")): scripts/tracking_server.sh stop $dir"
  fi
  trap 'stop_started' EXIT
  backend=${BACKEND_URI:-}
  local pgpass=""
  if [ -z "$backend" ]; then
    start_postgres
    pgpass=$secrets/mlflow.pgpass
  fi
  [[ "$artifacts" == *://* ]] || mkdir -p "$artifacts"
  # A taken port is found in a blink here; mlflow server would find it only after loading everything (20-40 s).
  python - "$host" "$port" 2>/dev/null <<'PY' || die "port $port on $host is taken by another program: choose another with PORT="
import socket, sys
with socket.socket() as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closing connection is no obstacle
    probe.bind((sys.argv[1], int(sys.argv[2])))
PY
  # A backend that refuses the connection: one line now, where mlflow server would retry for a minute in silence.
  local refused
  refused=$(MLFLOW_BACKEND_STORE_URI="$backend" PGPASSFILE="${pgpass:-${PGPASSFILE:-}}" python - 2>&1 <<'PY'
import os, sys
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

url = make_url(os.environ["MLFLOW_BACKEND_STORE_URI"])
if url.get_backend_name() != "sqlite":
    try:
        args = {"connect_timeout": 10} if url.get_backend_name() == "postgresql" else {}
        with create_engine(url, connect_args=args).connect():
            pass
    except Exception as error:  # the driver's reason, first line, never the password
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        print(reason.replace(url.password, "***") if url.password else reason)
        sys.exit(1)
PY
) || die "the backend store $(mask "$backend") refused the connection: $refused"
  # The backend URI (a password, if the user's has one) goes through the environment, not the command line.
  MLFLOW_BACKEND_STORE_URI="$backend" PGPASSFILE="${pgpass:-${PGPASSFILE:-}}" \
    MLFLOW_DISABLE_TELEMETRY=${MLFLOW_DISABLE_TELEMETRY:-true} \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false} nohup python -m mlflow server --serve-artifacts \
    --artifacts-destination "$artifacts" --host "$host" --port "$port" --workers "$workers" \
    >"$dir/mlflow.log" 2>&1 &
  started_mlflow=$!
  echo "$started_mlflow" >"$dir/mlflow.pid"
  for _ in $(seq 120); do
    if python -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
         "http://127.0.0.1:$port/health" 2>/dev/null; then
      trap - EXIT
      echo "tracking server: http://$host:$port (backend $(mask "$backend"), artifacts $artifacts); logs in $dir"
      echo "clients: tracking.uri=http://$host:$port"
      return 0
    fi
    kill -0 "$started_mlflow" 2>/dev/null || die "mlflow server exited: see $dir/mlflow.log"
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
