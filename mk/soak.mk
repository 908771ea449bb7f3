# soak.mk: the soak test (tests/soak/, docs/soak.md). Never part of `make test`.
#
#   make soak          a few minutes (SOAK_PROFILE=full): 100k peers with churn and
#                      hostile traffic against the real punchd; prints the RSS curve
#                      and a summary; fails on a crash, RSS growth, a lost or
#                      unexpired peer, or counters that do not add up
#   make soak-short    the same in ~60 s (what CI runs)
#   SOAK_ARGS="--secs 120 --peers 50000 --seed 7" passes options to tests/soak/soak.py.
# Run it on a plain build (BUILD=build/x); under valgrind set TEST_PUNCHD_WRAPPER
# and far fewer peers.

SOAK_ARGS ?=
SOAKGEN := $(BUILD)/soak/soakgen

.PHONY: soak soak-short soak-bins

$(BUILD)/soak:
	mkdir -p $@

$(SOAKGEN): tests/soak/soakgen.c | $(BUILD)/soak
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS)

soak-bins: $(BUILD)/punchd $(SOAKGEN)

soak: deps
	$(MAKE) soak-bins
	python3 tests/soak/soak.py --build $(BUILD) --profile full $(SOAK_ARGS)

soak-short: deps
	$(MAKE) soak-bins
	python3 tests/soak/soak.py --build $(BUILD) --profile short $(SOAK_ARGS)
