# Benchmark harness (docs/bench.md): the load generator, the two echo
# servers, `make bench` and `make bench-report`.
#   make bench                 full run (~3 min): 1,000,000 peers, writes $(BENCH_OUT)/latest.json
#   make bench BENCH_QUICK=1   fewer peers, shorter runs (~1 min)
#   make bench-report          PNGs from latest.json (installs gnuplot-nox when missing)
# Never part of `make test`, except the load generator and echo binaries,
# which the smoke test (tests/bench/) uses.

BENCH_BIN := $(BUILD)/bench
BENCH_OUT ?= $(BUILD)/bench
BENCH_QUICK ?= 0
BENCH_ARGS ?=
LG_SRCS := bench/loadgen.c bench/lg_common.c bench/lg_udp.c bench/lg_tcp.c

TEST_BINS += $(BENCH_BIN)/loadgen $(BENCH_BIN)/echo_udp $(BENCH_BIN)/echo_tcp

.PHONY: bench bench-bins bench-report

$(BENCH_BIN):
	mkdir -p $@

$(BENCH_BIN)/loadgen: $(LG_SRCS) bench/lg.h | $(BENCH_BIN)
	$(CC) $(CFLAGS) -Ibench -o $@ $(LG_SRCS) $(LDFLAGS)

$(BENCH_BIN)/echo_udp: bench/echo_udp.c | $(BENCH_BIN)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS)

$(BENCH_BIN)/echo_tcp: bench/echo_tcp.c | $(BENCH_BIN)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS)

bench-bins: $(BUILD)/punchd $(BENCH_BIN)/loadgen $(BENCH_BIN)/echo_udp $(BENCH_BIN)/echo_tcp

bench: deps
	$(MAKE) bench-bins
	python3 bench/bench.py --build $(BUILD) --out $(BENCH_OUT) \
	    $(if $(filter 1,$(BENCH_QUICK)),--quick) $(BENCH_ARGS)

# gnuplot is only needed here: installed on demand, not by `make deps`.
bench-report:
	@command -v gnuplot >/dev/null 2>&1 || { \
	    echo "bench-report: installing gnuplot-nox"; \
	    if [ "$$(id -u)" -eq 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    $$SUDO apt-get update -qq && \
	    $$SUDO apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 gnuplot-nox; }
	python3 bench/bench.py --report --out $(BENCH_OUT)

# `make bench-proto`: ns per request decode, cJSON path vs fast path
# (bench/proto_micro.c; PROTO_MICRO_MS per measurement). Not part of `make test`.
PROTO_MICRO_MS ?= 100

.PHONY: bench-proto

$(BENCH_BIN)/proto_micro: bench/proto_micro.c $(BUILD)/libpunchd.a $(wildcard include/*.h) | $(BENCH_BIN)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libpunchd.a $(LDFLAGS) $(LIBS)

bench-proto: $(BENCH_BIN)/proto_micro
	$(BENCH_BIN)/proto_micro $(PROTO_MICRO_MS)
