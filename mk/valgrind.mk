# valgrind.mk: the integration suite with punchd under valgrind (memcheck).
#
#   make test-valgrind [BUILD=build/x] [VALGRIND_FLAGS=...]
#
# A plain -O2 -g build (valgrind and the sanitizers do not mix, so SAN=1 is
# refused). tests/integration/harness.py prepends TEST_PUNCHD_WRAPPER to
# punchd's argv, stretches its timeouts 20x, and fails a test whose punchd
# printed a valgrind error or exited non-zero: --error-exitcode makes any
# memcheck error (invalid access, uninitialised use, a definite or indirect
# leak at exit) a non-zero exit status. Not part of `make test` (several
# minutes); CI runs it as its own step.

VALGRIND ?= valgrind
VALGRIND_FLAGS ?= --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --quiet
# Extra run_tests.py arguments, e.g. VALGRIND_TESTS="--pattern test_pulse.py".
VALGRIND_TESTS ?=

.PHONY: test-valgrind

test-valgrind: deps
	@if [ "$(SAN)" = "1" ]; then \
	    echo "test-valgrind: needs a plain build; run it without SAN=1" >&2; exit 2; fi
	$(MAKE) all
	TEST_PUNCHD_WRAPPER="$(VALGRIND) $(VALGRIND_FLAGS)" \
	    python3 tests/run_tests.py --build $(BUILD) --suite integration $(VALGRIND_TESTS)
