#!/usr/bin/env bash
# The demo app end to end: builds the npm package into pkg/, installs www's npm dependencies
# when missing or stale, then builds www with Vite, serves it and drives Debian's Chromium
# through playwright-core (www/tests/e2e.mjs; never downloads a browser).
set -euo pipefail
cd "$(dirname "$0")/../.."
wasm-pack build --dev --target web --out-dir pkg
# www depends on `mana-sync` as `file:../pkg` (a symlink; pkg/ may be built before or after).
if [ ! www/node_modules/.package-lock.json -nt www/package-lock.json ]; then
  npm ci --prefix www --no-audit --no-fund --loglevel=error
fi
cd www
node --test tests/e2e.mjs
