/* fuzz_protofast: the fast request decoder (proto_fast_decode) against the
 * cJSON path (proto_decode_cjson), differentially.
 *
 * Every input is first decoded as a datagram by both. When the fast path
 * takes it, the cJSON path must return 0 and exactly the same proto_req,
 * compared field by field (proto_req_same); when it declines, it must not
 * have written to req at all. proto_decode() itself (fast path, then
 * cJSON) must give the cJSON path's return code and result for every
 * input, and still refuse a scratch buffer one byte too small.
 *
 * An input starting with byte 0xfe (never valid UTF-8, so as a datagram it
 * is declined and dropped at once) is also a recipe for a request of the
 * shapes the fast path exists for (fuzz_pf_generate): members with fuzzed
 * keys (the ones punchd reads, "pad", "data", random ones), values (ASCII
 * strings up to 300 bytes, true, false, null, integers up to 15 digits,
 * action names) and whitespace between every token. The fast path must
 * take such a request (so a fast path that declines everything fails
 * here), unless the recipe asks for one unusual feature (an escape, a byte
 * >= 0x80, nesting, a duplicate key, a fraction, an exponent, a 16-digit or
 * zero-led integer, action "relay", a BOM, a trailing comma or byte): then
 * it must decline. Either way the results are compared as above. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto.h"
#include "proto_fast.h"

#define FUZZ_PF_GEN 0xfe
#define FUZZ_PF_FILL 0xa5 /* what each proto_req holds before a decode */
#define FUZZ_PF_GEN_MAX 16384

/* expect: what the fast path must do with an input. */
enum { FUZZ_PF_ANY = -1, FUZZ_PF_DECLINE = 0, FUZZ_PF_ACCEPT = 1 };

/* ---- the comparison ---- */

/* Runs buf[0..len) through both paths and proto_decode(). */
static void fuzz_pf_check(const char *data, size_t len, int expect)
{
    /* Exact-size copies: a read past the datagram is caught. */
    char *buf = malloc(len ? len : 1);
    char *scratch = malloc(len + 1);
    struct proto_req *fast = malloc(sizeof *fast), *slow = malloc(sizeof *slow);
    struct proto_req *hooked = malloc(sizeof *hooked), *fill = malloc(sizeof *fill);
    if (!buf || !scratch || !fast || !slow || !hooked || !fill)
        abort();
    if (len)
        memcpy(buf, data, len);
    memset(fill, FUZZ_PF_FILL, sizeof *fill);
    memcpy(fast, fill, sizeof *fast);
    memcpy(slow, fill, sizeof *slow);
    memcpy(hooked, fill, sizeof *hooked);

    int rf = proto_fast_decode(buf, len, fast);
    int rs = proto_decode_cjson(buf, len, scratch, len + 1, slow);
    FUZZ_CHECK(rf == 0 || rf == -1);
    if (rf == 0) {
        FUZZ_CHECK(rs == 0);
        FUZZ_CHECK(proto_req_same(fast, slow));
    } else {
        /* Declined: req untouched (this compares the fill, not fields). */
        FUZZ_CHECK(memcmp(fast, fill, sizeof *fast) == 0);
    }
    if (expect != FUZZ_PF_ANY)
        FUZZ_CHECK((rf == 0) == (expect == FUZZ_PF_ACCEPT));

    int rh = proto_decode(buf, len, scratch, len + 1, hooked);
    FUZZ_CHECK(rh == rs);
    if (rh == 0)
        FUZZ_CHECK(proto_req_same(hooked, slow));
    if (len > 0) {
        /* The fast path never bypasses the scratch check. */
        memcpy(hooked, fill, sizeof *hooked);
        FUZZ_CHECK(proto_decode(buf, len, scratch, len, hooked) == -1 - PROTO_DROP_TOO_LARGE);
    }
    free(fill);
    free(hooked);
    free(slow);
    free(fast);
    free(scratch);
    free(buf);
}

/* ---- generated requests ---- */

struct fuzz_pf_out {
    char buf[FUZZ_PF_GEN_MAX];
    size_t len;
    int overflow;
};

