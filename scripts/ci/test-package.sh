#!/usr/bin/env bash
# The npm package as a user gets it: builds the release pkg/ (size-optimised profile and
# wasm-opt, as published), packs it with `npm pack` (the tarball must hold
# both licenses), then creates a fresh Vite + Svelte 5 app in a temp dir (tests/package/app, with
# the exact Vite/Svelte versions of www/package.json) that installs the tarball itself (not a
# link into the repo), builds it for production, serves the build and runs a Playwright smoke
# test (tests/package/smoke.mjs: open a store, write a record, read it back, no console errors).
# npm installs with --prefer-offline: the versions are those www/ already installed, so the
# local npm cache has them.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
start=$(date +%s)

bash scripts/ci/build-pkg.sh --release

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mana-sync-package.XXXXXX")
preview=""
cleanup() {
  [ -z "$preview" ] || kill "$preview" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# 1. The tarball.
npm pack ./pkg --pack-destination "$tmp" --json --loglevel=error >"$tmp/pack.json"
tarball=$(node -e '
  const [p] = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const files = p.files.map((f) => f.path).sort();
  console.error(`package: ${p.filename} (${p.size} bytes packed): ${files.join(", ")}`);
  const want = ["LICENSE-APACHE", "LICENSE-MIT", "README.md", "package.json",
                "mana_sync.js", "mana_sync_bg.wasm", "mana_sync.d.ts"];
  const missing = want.filter((f) => !files.includes(f));
  if (missing.length) { console.error(`package: the tarball lacks ${missing.join(", ")}`); process.exit(1); }
  console.log(p.filename);
' "$tmp/pack.json")
tarball="$tmp/$tarball"

# 2. A fresh app that installs it.
cp -r tests/package/app "$tmp/app"
node -e '
  const fs = require("fs");
  const www = require(process.argv[1] + "/www/package.json");
  const pick = (n) => { const v = www.devDependencies[n]; if (!v) throw new Error(`www/package.json has no ${n}`); return v; };
  fs.writeFileSync(process.argv[2] + "/app/package.json", JSON.stringify({
    name: "mana-sync-consumer", private: true, version: "0.0.0", type: "module",
    dependencies: { "mana-sync": "file:" + process.argv[3] },
    devDependencies: Object.fromEntries(
      ["@sveltejs/vite-plugin-svelte", "svelte", "vite"].map((n) => [n, pick(n)])),
  }, null, 2));
' "$root" "$tmp" "$tarball"
cd "$tmp/app"
npm install --prefer-offline --no-audit --no-fund --loglevel=error
# Installed from the tarball: a real directory holding the packed files, not a symlink.
[ -d node_modules/mana-sync ] && [ ! -L node_modules/mana-sync ] && [ -f node_modules/mana-sync/LICENSE-MIT ] \
  || { echo "package: node_modules/mana-sync is not an installed copy of the tarball" >&2; exit 1; }
node node_modules/vite/bin/vite.js build --logLevel warn

# 3. Serve the production build and drive it.
port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
node node_modules/vite/bin/vite.js preview --host 127.0.0.1 --port "$port" --strictPort >"$tmp/preview.log" 2>&1 &
preview=$!
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  kill -0 "$preview" 2>/dev/null || { cat "$tmp/preview.log" >&2; echo "package: vite preview exited" >&2; exit 1; }
  sleep 0.2
done
node "$root/tests/package/smoke.mjs" "http://127.0.0.1:$port/"
echo "package: ok in $(( $(date +%s) - start ))s"
