# fuzz.mk: libFuzzer harnesses (tests/fuzz/) and their replay in `make test`.
#
#   make fuzz [FUZZ_TIME=300] [FUZZ_TARGETS="proto http ws config tracker ratelimit connlimit client protofast"]
#        builds the clang tree $(BUILD)/fuzz/ and runs each target for
#        FUZZ_TIME seconds, starting from tests/fuzz/corpus/<t>/ and
#        tests/fuzz/regress/<t>/; new inputs go to $(BUILD)/fuzz/corpus/<t>/.
#        A crash is copied to tests/fuzz/regress/<t>/ (kept forever: the
#        replay below runs it in every `make test`); the other targets still
#        run, and the whole run fails at the end.
#   make fuzz-smoke    the same, FUZZ_SMOKE_TIME (60) seconds per target, with
#                      the fixed seed FUZZ_SMOKE_SEED (CI)
#   make fuzz-merge    minimises what runs found into tests/fuzz/corpus/<t>/
#   make fuzz-build    only builds the fuzz binaries
#
# The replay driver ($(BUILD)/tests/fuzz_replay, built with $(CC) and
# $(CFLAGS), so with sanitizers under SAN=1) is one of UNIT_BINS: `make test`
# runs it and it prints one TAP line per target.

FUZZ_CC ?= clang
FUZZ_TIME ?= 300
FUZZ_SMOKE_TIME ?= 60
FUZZ_TARGETS ?= proto http ws config tracker ratelimit connlimit client protofast
# Extra libFuzzer flags, e.g. FUZZ_FLAGS=-jobs=2 or -only_ascii=1.
FUZZ_FLAGS ?=
# The smoke run (CI) uses a fixed seed: a red CI must be reproducible with
# `make fuzz-smoke` on any machine. Exploration is `make fuzz`'s job.
FUZZ_SMOKE_SEED ?= 1

FUZZ_DIR := $(BUILD)/fuzz
FUZZ_SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# The project's sources, instrumented for coverage, in a tree of their own
# (never the gcc objects). No -Werror here: a warning only clang gives in
# someone's new code must not stop a fuzz run; the harnesses keep it.
FUZZ_BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Wshadow -Wstrict-prototypes \
                    -Iinclude $(PKG_CFLAGS) $(FUZZ_SANFLAGS)