static void fuzz_pf_put(struct fuzz_pf_out *o, const char *s, size_t n)
{
    if (o->overflow || n > sizeof o->buf - o->len) {
        o->overflow = 1;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void fuzz_pf_puts(struct fuzz_pf_out *o, const char *s) { fuzz_pf_put(o, s, strlen(s)); }

/* Whitespace JSON allows between tokens, chosen by one input byte. */
static void fuzz_pf_ws(struct fuzz_pf_out *o, struct fuzz_in *in)
{
    static const char *const ws[] = { "", "", "", " ", "  ", "\t", "\n", "\r\n", " \t\r\n " };
    fuzz_pf_puts(o, ws[fuzz_u8(in) % (sizeof ws / sizeof ws[0])]);
}

/* A string of n fuzzed bytes mapped to printable ASCII (0x20-0x7f) without
 * '"' and '\\': what the fast path takes. */
static void fuzz_pf_ascii(struct fuzz_pf_out *o, struct fuzz_in *in, size_t n)
{
    fuzz_pf_put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char c = (char)(0x20 + fuzz_u8(in) % 96);
        if (c == '"' || c == '\\')
            c = 'x';
        fuzz_pf_put(o, &c, 1);
    }
    fuzz_pf_put(o, "\"", 1);
}

/* An integer of 1-15 digits, maybe negative; never zero-led. */
static void fuzz_pf_int(struct fuzz_pf_out *o, struct fuzz_in *in)
{
    uint8_t m = fuzz_u8(in);
    unsigned digits = 1 + (m & 0x0f) % PROTO_FAST_DIGITS_MAX;
    char num[24];
    size_t n = 0;
    if (m & 0x80)
        num[n++] = '-';
    for (unsigned d = 0; d < digits; d++) {
        unsigned v = fuzz_u8(in) % 10;
        if (d == 0 && digits > 1 && v == 0)
            v = 1 + (m >> 4 & 7);
        num[n++] = (char)('0' + v);
    }
    fuzz_pf_put(o, num, n);
}

/* Keys a generated member may have: punchd's (index = enum proto_key, then
 * action and candidates), then ignored ones. */
static const char *const fuzz_pf_keys[] = {
    "shareId", "token", "ip", "port", "override", "multiaddr", "pubkey", "cookie", "key",
    "action", "candidates", "pad", "data", "Action", "shareid", "",
};
#define FUZZ_PF_TRACKED (PROTO_K_COUNT + 2)
#define FUZZ_PF_NKEYS (sizeof fuzz_pf_keys / sizeof fuzz_pf_keys[0])

static const char *const fuzz_pf_actions[] = {
    "announce", "pulse", "alive", "push", "probe", "teleport", "", "announc", "announcee", "PUSH",
};

/* The unusual features a recipe may ask for (one at most). */
enum {
    FUZZ_PF_X_NONE = 0,
    FUZZ_PF_X_ESCAPE,      /* a \n escape in a string */
    FUZZ_PF_X_UESCAPE,     /* \u0041 (what cJSON makes "A") */
    FUZZ_PF_X_NONASCII,    /* é in a string */
    FUZZ_PF_X_OBJECT,      /* "pad":{} */
    FUZZ_PF_X_ARRAY,       /* "candidates":[] */
    FUZZ_PF_X_DUPLICATE,   /* a tracked key twice */
    FUZZ_PF_X_FRACTION,    /* 1.0 */
    FUZZ_PF_X_EXPONENT,    /* 1e2 */
    FUZZ_PF_X_LONGINT,     /* 16 digits */
    FUZZ_PF_X_LEADZERO,    /* 007: the pre-pass drops it */
    FUZZ_PF_X_RELAY,       /* action relay */
    FUZZ_PF_X_BOM,         /* a UTF-8 BOM first (cJSON skips it) */
    FUZZ_PF_X_TRAILCOMMA,  /* {"a":1,} */
    FUZZ_PF_X_TRAILBYTE,   /* {...}x */
    FUZZ_PF_X_COUNT
};

/* Builds a request from the recipe in. Returns what the fast path must do
 * with it (FUZZ_PF_ANY if it did not fit). */
static int fuzz_pf_generate(struct fuzz_pf_out *o, struct fuzz_in *in)
{
    uint8_t head = fuzz_u8(in);
    int feature = (head & 0x80) ? 1 + fuzz_u8(in) % (FUZZ_PF_X_COUNT - 1) : FUZZ_PF_X_NONE;
    unsigned members = fuzz_u8(in) % 14;
    unsigned at = members ? fuzz_u8(in) % members : 0; /* the member carrying the feature */
    int used[FUZZ_PF_TRACKED] = { 0 };
    int any_tracked = -1;

    o->len = 0;
    o->overflow = 0;
    if (feature == FUZZ_PF_X_BOM)
        fuzz_pf_puts(o, "\xef\xbb\xbf");
    fuzz_pf_ws(o, in);
    fuzz_pf_put(o, "{", 1);
    fuzz_pf_ws(o, in);
    if (members == 0 && feature != FUZZ_PF_X_NONE && feature != FUZZ_PF_X_BOM &&
        feature != FUZZ_PF_X_TRAILBYTE)
        members = 1, at = 0; /* somewhere to put the feature */
    for (unsigned m = 0; m < members; m++) {
        int here = m == at ? feature : FUZZ_PF_X_NONE;
        size_t k = fuzz_u8(in) % FUZZ_PF_NKEYS;
        if (here == FUZZ_PF_X_DUPLICATE)
            k = any_tracked >= 0 ? (size_t)any_tracked : PROTO_K_COUNT; /* else "action", twice below */
        else if (here == FUZZ_PF_X_RELAY)
            k = PROTO_K_COUNT;
        else if (k < FUZZ_PF_TRACKED && used[k])
            k = FUZZ_PF_TRACKED; /* "pad" instead: no accidental duplicate */
        if (m > 0) {
            fuzz_pf_put(o, ",", 1);
            fuzz_pf_ws(o, in);
        }
        if (here == FUZZ_PF_X_DUPLICATE && any_tracked < 0) {
            fuzz_pf_puts(o, "\"action\":\"alive\",");
            used[PROTO_K_COUNT] = 1;
        }
        fuzz_pf_put(o, "\"", 1);
        fuzz_pf_puts(o, fuzz_pf_keys[k]);
        fuzz_pf_put(o, "\"", 1);
        if (k < FUZZ_PF_TRACKED) {
            used[k] = 1;
            any_tracked = (int)k;
        }
        fuzz_pf_ws(o, in);
        fuzz_pf_put(o, ":", 1);
        fuzz_pf_ws(o, in);

        uint8_t kind = fuzz_u8(in);
        switch (here) {
        case FUZZ_PF_X_ESCAPE: fuzz_pf_puts(o, "\"a\\nb\""); break;
        case FUZZ_PF_X_UESCAPE: fuzz_pf_puts(o, "\"\\u0041\""); break;
        case FUZZ_PF_X_NONASCII: fuzz_pf_puts(o, "\"caf\xc3\xa9\""); break;
        case FUZZ_PF_X_OBJECT: fuzz_pf_puts(o, "{}"); break;
        case FUZZ_PF_X_ARRAY: fuzz_pf_puts(o, "[]"); break;
        case FUZZ_PF_X_FRACTION: fuzz_pf_puts(o, "1.0"); break;
        case FUZZ_PF_X_EXPONENT: fuzz_pf_puts(o, "1e2"); break;
        case FUZZ_PF_X_LONGINT: fuzz_pf_puts(o, "1234567890123456"); break;
        case FUZZ_PF_X_LEADZERO: fuzz_pf_puts(o, "007"); break;
        case FUZZ_PF_X_RELAY: fuzz_pf_puts(o, "\"relay\""); break;
        default:
            if (k == PROTO_K_COUNT && kind % 4 != 0) {
                fuzz_pf_put(o, "\"", 1);
                fuzz_pf_puts(o, fuzz_pf_actions[fuzz_u8(in) % (sizeof fuzz_pf_actions / sizeof fuzz_pf_actions[0])]);
                fuzz_pf_put(o, "\"", 1);
                break;
            }
            switch (kind % 8) {
            case 0: fuzz_pf_puts(o, "true"); break;
            case 1: fuzz_pf_puts(o, "false"); break;
            case 2: fuzz_pf_puts(o, "null"); break;
            case 3: fuzz_pf_int(o, in); break;
            case 4: fuzz_pf_ascii(o, in, 250 + fuzz_u8(in) % 51); break; /* around PROTO_STR_MAX */
            default: fuzz_pf_ascii(o, in, fuzz_u8(in) % 40); break;
            }
        }
        fuzz_pf_ws(o, in);
    }
    if (feature == FUZZ_PF_X_TRAILCOMMA)
        fuzz_pf_put(o, ",", 1);
    fuzz_pf_put(o, "}", 1);
    fuzz_pf_ws(o, in);
    if (feature == FUZZ_PF_X_TRAILBYTE)
        fuzz_pf_put(o, "x", 1);
    if (o->overflow)
        return FUZZ_PF_ANY;
    return feature == FUZZ_PF_X_NONE ? FUZZ_PF_ACCEPT : FUZZ_PF_DECLINE;
}

int fuzz_protofast_one(const uint8_t *data, size_t size)
{
    fuzz_init();
    fuzz_pf_check((const char *)data, size, FUZZ_PF_ANY);
    if (size > 0 && data[0] == FUZZ_PF_GEN) {
        static struct fuzz_pf_out out;
        struct fuzz_in in = { data + 1, size - 1 };
        int expect = fuzz_pf_generate(&out, &in);
        fuzz_pf_check(out.buf, out.len, expect);
    }
    return 0;
}
