/* proto: decode untrusted requests, encode replies under a budget (see proto.h). */
#include "proto.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "proto_fast.h"

static const char *const proto_action_names[PROTO_ACT_COUNT] = {
    [PROTO_ACT_NONE] = "none",   [PROTO_ACT_ANNOUNCE] = "announce", [PROTO_ACT_PULSE] = "pulse",
    [PROTO_ACT_ALIVE] = "alive", [PROTO_ACT_PUSH] = "push",         [PROTO_ACT_RELAY] = "relay",
    [PROTO_ACT_PROBE] = "probe", [PROTO_ACT_UNKNOWN] = "unknown",
};

static const char *const proto_key_names[PROTO_K_COUNT] = {
    [PROTO_K_SHAREID] = "shareId", [PROTO_K_TOKEN] = "token",         [PROTO_K_IP] = "ip",
    [PROTO_K_PORT] = "port",       [PROTO_K_OVERRIDE] = "override", [PROTO_K_MULTIADDR] = "multiaddr",
    [PROTO_K_PUBKEY] = "pubkey",   [PROTO_K_COOKIE] = "cookie",     [PROTO_K_KEY] = "key",
};

const char *proto_drop_name(enum proto_drop d)
{
    static const char *const names[PROTO_DROP_COUNT] = {
        [PROTO_DROP_TOO_LARGE] = "too_large",
        [PROTO_DROP_INVALID_UTF8] = "invalid_utf8",
        [PROTO_DROP_NOT_JSON] = "not_json",
        [PROTO_DROP_NOT_OBJECT] = "not_object",
    };
    return (unsigned)d < PROTO_DROP_COUNT ? names[d] : "unknown";
}

const char *proto_action_name(enum proto_action a)
{
    return (unsigned)a < PROTO_ACT_COUNT ? proto_action_names[a] : "unknown";
}

int proto_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0; /* continuation byte, overlong lead (c0/c1) or > U+10FFFF */
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

static int proto_is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int proto_is_digit(char c) { return c >= '0' && c <= '9'; }

/* Length of the JSON number at s[0..len) per RFC 8259's grammar
 * (-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?), followed by a
 * delimiter; 0 if it is not one (cJSON also takes "01", "1." and "-.5"). */
static size_t proto_number_len(const char *s, size_t len)
{
    size_t i = 0;
    if (i < len && s[i] == '-')
        i++;
    if (i < len && s[i] == '0') {
        i++;
    } else if (i < len && s[i] >= '1' && s[i] <= '9') {
        while (i < len && proto_is_digit(s[i]))
            i++;
    } else {
        return 0;
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || !proto_is_digit(s[i]))
            return 0;
        while (i < len && proto_is_digit(s[i]))
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= len || !proto_is_digit(s[i]))
            return 0;
        while (i < len && proto_is_digit(s[i]))
            i++;
    }
    if (i < len && !strchr(" \t\r\n,]}", s[i]))
        return 0;
    return i;
}

/* Lexical pre-pass over the NUL-terminated copy s (len bytes) for what
 * cJSON accepts but JSON does not: a raw NUL anywhere, control characters
 * outside strings other than the four whitespace bytes, raw control
 * characters inside strings, malformed numbers and \u escapes. It also
 * rewrites each "\u0000" escape to "\uFFFD" in place, because cJSON would
 * end the C string there. */
static int proto_prepass(char *s, size_t len)
{
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0)
            return -1;
        if (!in_str) {
            if (c == '"') {
                in_str = 1;
            } else if (c == '-' || proto_is_digit((char)c)) {
                size_t n = proto_number_len(s + i, len - i);
                if (n == 0)
                    return -1;
                i += n - 1;
            } else if (c < 0x20 && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
                return -1;
            }
            continue;
        }
        if (c < 0x20)
            return -1;
        if (c == '"') {
            in_str = 0;
        } else if (c == '\\') {
            if (i + 1 >= len)
                return -1;
            if (s[i + 1] == 'u' && i + 5 < len && s[i + 2] == '0' && s[i + 3] == '0' &&
                s[i + 4] == '0' && s[i + 5] == '0') {
                memcpy(s + i + 2, "FFFD", 4);
            } else if (s[i + 1] == 'u') {
                for (size_t k = 2; k <= 5; k++)
                    if (i + k >= len || !proto_is_hex(s[i + k]))
                        return -1;
            }
            i++; /* skip the escaped character; \uXXXX digits are plain bytes */
        }
    }
    return 0;
}

