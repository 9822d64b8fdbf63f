#!/usr/bin/env bash
# Runs every fuzz target (cargo-fuzz / libFuzzer, stable Rust, `--sanitizer none`) for
# FUZZ_SECONDS each, starting from the committed corpus in fuzz/corpus/<target>.
#   FUZZ_SECONDS=60 bash scripts/ci/fuzz-run.sh            (what `make fuzz` runs)
#   FUZZ_TARGETS="archive token" FUZZ_SECONDS=300 ...      (some targets only)
#   FUZZ_MERGE=1 ...   afterwards, merge what was found back into fuzz/corpus (minimized, cmin-style)
# New inputs go to a scratch directory, not into the committed corpus (unless FUZZ_MERGE=1).
# A crash, a timeout (10 s) or an out-of-memory leaves its input in fuzz/artifacts/<target>/ and
# fails the run. Prints executions and coverage (libFuzzer's cov: edges, ft: features) per target.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"changeset hlc field_meta cursor archive token"}
BIN=fuzz/target/x86_64-unknown-linux-gnu/release

# Debug assertions (overflow checks) on: the default of `cargo fuzz build` without -O.
cargo fuzz build --sanitizer none --fuzz-dir fuzz

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=0
printf '%-11s %9s %10s %7s %7s %7s\n' target seconds execs exec/s cov ft
for t in $TARGETS; do
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  log="$scratch/$t.log"
  extra=()
  # The archive target also starts from every backup test vector (valid and hostile).
  if [ "$t" = archive ]; then extra=(tests/vectors/backup); fi
  rc=0
  "$BIN/$t" "$scratch/$t" "fuzz/corpus/$t" "${extra[@]}" \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  printf '%-11s %9s %10s %7s %7s %7s\n' "$t" "$SECONDS_EACH" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}"
  if [ "$rc" != 0 ]; then
    failed=1
    echo "fuzz: $t FAILED (exit $rc); the input is in fuzz/artifacts/$t/:" >&2
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -20 >&2 || tail -40 "$log" >&2
  fi
  if [ "${FUZZ_MERGE:-0}" = 1 ] && [ "$rc" = 0 ]; then
    merged="$scratch/$t.merged"
    mkdir -p "$merged"
    "$BIN/$t" -merge=1 "$merged" "fuzz/corpus/$t" "$scratch/$t" >"$log.merge" 2>&1
    rm -rf "fuzz/corpus/$t" && mv "$merged" "fuzz/corpus/$t"
    echo "fuzz: $t corpus merged: $(ls "fuzz/corpus/$t" | wc -l) inputs"
  fi
done
if [ "$failed" != 0 ]; then
  echo "fuzz: a target failed" >&2
  exit 1
fi
echo "fuzz: all targets ran ${SECONDS_EACH}s without a crash"
