#!/usr/bin/env bash
# Browser fault cases (tests/fault/browser.test.mjs): Playwright (playwright-core, Debian's
# Chromium) against a real `mana-sync-server --dev` — a page reloaded in the middle of a push and
# of a paginated first sync, and a write over a storage quota cut through CDP. Bounded (< 60 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/build-pkg.sh --dev
cargo build -p mana-sync-server --bin mana-sync-server
# The Chromium cases and the Firefox one are independent (own server, own browser): run together.
node --test --test-concurrency=2 tests/fault/
