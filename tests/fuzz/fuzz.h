/* fuzz.h: what punchd's fuzz harnesses share.
 *
 * Each harness (fuzz_<target>.c) defines one entry point,
 * fuzz_<target>_one(data, size), with libFuzzer's contract: it takes any
 * bytes, returns 0, and aborts (through FUZZ_CHECK or a sanitizer) when an
 * invariant breaks. The same entry points are linked twice: into libFuzzer
 * binaries (libfuzzer_main.c, built with clang) and into the replay driver
 * (replay.c, built with the project's compiler) that `make test` runs over
 * every saved input. Nothing here depends on libFuzzer. */
#ifndef PUNCHD_FUZZ_H
#define PUNCHD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* The targets, in the order the replay driver reports them. */
int fuzz_proto_one(const uint8_t *data, size_t size);
int fuzz_http_one(const uint8_t *data, size_t size);
int fuzz_ws_one(const uint8_t *data, size_t size);
int fuzz_config_one(const uint8_t *data, size_t size);
int fuzz_tracker_one(const uint8_t *data, size_t size);
int fuzz_ratelimit_one(const uint8_t *data, size_t size);
int fuzz_connlimit_one(const uint8_t *data, size_t size);
int fuzz_client_one(const uint8_t *data, size_t size);
int fuzz_protofast_one(const uint8_t *data, size_t size);

/* Once per process, before any libsodium use: installs a deterministic
 * randombytes implementation (so shareIds, tokens and hash keys, hence every
 * run over one input, are reproducible) and calls sodium_init(). Idempotent. */
void fuzz_init(void);

/* Restarts the deterministic random stream; harnesses call it at the start of
 * each input so an input's behaviour never depends on the inputs before it. */
void fuzz_rand_reset(void);

/* 1 when $TEST_FUZZ_TRACE is set: harnesses then print what they send
 * and receive on stderr, to read what a saved input does. */
int fuzz_trace(void);

/* Reports a broken invariant on stderr and aborts (libFuzzer then saves the
 * input; the replay driver reports the file). Never returns. */
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

#define FUZZ_CHECK(cond)                                  \
    do {                                                  \
        if (!(cond))                                      \
            fuzz_fail(__FILE__, __LINE__, #cond);         \
    } while (0)

/* 1 if buf[0..len) is exactly one compact JSON object: well-formed UTF-8
 * (checked by this file's own decoder, not proto's), no byte below 0x20
 * (punchd never pretty-prints, and raw control bytes are invalid inside
 * strings), and cJSON parses it whole with nothing after it. */
int fuzz_json_object(const char *buf, size_t len);

/* 1 if buf[0..len) is well-formed UTF-8: a reference decoder written
 * independently of proto_utf8_valid(), so the two can be compared. */
int fuzz_utf8_ref(const uint8_t *buf, size_t len);

/* Copies the string member `key` of the JSON object buf[0..len) (or of its
 * "data" object when in_data) into out (cap bytes, NUL-terminated).
 * Returns its length, or -1 when absent, not a string or too long. */
int fuzz_json_str(const char *buf, size_t len, int in_data, const char *key, char *out, size_t cap);

/* A byte reader over the fuzz input, for harnesses that take structure
 * (split points, modes) from it. Reads past the end yield zeros. */
struct fuzz_in {
    const uint8_t *p;
    size_t left;
};

uint8_t fuzz_u8(struct fuzz_in *in);
uint16_t fuzz_u16(struct fuzz_in *in);

/* A fixed IPv4 (v4 = 1) or IPv6 test endpoint numbered n. */
void fuzz_addr(struct addr *a, int v6, unsigned n, uint16_t port);

#endif
