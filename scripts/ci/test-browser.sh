#!/usr/bin/env bash
# The wasm library in headless Chromium (wasm-bindgen-test-runner drives /usr/bin/chromedriver)
# and in headless Firefox ESR (geckodriver from `cargo install`), then a type-check of a small app against the generated TypeScript declarations. The sync
# suites talk to a real mana-sync-server (--dev, SQLite in a temp dir) behind
# tests/support/sync_harness.mjs, started here on free ports and stopped on exit; its URLs
# reach the tests at compile time (MANA_SYNC_URL, MANA_SYNC_CONTROL).
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build -p mana-sync-server --bin mana-sync-server
out=$(mktemp)
node tests/support/sync_harness.mjs target/debug/mana-sync-server >"$out" &
harness=$!
trap 'kill $harness 2>/dev/null || true; wait $harness 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do
  grep -q '^CONTROL_URL=' "$out" && break
  kill -0 $harness 2>/dev/null || { echo "sync harness exited" >&2; exit 1; }
  sleep 0.1
done
MANA_SYNC_URL=$(sed -n 's/^SYNC_URL=//p' "$out")
MANA_SYNC_CONTROL=$(sed -n 's/^CONTROL_URL=//p' "$out")
export MANA_SYNC_URL MANA_SYNC_CONTROL
echo "sync harness: server $MANA_SYNC_URL, control $MANA_SYNC_CONTROL"

# The offline test waits out real backoff windows (seconds): more than the default 20 s.
# Both browsers run the same test wasm: the second `wasm-pack test` finds the build fresh (same
# sources, same MANA_SYNC_* values) and only runs it, against a fresh server behind the same
# URL. BROWSERS picks a subset (e.g. `BROWSERS=firefox`). wasm-bindgen-test-runner takes the
# first driver variable it finds (GECKODRIVER before CHROMEDRIVER), so each run sees only its own.
export WASM_BINDGEN_TEST_TIMEOUT=90
first=1
for browser in ${BROWSERS:-chrome firefox}; do
  [ $first = 1 ] || node -e "fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1))" "$MANA_SYNC_CONTROL/reset"
  first=0
  t0=$(date +%s)
  echo "== wasm-pack test --headless --$browser"
  case $browser in
    chrome) env -u GECKODRIVER CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}" wasm-pack test --headless --chrome "$@" ;;
    firefox) env -u CHROMEDRIVER GECKODRIVER="${GECKODRIVER:-$(command -v geckodriver)}" wasm-pack test --headless --firefox "$@" ;;
    *) echo "unknown browser $browser" >&2; exit 1 ;;
  esac
  echo "== $browser: browser suites passed in $(( $(date +%s) - t0 ))s"
done
[ $# -gt 0 ] && exit 0 # a filtered run (e.g. `-- --test sync_web`) skips the type-check
bash scripts/ci/build-pkg.sh --dev
tools/node_modules/.bin/tsc -p tests/ts
echo "typecheck: ok"
# The unions of the generated .d.ts (phases, statuses, error codes) against what the code produces.
MANA_SYNC_DTS=pkg/mana_sync.d.ts cargo test -p mana-sync --lib ts_drift
echo "d.ts drift: ok"
