#!/usr/bin/env bash
# Runs a command against a throw-away PostgreSQL: `bash scripts/ci/pg.sh CMD ARGS...`.
#
# A private cluster (no system service): initdb into a temp dir as the `postgres` OS user
# (initdb refuses root), pg_ctl on a free loopback port, an application role that is neither
# superuser nor BYPASSRLS (it may create databases, so each test gets a fresh one) owning a
# database `mana`. CMD runs with
#   DATABASE_URL / MANA_TEST_DATABASE_URL  the application role on `mana`
#   MANA_TEST_PG_SUPERUSER_URL             the superuser (tests that the server refuses it)
# and the cluster is stopped and deleted afterwards, whatever CMD's outcome.
# PG_FSYNC=off trades durability for speed (the test suite; never the benchmark).
set -euo pipefail
cd "$(dirname "$0")/../.."

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

if [ -z "$(pg_bin)" ]; then
  echo "pg: installing Debian's postgresql (no cluster, no service)"
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
  # The package would otherwise create and start a system cluster on port 5432.
  $SUDO mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/mana-sync.conf >/dev/null
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql; } >"$log" 2>&1; then
    cat "$log"; exit 1
  fi
  rm -f "$log"
fi
BIN=$(pg_bin)

# initdb and postgres refuse to run as root: run them as `postgres` when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

DIR=$(mktemp -d /tmp/mana-pg.XXXXXX)
chmod 755 "$DIR"
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
cleanup() {
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

PORT=$(free_port)
SUPER_PW=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
APP_PW=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
echo "$SUPER_PW" >"$DIR/pw"
[ "$(id -u)" = 0 ] && chown postgres "$DIR/pw"
SUPER=$(if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi)

as_pg "$BIN/initdb" -D "$DIR/data" -U "$SUPER" --pwfile="$DIR/pw" -A scram-sha-256 \
  -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log"; exit 1; }
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DIR \
      -c max_connections=400 -c fsync=${PG_FSYNC:-on} -c synchronous_commit=${PG_FSYNC:-on} \
      -c full_page_writes=${PG_FSYNC:-on}" \
  start >/dev/null || { cat "$DIR/server.log"; exit 1; }

PGPASSWORD=$SUPER_PW "$BIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$SUPER" -d postgres <<SQL
CREATE ROLE mana_app LOGIN PASSWORD '$APP_PW' NOSUPERUSER NOBYPASSRLS CREATEDB NOCREATEROLE;
CREATE DATABASE mana OWNER mana_app;
SQL

export DATABASE_URL="postgres://mana_app:$APP_PW@127.0.0.1:$PORT/mana"
export MANA_TEST_DATABASE_URL=$DATABASE_URL
export MANA_TEST_PG_SUPERUSER_URL="postgres://$SUPER:$SUPER_PW@127.0.0.1:$PORT/postgres"
echo "pg: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (role mana_app)"
"$@"
