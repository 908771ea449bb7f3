/* test_tracker: the sobani protocol over a fake clock and a capturing sink — announce, pulse, alive, push, errors, expiry, the 4x rule. */
#include "unit.h"

#include <cjson/cJSON.h>
#include <netinet/in.h>

#include "addr.h"
#include "config.h"
#include "ids.h"
#include "proto.h"
#include "registry.h"
#include "stats.h"
#include "tracker.h"

/* ---- the environment: a tracker, a fake clock, a sink that records ---- */

#define SENT_MAX 8
#define SENT_BUF 2048

struct sent {
    struct addr to;
    uint8_t local;
    size_t len;
    char buf[SENT_BUF];
};

struct env {
    struct config cfg;
    struct tracker *t;
    uint64_t now;          /* fake monotonic milliseconds */
    int n;                 /* datagrams sent by the last request */
    struct sent s[SENT_MAX];
};

static void sink(void *ctx, const struct addr *to, uint8_t local, const char *buf, size_t len)
{
    struct env *e = ctx;
    if (e->n >= SENT_MAX)
        fail_msg("more than %d datagrams sent for one request", SENT_MAX);
    if (len >= SENT_BUF)
        fail_msg("datagram of %zu bytes", len);
    struct sent *s = &e->s[e->n++];
    s->to = *to;
    s->local = local;
    s->len = len;
    memcpy(s->buf, buf, len);
    s->buf[len] = '\0';
}

static const char key_hex[] = "5f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";

static struct env *env_new(long compat, long max_peers, long max_datagram, const char *key)
{
    struct env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    char err[256];
    config_defaults(&e->cfg);
    /* Issue 5's abuse limits are tested on their own (test_tracker_limits.c). */
    e->cfg.rate_requests_per_sec = e->cfg.rate_income_per_sec = 0;
    e->cfg.rate_response_bytes_per_sec = 0;
    e->cfg.retry_threshold = 1;
    e->cfg.compat = compat;
    e->cfg.max_peers = max_peers;
    e->cfg.max_datagram = max_datagram;
    if (key)
        snprintf(e->cfg.token_key_hex, sizeof e->cfg.token_key_hex, "%s", key);
    if (config_finish(&e->cfg, err, sizeof err) != 0)
        fail_msg("config_finish: %s", err);
    e->t = tracker_new(&e->cfg);
    assert_non_null(e->t);
    tracker_set_sink(e->t, sink, e);
    e->now = 5000000; /* any start: the clock is monotonic, not wall time */
    return e;
}

static void env_free(struct env *e)
{
    tracker_free(e->t);
    free(e);
}

static int setup_readme(void **state)
{
    *state = env_new(CONFIG_COMPAT_README, 64, 1472, NULL);
    return 0;
}

static int setup_app(void **state)
{
    *state = env_new(CONFIG_COMPAT_SOBANI_APP, 64, 1472, NULL);
    return 0;
}

static int teardown_env(void **state)
{
    env_free(*state);
    return 0;
}

static struct tracker_src src_of(const char *ip, uint16_t port, uint8_t local)
{
    struct tracker_src s;
    memset(&s, 0, sizeof s);
    if (addr_parse_ip(&s.addr, ip, port) != 0)
        fail_msg("bad test address %s", ip);
    s.local = local;
    return s;
}

/* Hands one datagram in and checks what every request must respect: each
 * datagram sent is one JSON object with a string action, none is larger than
 * max_datagram, and none sent back to the requester is larger than 4x the
 * request. */
static int req_n(struct env *e, const struct tracker_src *src, const char *buf, size_t len)
{
    e->n = 0;
    int rc = tracker_on_datagram(e->t, buf, len, src, e->now);
    for (int k = 0; k < e->n; k++) {
        const struct sent *s = &e->s[k];
        if (s->len > (size_t)e->cfg.max_datagram)
            fail_msg("sent %zu bytes > max_datagram %ld: %s", s->len, e->cfg.max_datagram, s->buf);
        if (addr_equal(&s->to, &src->addr) && s->len > 4 * len)
            fail_msg("reply of %zu bytes to a %zu-byte request (4x rule): %s", s->len, len, s->buf);
        cJSON *j = cJSON_ParseWithLength(s->buf, s->len);
        if (!j || !cJSON_IsObject(j) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "action")))
            fail_msg("sent datagram is not a JSON object with an action: %s", s->buf);
        cJSON_Delete(j);
    }
    return rc;
}

static int req(struct env *e, const struct tracker_src *src, const char *json)
{
    return req_n(e, src, json, strlen(json));
}

/* {<body>,"pad":"xxx..."} of exactly total bytes (or {<body>} if that is longer). */
static const char *padded(const char *body, size_t total)
{
    static char bufs[4][SENT_BUF];
    static int slot;
    char *b = bufs[slot++ % 4];
    size_t bl = strlen(body);
    if (total < bl + 11) {
        snprintf(b, SENT_BUF, "{%s}", body);
        return b;
    }
    size_t pad = total - bl - 11;
    assert_true(total < SENT_BUF);
    int n = snprintf(b, SENT_BUF, "{%s,\"pad\":\"", body);
    memset(b + n, 'x', pad);
    memcpy(b + n + pad, "\"}", 3);
    assert_int_equal(strlen(b), total);
    return b;
}

/* ---- reading what was sent ---- */

static cJSON *sent_json(const struct env *e, int k)
{
    assert_true(k >= 0 && k < e->n);
    cJSON *j = cJSON_ParseWithLength(e->s[k].buf, e->s[k].len);
    assert_non_null(j);
    return j;
}

static void expect_action(const struct env *e, int k, const char *action)
{
    cJSON *j = sent_json(e, k);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "action");
    if (!cJSON_IsString(a) || strcmp(a->valuestring, action) != 0)
        fail_msg("expected action %s, got %s", action, e->s[k].buf);
    cJSON_Delete(j);
}

/* data.<field> of datagram k as a string into out: 1 if present (and a string), 0 if absent. */
static int dstr(const struct env *e, int k, const char *field, char *out, size_t cap)
{
    cJSON *j = sent_json(e, k);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "data");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(d, field);
    int present = f != NULL;
    if (present) {
        if (!cJSON_IsString(f))
            fail_msg("data.%s is not a string: %s", field, e->s[k].buf);
        if (out)
            snprintf(out, cap, "%s", f->valuestring);
    }
    cJSON_Delete(j);
    return present;
}

static int dhas(const struct env *e, int k, const char *field)
{
    cJSON *j = sent_json(e, k);
    int has = cJSON_HasObjectItem(cJSON_GetObjectItemCaseSensitive(j, "data"), field);
    cJSON_Delete(j);
    return has;
}

/* Number of members of data, or -1 without data. */
static int dcount(const struct env *e, int k)
{
    cJSON *j = sent_json(e, k);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "data");
    int n = cJSON_IsObject(d) ? cJSON_GetArraySize(d) : -1;
    cJSON_Delete(j);
    return n;
}

static void expect_dstr(const struct env *e, int k, const char *field, const char *want)
{
    char got[512];
    if (!dstr(e, k, field, got, sizeof got))
        fail_msg("data.%s missing: %s", field, e->s[k].buf);
    if (strcmp(got, want) != 0)
        fail_msg("data.%s = \"%s\", expected \"%s\"", field, got, want);
}

/* Exactly one datagram was sent, to src (from src's local address), with this action. */
static void expect_one_reply(const struct env *e, const struct tracker_src *src, const char *action)
{
    if (e->n != 1)
        fail_msg("%d datagrams sent, expected 1 %s", e->n, action);
    assert_true(addr_equal(&e->s[0].to, &src->addr));
    assert_int_equal(e->s[0].local, src->local);
    expect_action(e, 0, action);
}

static void expect_error(const struct env *e, const struct tracker_src *src, const char *code)
{
    expect_one_reply(e, src, "error");
    expect_dstr(e, 0, "code", code);
}

/* Index of the single datagram sent to dst. */
static int sent_to(const struct env *e, const struct tracker_src *dst)
{
    int found = -1;
    for (int k = 0; k < e->n; k++) {
        if (addr_equal(&e->s[k].to, &dst->addr)) {
            if (found >= 0)
                fail_msg("two datagrams to the same address");
            found = k;
        }
    }
    if (found < 0) {
        char a[ADDR_STRLEN];
        addr_format(&dst->addr, a, sizeof a);
        fail_msg("nothing sent to %s", a);
    }
    return found;
}

static const char *announce_action(const struct env *e)
{
    return e->cfg.compat == CONFIG_COMPAT_SOBANI_APP ? "announced" : "announceReceived";
}

/* Announces src with a 64-byte request (so addr, token and ttl fit) and
 * returns its shareId and token. */
