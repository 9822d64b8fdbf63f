# `make test` is what CI runs (.ci/run). Every step is a small script in scripts/ci/,
# so the same step runs the same way locally and in CI.
.PHONY: test install lint test-native test-browser test-tabs test-server test-demo test-package demo bench

test: install
	@start=$$(date +%s); \
	for step in lint test-native test-browser test-tabs test-server test-demo test-package; do \
	  t0=$$(date +%s); echo "== $$step"; \
	  bash scripts/ci/$$step.sh || exit 1; \
	  echo "== $$step done in $$(( $$(date +%s) - t0 ))s"; \
	done; \
	echo "== make test: all steps passed in $$(( $$(date +%s) - start ))s"

install:
	@bash scripts/ci/install.sh

lint test-native test-browser test-tabs test-server test-demo test-package: install
	@bash scripts/ci/$@.sh

demo: install
	@bash scripts/ci/demo.sh

bench: install
	@bash scripts/ci/bench.sh