FUZZ_LIB_CFLAGS := $(FUZZ_BASE_CFLAGS) -fsanitize=fuzzer-no-link
FUZZ_HARNESS_CFLAGS := $(FUZZ_BASE_CFLAGS) -Werror -fsanitize=fuzzer-no-link -Isrc/client
FUZZ_LIB_OBJS := $(patsubst src/%.c,$(FUZZ_DIR)/obj/%.o,$(filter-out src/main.c,$(SRCS)))
# libpunch (src/client/), for the client target.
FUZZ_CLIENT_OBJS := $(patsubst src/client/%.c,$(FUZZ_DIR)/obj/client/%.o,$(wildcard src/client/*.c))
FUZZ_COMMON_SRCS := tests/fuzz/fuzz_common.c
FUZZ_HARNESS_SRCS := $(foreach t,$(FUZZ_TARGETS),tests/fuzz/fuzz_$(t).c)
FUZZ_BINS := $(foreach t,$(FUZZ_TARGETS),$(FUZZ_DIR)/fuzz_$(t))
FUZZ_HEADERS := $(wildcard include/*.h) tests/fuzz/fuzz.h

# Inputs past these sizes only make runs slower: the limits they probe
# (256-byte strings, 1472-byte datagrams, the 8 KiB head, 2 KiB messages)
# are all smaller.
FUZZ_MAXLEN_proto := 4096
FUZZ_MAXLEN_http := 12288
FUZZ_MAXLEN_ws := 8192
FUZZ_MAXLEN_config := 4096
FUZZ_MAXLEN_tracker := 8192
FUZZ_MAXLEN_ratelimit := 4096
FUZZ_MAXLEN_connlimit := 4096
FUZZ_MAXLEN_client := 8192
FUZZ_MAXLEN_protofast := 4096

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-merge
# Keep the harness objects between builds (make would delete them as intermediates).
.PRECIOUS: $(FUZZ_DIR)/hobj/%.o $(FUZZ_DIR)/hobj/main_%.o

fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/obj $(FUZZ_DIR)/hobj $(FUZZ_DIR)/obj/client:
	mkdir -p $@

$(FUZZ_DIR)/obj/client/%.o: src/client/%.c include/punch.h $(wildcard src/client/*.h) | $(FUZZ_DIR)/obj/client
	$(FUZZ_CC) $(FUZZ_LIB_CFLAGS) -Isrc/client -c $< -o $@

$(FUZZ_DIR)/libpunch.a: $(FUZZ_CLIENT_OBJS)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/obj/%.o: src/%.c $(wildcard include/*.h) | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_LIB_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/libpunchd.a: $(FUZZ_LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/hobj/%.o: tests/fuzz/%.c $(FUZZ_HEADERS) | $(FUZZ_DIR)/hobj
	$(FUZZ_CC) $(FUZZ_HARNESS_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/hobj/main_%.o: tests/fuzz/libfuzzer_main.c $(FUZZ_HEADERS) | $(FUZZ_DIR)/hobj
	$(FUZZ_CC) $(FUZZ_HARNESS_CFLAGS) -DFUZZ_ONE=fuzz_$*_one -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/hobj/fuzz_%.o $(FUZZ_DIR)/hobj/main_%.o $(FUZZ_DIR)/hobj/fuzz_common.o \
                    $(FUZZ_DIR)/libpunchd.a $(FUZZ_DIR)/libpunch.a
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

# One target: run from the kept corpus and regressions; on failure keep the
# crashing input in regress/ and mark the target failed (the others still run).
define FUZZ_RUN
	@mkdir -p $(FUZZ_DIR)/corpus/$(1) $(FUZZ_DIR)/artifacts/$(1) tests/fuzz/regress/$(1)
	@rm -rf $(FUZZ_DIR)/artifacts/$(1)/* $(FUZZ_DIR)/regress/$(1) && mkdir -p $(FUZZ_DIR)/regress/$(1)
	@# Known failures (*.xfail) stay out, or every run would stop on them at once.
	@find tests/fuzz/regress/$(1) -type f ! -name '*.xfail' -exec cp {} $(FUZZ_DIR)/regress/$(1)/ \;
	@echo "fuzz: $(1) for $(2) s"
	@if $(FUZZ_DIR)/fuzz_$(1) -max_total_time=$(2) -timeout=10 -rss_limit_mb=2048 \
	    -max_len=$(FUZZ_MAXLEN_$(1)) -print_final_stats=1 \
	    -dict=tests/fuzz/dict/$(1).dict \
	    -artifact_prefix=$(FUZZ_DIR)/artifacts/$(1)/ $(FUZZ_FLAGS) \
	    $(FUZZ_DIR)/corpus/$(1) tests/fuzz/corpus/$(1) $(FUZZ_DIR)/regress/$(1) \
	    > $(FUZZ_DIR)/$(1).log 2>&1; then \
	  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
	    $(FUZZ_DIR)/$(1).log | tr '\n' ' '; echo; \
	  echo "fuzz: $(1) ok"; \
	else \
	  tail -n 60 $(FUZZ_DIR)/$(1).log; \
	  for a in $(FUZZ_DIR)/artifacts/$(1)/*; do \
	    [ -f "$$a" ] || continue; kept=""; \
	    for k in tests/fuzz/regress/$(1)/*; do cmp -s "$$a" "$$k" && kept="$$k"; done; \
	    if [ -n "$$kept" ]; then echo "fuzz: $$a is the known $$kept"; \
	    else cp "$$a" tests/fuzz/regress/$(1)/ && \
	      echo "fuzz: kept $$a as tests/fuzz/regress/$(1)/$$(basename $$a)"; fi; \
	  done; \
	  echo "fuzz: $(1) FAILED (log: $(FUZZ_DIR)/$(1).log)"; touch $(FUZZ_DIR)/failed-$(1); \
	fi

endef

# Runs every target for $(1) seconds, then fails if any did.
define FUZZ_ALL
	@rm -f $(FUZZ_DIR)/failed-*
	$(foreach t,$(FUZZ_TARGETS),$(call FUZZ_RUN,$(t),$(1)))
	@failed=$$(cd $(FUZZ_DIR) && ls failed-* 2>/dev/null | sed 's/^failed-//' | tr '\n' ' '); \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED: $$failed"; exit 1; fi; \
	echo "fuzz: all targets ok ($(FUZZ_TARGETS))"
endef

fuzz: deps $(FUZZ_BINS)
	$(call FUZZ_ALL,$(FUZZ_TIME))

fuzz-smoke: FUZZ_FLAGS += -seed=$(FUZZ_SMOKE_SEED)
fuzz-smoke: deps $(FUZZ_BINS)
	$(call FUZZ_ALL,$(FUZZ_SMOKE_TIME))

fuzz-merge: $(FUZZ_BINS)
	$(foreach t,$(FUZZ_TARGETS),$(FUZZ_DIR)/fuzz_$(t) -merge=1 -max_len=$(FUZZ_MAXLEN_$(t)) \
	    tests/fuzz/corpus/$(t) $(FUZZ_DIR)/corpus/$(t);)

# ---- the replay in `make test` ----

FUZZ_REPLAY := $(BUILD)/tests/fuzz_replay
FUZZ_REPLAY_SRCS := tests/fuzz/replay.c tests/fuzz/fuzz_common.c \
                    $(foreach t,proto http ws config tracker ratelimit connlimit client protofast,tests/fuzz/fuzz_$(t).c)

$(FUZZ_REPLAY): $(FUZZ_REPLAY_SRCS) tests/fuzz/fuzz.h $(BUILD)/libpunchd.a $(BUILD)/libpunch.a \
                $(wildcard include/*.h) $(wildcard src/client/*.h) | $(BUILD)/tests
	$(CC) $(CFLAGS) -Isrc/client -DFUZZ_ROOT='"$(CURDIR)/tests/fuzz"' -o $@ $(FUZZ_REPLAY_SRCS) \
	    $(BUILD)/libpunchd.a $(BUILD)/libpunch.a $(LDFLAGS) $(LIBS)

UNIT_BINS += $(FUZZ_REPLAY)