static void announce(struct env *e, const struct tracker_src *src, char id[IDS_LEN + 1],
                     char token[IDS_TOKEN_HEXLEN + 1])
{
    assert_int_equal(req(e, src, padded("\"action\":\"announce\"", 64)), 0);
    expect_one_reply(e, src, announce_action(e));
    char tmp[64];
    if (!dstr(e, 0, "shareId", tmp, sizeof tmp))
        fail_msg("no shareId: %s", e->s[0].buf);
    assert_true(ids_valid(tmp, strlen(tmp)));
    memcpy(id, tmp, IDS_LEN + 1);
    if (token) {
        if (!dstr(e, 0, "token", tmp, sizeof tmp))
            fail_msg("no token in a 64-byte announce reply: %s", e->s[0].buf);
        assert_int_equal(strlen(tmp), IDS_TOKEN_HEXLEN);
        memcpy(token, tmp, IDS_TOKEN_HEXLEN + 1);
    }
}

static const char *push_body(const char *id)
{
    static char b[1024];
    snprintf(b, sizeof b, "\"action\":\"push\",\"shareId\":\"%s\"", id);
    return b;
}

/* {"action":"push","shareId":id} */
static const char *push_req(const char *id)
{
    static char b[1100];
    snprintf(b, sizeof b, "{%s}", push_body(id));
    return b;
}

/* ---- announce ---- */

static void test_announce_bare_only_shareid(void **state)
{
    struct env *e = *state;
    /* A long address: addr does not fit 4 x 21 bytes, so only shareId does. */
    struct tracker_src a = src_of("192.168.100.200", 50000, 3);
    const char *bare = "{\"action\":\"announce\"}";
    assert_int_equal(strlen(bare), 21);
    assert_int_equal(req(e, &a, bare), 0);
    expect_one_reply(e, &a, "announceReceived");
    assert_int_equal(dcount(e, 0), 1);
    char id[64];
    assert_true(dstr(e, 0, "shareId", id, sizeof id));
    assert_true(ids_valid(id, strlen(id)));
    char want[128];
    snprintf(want, sizeof want, "{\"action\":\"announceReceived\",\"data\":{\"shareId\":\"%s\"}}", id);
    assert_string_equal(e->s[0].buf, want);
    assert_int_equal(tracker_stats(e->t)->announced, 1);
    assert_int_equal(registry_count(tracker_registry(e->t)), 1);
}

static void test_announce_bare_drop_order(void **state)
{
    struct env *e = *state;
    /* Whatever fits of addr, token, ttl is a prefix of that order (ttl goes
     * first, addr last) for every request size. */
    for (size_t total = 21; total <= 80; total++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.%zu.0.1", total);
        struct tracker_src a = src_of(ip, (uint16_t)(1000 + total), 1);
        assert_int_equal(req(e, &a, padded("\"action\":\"announce\"", total)), 0);
        expect_one_reply(e, &a, "announceReceived");
        assert_true(dhas(e, 0, "shareId"));
        int has_addr = dhas(e, 0, "addr"), has_tok = dhas(e, 0, "token"), has_ttl = dhas(e, 0, "ttl");
        if ((has_tok && !has_addr) || (has_ttl && !has_tok))
            fail_msg("request of %zu bytes: fields out of drop order: %s", total, e->s[0].buf);
        if (total >= 64 && !(has_addr && has_tok && has_ttl))
            fail_msg("64-byte request should get addr, token and ttl: %s", e->s[0].buf);
    }
    /* A short address fits a bare announce (59 + 25 = 84 bytes). */
    struct tracker_src s = src_of("127.0.0.1", 40000, 1);
    assert_int_equal(req(e, &s, "{\"action\":\"announce\"}"), 0);
    expect_one_reply(e, &s, "announceReceived");
    expect_dstr(e, 0, "addr", "127.0.0.1:40000");
    assert_false(dhas(e, 0, "token"));
    assert_false(dhas(e, 0, "ttl"));
}

static void test_announce_padded_full(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("203.0.113.77", 61000, 4);
    assert_int_equal(req(e, &a, padded("\"action\":\"announce\"", 64)), 0);
    expect_one_reply(e, &a, "announceReceived");
    char id[64], tok[64], addr[64];
    assert_true(dstr(e, 0, "shareId", id, sizeof id));
    assert_true(ids_valid(id, strlen(id)));
    assert_true(dstr(e, 0, "addr", addr, sizeof addr));
    assert_string_equal(addr, "203.0.113.77:61000");
    assert_true(dstr(e, 0, "token", tok, sizeof tok));
    char want_tok[IDS_TOKEN_HEXLEN + 1];
    ids_token(&e->cfg.token_key, id, want_tok);
    assert_string_equal(tok, want_tok);
    assert_int_equal(ids_token_verify(&e->cfg.token_key, id, tok, strlen(tok)), 0);
    cJSON *j = sent_json(e, 0);
    const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"), "ttl");
    assert_true(cJSON_IsNumber(ttl));
    assert_true(ttl->valuedouble == 300.0);
    cJSON_Delete(j);

    /* IPv6 sources print bracketed. */
    struct tracker_src b = src_of("2001:db8::1", 5000, 2);
    assert_int_equal(req(e, &b, padded("\"action\":\"announce\"", 80)), 0);
    expect_one_reply(e, &b, "announceReceived");
    expect_dstr(e, 0, "addr", "[2001:db8::1]:5000");
    char id2[64];
    assert_true(dstr(e, 0, "shareId", id2, sizeof id2));
    assert_string_not_equal(id, id2);
    /* The registry holds them under their ids and addresses. */
    struct registry *r = tracker_registry(e->t);
    assert_int_equal(registry_find_id(r, id, IDS_LEN), registry_find_addr(r, &a.addr));
    assert_int_equal(registry_peer(r, registry_find_addr(r, &b.addr))->local, 2);
}

static void test_announce_same_address_same_id(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("198.51.100.1", 7000, 1), b = src_of("198.51.100.1", 7001, 1);
    char id1[9], id2[9], id3[9], t1[33], t2[33];
    announce(e, &a, id1, t1);
    e->now += 200 * 1000;
    announce(e, &a, id2, t2);
    assert_string_equal(id1, id2);
    assert_string_equal(t1, t2);
    assert_int_equal(tracker_stats(e->t)->announced, 1);
    /* A bare re-announce too. */
    assert_int_equal(req(e, &a, "{\"action\":\"announce\"}"), 0);
    expect_dstr(e, 0, "shareId", id1);
    /* Another port is another peer. */
    announce(e, &b, id3, NULL);
    assert_string_not_equal(id1, id3);
    assert_int_equal(registry_count(tracker_registry(e->t)), 2);

    /* The re-announce at +200 s refreshed a: it outlives its first ttl. */
    e->now += 150 * 1000; /* 350 s after the first announce */
    assert_int_equal(tracker_expire(e->t, e->now, 100), 0);
    e->now += 200 * 1000;
    assert_int_equal(tracker_expire(e->t, e->now, 100), 2);
}

static void test_announce_id_not_from_address(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("198.51.100.9", 7000, 1);
    char id1[9], id2[9];
    announce(e, &a, id1, NULL);
    e->now += 300 * 1000;
    assert_int_equal(tracker_expire(e->t, e->now, 100), 1);
    announce(e, &a, id2, NULL);
    assert_string_not_equal(id1, id2); /* fresh random id for the same address */
}

/* ---- push ---- */

static void test_push_both_sides(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("203.0.113.10", 40001, 3), b = src_of("2001:db8::20", 40002, 5);
    char ida[9], idb[9];
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, NULL);

    assert_int_equal(req(e, &a, push_req(idb)), 0);
    assert_int_equal(e->n, 2);
    int kb = sent_to(e, &b), ka = sent_to(e, &a);
    /* To B: income, from the local address B talks to, naming A. */
    assert_int_equal(e->s[kb].local, 5);
    expect_action(e, kb, "income");
    expect_dstr(e, kb, "peeraddr", "203.0.113.10:40001");
    expect_dstr(e, kb, "peerShareId", ida);
    /* To A: pushReceived, from A's local address, naming B. */
    assert_int_equal(e->s[ka].local, 3);
    expect_action(e, ka, "pushReceived");
    expect_dstr(e, ka, "peeraddr", "[2001:db8::20]:40002");
    expect_dstr(e, ka, "peerShareId", idb);
    assert_int_equal(tracker_stats(e->t)->pushes, 1);

    /* And the other way round. */
    assert_int_equal(req(e, &b, push_req(ida)), 0);
    assert_int_equal(e->n, 2);
    ka = sent_to(e, &a);
    kb = sent_to(e, &b);
    expect_action(e, ka, "income");
    assert_int_equal(e->s[ka].local, 3);
    expect_dstr(e, ka, "peeraddr", "[2001:db8::20]:40002");
    expect_dstr(e, ka, "peerShareId", idb);
    expect_action(e, kb, "pushReceived");
    assert_int_equal(e->s[kb].local, 5);
    expect_dstr(e, kb, "peerShareId", ida);
    assert_int_equal(tracker_stats(e->t)->pushes, 2);
    assert_int_equal(tracker_stats(e->t)->requests[STATS_UDP][PROTO_ACT_PUSH], 2);
}

