/* proto_fast: the allocation-free fast path of request decoding. It scans
 * the common flat request shapes in one pass and fills struct proto_req
 * exactly as the cJSON path would, or declines (see proto_fast.h for what
 * it takes and what it leaves to cJSON). */
#include "proto_fast.h"

#include <stdint.h>
#include <string.h>

/* The members the scan keeps: the enum proto_key fields, then these two. */
enum { PROTO_FAST_ACTION = PROTO_K_COUNT, PROTO_FAST_CANDIDATES, PROTO_FAST_NSLOTS };

/* Key names, as proto.c reads them (indexed by enum proto_key, then the two
 * above). The differential fuzzer and the unit test catch any drift. */
static const struct {
    const char *name;
    size_t len;
} proto_fast_keys[PROTO_FAST_NSLOTS] = {
#define PROTO_FAST_KEY(s) { s, sizeof s - 1 }
    [PROTO_K_SHAREID] = PROTO_FAST_KEY("shareId"),
    [PROTO_K_TOKEN] = PROTO_FAST_KEY("token"),
    [PROTO_K_IP] = PROTO_FAST_KEY("ip"),
    [PROTO_K_PORT] = PROTO_FAST_KEY("port"),
    [PROTO_K_OVERRIDE] = PROTO_FAST_KEY("override"),
    [PROTO_K_MULTIADDR] = PROTO_FAST_KEY("multiaddr"),
    [PROTO_K_PUBKEY] = PROTO_FAST_KEY("pubkey"),
    [PROTO_K_COOKIE] = PROTO_FAST_KEY("cookie"),
    [PROTO_K_KEY] = PROTO_FAST_KEY("key"),
    [PROTO_FAST_ACTION] = PROTO_FAST_KEY("action"),
    [PROTO_FAST_CANDIDATES] = PROTO_FAST_KEY("candidates"),
#undef PROTO_FAST_KEY
};

/* One member's value as the scan found it. A string is not copied yet:
 * it is buf[off..off+len), the bytes between its quotes, which hold no
 * escape, no control byte and no byte >= 0x80 (so they are cJSON's
 * valuestring, byte for byte). */
struct proto_fast_val {
    uint8_t type;    /* enum proto_type; PROTO_T_ABSENT: member not seen; null is PROTO_T_OTHER */
    uint8_t boolval; /* PROTO_T_BOOL: 1 = true */
    size_t off, len; /* PROTO_T_STRING */
    double num;      /* PROTO_T_NUMBER */
};

/* Index of the first byte at or after i that is not JSON whitespace (the
 * four bytes RFC 8259 allows; proto's pre-pass drops other control bytes
 * that cJSON would skip). At most len. */
static size_t proto_fast_ws(const char *buf, size_t len, size_t i)
{
    while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t'))
        i++;
    return i;
}

/* A string starting at buf[*i] == '"'. Sets *off and *n to its content and
 * *i past the closing quote. Returns 0, or -1 (decline) on a backslash, a
 * control byte, a byte >= 0x80 or a missing closing quote. */
static int proto_fast_string(const char *buf, size_t len, size_t *i, size_t *off, size_t *n)
{
    size_t j = *i + 1;
    for (; j < len; j++) {
        unsigned char c = (unsigned char)buf[j];
        if (c == '"')
            break;
        if (c == '\\' || c < 0x20 || c >= 0x80)
            return -1;
    }
    if (j >= len)
        return -1;
    *off = *i + 1;
    *n = j - *off;
    *i = j + 1;
    return 0;
}

/* 1 if buf[i..) starts with the literal lit (n bytes). */
static int proto_fast_lit(const char *buf, size_t len, size_t i, const char *lit, size_t n)
{
    return len - i >= n && memcmp(buf + i, lit, n) == 0;
}

/* An integer starting at buf[*i] ('-' or a digit): -?(0|[1-9][0-9]*) of at
 * most PROTO_FAST_DIGITS_MAX digits, not followed by a fraction or an
 * exponent. Sets v->num (exact: the double strtod would give, -0.0 for
 * "-0") and *i past it. Returns 0, or -1 (decline). What follows is left to
 * the caller's grammar (whitespace, ',' or '}'). */
static int proto_fast_number(const char *buf, size_t len, size_t *i, struct proto_fast_val *v)
{
    size_t j = *i;
    int neg = 0;
    if (buf[j] == '-') {
        neg = 1;
        j++;
    }
    size_t start = j;
    uint64_t u = 0;
    while (j < len && buf[j] >= '0' && buf[j] <= '9') {
        if (j - start == PROTO_FAST_DIGITS_MAX)
            return -1;
        u = u * 10 + (uint64_t)(buf[j] - '0');
        j++;
    }
    size_t digits = j - start;
    if (digits == 0 || (digits > 1 && buf[start] == '0'))
        return -1; /* "-" alone; a leading zero (the pre-pass drops it) */
    if (j < len && (buf[j] == '.' || buf[j] == 'e' || buf[j] == 'E'))
        return -1;
    v->type = PROTO_T_NUMBER;
    v->num = neg ? -(double)u : (double)u;
    *i = j;
    return 0;
}

/* A member's value at buf[*i]: a string, true, false, null or an integer.
 * Fills v and sets *i past it. Returns 0, or -1 (decline: an object, an
 * array, anything else). */
