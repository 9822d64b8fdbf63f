#!/usr/bin/env bash
# The wasm library in headless Chromium (wasm-bindgen-test-runner drives /usr/bin/chromedriver),
# then a type-check of a small app against the generated TypeScript declarations.
set -euo pipefail
cd "$(dirname "$0")/../.."
wasm-pack test --headless --chrome
wasm-pack build --dev --target web --out-dir pkg
tools/node_modules/.bin/tsc -p tests/ts
echo "typecheck: ok"
