/* fuzz_proto: the request decoder and the reply encoder.
 *
 * Every input is decoded as a datagram (proto_decode and proto_decode_relay
 * with several payload capacities) and its result checked against the
 * header's promises and an independent UTF-8 decoder. An input starting
 * with byte 0xff (never valid UTF-8, so the decoder drops it at once) also
 * describes a reply; it is encoded under a fuzzed budget and the output must
 * parse as one JSON object within the budget, with fields dropped strictly
 * in priority order and no more of them than needed. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto.h"

#define FUZZ_ENCODE_MARK 0xff

/* ---- decoding ---- */

static void fuzz_proto_check_req(const struct proto_req *req)
{
    FUZZ_CHECK((unsigned)req->action < PROTO_ACT_COUNT);
    for (int k = 0; k < PROTO_K_COUNT; k++) {
        const struct proto_field *f = &req->f[k];
        FUZZ_CHECK(f->type <= PROTO_T_OTHER);
        if (f->type != PROTO_T_STRING)
            continue;
        FUZZ_CHECK(f->len <= PROTO_STR_MAX);
        FUZZ_CHECK(f->s[f->len] == '\0');
        FUZZ_CHECK(strlen(f->s) == f->len); /* never an embedded NUL */
        FUZZ_CHECK(!f->too_long || f->len == PROTO_STR_MAX);
        /* Truncation may cut a character; an untruncated string is whole. */
        if (!f->too_long)
            FUZZ_CHECK(fuzz_utf8_ref((const uint8_t *)f->s, f->len));
    }
}

static int fuzz_proto_same_fields(const struct proto_req *a, const struct proto_req *b)
{
    if (a->action != b->action)
        return 0;
    for (int k = 0; k < PROTO_K_COUNT; k++) {
        const struct proto_field *x = &a->f[k], *y = &b->f[k];
        if (x->type != y->type || x->boolval != y->boolval || x->too_long != y->too_long ||
            x->len != y->len)
            return 0;
        if (x->type == PROTO_T_STRING && memcmp(x->s, y->s, x->len) != 0)
            return 0;
        if (x->type == PROTO_T_NUMBER && memcmp(&x->num, &y->num, sizeof x->num) != 0)
            return 0;
    }
    return 1;
}

/* The relay payload for one capacity/limit pair. */
static void fuzz_proto_relay(const char *buf, size_t len, const struct proto_req *plain, int plain_rc,
                             size_t cap, size_t max)
{
    char *scratch = malloc(len + 1);
    char *payload = cap ? malloc(cap) : NULL;
    struct proto_req *req = malloc(sizeof *req);
    if (!scratch || (cap && !payload) || !req)
        abort();
    int rc = proto_decode_relay(buf, len, scratch, len + 1, req, payload, cap, max);
    FUZZ_CHECK(rc == plain_rc);
    if (rc == 0) {
        fuzz_proto_check_req(req);
        FUZZ_CHECK(fuzz_proto_same_fields(req, plain));
        if (req->action != PROTO_ACT_RELAY)
            FUZZ_CHECK(!req->has_data);
        if (req->has_data && !req->data_too_large) {
            FUZZ_CHECK(req->data_len <= max);
            FUZZ_CHECK(req->data_len < cap);
            FUZZ_CHECK(payload[req->data_len] == '\0');
            FUZZ_CHECK(strlen(payload) == req->data_len);
            /* It is forwarded inside "relayed" as raw JSON: it must be
             * exactly one JSON value, and valid UTF-8 (WebSocket text). */
            FUZZ_CHECK(fuzz_utf8_ref((const uint8_t *)payload, req->data_len));
            char *copy = malloc(req->data_len + 1);
            if (!copy)
                abort();
            memcpy(copy, payload, req->data_len + 1);
            const char *end = NULL;
            cJSON *v = cJSON_ParseWithLengthOpts(copy, req->data_len + 1, &end, 1);
            FUZZ_CHECK(v != NULL && end == copy + req->data_len);
            cJSON_Delete(v);
            free(copy);
        }
    }
    free(req);
    free(payload);
    free(scratch);
}