static int proto_fast_value(const char *buf, size_t len, size_t *i, struct proto_fast_val *v)
{
    if (*i >= len)
        return -1;
    v->boolval = 0;
    switch (buf[*i]) {
    case '"':
        v->type = PROTO_T_STRING;
        return proto_fast_string(buf, len, i, &v->off, &v->len);
    case 't':
    case 'f': {
        int t = buf[*i] == 't';
        size_t n = t ? 4 : 5;
        if (!proto_fast_lit(buf, len, *i, t ? "true" : "false", n))
            return -1;
        v->type = PROTO_T_BOOL;
        v->boolval = (uint8_t)t;
        *i += n;
        return 0;
    }
    case 'n':
        if (!proto_fast_lit(buf, len, *i, "null", 4))
            return -1;
        v->type = PROTO_T_OTHER; /* what proto_field_fill makes of null */
        *i += 4;
        return 0;
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return proto_fast_number(buf, len, i, v);
    default:
        return -1;
    }
}

/* The slot of key buf[0..n), or -1 for a key punchd ignores. */
static int proto_fast_slot(const char *key, size_t n)
{
    for (int k = 0; k < PROTO_FAST_NSLOTS; k++)
        if (proto_fast_keys[k].len == n && proto_fast_keys[k].name[0] == key[0] &&
            memcmp(proto_fast_keys[k].name, key, n) == 0) /* no name is empty: key[0] exists */
            return k;
    return -1;
}

/* enum proto_action of the action string buf[0..n), as proto.c's
 * proto_action_parse() maps it. */
static enum proto_action proto_fast_action(const char *s, size_t n)
{
    for (int a = PROTO_ACT_ANNOUNCE; a < PROTO_ACT_UNKNOWN; a++) {
        const char *name = proto_action_name((enum proto_action)a);
        if (strlen(name) == n && memcmp(name, s, n) == 0)
            return (enum proto_action)a;
    }
    return PROTO_ACT_UNKNOWN;
}

/* Zeroes f, as proto_field_fill() does (the bytes after a string's NUL
 * too: some readers compare a fixed length of s). One memset of the whole
 * field is what gcc -O2 turns into `rep stos`, whose start-up cost made
 * three quarters of a decode here; 64-byte pieces become vector stores. */
static void proto_fast_zero(struct proto_field *f)
{
    _Static_assert(sizeof *f >= 64, "proto_fast_zero: field smaller than a piece");
    char *p = (char *)f;
    for (size_t o = 0; o + 64 <= sizeof *f; o += 64)
        memset(p + o, 0, 64);
    memset(p + sizeof *f - 64, 0, 64); /* the rest, overlapping */
}

/* Copies one scanned value into f as proto.c's proto_field_fill() does. */
static void proto_fast_fill(struct proto_field *f, const char *buf, const struct proto_fast_val *v)
{
    proto_fast_zero(f);
    f->type = v->type;
    switch (v->type) {
    case PROTO_T_STRING: {
        size_t n = v->len;
        if (n > PROTO_STR_MAX) {
            f->too_long = 1;
            n = PROTO_STR_MAX;
        }
        memcpy(f->s, buf + v->off, n); /* f->s[n] is already 0 */
        f->len = (uint16_t)n;
        break;
    }
    case PROTO_T_BOOL:
        f->boolval = v->boolval;
        break;
    case PROTO_T_NUMBER:
        f->num = v->num;
        break;
    default: /* absent, null */
        break;
    }
}

int proto_fast_decode(const char *buf, size_t len, struct proto_req *req)
{
    struct proto_fast_val v[PROTO_FAST_NSLOTS];
    for (int k = 0; k < PROTO_FAST_NSLOTS; k++)
        v[k].type = PROTO_T_ABSENT;

    /* The scan: one object, nothing around it but whitespace. Nothing is
     * written to req until the whole input has been accepted. */
    size_t i = proto_fast_ws(buf, len, 0);
    if (i >= len || buf[i] != '{')
        return -1;
    i = proto_fast_ws(buf, len, i + 1);
    if (i < len && buf[i] == '}') {
        i++;
    } else {
        for (;;) {
            size_t koff, klen;
            if (i >= len || buf[i] != '"' || proto_fast_string(buf, len, &i, &koff, &klen) != 0)
                return -1;
            i = proto_fast_ws(buf, len, i);
            if (i >= len || buf[i] != ':')
                return -1;
            i = proto_fast_ws(buf, len, i + 1);
            struct proto_fast_val val = { 0 };
            if (proto_fast_value(buf, len, &i, &val) != 0)
                return -1;
            int slot = proto_fast_slot(buf + koff, klen);
            if (slot >= 0) {
                if (v[slot].type != PROTO_T_ABSENT)
                    return -1; /* a duplicate: cJSON keeps the first; leave it to cJSON */
                v[slot] = val;
            }
            i = proto_fast_ws(buf, len, i);
            if (i >= len)
                return -1;
            if (buf[i] == '}') {
                i++;
                break;
            }
            if (buf[i] != ',')
                return -1;
            i = proto_fast_ws(buf, len, i + 1);
        }
    }
    if (proto_fast_ws(buf, len, i) != len)
        return -1; /* trailing bytes */

    enum proto_action action = PROTO_ACT_NONE;
    if (v[PROTO_FAST_ACTION].type == PROTO_T_STRING)
        action = proto_fast_action(buf + v[PROTO_FAST_ACTION].off, v[PROTO_FAST_ACTION].len);
    if (action == PROTO_ACT_RELAY)
        return -1; /* its "data" is serialised by the cJSON path */

    req->action = action;
    for (int k = 0; k < PROTO_K_COUNT; k++)
        proto_fast_fill(&req->f[k], buf, &v[k]);
    /* A candidates list is an array, which was declined above: here it is
     * absent or a scalar (bad). cand_addr stays as it was, as with cJSON. */
    req->cand = v[PROTO_FAST_CANDIDATES].type == PROTO_T_ABSENT ? PROTO_CAND_ABSENT : PROTO_CAND_BAD;
    req->ncand = 0;
    req->has_data = 0;
    req->data_too_large = 0;
    req->data_len = 0;
    return 0;
}
