#!/usr/bin/env bash
# The sync server and the mana-backup CLI over real HTTP / real processes, on SQLite; then the
# PostgreSQL tests against a throw-away cluster (scripts/ci/pg.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p mana-sync-server
# Built before the cluster starts, so the cluster only lives while tests run.
cargo test -p mana-sync-server --test pg_rls --no-run
PG_FSYNC=off bash scripts/ci/pg.sh cargo test -p mana-sync-server --test pg_rls
