#!/usr/bin/env bash
# Builds the npm package and the Svelte demo (www/), then starts the sync server in dev mode on
# embedded SQLite and serves the demo's production build; Ctrl-C stops both. The app signs in
# against the server named by `?server=` in its URL (default http://127.0.0.1:3050).
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-3050}          # sync server
WWW_PORT=${WWW_PORT:-5173}  # demo app

bash scripts/ci/build-pkg.sh
cargo build --release -p mana-sync-server
# www depends on `mana-sync` as `file:../pkg` (a symlink; pkg/ may be built before or after).
if [ ! www/node_modules/.package-lock.json -nt www/package-lock.json ]; then
  npm ci --prefix www --no-audit --no-fund --loglevel=error
fi
(cd www && node node_modules/vite/bin/vite.js build)

pids=()
stop() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

./target/release/mana-sync-server --dev --port "$PORT" --database-url "sqlite://target/demo.db" &
pids+=($!)
(cd www && exec node node_modules/vite/bin/vite.js preview \
  --host 127.0.0.1 --port "$WWW_PORT" --strictPort) &
pids+=($!)

# Wait until both listen (or one of them died).
for port in "$PORT" "$WWW_PORT"; do
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "demo: a process exited" >&2; exit 1; }; done
    sleep 0.2
  done
done
echo
echo "demo: app            http://127.0.0.1:$WWW_PORT/?server=http://127.0.0.1:$PORT"
echo "demo: sync server    http://127.0.0.1:$PORT (dev mode, sqlite://target/demo.db)"
echo "demo: Ctrl-C stops both"
# Runs until Ctrl-C, or until either process exits (then the other is stopped too).
wait -n "${pids[@]}" || true
