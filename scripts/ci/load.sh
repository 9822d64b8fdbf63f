#!/usr/bin/env bash
# `make load`: 1,000 SSE + 1,000 WebSocket clients on one release server while pushes run,
# plus a slow SSE and a slow WebSocket reader (server/benches/load.rs). Prints p50/p99
# push-to-delivery, peak server RSS, streams dropped, events missed, resyncs; exits 1 when a
# target (p99 <= 100 ms, RSS <= 250 MB, none dropped, none missed) is not met. Loopback only.
# Not part of `make test`. LOAD_SSE, LOAD_WS, LOAD_USERS, LOAD_PUSHES_PER_SEC, LOAD_SECONDS,
# LOAD_SLOW, LOAD_SINCE, LOAD_BROADCAST_CAPACITY (server/benches/load.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Each client is a socket in the harness and one in the server (which inherits the limit).
want=$(( ${LOAD_SSE:-1000} + ${LOAD_WS:-1000} + 1024 ))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
  ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
echo "open files limit: $(ulimit -n)"
cargo bench -p mana-sync-server --bench load