static void proto_field_fill(struct proto_field *f, const cJSON *item)
{
    memset(f, 0, sizeof *f);
    if (!item)
        return;
    if (cJSON_IsString(item) && item->valuestring) {
        size_t n = strlen(item->valuestring);
        f->type = PROTO_T_STRING;
        if (n > PROTO_STR_MAX) {
            f->too_long = 1;
            n = PROTO_STR_MAX;
        }
        memcpy(f->s, item->valuestring, n);
        f->s[n] = '\0';
        f->len = (uint16_t)n;
    } else if (cJSON_IsBool(item)) {
        f->type = PROTO_T_BOOL;
        f->boolval = cJSON_IsTrue(item) ? 1 : 0;
    } else if (cJSON_IsNumber(item)) {
        f->type = PROTO_T_NUMBER;
        f->num = item->valuedouble;
    } else {
        f->type = PROTO_T_OTHER; /* null, object, array */
    }
}

/* "candidates": an array of at most PROTO_CANDIDATES_MAX endpoint strings. */
static void proto_candidates(struct proto_req *req, const cJSON *item)
{
    req->ncand = 0;
    req->cand = item ? PROTO_CAND_BAD : PROTO_CAND_ABSENT;
    if (!item || !cJSON_IsArray(item))
        return;
    const cJSON *e;
    cJSON_ArrayForEach(e, item)
    {
        if (req->ncand == PROTO_CANDIDATES_MAX || !cJSON_IsString(e) || !e->valuestring)
            return;
        const char *s = e->valuestring;
        if (addr_parse_endpoint(&req->cand_addr[req->ncand], s, strnlen(s, ADDR_STRLEN)) != 0)
            return;
        req->ncand++;
    }
    req->cand = PROTO_CAND_OK;
}

static enum proto_action proto_action_parse(const cJSON *item)
{
    if (!cJSON_IsString(item) || !item->valuestring)
        return PROTO_ACT_NONE;
    for (int a = PROTO_ACT_ANNOUNCE; a < PROTO_ACT_UNKNOWN; a++)
        if (strcmp(item->valuestring, proto_action_names[a]) == 0)
            return (enum proto_action)a;
    return PROTO_ACT_UNKNOWN;
}

int proto_decode(const char *buf, size_t len, char *scratch, size_t scratch_cap,
                 struct proto_req *req)
{
    return proto_decode_relay(buf, len, scratch, scratch_cap, req, NULL, 0, 0);
}

static int proto_decode_tree(const char *buf, size_t len, char *scratch, size_t scratch_cap,
                             struct proto_req *req, char *payload, size_t payload_cap,
                             size_t payload_max);

int proto_decode_cjson(const char *buf, size_t len, char *scratch, size_t scratch_cap,
                       struct proto_req *req)
{
    return proto_decode_tree(buf, len, scratch, scratch_cap, req, NULL, 0, 0);
}

/* Serialises a relay's "data" into payload, or flags it too large. */
static void proto_payload(struct proto_req *req, const cJSON *data, char *payload, size_t cap,
                          size_t max)
{
    if (!data || !payload || cap < 8)
        return;
    req->has_data = 1;
    /* cJSON may need a few bytes more than the result while printing. */
    if (cap > (size_t)INT32_MAX || !cJSON_PrintPreallocated((cJSON *)data, payload, (int)cap, 0)) {
        req->data_too_large = 1;
        return;
    }
    req->data_len = strlen(payload);
    if (req->data_len > max)
        req->data_too_large = 1;
}

