#!/usr/bin/env bash
# Builds the npm package and starts the sync server in dev mode on embedded SQLite.
set -euo pipefail
cd "$(dirname "$0")/../.."
wasm-pack build --target web --out-dir pkg
cargo build --release -p mana-sync-server
PORT=${PORT:-3050}
echo "demo: npm package in ./pkg; sync server on http://127.0.0.1:$PORT (Ctrl-C stops it)"
exec ./target/release/mana-sync-server --dev --port "$PORT" --database-url "sqlite://target/demo.db"
