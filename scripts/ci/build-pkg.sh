#!/usr/bin/env bash
# Builds the npm package into pkg/ (wasm-pack, --target web); arguments go to wasm-pack, e.g.
# `--dev` or `--release`. wasm-pack copies LICENSE-MIT and LICENSE-APACHE into pkg/ but writes
# package.json before it does, listing in `files` only the LICENSE-* files already in pkg/; on a
# fresh clone they would be missing from the packed tarball (npm only adds a file named plain
# LICENSE by itself). So they are copied in first, and the result is checked.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p pkg
cp LICENSE-MIT LICENSE-APACHE pkg/
wasm-pack build "$@" --target web --out-dir pkg
node -e '
  const pkg = require("./pkg/package.json");
  const missing = ["LICENSE-MIT", "LICENSE-APACHE"].filter((f) => !pkg.files.includes(f));
  if (missing.length) { console.error("build-pkg: pkg/package.json files lacks", missing); process.exit(1); }
  for (const k of ["repository", "keywords", "license"]) {
    if (!pkg[k]) { console.error("build-pkg: pkg/package.json has no", k); process.exit(1); }
  }
'