int proto_decode_relay(const char *buf, size_t len, char *scratch, size_t scratch_cap,
                       struct proto_req *req, char *payload, size_t payload_cap, size_t payload_max)
{
    /* The fast path first (tracker.c decodes every request here). It never
     * takes a relay request (its "data" needs the tree), so payload is
     * never needed; and it only runs where the cJSON path would not refuse
     * the scratch buffer, so every drop reason stays the cJSON path's. */
    if (len > 0 && len < scratch_cap && proto_fast_decode(buf, len, req) == 0)
        return 0;
    return proto_decode_tree(buf, len, scratch, scratch_cap, req, payload, payload_cap, payload_max);
}

/* The cJSON path: UTF-8 check, lexical pre-pass, cJSON, copy, free. */
static int proto_decode_tree(const char *buf, size_t len, char *scratch, size_t scratch_cap,
                             struct proto_req *req, char *payload, size_t payload_cap,
                             size_t payload_max)
{
    req->has_data = 0;
    req->data_too_large = 0;
    req->data_len = 0;
    if (len == 0 || len + 1 > scratch_cap)
        return -1 - (len == 0 ? PROTO_DROP_NOT_JSON : PROTO_DROP_TOO_LARGE);
    if (!proto_utf8_valid((const unsigned char *)buf, len))
        return -1 - PROTO_DROP_INVALID_UTF8;
    memcpy(scratch, buf, len);
    scratch[len] = '\0';
    if (proto_prepass(scratch, len) != 0)
        return -1 - PROTO_DROP_NOT_JSON;
    /* The NUL must lie inside the length cJSON is given (c-practice.md). */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(scratch, len + 1, &end, 1);
    if (!root)
        return -1 - PROTO_DROP_NOT_JSON;
    if (end != scratch + len) {
        cJSON_Delete(root);
        return -1 - PROTO_DROP_NOT_JSON;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -1 - PROTO_DROP_NOT_OBJECT;
    }
    req->action = proto_action_parse(cJSON_GetObjectItemCaseSensitive(root, "action"));
    for (int k = 0; k < PROTO_K_COUNT; k++)
        proto_field_fill(&req->f[k], cJSON_GetObjectItemCaseSensitive(root, proto_key_names[k]));
    proto_candidates(req, cJSON_GetObjectItemCaseSensitive(root, "candidates"));
    if (req->action == PROTO_ACT_RELAY)
        proto_payload(req, cJSON_GetObjectItemCaseSensitive(root, "data"), payload, payload_cap,
                      payload_max);
    cJSON_Delete(root);
    return 0;
}

static int proto_addr_same(const struct addr *a, const struct addr *b)
{
    return a->family == b->family && a->unused == b->unused && a->port == b->port &&
           memcmp(a->ip, b->ip, sizeof a->ip) == 0;
}

int proto_req_same(const struct proto_req *a, const struct proto_req *b)
{
    if (a->action != b->action || a->cand != b->cand || a->ncand != b->ncand ||
        a->has_data != b->has_data || a->data_too_large != b->data_too_large ||
        a->data_len != b->data_len)
        return 0;
    for (int i = 0; i < PROTO_CANDIDATES_MAX; i++)
        if (!proto_addr_same(&a->cand_addr[i], &b->cand_addr[i]))
            return 0;
    for (int k = 0; k < PROTO_K_COUNT; k++) {
        const struct proto_field *x = &a->f[k], *y = &b->f[k];
        if (x->type != y->type || x->boolval != y->boolval || x->too_long != y->too_long ||
            x->len != y->len || memcmp(&x->num, &y->num, sizeof x->num) != 0 ||
            memcmp(x->s, y->s, sizeof x->s) != 0)
            return 0;
    }
    return 1;
}

/* ---- replies ---- */

void proto_reply_init(struct proto_reply *r, const char *action, int has_data)
{
    r->action = action;
    r->has_data = has_data;
    r->n = 0;
}

void proto_reply_add(struct proto_reply *r, const char *key, const char *val, size_t len,
                     enum proto_kind kind, enum proto_prio prio)
{
    if (r->n >= PROTO_MAX_FIELDS)
        return;
    struct proto_out_field *f = &r->f[r->n++];
    f->key = key;
    f->val = val;
    f->len = len;
    f->kind = (uint8_t)kind;
    f->prio = (uint8_t)prio;
}

