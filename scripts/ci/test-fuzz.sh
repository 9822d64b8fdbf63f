#!/usr/bin/env bash
# The `make test` step: a short smoke run of every fuzz target from the committed corpus
# (FUZZ_SECONDS, default 8 s each: six targets, well under two minutes once built).
# `make fuzz` runs longer (FUZZ_SECONDS=60 by default).
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZ_SECONDS=${FUZZ_SECONDS:-8} exec bash scripts/ci/fuzz-run.sh