static void test_push_error_order(void **state)
{
    struct env *e = *state;
    const struct stats *st = tracker_stats(e->t);
    struct tracker_src a = src_of("203.0.113.1", 1111, 1), b = src_of("203.0.113.2", 2222, 2);
    struct tracker_src stranger = src_of("203.0.113.3", 3333, 3);
    char ida[9], idb[9];
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, NULL);

    /* 1. field types first, even from a sender that is not announced. */
    assert_int_equal(req(e, &stranger, "{\"action\":\"push\",\"shareId\":12345678}"), 0);
    expect_error(e, &stranger, "badRequest");
    assert_int_equal(req(e, &stranger, "{\"action\":\"push\"}"), 0);
    expect_error(e, &stranger, "badRequest");
    assert_int_equal(req(e, &stranger, "{\"action\":\"push\",\"shareId\":{\"$ne\":null}}"), 0);
    expect_error(e, &stranger, "badRequest");
    /* 2. then the sender, even for a target that does not exist. */
    assert_int_equal(req(e, &stranger, push_req(idb)), 0);
    expect_error(e, &stranger, "notAnnounced");
    assert_int_equal(req(e, &stranger, push_req("nobody00")), 0);
    expect_error(e, &stranger, "notAnnounced");
    /* 3. then the target. */
    assert_int_equal(req(e, &a, "{\"action\":\"push\",\"shareId\":null}"), 0);
    expect_error(e, &a, "badRequest");
    assert_int_equal(req(e, &a, "{\"action\":\"push\",\"shareId\":true}"), 0);
    expect_error(e, &a, "badRequest");
    assert_int_equal(req(e, &a, "{\"action\":\"push\",\"shareId\":[\"x\"]}"), 0);
    expect_error(e, &a, "badRequest");
    assert_int_equal(req(e, &a, push_req("nobody00")), 0);
    expect_error(e, &a, "unknownShareId");
    assert_int_equal(req(e, &a, push_req(ida)), 0); /* oneself */
    expect_error(e, &a, "unknownShareId");
    assert_int_equal(req(e, &a, push_req("")), 0);
    expect_error(e, &a, "unknownShareId");
    assert_int_equal(req(e, &a, push_req("short")), 0);
    expect_error(e, &a, "unknownShareId");
    char longer[16];
    snprintf(longer, sizeof longer, "%sX", idb); /* a live id with a byte more */
    assert_int_equal(req(e, &a, push_req(longer)), 0);
    expect_error(e, &a, "unknownShareId");
    char wrongcase[9];
    memcpy(wrongcase, idb, 9);
    for (int i = 0; i < 8; i++)
        if ((wrongcase[i] >= 'a' && wrongcase[i] <= 'z') || (wrongcase[i] >= 'A' && wrongcase[i] <= 'Z'))
            wrongcase[i] ^= 0x20;
    if (strcmp(wrongcase, idb) != 0) {
        assert_int_equal(req(e, &a, push_req(wrongcase)), 0);
        expect_error(e, &a, "unknownShareId");
    }
    char huge[600];
    memset(huge, 'A', 400);
    huge[400] = '\0';
    assert_int_equal(req(e, &a, push_req(huge)), 0);
    expect_error(e, &a, "unknownShareId");
    assert_int_equal(req(e, &a, "{\"action\":\"push\",\"shareId\":\"\\u0000\\u0000\\u0000\"}"), 0);
    expect_error(e, &a, "unknownShareId");

    assert_int_equal(st->errors[STATS_E_BAD_REQUEST], 6);
    assert_int_equal(st->errors[STATS_E_NOT_ANNOUNCED], 2);
    assert_int_equal(st->errors[STATS_E_UNKNOWN_SHARE_ID], 7 + (strcmp(wrongcase, idb) != 0));
    assert_int_equal(st->pushes, 0);
    /* Nothing reached B in all that. */
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    assert_int_equal(e->n, 2);
}

/* ---- pulse ---- */

static void test_pulse_basic(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("203.0.113.50", 5050, 7), x = src_of("203.0.113.51", 5051, 0);
    assert_int_equal(req(e, &x, "{\"action\":\"pulse\"}"), 0);
    expect_error(e, &x, "notAnnounced");

    char id[9];
    announce(e, &a, id, NULL);
    const char *bare = "{\"action\":\"pulse\"}";
    assert_int_equal(strlen(bare), 18);
    assert_int_equal(req(e, &a, bare), 0);
    expect_one_reply(e, &a, "pulseReceived");
    /* The documented reply, strings and all, fits 4 x 18 bytes. */
    assert_string_equal(e->s[0].buf,
                        "{\"action\":\"pulseReceived\",\"data\":{\"status\":\"0\",\"overriden\":\"false\"}}");
    /* A shareId string (not true) is accepted and ignored. */
    assert_int_equal(req(e, &a, "{\"action\":\"pulse\",\"shareId\":\"whatever\"}"), 0);
    expect_one_reply(e, &a, "pulseReceived");
    expect_dstr(e, 0, "overriden", "false");
    assert_false(dhas(e, 0, "shareId"));
    assert_int_equal(tracker_stats(e->t)->requests[STATS_UDP][PROTO_ACT_PULSE], 3);
}

static void test_pulse_override_with_token(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("203.0.113.60", 6000, 1), b = src_of("198.51.100.61", 6001, 2);
    char ida[9], idb[9], tokb[33], body[256];
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, tokb);

    /* Number port. */
    snprintf(body, sizeof body,
             "{\"action\":\"pulse\",\"override\":true,\"ip\":\"9.9.9.9\",\"port\":1234,\"token\":\"%s\"}",
             tokb);
    assert_int_equal(req(e, &b, body), 0);
    expect_one_reply(e, &b, "pulseReceived");
    expect_dstr(e, 0, "status", "0");
    expect_dstr(e, 0, "overriden", "true");

    /* Others are given the override; punchd keeps talking to the observed address. */
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    assert_int_equal(e->n, 2);
    int ka = sent_to(e, &a), kb = sent_to(e, &b);
    expect_dstr(e, ka, "peeraddr", "9.9.9.9:1234");
    expect_action(e, kb, "income");
    assert_int_equal(e->s[kb].local, 2);
    assert_int_equal(req(e, &b, push_req(ida)), 0);
    ka = sent_to(e, &a);
    expect_action(e, ka, "income");
    expect_dstr(e, ka, "peeraddr", "9.9.9.9:1234");
    /* B is still keyed by where it talks from. */
    assert_int_equal(req(e, &b, "{\"action\":\"alive\"}"), 0);
    expect_one_reply(e, &b, "alived");
    struct tracker_src ov = src_of("9.9.9.9", 1234, 0);
    assert_int_equal(req(e, &ov, "{\"action\":\"alive\"}"), 0);
    expect_error(e, &ov, "notAnnounced");

    /* String port, IPv6 ip. */
    snprintf(body, sizeof body,
             "{\"action\":\"pulse\",\"override\":true,\"ip\":\"2001:db8::9\",\"port\":\"4321\",\"token\":\"%s\"}",
             tokb);
    assert_int_equal(req(e, &b, body), 0);
    expect_dstr(e, 0, "overriden", "true");
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    expect_dstr(e, sent_to(e, &a), "peeraddr", "[2001:db8::9]:4321");
    /* A v4-mapped ip is given out as plain IPv4. */
    snprintf(body, sizeof body,
             "{\"action\":\"pulse\",\"override\":true,\"ip\":\"::ffff:8.8.4.4\",\"port\":\"65535\",\"token\":\"%s\"}",
             tokb);
    assert_int_equal(req(e, &b, body), 0);
    expect_dstr(e, 0, "overriden", "true");
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    expect_dstr(e, sent_to(e, &a), "peeraddr", "8.8.4.4:65535");
    /* Override false with a valid token changes nothing. */
    snprintf(body, sizeof body,
             "{\"action\":\"pulse\",\"override\":false,\"ip\":\"1.1.1.1\",\"port\":1,\"token\":\"%s\"}", tokb);
    assert_int_equal(req(e, &b, body), 0);
    expect_dstr(e, 0, "overriden", "false");
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    expect_dstr(e, sent_to(e, &a), "peeraddr", "8.8.4.4:65535");
}

static void test_pulse_override_without_token(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("203.0.113.70", 7000, 1), b = src_of("198.51.100.71", 7001, 2);
    char ida[9], idb[9], toka[33], body[256];
    announce(e, &a, ida, toka);
    announce(e, &b, idb, NULL);

    static const char *const forms[] = {
        "{\"action\":\"pulse\",\"override\":true,\"ip\":\"9.9.9.9\",\"port\":1234}",
        "{\"action\":\"pulse\",\"override\":true,\"ip\":\"9.9.9.9\",\"port\":1234,\"token\":\"\"}",
        "{\"action\":\"pulse\",\"override\":true,\"ip\":\"9.9.9.9\",\"port\":1234,"
        "\"token\":\"00000000000000000000000000000000\"}",
        /* without a token even a bad ip is no error: the override is just not done */
        "{\"action\":\"pulse\",\"override\":true,\"ip\":\"localhost\",\"port\":0}",
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        assert_int_equal(req(e, &b, forms[i]), 0);
        expect_one_reply(e, &b, "pulseReceived");
        expect_dstr(e, 0, "status", "0");
        expect_dstr(e, 0, "overriden", "false");
    }
    /* Someone else's token does not work either. */
    snprintf(body, sizeof body,
             "{\"action\":\"pulse\",\"override\":true,\"ip\":\"9.9.9.9\",\"port\":1234,\"token\":\"%s\"}", toka);
    assert_int_equal(req(e, &b, body), 0);
    expect_dstr(e, 0, "overriden", "false");

    assert_int_equal(req(e, &a, push_req(idb)), 0);
    expect_dstr(e, sent_to(e, &a), "peeraddr", "198.51.100.71:7001");
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_UNAUTHORIZED], 0);
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_BAD_REQUEST], 0);
}