void proto_reply_str(struct proto_reply *r, const char *key, const char *val, enum proto_prio prio)
{
    proto_reply_add(r, key, val, strlen(val), PROTO_STR, prio);
}

/* A bounded writer: sets overflow instead of writing past cap. */
struct proto_w {
    char *buf;
    size_t cap;
    size_t len;
    int overflow;
};

static void proto_w_raw(struct proto_w *w, const char *s, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void proto_w_str(struct proto_w *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    proto_w_raw(w, "\"", 1);
    size_t run = 0; /* start of the current run of bytes needing no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        proto_w_raw(w, s + run, i - run);
        run = i + 1;
        char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            proto_w_raw(w, esc, 2);
        } else {
            proto_w_raw(w, esc, 6);
        }
    }
    proto_w_raw(w, s + run, n - run);
    proto_w_raw(w, "\"", 1);
}

static size_t proto_encode_with(const struct proto_reply *r, char *out, size_t cap, int max_prio,
                                int *overflow)
{
    struct proto_w w = { out, cap, 0, 0 };
    proto_w_raw(&w, "{\"action\":", 10);
    proto_w_str(&w, r->action, strlen(r->action));
    if (r->has_data) {
        int first = 1;
        proto_w_raw(&w, ",\"data\":{", 9);
        for (int i = 0; i < r->n; i++) {
            const struct proto_out_field *f = &r->f[i];
            if (f->prio != PROTO_KEEP && f->prio > max_prio)
                continue;
            if (!first)
                proto_w_raw(&w, ",", 1);
            first = 0;
            proto_w_str(&w, f->key, strlen(f->key));
            proto_w_raw(&w, ":", 1);
            if (f->kind == PROTO_RAW)
                proto_w_raw(&w, f->val, f->len);
            else
                proto_w_str(&w, f->val, f->len);
        }
        proto_w_raw(&w, "}", 1);
    }
    proto_w_raw(&w, "}", 1);
    *overflow = w.overflow;
    return w.len;
}

/* Bytes s[0..n) take as a JSON string, quotes included (as proto_w_str writes it). */
static size_t proto_str_len(const char *s, size_t n)
{
    size_t len = n + 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20)
            len += 5;
        else if (c == '"' || c == '\\')
            len += 1;
    }
    return len;
}

ssize_t proto_encode(const struct proto_reply *r, char *out, size_t cap, size_t budget)
{
    if (budget > cap)
        budget = cap;
    /* Sizes first: which fields fit is decided before writing, so a reply is
     * written once (encoding it once per priority level cost a third of a
     * pulse's CPU). {"action":A} or {"action":A,"data":{F,F}} */
    size_t sum = 10 + proto_str_len(r->action, strlen(r->action)) + 1 + (r->has_data ? 10 : 0);
    size_t by_prio[PROTO_PRIO_COUNT] = { 0 };
    unsigned count[PROTO_PRIO_COUNT] = { 0 };
    for (int i = 0; r->has_data && i < r->n; i++) { /* without data, no field is written */
        const struct proto_out_field *f = &r->f[i];
        size_t v = f->kind == PROTO_RAW ? f->len : proto_str_len(f->val, f->len);
        by_prio[f->prio] += proto_str_len(f->key, strlen(f->key)) + 1 + v; /* "key":value */
        count[f->prio]++;
    }
    /* max_prio = highest priority still included (PROTO_KEEP = 0 always). */
    int max_prio = -1;
    unsigned fields = 0;
    for (int p = 0; p < PROTO_PRIO_COUNT; p++) {
        sum += by_prio[p];
        fields += count[p];
        if (sum + (fields ? fields - 1 : 0) > budget) /* commas between fields */
            break;
        max_prio = p;
    }
    if (max_prio < 0)
        return -1;
    int overflow;
    size_t n = proto_encode_with(r, out, budget, max_prio, &overflow);
    return overflow ? -1 : (ssize_t)n;
}
