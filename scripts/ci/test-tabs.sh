#!/usr/bin/env bash
# Many tabs, one sync: builds the npm package and the server, then Playwright (playwright-core,
# Debian's Chromium) opens several tabs of one browser context against a real
# `mana-sync-server --dev` (tests/tabs/tabs.test.mjs).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/build-pkg.sh --dev
cargo build -p mana-sync-server --bin mana-sync-server
node --test --test-concurrency=1 tests/tabs/
