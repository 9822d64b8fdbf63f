#!/usr/bin/env bash
# Benchmarks (printed, never asserted): the in-browser store bench in headless Chromium,
# then the native ones. Numbers go into BENCHMARKS.md by hand, with the machine's load.
set -euo pipefail
cd "$(dirname "$0")/../.."
wasm-pack build --release --target web --out-dir pkg
node benches/browser/run.mjs benches/browser/bench.html
node benches/browser/run.mjs benches/browser/layout.html
