# libpunch (the C client library, src/client/) and the punch CLI (tools/).
#   $(BUILD)/libpunch.a  static library; users link it with
#                        -lwslay -lhttp_parser -lcjson -lsodium -lnettle
#   $(BUILD)/punch       the CLI
#   $(BUILD)/punch_example  the game-loop embedding example of docs/libpunch.md
# Unit tests: tests/unit/client/test_*.c (cmocka) -> $(BUILD)/tests/client/.
# Integration tests: tests/client/test_client_*.py (run by tests/run_tests.py).

CLIENT_SRCS := $(wildcard src/client/*.c)
CLIENT_OBJS := $(patsubst src/client/%.c,$(BUILD)/obj/client/%.o,$(CLIENT_SRCS))
CLIENT_HDRS := include/punch.h $(wildcard src/client/*.h)
CLIENT_LIBS := -lwslay -lhttp_parser $(PKG_LIBS)
CLIENT_UNIT_SRCS := $(wildcard tests/unit/client/test_*.c)
CLIENT_UNIT_BINS := $(patsubst tests/unit/client/%.c,$(BUILD)/tests/client/%,$(CLIENT_UNIT_SRCS))

.PHONY: client
client: $(BUILD)/libpunch.a $(BUILD)/punch $(BUILD)/punch_example

all: $(BUILD)/punch $(BUILD)/punch_example
UNIT_BINS += $(CLIENT_UNIT_BINS)
TEST_BINS += $(BUILD)/punch $(BUILD)/punch_example

$(CLIENT_OBJS): $(BUILD)/obj/client/%.o: src/client/%.c $(CLIENT_HDRS) | $(BUILD)/obj/client
	$(CC) $(CFLAGS) -Isrc/client -c $< -o $@

$(BUILD)/libpunch.a: $(CLIENT_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/punch: tools/punch.c $(BUILD)/libpunch.a include/punch.h
	$(CC) $(CFLAGS) -o $@ tools/punch.c $(BUILD)/libpunch.a $(LDFLAGS) $(CLIENT_LIBS)

$(BUILD)/punch_example: tools/punch_example.c $(BUILD)/libpunch.a include/punch.h
	$(CC) $(CFLAGS) -o $@ tools/punch_example.c $(BUILD)/libpunch.a $(LDFLAGS) $(CLIENT_LIBS)

$(CLIENT_UNIT_BINS): $(BUILD)/tests/client/%: tests/unit/client/%.c $(BUILD)/libpunch.a $(CLIENT_HDRS) | $(BUILD)/tests/client
	$(CC) $(CFLAGS) -Isrc/client -o $@ $< $(BUILD)/libpunch.a $(LDFLAGS) $(CLIENT_LIBS) $(CMOCKA_LIBS)

$(BUILD)/obj/client $(BUILD)/tests/client:
	mkdir -p $@
