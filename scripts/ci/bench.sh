#!/usr/bin/env bash
# Benchmarks (printed, never asserted): the in-browser store and layout pages and the wasm
# envelope bench in headless Chromium, then the native ones. Numbers go into BENCHMARKS.md by
# hand, with the machine's load.
set -euo pipefail
cd "$(dirname "$0")/../.."
wasm-pack build --release --target web --out-dir pkg
node benches/browser/run.mjs benches/browser/bench.html
node benches/browser/run.mjs benches/browser/layout.html
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo bench --target wasm32-unknown-unknown --bench envelope_web
cargo bench --bench backup
cargo bench -p mana-sync-server --bench push