static void fuzz_proto_decode(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so a read past the datagram is caught. */
    char *buf = malloc(size ? size : 1);
    char *scratch = malloc(size + 1);
    struct proto_req *req = malloc(sizeof *req);
    if (!buf || !scratch || !req)
        abort();
    if (size)
        memcpy(buf, data, size);

    int valid = proto_utf8_valid(data, size);
    FUZZ_CHECK(valid == fuzz_utf8_ref(data, size));

    int rc = proto_decode(buf, size, scratch, size + 1, req);
    FUZZ_CHECK(rc == 0 || (rc <= -1 && rc >= -PROTO_DROP_COUNT));
    if (size == 0)
        FUZZ_CHECK(rc == -1 - PROTO_DROP_NOT_JSON);
    else if (!valid)
        FUZZ_CHECK(rc == -1 - PROTO_DROP_INVALID_UTF8);
    if (rc == 0 || rc == -1 - PROTO_DROP_NOT_OBJECT) {
        /* What proto accepts as JSON, cJSON (a laxer parser) parses too. */
        char *copy = malloc(size + 1);
        if (!copy)
            abort();
        memcpy(copy, buf, size);
        copy[size] = '\0';
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(copy, size + 1, &end, 1);
        FUZZ_CHECK(root != NULL && end == copy + size);
        FUZZ_CHECK(cJSON_IsObject(root) == (rc == 0));
        cJSON_Delete(root);
        free(copy);
    }
    if (rc == 0)
        fuzz_proto_check_req(req);
    /* Too small a scratch buffer is refused, never overrun. */
    if (size > 0) {
        struct proto_req *r2 = malloc(sizeof *r2);
        if (!r2)
            abort();
        FUZZ_CHECK(proto_decode(buf, size, scratch, size, r2) == -1 - PROTO_DROP_TOO_LARGE);
        free(r2);
    }
    /* Payload capacities around the edges, and the tracker's own. */
    static const size_t caps[][2] = { { 0, 0 }, { 7, 7 }, { 8, 8 }, { 9, 4 }, { 24, 16 },
                                      { 96, 64 }, { 16384 + 64, 16384 } };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        fuzz_proto_relay(buf, size, req, rc, caps[i][0], caps[i][1]);
    free(req);
    free(scratch);
    free(buf);
}

/* ---- encoding ---- */

static const char *const fuzz_proto_actions[] = {
    "announceReceived", "pulseReceived", "pushReceived", "income", "error", "relayed",
    "alived", "expired", "a\"quote\\back", "",
};

/* Distinct keys: field i always gets key i, so lookups are unambiguous. */
static const char *const fuzz_proto_keys[] = {
    "shareId", "addr", "token", "ttl", "code", "message", "peeraddr", "peerShareId",
    "transports", "multiaddr", "status", "overriden", "k\"q", "k\\b", "", "nat", "candidates",
    "predicted",
};

static const char *const fuzz_proto_raws[] = {
    "0", "300", "-1.5e3", "true", "false", "null", "[\"udp\",\"ws\"]", "{\"a\":{\"b\":[1,2]}}", "\"x\"", "[]",
};

#define FUZZ_NKEYS (sizeof fuzz_proto_keys / sizeof fuzz_proto_keys[0])

struct fuzz_field_spec {
    char val[256];
    size_t len;
    int has_nul;
};

static size_t fuzz_proto_encoded_len(const struct proto_reply *r, int upto_prio)
{
    /* Length of r with KEEP fields and those of prio <= upto_prio, unbounded. */
    struct proto_reply k;
    proto_reply_init(&k, r->action, r->has_data);
    for (int i = 0; i < r->n; i++)
        if (r->f[i].prio == PROTO_KEEP || r->f[i].prio <= upto_prio)
            proto_reply_add(&k, r->f[i].key, r->f[i].val, r->f[i].len, r->f[i].kind, PROTO_KEEP);
    size_t cap = 1 << 16;
    char *out = malloc(cap);
    if (!out)
        abort();
    ssize_t n = proto_encode(&k, out, cap, cap);
    FUZZ_CHECK(n > 0);
    free(out);
    return (size_t)n;
}

