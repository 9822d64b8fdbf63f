#!/usr/bin/env bash
# Benchmarks (printed, never asserted): the in-browser store and layout pages and the wasm
# envelope bench in headless Chromium, then the native ones (the push bench on SQLite and
# PostgreSQL), and last the size of the release package's wasm (raw and gzip -9). Numbers go into BENCHMARKS.md by hand, with the machine's load.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/build-pkg.sh --release
wasm_size="pkg/mana_sync_bg.wasm (release): $(wc -c <pkg/mana_sync_bg.wasm) bytes, $(gzip -9 -c pkg/mana_sync_bg.wasm | wc -c) gzipped (gzip -9)"
echo "bench: $wasm_size"
node benches/browser/run.mjs benches/browser/bench.html
node benches/browser/run.mjs benches/browser/layout.html
# Sync: a real server (release, SQLite in a temp dir) for the push and first-sync page.
cargo build --release -p mana-sync-server --bin mana-sync-server
db=$(mktemp -d)
./target/release/mana-sync-server --dev --port 0 --database-url "sqlite://$db/bench.db" >"$db/out" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$db"' EXIT
until grep -q 'listening on' "$db/out"; do sleep 0.1; done
addr=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$db/out" | head -1)
node benches/browser/run.mjs "benches/browser/sync.html?server=$addr"
kill $server
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo bench --target wasm32-unknown-unknown --bench envelope_web
cargo bench --bench backup
# The push bench on SQLite and on a throw-away PostgreSQL (pg.sh), with PostgreSQL's default
# durability (fsync on: the SQLite side commits with synchronous=FULL).
PG_FSYNC=on bash scripts/ci/pg.sh cargo bench -p mana-sync-server --bench push
echo "bench: $wasm_size"
