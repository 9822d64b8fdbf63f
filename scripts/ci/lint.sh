#!/usr/bin/env bash
# Formatting, clippy (native and wasm32) and two rules of docs/architecture.md: the pure core,
# and no import circles between modules.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p mana-sync --target wasm32-unknown-unknown --all-targets -- -D warnings

# The pure core never touches the browser: only src/web/ may name web_sys/js_sys/wasm_bindgen.
if grep -rnE '\b(web_sys|js_sys|wasm_bindgen)\b' src --include='*.rs' | grep -v '^src/web/'; then
  echo "lint: a pure module imports a browser crate (see above)" >&2
  exit 1
fi
python3 scripts/ci/import-cycles.py src server/src
echo "lint: ok"
