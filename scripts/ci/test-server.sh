#!/usr/bin/env bash
# The sync server and the mana-backup CLI over real HTTP / real processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p mana-sync-server
