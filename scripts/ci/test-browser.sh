#!/usr/bin/env bash
# The wasm library in headless Chromium (wasm-bindgen-test-runner drives /usr/bin/chromedriver).
set -euo pipefail
cd "$(dirname "$0")/../.."
wasm-pack test --headless --chrome
