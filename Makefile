# punchd — NAT rendezvous tracker.
#   make          build build/punchd
#   make deps     install missing Debian packages (apt-get; sudo when not root)
#   make run      deps + build + run on config.json
#   make test     deps + build + every test; ends with "N passed, M failed"
#   make test SAN=1   the same under AddressSanitizer + UBSan (build/san/)

CC ?= cc
SAN ?= 0

# BUILD may be set on the command line to keep separate trees apart.
ifeq ($(SAN),1)
BUILD ?= build/san
SANFLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT := -O1
else
BUILD ?= build
SANFLAGS :=
OPT := -O2
endif

PKG_CFLAGS := $(shell pkg-config --cflags libcjson libsodium nettle 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs libcjson libsodium nettle 2>/dev/null || echo -lcjson -lsodium -lnettle)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

CFLAGS := -std=c11 -D_GNU_SOURCE -pthread $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
          -Iinclude $(PKG_CFLAGS) $(SANFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := $(SANFLAGS) $(EXTRA_LDFLAGS)
LIBS := -lev -lwslay -lhttp_parser $(PKG_LIBS) -lm -pthread

SRCS := $(wildcard src/*.c)
LIB_OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(filter-out src/main.c,$(SRCS)))
MAIN_OBJ := $(BUILD)/obj/main.o
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

.PHONY: all deps run test unit integration clean

all: $(BUILD)/punchd

deps:
	@sh scripts/deps.sh

$(BUILD)/obj/%.o: src/%.c $(wildcard include/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libpunchd.a: $(LIB_OBJS)
	ar rcs $@ $^

$(BUILD)/punchd: $(MAIN_OBJ) $(BUILD)/libpunchd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libpunchd.a $(wildcard include/*.h) | $(BUILD)/tests
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libpunchd.a $(LDFLAGS) $(LIBS) $(CMOCKA_LIBS)

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

run: deps
	$(MAKE) all
	$(BUILD)/punchd --config config.json

test: deps
	$(MAKE) all $(UNIT_BINS) $(TEST_BINS)
	python3 tests/run_tests.py --build $(BUILD) $(UNIT_BINS)

clean:
	rm -rf build

# Further concerns (client library, benchmarks, fuzzing, install) each bring
# their own rules; they may append to UNIT_BINS and TEST_BINS.
include $(sort $(wildcard mk/*.mk))