static void test_pulse_bad_requests(void **state)
{
    struct env *e = *state;
    struct tracker_src b = src_of("198.51.100.81", 8001, 2), a = src_of("198.51.100.80", 8000, 1);
    char idb[9], tokb[33], ida[9], body[256];
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, tokb);

    /* Wrong field types, with or without a token. */
    static const char *const types[] = {
        "{\"action\":\"pulse\",\"override\":\"true\"}",
        "{\"action\":\"pulse\",\"override\":1}",
        "{\"action\":\"pulse\",\"shareId\":1}",
        "{\"action\":\"pulse\",\"shareId\":null}",
        "{\"action\":\"pulse\",\"token\":123}",
        "{\"action\":\"pulse\",\"ip\":16843009}",
        "{\"action\":\"pulse\",\"port\":true}",
        "{\"action\":\"pulse\",\"port\":[1]}",
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        assert_int_equal(req(e, &b, types[i]), 0);
        expect_error(e, &b, "badRequest");
    }
    /* With the token, a bad ip or port is an error (not a silent no-op). */
    static const char *const values[][2] = {
        { "\"localhost\"", "1234" }, { "\"1.2.3.4:5\"", "1234" }, { "\"\"", "1234" },
        { "\"1.2.3.4\"", "0" },      { "\"1.2.3.4\"", "65536" },  { "\"1.2.3.4\"", "-1" },
        { "\"1.2.3.4\"", "12.5" },   { "\"1.2.3.4\"", "\"\"" },   { "\"1.2.3.4\"", "\"12a\"" },
        { "\"1.2.3.4\"", "\"0\"" },  { "\"1.2.3.4\"", "\"70000\"" }, { "\"1.2.3.4\"", "\"123456\"" },
        { "\"1.2.3.4\"", "\" 80\"" },
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        snprintf(body, sizeof body, "{\"action\":\"pulse\",\"override\":true,\"ip\":%s,\"port\":%s,\"token\":\"%s\"}",
                 values[i][0], values[i][1], tokb);
        assert_int_equal(req(e, &b, body), 0);
        if (e->n != 1 || !strstr(e->s[0].buf, "badRequest"))
            fail_msg("ip %s port %s: %s", values[i][0], values[i][1], e->n ? e->s[0].buf : "(nothing)");
    }
    snprintf(body, sizeof body, "{\"action\":\"pulse\",\"override\":true,\"port\":80,\"token\":\"%s\"}", tokb);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "badRequest");
    snprintf(body, sizeof body, "{\"action\":\"pulse\",\"override\":true,\"ip\":\"1.2.3.4\",\"token\":\"%s\"}", tokb);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "badRequest");
    /* None of it changed what others are told. */
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    expect_dstr(e, sent_to(e, &a), "peeraddr", "198.51.100.81:8001");
}

static void test_pulse_renew(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("203.0.113.90", 9000, 1), b = src_of("203.0.113.91", 9001, 2);
    char ida[9], idb[9], tokb[33], body[256];
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, tokb);

    snprintf(body, sizeof body, "{\"action\":\"pulse\",\"shareId\":true,\"token\":\"%s\"}", tokb);
    assert_int_equal(req(e, &b, body), 0);
    expect_one_reply(e, &b, "pulseReceived");
    expect_dstr(e, 0, "status", "0");
    expect_dstr(e, 0, "overriden", "false");
    char newid[64], newtok[64];
    assert_true(dstr(e, 0, "shareId", newid, sizeof newid));
    assert_true(ids_valid(newid, strlen(newid)));
    assert_string_not_equal(newid, idb);
    assert_true(dstr(e, 0, "token", newtok, sizeof newtok));
    assert_int_equal(ids_token_verify(&e->cfg.token_key, newid, newtok, strlen(newtok)), 0);
    assert_string_not_equal(newtok, tokb);

    /* The old id stops resolving at once; the new one works. */
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    expect_error(e, &a, "unknownShareId");
    assert_int_equal(req(e, &a, push_req(newid)), 0);
    assert_int_equal(e->n, 2);
    expect_dstr(e, sent_to(e, &a), "peerShareId", newid);
    expect_dstr(e, sent_to(e, &b), "peerShareId", ida);
    /* A re-announce from B returns the new id. */
    assert_int_equal(req(e, &b, padded("\"action\":\"announce\"", 64)), 0);
    expect_dstr(e, 0, "shareId", newid);
    expect_dstr(e, 0, "token", newtok);
    /* The old token no longer proves anything; the new one does. */
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "unauthorized");
    snprintf(body, sizeof body,
             "{\"action\":\"pulse\",\"shareId\":true,\"override\":true,\"ip\":\"7.7.7.7\",\"port\":7,\"token\":\"%s\"}",
             newtok);
    assert_int_equal(req(e, &b, body), 0);
    expect_dstr(e, 0, "overriden", "true");
    char third[64];
    assert_true(dstr(e, 0, "shareId", third, sizeof third));
    assert_string_not_equal(third, newid);
    assert_int_equal(req(e, &a, push_req(third)), 0);
    expect_dstr(e, sent_to(e, &a), "peeraddr", "7.7.7.7:7");
    assert_int_equal(registry_count(tracker_registry(e->t)), 2);
}

static void test_pulse_renew_unauthorized(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("203.0.113.95", 9500, 1), b = src_of("203.0.113.96", 9501, 2);
    char ida[9], idb[9], toka[33], body[256];
    announce(e, &a, ida, toka);
    announce(e, &b, idb, NULL);
    static const char *const forms[] = {
        "{\"action\":\"pulse\",\"shareId\":true}",
        "{\"action\":\"pulse\",\"shareId\":true,\"token\":\"\"}",
        "{\"action\":\"pulse\",\"shareId\":true,\"token\":\"ffffffffffffffffffffffffffffffff\"}",
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        assert_int_equal(req(e, &b, forms[i]), 0);
        expect_error(e, &b, "unauthorized");
    }
    snprintf(body, sizeof body, "{\"action\":\"pulse\",\"shareId\":true,\"token\":\"%s\"}", toka);
    assert_int_equal(req(e, &b, body), 0); /* A's token from B's address */
    expect_error(e, &b, "unauthorized");
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_UNAUTHORIZED], 4);
    /* B keeps its id. */
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    assert_int_equal(e->n, 2);
    /* A renewal with a failing override check changes nothing either. */
    char tokb[33];
    ids_token(&e->cfg.token_key, idb, tokb);
    snprintf(body, sizeof body,
             "{\"action\":\"pulse\",\"shareId\":true,\"override\":true,\"ip\":\"bad\",\"port\":1,\"token\":\"%s\"}",
             tokb);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "badRequest");
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    assert_int_equal(e->n, 2);
}

/* ---- alive ---- */

static void test_alive(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("192.0.2.5", 500, 6), x = src_of("192.0.2.6", 600, 6);
    assert_int_equal(req(e, &x, "{\"action\":\"alive\"}"), 0);
    expect_error(e, &x, "notAnnounced");
    char id[9];
    announce(e, &a, id, NULL);
    assert_int_equal(req(e, &a, "{\"action\":\"alive\"}"), 0);
    expect_one_reply(e, &a, "alived");
    assert_string_equal(e->s[0].buf, "{\"action\":\"alived\"}");
    assert_int_equal(tracker_stats(e->t)->requests[STATS_UDP][PROTO_ACT_ALIVE], 2);
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_NOT_ANNOUNCED], 1);
}

/* ---- the app's vocabulary ---- */

static void test_app_vocabulary(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("192.0.2.10", 1000, 1), b = src_of("192.0.2.11", 1100, 2);
    struct tracker_src x = src_of("192.0.2.12", 1200, 3);
    char ida[9], idb[9];

    /* Unregistered senders get {"action":"expired"} for alive, pulse and push. */
    static const char *const unreg[] = { "{\"action\":\"alive\"}", "{\"action\":\"pulse\"}",
                                         "{\"action\":\"push\",\"shareId\":\"abcdefgh\"}" };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(req(e, &x, unreg[i]), 0);
        expect_one_reply(e, &x, "expired");
        assert_string_equal(e->s[0].buf, "{\"action\":\"expired\"}");
    }
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_NOT_ANNOUNCED], 3);

    assert_int_equal(req(e, &a, "{\"action\":\"announce\"}"), 0);
    expect_one_reply(e, &a, "announced");
    assert_true(dstr(e, 0, "shareId", ida, sizeof ida));
    announce(e, &b, idb, NULL); /* expects "announced" */

    assert_int_equal(req(e, &a, push_req(idb)), 0);
    assert_int_equal(e->n, 2);
    expect_action(e, sent_to(e, &a), "pushed");
    expect_dstr(e, sent_to(e, &a), "peerShareId", idb);
    expect_action(e, sent_to(e, &b), "income");
    expect_dstr(e, sent_to(e, &b), "peerShareId", ida);

    assert_int_equal(req(e, &a, "{\"action\":\"alive\"}"), 0);
    expect_one_reply(e, &a, "alived");
    assert_int_equal(req(e, &a, "{\"action\":\"pulse\"}"), 0);
    expect_one_reply(e, &a, "pulseReceived");
    /* Errors other than notAnnounced are the same in both vocabularies. */
    assert_int_equal(req(e, &a, push_req("nobody00")), 0);
    expect_error(e, &a, "unknownShareId");
    assert_int_equal(req(e, &a, "{\"action\":\"fly\"}"), 0);
    expect_error(e, &a, "unknownAction");
    assert_int_equal(req(e, &x, "{\"action\":\"push\",\"shareId\":5}"), 0);
    expect_error(e, &x, "badRequest"); /* types are checked before the sender */
}

