#!/usr/bin/env bash
# `make fault`: kill -9 of the real server during push storms (server/tests/fault.rs),
# FAULT_KILLS times (default 30), on SQLite and then on PostgreSQL (a throw-away cluster,
# scripts/ci/pg.sh, fsync on); every acknowledged change verified after the last restart, then
# the database checked (PRAGMA integrity_check; amcheck on PostgreSQL; on both the log's
# consistency). Under PostgreSQL also FAULT_PG_CRASHES (default 3) crashes of the database
# itself mid-storm (pg_ctl stop -m immediate). Loopback only, bounded. A 5-kill version runs
# in `make test` (test-server), on both backends.
set -euo pipefail
cd "$(dirname "$0")/../.."
export FAULT_KILLS=${FAULT_KILLS:-30} FAULT_STORM_MS=${FAULT_STORM_MS:-1500}
# SQLite: the suite without a PostgreSQL URL.
env -u MANA_TEST_DATABASE_URL -u MANA_TEST_PG_CTL \
  cargo test -p mana-sync-server --test fault -- --nocapture
# Built already, so the cluster only lives while the harness runs.
PG_FSYNC=on bash scripts/ci/pg.sh cargo test -p mana-sync-server --test fault -- --nocapture
