#!/usr/bin/env bash
# pg.sh: start (or reuse) the project's local PostgreSQL cluster and print its
# DATABASE_URL. Used by `make run` and `make test` when DATABASE_URL is unset.
#
# The cluster lives in .data/pg (ignored by git) and listens on loopback only,
# on a port derived from the checkout's path so two clones do not collide.
# PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` user; when that user cannot reach the checkout (a parent folder
# closed to it), the data folder goes under /var/tmp instead and .data/pg is a
# link to it.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
data="$top/.data"
mkdir -p "$data"

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/postgres" ]; then
  echo "pg.sh: no PostgreSQL server found; run scripts/install-deps.sh" >&2
  exit 1
fi

# port_busy reports whether something already listens on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_file="$data/pg.port"
if [ -s "$port_file" ]; then
  port=$(cat "$port_file")
else
  port=$(( 20000 + $(printf '%s' "$top" | cksum | cut -d' ' -f1) % 20000 ))
  while port_busy "$port"; do port=$((port + 1)); done
  echo "$port" >"$port_file"
fi

runas=()
owner=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  runas=(runuser -u postgres --)
  command -v runuser >/dev/null 2>&1 || runas=(su postgres -s /bin/sh -c)
fi
run() {
  if [ ${#runas[@]} -eq 0 ]; then "$@";
  elif [ "${runas[0]}" = "su" ]; then su postgres -s /bin/sh -c "$(printf '%q ' "$@")";
  else "${runas[@]}" "$@"; fi
}

pgdata="$data/pg"
if [ "${1:-}" = stop ]; then
  [ -e "$pgdata" ] && run "$bindir/pg_ctl" -D "$(readlink -f "$pgdata")" -m fast stop >/dev/null 2>&1 || true
  exit 0
fi
if [ "$owner" = postgres ] && [ ! -e "$pgdata" ]; then
  # Can the postgres user reach the data folder's parent?
  if ! run test -x "$data" 2>/dev/null || ! run test -r "$data" 2>/dev/null; then
    alt="/var/tmp/tandem-pg-$(printf '%s' "$top" | cksum | cut -d' ' -f1)"
    mkdir -p "$alt"
    ln -sfn "$alt" "$pgdata"
  else
    mkdir -p "$pgdata"
  fi
  chown postgres: "$(readlink -f "$pgdata")"
  chmod 700 "$(readlink -f "$pgdata")"
fi
mkdir -p "$pgdata"
real=$(readlink -f "$pgdata")
[ "$owner" = postgres ] && chown postgres: "$real"

if [ ! -s "$real/PG_VERSION" ]; then
  echo "pg.sh: creating a PostgreSQL cluster in $pgdata" >&2
  run "$bindir/initdb" -D "$real" -U tandem --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null 2>&1 || \
    run "$bindir/initdb" -D "$real" -U tandem --auth=trust -E UTF8 --no-locale >/dev/null
  cat >>"$real/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$real'
max_connections = 300
shared_buffers = 256MB
maintenance_work_mem = 512MB
fsync = on
synchronous_commit = on
CONF
fi

if ! run "$bindir/pg_ctl" -D "$real" status >/dev/null 2>&1; then
  if port_busy "$port"; then
    # Another server took our port since the cluster was made: move.
    while port_busy "$port"; do port=$((port + 1)); done
    echo "$port" >"$port_file"
    sed -i "s/^port = .*/port = $port/" "$real/postgresql.conf"
  fi
  run "$bindir/pg_ctl" -D "$real" -l "$real/server.log" -w -t 60 start >/dev/null || {
    echo "pg.sh: PostgreSQL did not start; last log lines:" >&2
    tail -n 20 "$real/server.log" >&2 || true
    exit 1
  }
fi

url="postgres://tandem@127.0.0.1:$port/tandem?sslmode=disable"
psql_run() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 "postgres://tandem@127.0.0.1:$port/$1?sslmode=disable" -c "$2"; }
if ! "$bindir/psql" -X -tAq "postgres://tandem@127.0.0.1:$port/postgres?sslmode=disable" \
    -c "SELECT 1 FROM pg_database WHERE datname='tandem'" | grep -q 1; then
  psql_run postgres "CREATE DATABASE tandem" >/dev/null
fi
psql_run tandem "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null 2>&1 || {
  echo "pg.sh: cannot create the vector extension; run scripts/install-deps.sh" >&2; exit 1; }
echo "$url" >"$data/database_url"
echo "$url"
