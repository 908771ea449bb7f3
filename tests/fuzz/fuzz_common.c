/* fuzz_common: deterministic randomness, JSON checks and input readers
 * shared by the fuzz harnesses (see fuzz.h). */
#include "fuzz.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- deterministic randombytes (splitmix64) ----
 * Not for secrets: only so that a saved input replays exactly. */

static uint64_t fuzz_rng_state;

static uint64_t fuzz_rng_next(void)
{
    uint64_t z = (fuzz_rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char *fuzz_rng_name(void) { return "punchd-fuzz-splitmix64"; }
static uint32_t fuzz_rng_random(void) { return (uint32_t)(fuzz_rng_next() >> 32); }
static void fuzz_rng_stir(void) {}

static void fuzz_rng_buf(void *const buf, const size_t size)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < size; i += 8) {
        uint64_t v = fuzz_rng_next();
        size_t n = size - i < 8 ? size - i : 8;
        memcpy(p + i, &v, n);
    }
}

static randombytes_implementation fuzz_rng_impl = {
    .implementation_name = fuzz_rng_name,
    .random = fuzz_rng_random,
    .stir = fuzz_rng_stir,
    .uniform = NULL, /* libsodium derives an unbiased one from random() */
    .buf = fuzz_rng_buf,
    .close = NULL,
};

void fuzz_rand_reset(void) { fuzz_rng_state = 0x70756e6368640000ULL; /* "punchd" */ }

void fuzz_init(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    fuzz_rand_reset();
    /* Must precede sodium_init(), which otherwise picks the system source. */
    if (randombytes_set_implementation(&fuzz_rng_impl) != 0 || sodium_init() < 0) {
        fprintf(stderr, "fuzz: cannot initialise libsodium\n");
        abort();
    }
}

int fuzz_trace(void)
{
    static int v = -1;
    if (v < 0)
        v = getenv("TEST_FUZZ_TRACE") != NULL;
    return v;
}

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "fuzz: invariant broken at %s:%d: %s\n", file, line, what);
    fflush(stderr);
    abort();
}

/* ---- JSON and UTF-8 checks ---- */

int fuzz_utf8_ref(const uint8_t *s, size_t len)
{
    /* Decode each sequence to its code point, then reject overlongs,
     * surrogates and values past U+10FFFF by the code point itself. */
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        size_t need;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xe0) == 0xc0) {
            need = 1, cp = b & 0x1fu, min = 0x80;
        } else if ((b & 0xf0) == 0xe0) {
            need = 2, cp = b & 0x0fu, min = 0x800;
        } else if ((b & 0xf8) == 0xf0) {
            need = 3, cp = b & 0x07u, min = 0x10000;
        } else {
            return 0;
        }
        if (need > len - i - 1)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* Parses buf[0..len) with cJSON, whole; NULL if it is not one JSON value. */
static cJSON *fuzz_json_parse(const char *buf, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        abort();
    memcpy(copy, buf, len);
    copy[len] = '\0';
    const char *end = NULL;
    /* The NUL must lie inside the length cJSON is given. */
    cJSON *root = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 1);
    if (root && end != copy + len) {
        cJSON_Delete(root);
        root = NULL;
    }
    free(copy);
    return root;
}

int fuzz_json_object(const char *buf, size_t len)
{
    if (!fuzz_utf8_ref((const uint8_t *)buf, len))
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] < 0x20)
            return 0;
    cJSON *root = fuzz_json_parse(buf, len);
    int ok = root && cJSON_IsObject(root);
    cJSON_Delete(root);
    return ok;
}

int fuzz_json_str(const char *buf, size_t len, int in_data, const char *key, char *out, size_t cap)
{
    cJSON *root = fuzz_json_parse(buf, len);
    const cJSON *obj = root;
    if (in_data)
        obj = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    int n = -1;
    if (cJSON_IsString(item) && item->valuestring && strlen(item->valuestring) < cap) {
        n = (int)strlen(item->valuestring);
        memcpy(out, item->valuestring, (size_t)n + 1);
    }
    cJSON_Delete(root);
    return n;
}

/* ---- input readers ---- */

uint8_t fuzz_u8(struct fuzz_in *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

uint16_t fuzz_u16(struct fuzz_in *in)
{
    uint16_t hi = fuzz_u8(in);
    return (uint16_t)(hi << 8 | fuzz_u8(in));
}

void fuzz_addr(struct addr *a, int v6, unsigned n, uint16_t port)
{
    memset(a, 0, sizeof *a);
    a->port = port;
    if (v6) {
        static const uint8_t base[16] = { 0x20, 0x01, 0x0d, 0xb8 }; /* 2001:db8::/32, documentation */
        a->family = AF_INET6;
        memcpy(a->ip, base, sizeof base);
        a->ip[15] = (uint8_t)n;
    } else {
        a->family = AF_INET;
        a->ip[0] = 198, a->ip[1] = 51, a->ip[2] = 100, a->ip[3] = (uint8_t)n; /* TEST-NET-2 */
    }
}
