#!/usr/bin/env bash
# Runs a command against a throw-away PostgreSQL: `bash scripts/ci/pg.sh CMD ARGS...`.
#
# A private cluster (no system service): initdb into a temp dir as the `postgres` OS user
# (initdb refuses root), pg_ctl on a free loopback port, an application role that is neither
# superuser nor BYPASSRLS (it may create databases, so each test gets a fresh one) owning a
# database `mana`. CMD runs with
#   DATABASE_URL / MANA_TEST_DATABASE_URL  the application role on `mana`
#   MANA_TEST_PG_SUPERUSER_URL             the superuser (tests that the server refuses it)
#   MANA_TEST_PG_CTL                       this cluster's pg_ctl (tests that crash the database)
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
  "$DIR/pg_ctl" -m immediate stop >/dev/null 2>&1 || true
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
# This cluster's pg_ctl, as its owner and with its options: `"$DIR/pg_ctl" start`, `… -m
# immediate stop` (a crash: the fault harness stops and restarts the database with it).
OPTS="-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DIR \
  -c max_connections=400 -c fsync=${PG_FSYNC:-on} -c synchronous_commit=${PG_FSYNC:-on} \
  -c full_page_writes=${PG_FSYNC:-on}"
AS_PG=""
[ "$(id -u)" = 0 ] && AS_PG="runuser -u postgres --"
printf '#!/usr/bin/env bash\nexec %s %q -D %q -l %q -w -t 60 -o %q "$@"\n' \
  "$AS_PG" "$BIN/pg_ctl" "$DIR/data" "$DIR/server.log" "$OPTS" >"$DIR/pg_ctl"
chmod 755 "$DIR/pg_ctl"
"$DIR/pg_ctl" start >/dev/null || { cat "$DIR/server.log"; exit 1; }

PGPASSWORD=$SUPER_PW "$BIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$SUPER" -d postgres <<SQL
CREATE ROLE mana_app LOGIN PASSWORD '$APP_PW' NOSUPERUSER NOBYPASSRLS CREATEDB NOCREATEROLE;
CREATE DATABASE mana OWNER mana_app;
SQL

export DATABASE_URL="postgres://mana_app:$APP_PW@127.0.0.1:$PORT/mana"
export MANA_TEST_DATABASE_URL=$DATABASE_URL
export MANA_TEST_PG_SUPERUSER_URL="postgres://$SUPER:$SUPER_PW@127.0.0.1:$PORT/postgres"
export MANA_TEST_PG_CTL="$DIR/pg_ctl"
echo "pg: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (role mana_app)"
"$@"
