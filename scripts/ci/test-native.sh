#!/usr/bin/env bash
# The pure core (protocol, clock, merge, crypto, backup) natively, property tests included.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p mana-sync