/* ---- capacity ---- */

static void test_full(void **state)
{
    (void)state;
    struct env *e = env_new(CONFIG_COMPAT_README, 2, 1472, NULL);
    struct tracker_src a = src_of("192.0.2.21", 1, 1), b = src_of("192.0.2.22", 2, 1);
    struct tracker_src c = src_of("192.0.2.23", 3, 1);
    char ida[9], idb[9], idc[9], toka[33], tokb[33];
    announce(e, &a, ida, toka);
    e->now += 1000;
    announce(e, &b, idb, tokb);
    assert_int_equal(req(e, &c, "{\"action\":\"announce\"}"), 0);
    expect_error(e, &c, "full");
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_FULL], 1);
    assert_int_equal(registry_count(tracker_registry(e->t)), 2);
    /* Peers already in still re-announce (a is refreshed 1 s after b). */
    e->now += 1000;
    assert_int_equal(req(e, &a, "{\"action\":\"announce\"}"), 0);
    expect_dstr(e, 0, "shareId", ida);

    /* b expires; c fits now; a re-claim of b's id finds the tracker full again. */
    e->now += 299 * 1000;
    assert_int_equal(tracker_expire(e->t, e->now, 100), 1);
    assert_int_equal(registry_count(tracker_registry(e->t)), 1);
    assert_int_equal(registry_find_id(tracker_registry(e->t), idb, IDS_LEN), REGISTRY_NIL);
    announce(e, &c, idc, NULL);
    char body[256];
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":\"%s\",\"token\":\"%s\"}", idb, tokb);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "full");
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_FULL], 2);
    assert_int_equal(registry_count(tracker_registry(e->t)), 2);
    (void)toka;
    env_free(e);
}

/* ---- re-claim and attach ---- */

static void test_reclaim_unauthorized(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("192.0.2.31", 31, 1), b = src_of("192.0.2.32", 32, 1);
    char ida[9], toka[33], body[256];
    announce(e, &a, ida, toka);
    /* Wrong token for a live id, from another address. */
    snprintf(body, sizeof body,
             "{\"action\":\"announce\",\"shareId\":\"%s\",\"token\":\"0123456789abcdef0123456789abcdef\"}", ida);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "unauthorized");
    /* Wrong token for an id that is not live. */
    assert_int_equal(req(e, &b, "{\"action\":\"announce\",\"shareId\":\"Zz9Zz9Zz\","
                                "\"token\":\"0123456789abcdef0123456789abcdef\"}"),
                     0);
    expect_error(e, &b, "unauthorized");
    /* The right token for a malformed id. */
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":\"%s!\",\"token\":\"%s\"}", ida, toka);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "unauthorized");
    /* shareId and token go together, as strings. */
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":\"%s\"}", ida);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "badRequest");
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"token\":\"%s\"}", toka);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "badRequest");
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":{\"$ne\":null},\"token\":\"%s\"}", toka);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "badRequest");
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":\"%s\",\"token\":true}", ida);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "badRequest");

    /* Nothing was taken over: a still owns its id and b holds nothing. */
    struct registry *r = tracker_registry(e->t);
    assert_int_equal(registry_count(r), 1);
    assert_int_equal(registry_find_id(r, ida, IDS_LEN), registry_find_addr(r, &a.addr));
    assert_int_equal(registry_find_addr(r, &b.addr), REGISTRY_NIL);
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_UNAUTHORIZED], 3);
}

static void test_reclaim_after_restart(void **state)
{
    (void)state;
    struct env *e1 = env_new(CONFIG_COMPAT_README, 16, 1472, key_hex);
    struct tracker_src a = src_of("192.0.2.41", 41, 1), a2 = src_of("192.0.2.99", 4199, 2);
    char id[9], tok[33], body[256];
    announce(e1, &a, id, tok);
    env_free(e1);

    /* Same key, new process: the id comes back with its token, from any address. */
    struct env *e2 = env_new(CONFIG_COMPAT_README, 16, 1472, key_hex);
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":\"%s\",\"token\":\"%s\"}", id, tok);
    assert_int_equal(req(e2, &a2, body), 0);
    expect_one_reply(e2, &a2, "announceReceived");
    expect_dstr(e2, 0, "shareId", id);
    expect_dstr(e2, 0, "token", tok);
    expect_dstr(e2, 0, "addr", "192.0.2.99:4199");
    assert_int_equal(tracker_stats(e2->t)->announced, 1);
    /* It is a normal peer: others can push to it. */
    struct tracker_src b = src_of("192.0.2.42", 42, 3);
    char idb[9];
    announce(e2, &b, idb, NULL);
    assert_int_equal(req(e2, &b, push_req(id)), 0);
    assert_int_equal(e2->n, 2);
    assert_int_equal(e2->s[sent_to(e2, &a2)].local, 2);
    /* Upper-case hex is the same token. */
    char up[33];
    for (int i = 0; i < 33; i++)
        up[i] = (char)((tok[i] >= 'a' && tok[i] <= 'f') ? tok[i] - 32 : tok[i]);
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":\"%s\",\"token\":\"%s\"}", id, up);
    assert_int_equal(req(e2, &a2, body), 0);
    expect_dstr(e2, 0, "shareId", id);
    env_free(e2);

    /* Another key: the old token proves nothing. */
    struct env *e3 = env_new(CONFIG_COMPAT_README, 16, 1472, NULL);
    assert_int_equal(req(e3, &a2, body), 0);
    expect_error(e3, &a2, "unauthorized");
    assert_int_equal(registry_count(tracker_registry(e3->t)), 0);
    env_free(e3);
}

static void test_reclaim_after_expiry(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("192.0.2.51", 51, 1), a2 = src_of("192.0.2.52", 52, 4);
    char id[9], tok[33], body[256];
    announce(e, &a, id, tok);
    e->now += 300 * 1000;
    assert_int_equal(tracker_expire(e->t, e->now, 10), 1);
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":\"%s\",\"token\":\"%s\"}", id, tok);
    assert_int_equal(req(e, &a2, body), 0);
    expect_one_reply(e, &a2, "announceReceived");
    expect_dstr(e, 0, "shareId", id);
    struct registry *r = tracker_registry(e->t);
    uint32_t i = registry_find_id(r, id, IDS_LEN);
    assert_int_not_equal(i, REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &a2.addr), i);
    assert_int_equal(registry_peer(r, i)->local, 4);
    /* Re-claiming what one already holds is a plain refresh. */
    assert_int_equal(req(e, &a2, body), 0);
    expect_dstr(e, 0, "shareId", id);
    assert_int_equal(registry_count(r), 1);
    assert_int_equal(tracker_stats(e->t)->announced, 2);
}

static void test_attach_rebinding(void **state)
{
    struct env *e = *state;
    struct tracker_src a1 = src_of("192.0.2.61", 6100, 1), a2 = src_of("192.0.2.61", 6199, 9);
    struct tracker_src b = src_of("192.0.2.62", 6200, 2);
    char ida[9], toka[33], idb[9], body[256];
    announce(e, &a1, ida, toka);
    announce(e, &b, idb, NULL);

    /* The NAT rebinds a: same id from a new port, proven by the token. */
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":\"%s\",\"token\":\"%s\"}", ida, toka);
    assert_int_equal(req(e, &a2, body), 0);
    expect_one_reply(e, &a2, "announceReceived");
    expect_dstr(e, 0, "shareId", ida);
    expect_dstr(e, 0, "addr", "192.0.2.61:6199");
    assert_int_equal(registry_count(tracker_registry(e->t)), 2);

    /* The old address is no longer a; the new one is. */
    assert_int_equal(req(e, &a1, "{\"action\":\"alive\"}"), 0);
    expect_error(e, &a1, "notAnnounced");
    assert_int_equal(req(e, &a2, "{\"action\":\"alive\"}"), 0);
    expect_one_reply(e, &a2, "alived");
    /* Pushes reach a at its new address, from the local address it now talks to. */
    assert_int_equal(req(e, &b, push_req(ida)), 0);
    assert_int_equal(e->n, 2);
    int k = sent_to(e, &a2);
    expect_action(e, k, "income");
    assert_int_equal(e->s[k].local, 9);
    expect_dstr(e, sent_to(e, &b), "peeraddr", "192.0.2.61:6199");
    /* The old address may now announce as a brand new peer. */
    char idn[9];
    announce(e, &a1, idn, NULL);
    assert_string_not_equal(idn, ida);
}

