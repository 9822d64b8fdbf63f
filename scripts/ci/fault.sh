#!/usr/bin/env bash
# `make fault`: kill -9 of the real server during push storms on SQLite (server/tests/fault.rs),
# FAULT_KILLS times (default 30), every acknowledged change verified after the last restart,
# then PRAGMA integrity_check. Loopback only, bounded. A 5-kill version runs in `make test`
# (test-server), as part of the server's integration tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
export FAULT_KILLS=${FAULT_KILLS:-30} FAULT_STORM_MS=${FAULT_STORM_MS:-1500}
cargo test -p mana-sync-server --test fault -- --nocapture
