# bench-tracker.mk: `make bench-tracker` — CPU nanoseconds per request of the
# protocol logic alone (bench/tracker_micro.c: no sockets, 1,000,000 peers).
#   make bench-tracker [TRACKER_MICRO_ARGS="peers requests"]

TRACKER_MICRO := $(BUILD)/bench/tracker_micro
TRACKER_MICRO_ARGS ?=

.PHONY: bench-tracker

$(TRACKER_MICRO): bench/tracker_micro.c $(BUILD)/libpunchd.a $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libpunchd.a $(LDFLAGS) $(LIBS)

bench-tracker: deps $(TRACKER_MICRO)
	$(TRACKER_MICRO) $(TRACKER_MICRO_ARGS)
