#!/usr/bin/env bash
# Installs, idempotently, what a fresh machine lacks for `make test` / `make demo`.
# Each step is skipped when the tool is already present at the pinned version,
# and each step's duration is printed so slow installs are visible in CI logs.
set -euo pipefail
cd "$(dirname "$0")/../.."

WASM_PACK_VERSION=0.15.1
WASM_BINDGEN_VERSION=0.2.130
CARGO_FUZZ_VERSION=0.13.2
GECKODRIVER_VERSION=0.36.0

step() { # step <name> <check-cmd> <install-cmd>
  local name=$1 check=$2 install=$3 t0
  if eval "$check" >/dev/null 2>&1; then
    echo "install: $name already present, skipped"
    return
  fi
  t0=$(date +%s)
  echo "install: $name ..."
  eval "$install"
  echo "install: $name done in $(( $(date +%s) - t0 ))s"
}

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

step "wasm32 target" \
  "rustup target list --installed | grep -qx wasm32-unknown-unknown" \
  "rustup target add wasm32-unknown-unknown"

apt_install() { # quiet on success, the whole log on failure
  local log
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"; } >"$log" 2>&1; then
    cat "$log"; return 1
  fi
  rm -f "$log"
}

step "chromium + chromedriver + unzip" \
  "command -v chromium && command -v chromedriver && command -v unzip" \
  "apt_install chromium chromium-driver unzip"

# The browser suites run in Firefox ESR too (test-browser.sh); geckodriver drives it.
step "firefox-esr" \
  "command -v firefox-esr" \
  "apt_install firefox-esr"

step "geckodriver $GECKODRIVER_VERSION" \
  "geckodriver --version | sed -n 1p | grep -qx 'geckodriver $GECKODRIVER_VERSION.*'" \
  "cargo install geckodriver --version $GECKODRIVER_VERSION --locked"

# PostgreSQL for the server's second backend (scripts/ci/pg.sh runs a private cluster of it):
# the binaries only, no system cluster or service.
step "postgresql" \
  "ls /usr/lib/postgresql/*/bin/initdb" \
  "$SUDO mkdir -p /etc/postgresql-common/createcluster.d && echo 'create_main_cluster = false' | $SUDO tee /etc/postgresql-common/createcluster.d/mana-sync.conf >/dev/null && apt_install postgresql"

step "wasm-pack $WASM_PACK_VERSION" \
  "wasm-pack --version | grep -q ' $WASM_PACK_VERSION'" \
  "cargo install wasm-pack --version $WASM_PACK_VERSION --locked"

# No --locked: the CLI's own lockfile pins a crate version crates.io no longer serves.
step "wasm-bindgen-cli $WASM_BINDGEN_VERSION" \
  "wasm-bindgen --version | grep -q ' $WASM_BINDGEN_VERSION'" \
  "cargo install wasm-bindgen-cli --version $WASM_BINDGEN_VERSION"

# Coverage-guided fuzzing (make fuzz / test-fuzz): libFuzzer on stable Rust with --sanitizer none.
step "cargo-fuzz $CARGO_FUZZ_VERSION" \
  "cargo fuzz --version | grep -q ' $CARGO_FUZZ_VERSION'" \
  "cargo install cargo-fuzz --version $CARGO_FUZZ_VERSION --locked"

# Node tooling (TypeScript, playwright-core driving Debian's Chromium; no browser download).
step "node tools (tools/node_modules)" \
  "[ tools/node_modules/.package-lock.json -nt tools/package-lock.json ]" \
  "npm ci --prefix tools --no-audit --no-fund --loglevel=error"

# The demo app's npm dependencies (Vite, Svelte, playwright-core); `mana-sync` is file:../pkg.
step "demo npm deps (www/node_modules)" \
  "[ www/node_modules/.package-lock.json -nt www/package-lock.json ]" \
  "npm ci --prefix www --no-audit --no-fund --loglevel=error"

# Python's `cryptography`: the backup vectors' independent reference writer, used by the CLI
# interop test (tests/vectors/backup/generate.py check).
step "python cryptography" \
  "python3 -c 'import cryptography'" \
  "python3 -m pip install --quiet --disable-pip-version-check cryptography"
