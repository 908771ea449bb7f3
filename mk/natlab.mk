# NAT lab: punch clients behind real Linux NATs in network namespaces
# (tests/nat, docs/natlab.md). Needs root; skipped with one line otherwise.
#   make test-nat          the lab alone, against $(BUILD)/punchd and $(BUILD)/punch
#   make test-nat SAN=1    the same against the sanitizer build
# `make test` runs it too: run_tests.py includes the tests/nat suite.

.PHONY: test-nat

test-nat: deps
	$(MAKE) all
	python3 tests/run_tests.py --build $(BUILD) --suite nat