/* A peer reached through another local address (a multi-homed host, a
 * routing change) is answered, and sent its income, from the address it last
 * talked to. */
static void test_local_address_follows_peer(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("192.0.2.65", 6500, 1), b = src_of("192.0.2.66", 6600, 2);
    char ida[9], idb[9];
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, NULL);
    struct tracker_src a4 = a;
    a4.local = 4;
    assert_int_equal(req(e, &a4, "{\"action\":\"alive\"}"), 0);
    expect_one_reply(e, &a4, "alived"); /* the reply leaves from local 4 */
    assert_int_equal(req(e, &b, push_req(ida)), 0);
    assert_int_equal(e->n, 2);
    int k = sent_to(e, &a);
    expect_action(e, k, "income");
    assert_int_equal(e->s[k].local, 4);
    assert_int_equal(e->s[sent_to(e, &b)].local, 2);
}

static void test_reclaim_from_address_with_other_id(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("192.0.2.71", 71, 1), b = src_of("192.0.2.72", 72, 2);
    char ida[9], toka[33], idb[9], body[256];
    announce(e, &a, ida, toka);
    announce(e, &b, idb, NULL);
    /* b already holds idb: it cannot take a's id as well. */
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":\"%s\",\"token\":\"%s\"}", ida, toka);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "badRequest");
    /* Nor a non-live id it has the token of. */
    e->n = 0;
    char other[9] = "Qq1Qq1Qq", otok[33];
    ids_token(&e->cfg.token_key, other, otok);
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":\"%s\",\"token\":\"%s\"}", other, otok);
    assert_int_equal(req(e, &b, body), 0);
    expect_error(e, &b, "badRequest");
    struct registry *r = tracker_registry(e->t);
    assert_int_equal(registry_find_id(r, ida, IDS_LEN), registry_find_addr(r, &a.addr));
    assert_int_equal(registry_find_id(r, idb, IDS_LEN), registry_find_addr(r, &b.addr));
    assert_int_equal(registry_find_id(r, other, IDS_LEN), REGISTRY_NIL);
    assert_int_equal(registry_count(r), 2);
}

/* ---- expiry ---- */

static void test_expiry_at_ttl(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("192.0.2.81", 81, 1), b = src_of("192.0.2.82", 82, 1);
    char ida[9], idb[9];
    uint64_t dl;
    assert_int_equal(tracker_next_expiry(e->t, &dl), -1);
    uint64_t t0 = e->now;
    announce(e, &a, ida, NULL);
    assert_int_equal(tracker_next_expiry(e->t, &dl), 0);
    assert_int_equal(dl, t0 + 300 * 1000);
    e->now += 10 * 1000;
    announce(e, &b, idb, NULL);

    /* Not a millisecond early. */
    assert_int_equal(tracker_expire(e->t, t0 + 300 * 1000 - 1, 100), 0);
    e->now = t0 + 300 * 1000 - 1;
    assert_int_equal(req(e, &b, push_req(ida)), 0);
    assert_int_equal(e->n, 2); /* a is still there */
    /* At exactly the ttl, a goes. */
    assert_int_equal(tracker_expire(e->t, t0 + 300 * 1000, 100), 1);
    assert_int_equal(tracker_stats(e->t)->expired, 1);
    e->now = t0 + 300 * 1000;
    assert_int_equal(req(e, &b, push_req(ida)), 0);
    expect_error(e, &b, "unknownShareId");
    assert_int_equal(req(e, &a, "{\"action\":\"pulse\"}"), 0);
    expect_error(e, &a, "notAnnounced");
    /* b was refreshed by its push at t0 + 300 s - 1 ms. */
    assert_int_equal(tracker_next_expiry(e->t, &dl), 0);
    assert_int_equal(dl, t0 + 600 * 1000 - 1);
    assert_int_equal(tracker_expire(e->t, dl - 1, 100), 0);
    assert_int_equal(tracker_expire(e->t, dl, 100), 1);
    assert_int_equal(tracker_next_expiry(e->t, &dl), -1);
    assert_int_equal(tracker_stats(e->t)->expired, 2);
}

static void test_expiry_budget(void **state)
{
    struct env *e = *state;
    char id[9];
    for (int i = 0; i < 7; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "192.0.2.%d", 100 + i);
        struct tracker_src s = src_of(ip, 100, 1);
        announce(e, &s, id, NULL);
    }
    e->now += 300 * 1000;
    assert_int_equal(tracker_expire(e->t, e->now, 3), 3);
    assert_int_equal(tracker_expire(e->t, e->now, 0), 0);
    assert_int_equal(registry_count(tracker_registry(e->t)), 4);
    assert_int_equal(tracker_expire(e->t, e->now, 100), 4);
    assert_int_equal(tracker_stats(e->t)->expired, 7);
}

/* Any request from a live peer that is answered without error refreshes it. */
static void test_requests_refresh(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("192.0.2.91", 91, 1), b = src_of("192.0.2.92", 92, 1);
    struct tracker_src c = src_of("192.0.2.93", 93, 1), d = src_of("192.0.2.94", 94, 1);
    char ida[9], idb[9], idc[9], idd[9];
    uint64_t t0 = e->now;
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, NULL);
    announce(e, &c, idc, NULL);
    announce(e, &d, idd, NULL);
    e->now = t0 + 200 * 1000;
    assert_int_equal(req(e, &a, "{\"action\":\"alive\"}"), 0);
    expect_one_reply(e, &a, "alived");
    assert_int_equal(req(e, &b, "{\"action\":\"pulse\"}"), 0);
    expect_one_reply(e, &b, "pulseReceived");
    assert_int_equal(req(e, &c, push_req(idd)), 0);
    assert_int_equal(e->n, 2);
    /* d only received an income: that is no sign of life from d. */
    assert_int_equal(tracker_expire(e->t, t0 + 300 * 1000, 100), 1);
    struct registry *r = tracker_registry(e->t);
    assert_int_equal(registry_find_id(r, idd, IDS_LEN), REGISTRY_NIL);
    assert_int_equal(registry_count(r), 3);
    assert_int_equal(tracker_expire(e->t, t0 + 500 * 1000 - 1, 100), 0);
    assert_int_equal(tracker_expire(e->t, t0 + 500 * 1000, 100), 3);
}

/* ---- anti-amplification and sizes ---- */

static void test_amplification_4x(void **state)
{
    struct env *e = *state;
    /* A long IPv6 address makes every reply as large as it can be. */
    struct tracker_src a = src_of("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 65535, 1);
    struct tracker_src b = src_of("2001:db8:aaaa:bbbb:cccc:dddd:eeee:fffe", 65534, 2);
    char ida[9], idb[9], tokb[33];
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, tokb);
    char mbody[512];
    snprintf(mbody, sizeof mbody, "\"action\":\"pulse\",\"multiaddr\":\"/ip6/2001:db8:aaaa:bbbb:cccc:dddd:eeee:fffe/udp/65534/quic-v1\",\"token\":\"%s\"", tokb);
    assert_int_equal(req(e, &b, padded(mbody, 300)), 0);
    expect_one_reply(e, &b, "pulseReceived");

    char renew[128];
    snprintf(renew, sizeof renew, "\"action\":\"pulse\",\"shareId\":true,\"token\":\"%s\"", tokb);
    /* Every request size: req_n() asserts each reply to the sender is <= 4x. */
    for (size_t total = 0; total <= 200; total++) {
        const char *bodies[] = { "\"action\":\"announce\"", "\"action\":\"pulse\"", "\"action\":\"alive\"",
                                 push_body(idb), "\"action\":\"nope\"", "\"action\":5",
                                 "\"action\":\"push\",\"shareId\":\"zzzzzzzz\"" };
        for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
            const char *m = padded(bodies[i], total);
            assert_int_equal(req(e, &a, m), 0);
        }
        if (total > 60 && total < 100) {
            /* Renewals are only tried now and then: each one changes b's id. */
            const char *m = padded(renew, total);
            assert_int_equal(req(e, &b, m), 0);
            expect_one_reply(e, &b, "pulseReceived");
            char nid[64], ntok[64];
            assert_true(dstr(e, 0, "shareId", nid, sizeof nid)); /* never dropped */
            memcpy(idb, nid, 9);
            if (dstr(e, 0, "token", ntok, sizeof ntok))
                memcpy(tokb, ntok, 33);
            else
                ids_token(&e->cfg.token_key, idb, tokb);
            snprintf(renew, sizeof renew, "\"action\":\"pulse\",\"shareId\":true,\"token\":\"%s\"", tokb);
        }
    }
    /* The push reply grows the multiaddr back once the request is large enough. */
    assert_int_equal(req(e, &a, padded(push_body(idb), 300)), 0);
    assert_true(dhas(e, sent_to(e, &a), "multiaddr"));
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    assert_false(dhas(e, sent_to(e, &a), "multiaddr"));
    expect_dstr(e, sent_to(e, &a), "peerShareId", idb);
    /* The income to b is not a reply to a: it carries what fits max_datagram. */
    assert_int_equal(e->s[sent_to(e, &b)].local, 2);
}

