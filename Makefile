# `make test` is what CI runs (.ci/run). Every step is a small script in scripts/ci/,
# so the same step runs the same way locally and in CI.
# A clean clone is built once: incremental caches would only take disk (CI runs on a clean clone).
ifdef CI
export CARGO_INCREMENTAL = 0
endif

.PHONY: test install lint test-native test-browser test-tabs test-fault-browser test-server test-fuzz test-demo test-package demo bench fuzz fault load

test: install
	@start=$$(date +%s); \
	echo "== disk: $$(df -h . | awk 'NR==2 {print $$4 " free of " $$2}')"; \
	for step in lint test-native test-browser test-tabs test-fault-browser test-server test-fuzz test-demo test-package; do \
	  t0=$$(date +%s); echo "== $$step"; \
	  bash scripts/ci/$$step.sh || exit 1; \
	  echo "== $$step done in $$(( $$(date +%s) - t0 ))s"; \
	done; \
	echo "== make test: all steps passed in $$(( $$(date +%s) - start ))s"

install:
	@bash scripts/ci/install.sh

lint test-native test-browser test-tabs test-fault-browser test-server test-fuzz test-demo test-package: install
	@bash scripts/ci/$@.sh

demo: install
	@bash scripts/ci/demo.sh

bench: install
	@bash scripts/ci/bench.sh

# Every fuzz target for FUZZ_SECONDS each (default 60), from the committed corpus (fuzz/corpus).
fuzz: install
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-60} bash scripts/ci/fuzz-run.sh

# kill -9 of the server during push storms, FAULT_KILLS times (default 30), on SQLite and on
# PostgreSQL, and crashes of PostgreSQL itself mid-storm; then the browser fault cases (reloads
# mid-push and mid-first-sync, a storage quota cut through CDP).
fault: install
	@bash scripts/ci/fault.sh
	@bash scripts/ci/test-fault-browser.sh

# 1,000 SSE + 1,000 WebSocket clients on one release server while pushes run (not in `make test`).
load: install
	@bash scripts/ci/load.sh