static void fuzz_proto_encode(const uint8_t *data, size_t size)
{
    struct fuzz_in in = { data, size };
    struct proto_reply r;
    static struct fuzz_field_spec spec[PROTO_MAX_FIELDS + 2];
    uint8_t a = fuzz_u8(&in);
    const char *action = fuzz_proto_actions[a % (sizeof fuzz_proto_actions / sizeof fuzz_proto_actions[0])];
    int has_data = !(a & 0x80);
    size_t budget = fuzz_u16(&in) % 2048;
    size_t cap = budget + fuzz_u8(&in) * ((a & 0x40) ? 1 : 0);
    if (a & 0x20)
        cap = budget / 2; /* budget > cap: the encoder must clamp to cap */
    int nfields = fuzz_u8(&in) % (PROTO_MAX_FIELDS + 3);
    proto_reply_init(&r, action, has_data);
    for (int i = 0; i < nfields; i++) {
        uint8_t m = fuzz_u8(&in);
        enum proto_prio prio = (enum proto_prio)(m % PROTO_PRIO_COUNT);
        const char *key = fuzz_proto_keys[(size_t)i % FUZZ_NKEYS];
        if ((size_t)i >= FUZZ_NKEYS)
            key = "extra"; /* past the distinct keys: only when > PROTO_MAX_FIELDS */
        if (m & 0x80) {
            const char *raw = fuzz_proto_raws[(m >> 4 & 7) % (sizeof fuzz_proto_raws / sizeof fuzz_proto_raws[0])];
            proto_reply_add(&r, key, raw, strlen(raw), PROTO_RAW, prio);
            spec[i].len = 0;
            continue;
        }
        size_t n = fuzz_u8(&in);
        if (n > in.left)
            n = in.left;
        memcpy(spec[i].val, in.p, n);
        in.p += n, in.left -= n;
        /* Callers pass text taken from validated requests or formatted by
         * punchd: UTF-8. Keep the longest valid prefix. */
        while (n > 0 && !fuzz_utf8_ref((const uint8_t *)spec[i].val, n))
            n--;
        spec[i].len = n;
        spec[i].has_nul = memchr(spec[i].val, 0, n) != NULL;
        proto_reply_add(&r, key, spec[i].val, n, PROTO_STR, prio);
    }

    char *out = malloc(cap ? cap : 1); /* exact size: an overrun is caught */
    if (!out)
        abort();
    ssize_t n = proto_encode(&r, out, cap, budget);
    size_t limit = budget < cap ? budget : cap;
    if (n < 0) {
        /* Refused only when the never-dropped fields alone do not fit. */
        FUZZ_CHECK(fuzz_proto_encoded_len(&r, PROTO_KEEP) > limit);
        free(out);
        return;
    }
    FUZZ_CHECK((size_t)n <= limit);
    FUZZ_CHECK(fuzz_json_object(out, (size_t)n));

    char *copy = malloc((size_t)n + 1);
    if (!copy)
        abort();
    memcpy(copy, out, (size_t)n);
    copy[n] = '\0';
    cJSON *root = cJSON_Parse(copy);
    FUZZ_CHECK(root != NULL);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "action");
    FUZZ_CHECK(cJSON_IsString(act) && strcmp(act->valuestring, action) == 0);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "data");
    FUZZ_CHECK(has_data ? cJSON_IsObject(d) : d == NULL);
    if (has_data) {
        /* Which fields came out; the highest priority level kept. */
        int kept_level = 0, present[PROTO_MAX_FIELDS];
        for (int i = 0; i < r.n; i++) {
            const cJSON *v = NULL;
            for (const cJSON *it = d->child; it; it = it->next)
                if (it->string && strcmp(it->string, r.f[i].key) == 0)
                    v = it;
            present[i] = v != NULL;
            if (r.f[i].kind == PROTO_STR && v && !spec[i].has_nul)
                FUZZ_CHECK(cJSON_IsString(v) && strlen(v->valuestring) == r.f[i].len &&
                           memcmp(v->valuestring, r.f[i].val, r.f[i].len) == 0);
            if (present[i] && r.f[i].prio > kept_level)
                kept_level = r.f[i].prio;
        }
        int next_level = PROTO_PRIO_COUNT;
        for (int i = 0; i < r.n; i++) {
            /* Never-dropped fields always; others exactly up to a level. */
            int want = r.f[i].prio == PROTO_KEEP || r.f[i].prio <= kept_level;
            FUZZ_CHECK(present[i] == want);
            if (!want && r.f[i].prio < next_level)
                next_level = r.f[i].prio;
        }
        /* No more dropped than needed: the next level would not fit. */
        if (next_level < PROTO_PRIO_COUNT)
            FUZZ_CHECK(fuzz_proto_encoded_len(&r, next_level) > limit);
    }
    cJSON_Delete(root);
    free(copy);
    free(out);
}

int fuzz_proto_one(const uint8_t *data, size_t size)
{
    fuzz_init();
    fuzz_proto_decode(data, size);
    if (size > 0 && data[0] == FUZZ_ENCODE_MARK)
        fuzz_proto_encode(data + 1, size - 1);
    return 0;
}