static void test_tiny_request_no_reply(void **state)
{
    struct env *e = *state;
    struct tracker_src x = src_of("192.0.2.200", 2000, 1);
    const struct stats *st = tracker_stats(e->t);
    /* "{}" is 2 bytes: no error reply fits 8 bytes, so none is sent. */
    assert_int_equal(req(e, &x, "{}"), 0);
    assert_int_equal(e->n, 0);
    assert_int_equal(st->replies_too_large, 1);
    assert_int_equal(st->errors[STATS_E_BAD_REQUEST], 1);
    assert_int_equal(st->requests[STATS_UDP][PROTO_ACT_NONE], 1);
    assert_int_equal(req(e, &x, "{\"a\":1}"), 0);
    assert_int_equal(e->n, 0);
    assert_int_equal(st->replies_too_large, 2);
    /* A padded one gets the full error, message included. */
    assert_int_equal(req(e, &x, padded("\"a\":1", 100)), 0);
    expect_error(e, &x, "badRequest");
    assert_true(dhas(e, 0, "message"));
    /* A bare unknown action gets the code but not the message. */
    assert_int_equal(req(e, &x, "{\"action\":\"x\"}"), 0);
    expect_error(e, &x, "unknownAction");
    assert_false(dhas(e, 0, "message"));
    assert_int_equal(req(e, &x, padded("\"action\":\"x\"", 200)), 0);
    expect_error(e, &x, "unknownAction");
    char msg[256];
    assert_true(dstr(e, 0, "message", msg, sizeof msg));
    assert_true(strlen(msg) > 0);
}

/* The token of shareId id under e's key (what announceReceived handed out). */
static void token_of(struct env *e, const char *id, char tok[IDS_TOKEN_HEXLEN + 1])
{
    ids_token(&e->cfg.token_key, id, tok);
}

static void test_max_datagram_and_multiaddr(void **state)
{
    (void)state;
    struct env *e = env_new(CONFIG_COMPAT_README, 16, 256, NULL);
    struct tracker_src a = src_of("192.0.2.150", 150, 1), b = src_of("192.0.2.151", 151, 2);
    char ida[9], idb[9];
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, NULL);
    char m[171], body[300], tok[IDS_TOKEN_HEXLEN + 1];
    /* a 170-byte multiaddr: no reply or income with it fits 256 bytes */
    memset(m, 'm', sizeof m);
    m[0] = '/';
    m[sizeof m - 1] = '\0';
    token_of(e, idb, tok);
    snprintf(body, sizeof body, "{\"action\":\"pulse\",\"token\":\"%s\",\"multiaddr\":\"%s\"}", tok, m);
    assert_true(strlen(body) <= 256);
    assert_int_equal(req(e, &b, body), 0);
    expect_one_reply(e, &b, "pulseReceived");
    token_of(e, ida, tok);
    snprintf(body, sizeof body, "{\"action\":\"pulse\",\"token\":\"%s\",\"multiaddr\":\"%s\"}", tok, m);
    assert_int_equal(req(e, &a, body), 0);

    /* A 250-byte push may be answered with 1000 bytes by the 4x rule, but
     * max_datagram (256) caps it: the multiaddr has to go. */
    assert_int_equal(req(e, &a, padded(push_body(idb), 250)), 0);
    assert_int_equal(e->n, 2);
    int ka = sent_to(e, &a), kb = sent_to(e, &b);
    assert_true(e->s[ka].len <= 256);
    assert_false(dhas(e, ka, "multiaddr"));
    expect_dstr(e, ka, "peerShareId", idb);
    assert_true(e->s[kb].len <= 256);
    assert_false(dhas(e, kb, "multiaddr"));
    expect_dstr(e, kb, "peerShareId", ida);
    /* Larger than max_datagram: dropped unanswered. */
    assert_int_equal(req_n(e, &a, padded(push_body(idb), 257), 257), -1 - PROTO_DROP_TOO_LARGE);
    assert_int_equal(e->n, 0);
    assert_int_equal(tracker_stats(e->t)->dropped[PROTO_DROP_TOO_LARGE], 1);
    env_free(e);

    /* With room, the multiaddr is handed to pushers (and with the income). */
    e = env_new(CONFIG_COMPAT_README, 16, 1472, NULL);
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, NULL);
    /* A re-announce sets it with shareId and token; without them it could be forged. */
    token_of(e, idb, tok);
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"multiaddr\":\"/ip4/192.0.2.151/udp/151\"}");
    assert_int_equal(req(e, &b, body), 0);
    expect_dstr(e, 0, "shareId", idb);
    snprintf(body, sizeof body,
             "{\"action\":\"announce\",\"shareId\":\"%s\",\"token\":\"%s\",\"multiaddr\":\"/ip4/192.0.2.151/udp/151\"}",
             idb, tok);
    assert_int_equal(req(e, &b, body), 0);
    expect_dstr(e, 0, "shareId", idb);
    token_of(e, ida, tok);
    snprintf(body, sizeof body, "{\"action\":\"pulse\",\"token\":\"%s\",\"multiaddr\":\"/ip4/192.0.2.150/udp/150\"}", tok);
    assert_int_equal(req(e, &a, body), 0);
    assert_int_equal(req(e, &a, padded(push_body(idb), 100)), 0);
    expect_dstr(e, sent_to(e, &a), "multiaddr", "/ip4/192.0.2.151/udp/151");
    expect_dstr(e, sent_to(e, &b), "multiaddr", "/ip4/192.0.2.150/udp/150");
    /* Special characters survive as an opaque string. */
    token_of(e, idb, tok);
    snprintf(body, sizeof body, "{\"action\":\"pulse\",\"token\":\"%s\",\"multiaddr\":\"a\\\"b\\\\c\\n\\u00e9\"}", tok);
    assert_int_equal(req(e, &b, body), 0);
    expect_one_reply(e, &b, "pulseReceived");
    assert_int_equal(req(e, &a, padded(push_body(idb), 100)), 0);
    expect_dstr(e, sent_to(e, &a), "multiaddr", "a\"b\\c\n\xc3\xa9");
    env_free(e);
}

static void test_multiaddr_too_long(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("192.0.2.160", 160, 1);
    char ida[9];
    announce(e, &a, ida, NULL);
    char m[300], body[400];
    memset(m, 'm', 257);
    m[257] = '\0';
    snprintf(body, sizeof body, "{\"action\":\"pulse\",\"multiaddr\":\"%s\"}", m);
    assert_int_equal(req(e, &a, body), 0);
    expect_error(e, &a, "badRequest");
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"multiaddr\":\"%s\"}", m);
    assert_int_equal(req(e, &a, body), 0);
    expect_error(e, &a, "badRequest");
    assert_int_equal(req(e, &a, "{\"action\":\"pulse\",\"multiaddr\":5}"), 0);
    expect_error(e, &a, "badRequest");
    /* 256 bytes exactly is fine (stored with the token). */
    m[256] = '\0';
    char tok[IDS_TOKEN_HEXLEN + 1];
    token_of(e, ida, tok);
    snprintf(body, sizeof body, "{\"action\":\"pulse\",\"token\":\"%s\",\"multiaddr\":\"%s\"}", tok, m);
    assert_int_equal(req(e, &a, body), 0);
    expect_one_reply(e, &a, "pulseReceived");
    struct registry *r = tracker_registry(e->t);
    const struct peer *p = registry_peer(r, registry_find_addr(r, &a.addr));
    assert_non_null(p->extra);
    assert_int_equal(p->extra->multiaddr_len, 256);
}

/* ---- counters, drops, hostile input ---- */

