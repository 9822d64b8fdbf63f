#!/usr/bin/env bash
# The sync server and the mana-backup CLI over real HTTP / real processes, on SQLite; then the
# suites that start a server through tests/common again on PostgreSQL (a throw-away cluster,
# scripts/ci/pg.sh; each server gets a fresh database), with the PostgreSQL-only tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p mana-sync-server
PG_TESTS=(--test pg_rls --test pg_cursor --test pg_instances --test sync_http --test connections
  --test memberships --test limits --test metrics --test rate_limits --test jwks --test tokens
  --test fault)
# Built before the cluster starts, so the cluster only lives while tests run.
cargo test -p mana-sync-server "${PG_TESTS[@]}" --no-run
PG_FSYNC=off bash scripts/ci/pg.sh cargo test -p mana-sync-server "${PG_TESTS[@]}"
