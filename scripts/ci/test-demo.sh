#!/usr/bin/env bash
# The demo app end to end: builds the npm package into pkg/ and the sync server, installs
# www's npm dependencies when missing or stale, then www/tests/e2e.mjs builds www with Vite,
# serves the production build, starts `mana-sync-server --dev` (free port, SQLite in a temp
# dir) and drives Debian's Chromium through playwright-core (never downloads a browser).
# Screenshots: www/test-results/.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/build-pkg.sh --dev
cargo build -p mana-sync-server --bin mana-sync-server
# www depends on `mana-sync` as `file:../pkg` (a symlink; pkg/ may be built before or after).
if [ ! www/node_modules/.package-lock.json -nt www/package-lock.json ]; then
  npm ci --prefix www --no-audit --no-fund --loglevel=error
fi
cd www
MANA_SYNC_SERVER="$PWD/../target/debug/mana-sync-server" node --test tests/e2e.mjs