static void test_unknown_and_missing_action(void **state)
{
    struct env *e = *state;
    struct tracker_src x = src_of("192.0.2.170", 170, 1);
    const struct stats *st = tracker_stats(e->t);
    assert_int_equal(req(e, &x, "{\"action\":\"announceReceived\"}"), 0);
    expect_error(e, &x, "unknownAction");
    assert_int_equal(req(e, &x, "{\"action\":\"getPeers\",\"pad\":\"xx\"}"), 0);
    expect_error(e, &x, "unknownAction");
    assert_int_equal(req(e, &x, "{\"action\":1,\"pad\":\"xxxxxxxxxxxxxxxxxxxxx\"}"), 0);
    expect_error(e, &x, "badRequest");
    assert_int_equal(req(e, &x, "{\"act\":\"announce\",\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"}"), 0);
    expect_error(e, &x, "badRequest");
    assert_int_equal(req(e, &x, "{\"action\":null,\"pad\":\"xxxxxxxxxxxxxxxxxxxxx\"}"), 0);
    expect_error(e, &x, "badRequest");
    assert_int_equal(st->errors[STATS_E_UNKNOWN_ACTION], 2);
    assert_int_equal(st->errors[STATS_E_BAD_REQUEST], 3);
    assert_int_equal(st->requests[STATS_UDP][PROTO_ACT_UNKNOWN], 2);
    assert_int_equal(st->requests[STATS_UDP][PROTO_ACT_NONE], 3);
    assert_int_equal(registry_count(tracker_registry(e->t)), 0);
}

static void test_stats_counters(void **state)
{
    struct env *e = *state;
    const struct stats *st = tracker_stats(e->t);
    struct stats zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(st, &zero, sizeof zero);

    struct tracker_src a = src_of("192.0.2.180", 180, 1), b = src_of("192.0.2.181", 181, 2);
    char ida[9], idb[9];
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, NULL);
    announce(e, &b, idb, NULL);
    assert_int_equal(req(e, &a, "{\"action\":\"pulse\"}"), 0);
    assert_int_equal(req(e, &a, "{\"action\":\"alive\"}"), 0);
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    assert_int_equal(req(e, &a, push_req("nobody00")), 0);
    assert_int_equal(req(e, &a, "{\"action\":\"zzz\"}"), 0);

    assert_int_equal(req(e, &a, "not json"), -1 - PROTO_DROP_NOT_JSON);
    assert_int_equal(req(e, &a, "[1,2]"), -1 - PROTO_DROP_NOT_OBJECT);
    assert_int_equal(req(e, &a, "{\"action\":\"\xc0\x80\"}"), -1 - PROTO_DROP_INVALID_UTF8);
    assert_int_equal(req_n(e, &a, "", 0), -1 - PROTO_DROP_NOT_JSON);
    static char big[2000];
    memset(big, ' ', sizeof big);
    memcpy(big, "{\"action\":\"alive\"}", 18);
    assert_int_equal(req_n(e, &a, big, 1473), -1 - PROTO_DROP_TOO_LARGE);
    assert_int_equal(e->n, 0);
    assert_int_equal(req_n(e, &a, big, 1472), 0); /* exactly max_datagram is fine */
    expect_one_reply(e, &a, "alived");
    tracker_count_drop(e->t, PROTO_DROP_TOO_LARGE);
    tracker_count_drop(e->t, (enum proto_drop)PROTO_DROP_COUNT); /* ignored */

    assert_int_equal(st->requests[STATS_UDP][PROTO_ACT_ANNOUNCE], 3);
    assert_int_equal(st->requests[STATS_UDP][PROTO_ACT_PULSE], 1);
    assert_int_equal(st->requests[STATS_UDP][PROTO_ACT_ALIVE], 2);
    assert_int_equal(st->requests[STATS_UDP][PROTO_ACT_PUSH], 2);
    assert_int_equal(st->requests[STATS_UDP][PROTO_ACT_UNKNOWN], 1);
    assert_int_equal(st->requests[STATS_UDP][PROTO_ACT_NONE], 0);
    for (int k = 0; k < PROTO_ACT_COUNT; k++)
        assert_int_equal(st->requests[STATS_WS][k], 0);
    assert_int_equal(st->errors[STATS_E_UNKNOWN_SHARE_ID], 1);
    assert_int_equal(st->errors[STATS_E_UNKNOWN_ACTION], 1);
    assert_int_equal(st->errors[STATS_E_BAD_REQUEST], 0);
    assert_int_equal(st->dropped[PROTO_DROP_NOT_JSON], 2);
    assert_int_equal(st->dropped[PROTO_DROP_NOT_OBJECT], 1);
    assert_int_equal(st->dropped[PROTO_DROP_INVALID_UTF8], 1);
    assert_int_equal(st->dropped[PROTO_DROP_TOO_LARGE], 2);
    assert_int_equal(st->announced, 2);
    assert_int_equal(st->pushes, 1);
    assert_int_equal(st->expired, 0);
    assert_int_equal(st->replies_too_large, 0);
}

static void test_hostile_battery(void **state)
{
    struct env *e = *state;
    struct tracker_src a = src_of("192.0.2.190", 190, 1), b = src_of("192.0.2.191", 191, 2);
    char ida[9], idb[9];
    announce(e, &a, ida, NULL);
    announce(e, &b, idb, NULL);
    static char deep[1400];
    memset(deep, '[', sizeof deep);
    static char deepobj[1400];
    size_t dn = (size_t)snprintf(deepobj, sizeof deepobj, "{\"action\":\"alive\",\"x\":");
    while (dn + 10 < sizeof deepobj)
        deepobj[dn++] = '[';
    static char hugestr[1472];
    size_t hn = (size_t)snprintf(hugestr, sizeof hugestr, "{\"action\":\"push\",\"shareId\":\"");
    memset(hugestr + hn, 'A', sizeof hugestr - hn - 2);
    memcpy(hugestr + sizeof hugestr - 2, "\"}", 2);

    static const struct {
        const char *s;
        size_t len;
    } drops[] = {
#define L(lit) { (lit), sizeof(lit) - 1 }
        L(""),
        L("{"),
        L("{\"action\":\"alive\""),
        L("{\"action\":\"alive\"}garbage"),
        L("[]"),
        L("\"alive\""),
        L("null"),
        L("42"),
        L("{\"action\":\"alive\"}\0"),
        L("{\"action\":\"al\0ive\"}"),
        L("{\"action\":\"al\x01ive\"}"),
        L("{\"action\":\"\xed\xa0\x80\"}"),
        L("{\"action\":\"\xc0\xae\"}"),
        L("{\"action\":\"\xf5\x80\x80\x80\"}"),
        L("\xff\xfe{}"),
        L("{\"action\":\"alive\",\"x\":\"\\ud800\"}"),
#undef L
    };
    for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++) {
        int rc = req_n(e, &a, drops[i].s, drops[i].len);
        if (rc >= 0)
            fail_msg("hostile datagram %zu was not dropped (rc %d)", i, rc);
        if (e->n != 0)
            fail_msg("hostile datagram %zu got a reply: %s", i, e->s[0].buf);
    }
    assert_true(req_n(e, &a, deep, sizeof deep) < 0);
    assert_int_equal(e->n, 0);
    assert_true(req_n(e, &a, deepobj, dn) < 0);
    assert_int_equal(e->n, 0);

    /* Requests that are JSON objects but hostile get at most an error. */
    assert_int_equal(req_n(e, &a, hugestr, sizeof hugestr), 0);
    expect_error(e, &a, "unknownShareId");
    assert_int_equal(req(e, &a, "{\"action\":\"push\",\"shareId\":{\"$ne\":null}}"), 0);
    expect_error(e, &a, "badRequest");
    assert_int_equal(req(e, &a, "{\"action\":\"alive\\u0000\"}"), 0);
    expect_error(e, &a, "unknownAction");
    assert_int_equal(req(e, &a, "{\"action\":\"pulse\",\"token\":\"\\u0000\",\"override\":true,\"ip\":\"1.2.3.4\",\"port\":1}"), 0);
    expect_dstr(e, 0, "overriden", "false");

    /* Random bytes and mutated requests: never a crash, never an oversized reply. */
    uint64_t seed = 777;
    char buf[200];
    for (int iter = 0; iter < 50000; iter++) {
        const char *base = iter % 2 ? "{\"action\":\"push\",\"shareId\":\"abcdefgh\"}"
                                    : "{\"action\":\"pulse\",\"override\":true,\"ip\":\"1.2.3.4\",\"port\":80}";
        size_t n = strlen(base);
        memcpy(buf, base, n);
        for (int k = 0; k < 3; k++)
            buf[unit_below(&seed, (uint32_t)n)] = (char)unit_below(&seed, 256);
        req_n(e, &a, buf, n);
    }
    /* Still serving. */
    assert_int_equal(req(e, &a, push_req(idb)), 0);
    assert_int_equal(e->n, 2);
    expect_action(e, sent_to(e, &a), "pushReceived");
}

int main(void)
{
    unit_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_announce_bare_only_shareid, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_announce_bare_drop_order, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_announce_padded_full, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_announce_same_address_same_id, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_announce_id_not_from_address, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_push_both_sides, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_push_error_order, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_pulse_basic, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_pulse_override_with_token, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_pulse_override_without_token, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_pulse_bad_requests, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_pulse_renew, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_pulse_renew_unauthorized, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_alive, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_app_vocabulary, setup_app, teardown_env),
        cmocka_unit_test(test_full),
        cmocka_unit_test_setup_teardown(test_reclaim_unauthorized, setup_readme, teardown_env),
        cmocka_unit_test(test_reclaim_after_restart),
        cmocka_unit_test_setup_teardown(test_reclaim_after_expiry, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_attach_rebinding, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_local_address_follows_peer, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_reclaim_from_address_with_other_id, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_expiry_at_ttl, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_expiry_budget, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_requests_refresh, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_amplification_4x, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_tiny_request_no_reply, setup_readme, teardown_env),
        cmocka_unit_test(test_max_datagram_and_multiaddr),
        cmocka_unit_test_setup_teardown(test_multiaddr_too_long, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_unknown_and_missing_action, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_stats_counters, setup_readme, teardown_env),
        cmocka_unit_test_setup_teardown(test_hostile_battery, setup_readme, teardown_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
