#!/usr/bin/env bash
# Builds the npm package into pkg/ (wasm-pack, --target web); arguments go to wasm-pack, e.g.
# `--dev` or `--release`. wasm-pack copies LICENSE-MIT and LICENSE-APACHE into pkg/ but writes
# package.json before it does, listing in `files` only the LICENSE-* files already in pkg/; on a
# fresh clone they would be missing from the packed tarball (npm only adds a file named plain
# LICENSE by itself). So they are copied in first, and the result is checked.
#
# `--release` is the package users get: cargo's release profile, then `wasm-opt -Os` from npm's
# `binaryen` (tools/node_modules, installed by
# scripts/ci/install.sh; never Debian's binaryen, never one wasm-pack downloads). It prints the
# size of pkg/mana_sync_bg.wasm, raw and gzip -9 (BENCHMARKS.md, "Package size").
set -euo pipefail
cd "$(dirname "$0")/../.."
release=false
for a in "$@"; do [ "$a" = --release ] && release=true; done
wasm_opt=tools/node_modules/.bin/wasm-opt
if $release && [ ! -x "$wasm_opt" ]; then
  echo "build-pkg: $wasm_opt is missing (npm's binaryen): run scripts/ci/install.sh" >&2
  exit 1
fi
mkdir -p pkg
cp LICENSE-MIT LICENSE-APACHE pkg/
wasm-pack build "$@" --target web --out-dir pkg
if $release; then
  t0=$(date +%s)
  # The features the module uses are read from its target_features section.
  "$wasm_opt" -Os pkg/mana_sync_bg.wasm -o pkg/mana_sync_bg.opt.wasm
  mv pkg/mana_sync_bg.opt.wasm pkg/mana_sync_bg.wasm
  echo "build-pkg: wasm-opt -Os in $(( $(date +%s) - t0 ))s"
fi
echo "build-pkg: pkg/mana_sync_bg.wasm $(wc -c <pkg/mana_sync_bg.wasm) bytes, $(gzip -9 -c pkg/mana_sync_bg.wasm | wc -c) gzipped (gzip -9)"
node -e '
  const pkg = require("./pkg/package.json");
  const missing = ["LICENSE-MIT", "LICENSE-APACHE"].filter((f) => !pkg.files.includes(f));
  if (missing.length) { console.error("build-pkg: pkg/package.json files lacks", missing); process.exit(1); }
  for (const k of ["repository", "keywords", "license"]) {
    if (!pkg[k]) { console.error("build-pkg: pkg/package.json has no", k); process.exit(1); }
  }
'
