/* test_tracker_limits: issue 5's abuse limits in the tracker, without sockets,
 * over a fake clock — the per-IP UDP request bucket (checked before parsing,
 * garbage counts and is never answered, rateLimited once a second then
 * silence), 0 = off, rate_exempt, the IPv6 /64, income per target (the push
 * refused, no income sent), response bytes per destination IP (replies,
 * income and probe answers alike), the access key over UDP and the probe
 * socket, and stateless retry cookies above retry_threshold. */
#include "unit.h"

#include <cjson/cJSON.h>

#include "addr.h"
#include "config.h"
#include "ids.h"
#include "proto.h"
#include "registry.h"
#include "stats.h"
#include "tracker.h"

/* ---- the environment: a tracker, a fake clock, sinks that record ---- */

#define OUT_MAX 8
#define OUT_BUF 2048

enum { OUT_UDP = 0, OUT_PROBE = 1, OUT_WS = 2 };

struct out {
    int kind;
    struct addr to;   /* UDP and probe: destination */
    void *conn;       /* WS: connection */
    size_t len;
    char buf[OUT_BUF];
};

struct env {
    struct config cfg;
    struct tracker *t;
    uint64_t now;      /* fake monotonic milliseconds */
    int n;             /* messages sent by the last request */
    struct out o[OUT_MAX];
    size_t bytes_to_ip;/* running total of UDP+probe bytes to watch_ip */
    struct addr watch_ip;
};

static void env_record(struct env *e, int kind, const struct addr *to, void *conn, const char *buf,
                       size_t len)
{
    if (e->n >= OUT_MAX)
        fail_msg("more than %d messages for one request", OUT_MAX);
    if (len >= OUT_BUF)
        fail_msg("message of %zu bytes", len);
    struct out *o = &e->o[e->n++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    if (to)
        o->to = *to;
    o->conn = conn;
    o->len = len;
    memcpy(o->buf, buf, len);
    o->buf[len] = '\0';
    if (to && e->watch_ip.family == to->family &&
        memcmp(e->watch_ip.ip, to->ip, sizeof to->ip) == 0)
        e->bytes_to_ip += len;
}

static void udp_sink(void *ctx, const struct addr *to, uint8_t local, const char *buf, size_t len)
{
    (void)local;
    env_record(ctx, OUT_UDP, to, NULL, buf, len);
}

static void probe_sink(void *ctx, const struct addr *to, uint8_t local, const char *buf, size_t len)
{
    (void)local;
    env_record(ctx, OUT_PROBE, to, NULL, buf, len);
}

static void ws_sink(void *ctx, void *conn, const char *buf, size_t len)
{
    env_record(ctx, OUT_WS, NULL, conn, buf, len);
}

static void ws_close_sink(void *ctx, void *conn, uint16_t code)
{
    (void)ctx;
    (void)conn;
    fail_msg("unexpected WebSocket close %u", code);
}

#define PROBE_IP "192.0.2.250"
#define PROBE_PORT 3001

/* A tracker over the defaults with every abuse limit off, then the given
 * "key", "value" pairs (config text, as on the command line; NULL ends). */
static struct env *env_new(const char *kv, ...)
{
    struct env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    char err[256];
    config_defaults(&e->cfg);
    e->cfg.max_peers = 4096;
    e->cfg.rate_requests_per_sec = 0;
    e->cfg.rate_income_per_sec = 0;
    e->cfg.rate_response_bytes_per_sec = 0;
    e->cfg.retry_threshold = 1;
    va_list ap;
    va_start(ap, kv);
    for (const char *k = kv; k; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        if (config_set_text(&e->cfg, k, v, err, sizeof err) != 0)
            fail_msg("config %s=%s: %s", k, v, err);
    }
    va_end(ap);
    if (config_finish(&e->cfg, err, sizeof err) != 0)
        fail_msg("config_finish: %s", err);
    e->t = tracker_new(&e->cfg);
    assert_non_null(e->t);
    tracker_set_sink(e->t, udp_sink, e);
    tracker_set_ws_sink(e->t, ws_sink, ws_close_sink, e);
    struct addr pb;
    assert_int_equal(addr_parse_ip(&pb, PROBE_IP, PROBE_PORT), 0);
    tracker_set_probe(e->t, &pb, probe_sink, e);
    e->now = 9000000; /* a multiple of the 30 s cookie window */
    return e;
}

static int teardown_env(void **state)
{
    struct env *e = *state;
    if (e) {
        tracker_free(e->t);
        free(e);
    }
    return 0;
}

static struct tracker_src udp_src(const char *ip, uint16_t port)
{
    struct tracker_src s;
    memset(&s, 0, sizeof s);
    if (addr_parse_ip(&s.addr, ip, port) != 0)
        fail_msg("bad test address %s", ip);
    s.transport = TRACKER_UDP;
    return s;
}

/* Checks what every UDP message must respect: one JSON object with a string
 * action, at most max_datagram, and a reply to the requester at most 4x it. */
static void check_out(const struct env *e, const struct tracker_src *src, size_t req_len)
{
    for (int k = 0; k < e->n; k++) {
        const struct out *o = &e->o[k];
        cJSON *j = cJSON_ParseWithLength(o->buf, o->len);
        if (!j || !cJSON_IsObject(j) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "action")))
            fail_msg("sent message is not a JSON object with an action: %s", o->buf);
        cJSON_Delete(j);
        if (o->kind == OUT_WS)
            continue;
        if (o->len > (size_t)e->cfg.max_datagram)
            fail_msg("sent %zu bytes > max_datagram: %s", o->len, o->buf);
        if (addr_equal(&o->to, &src->addr) && o->len > 4 * req_len)
            fail_msg("reply of %zu bytes to a %zu-byte request (4x rule): %s", o->len, req_len, o->buf);
    }
}

/* One datagram to the main socket; returns how many messages it caused. */
static int udp_n(struct env *e, const struct tracker_src *src, const char *buf, size_t len)
{
    e->n = 0;
    tracker_on_datagram(e->t, buf, len, src, e->now);
    check_out(e, src, len);
    return e->n;
}

static int udp(struct env *e, const struct tracker_src *src, const char *json)
{
    return udp_n(e, src, json, strlen(json));
}

/* One datagram to the probe socket from src's address (as udp.c marks it). */
static int probe(struct env *e, const struct tracker_src *src, const char *json)
{
    struct tracker_src p = *src;
    p.transport = TRACKER_PROBE;
    e->n = 0;
    tracker_on_probe(e->t, json, strlen(json), &p, e->now);
    check_out(e, &p, strlen(json));
    return e->n;
}

/* ---- reading what was sent ---- */

/* member of message k (top level, or data.<name> with in_data) as a string
 * into out (cap bytes): 1 if present as a string, else 0. */
static int get_str(const struct env *e, int k, int in_data, const char *name, char *out, size_t cap)
{
    assert_true(k >= 0 && k < e->n);
    cJSON *j = cJSON_ParseWithLength(e->o[k].buf, e->o[k].len);
    assert_non_null(j);
    const cJSON *obj = in_data ? cJSON_GetObjectItemCaseSensitive(j, "data") : j;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    int ok = cJSON_IsString(f);
    if (ok && out)
        snprintf(out, cap, "%s", f->valuestring);
    cJSON_Delete(j);
    return ok;
}

static int is_action(const struct env *e, int k, const char *action)
{
    char a[64];
    return get_str(e, k, 0, "action", a, sizeof a) && strcmp(a, action) == 0;
}

static int is_error(const struct env *e, int k, const char *code)
{
    char c[64];
    return is_action(e, k, "error") && get_str(e, k, 1, "code", c, sizeof c) && strcmp(c, code) == 0;
}

/* Exactly one message, to src, with this action (or error code). */
static void expect_reply(const struct env *e, const struct tracker_src *src, const char *action)
{
    if (e->n != 1)
        fail_msg("%d messages sent, expected one %s", e->n, action);
    assert_true(addr_equal(&e->o[0].to, &src->addr));
    if (!is_action(e, 0, action))
        fail_msg("expected %s, got %s", action, e->o[0].buf);
}

static void expect_error(const struct env *e, const struct tracker_src *src, const char *code)
{
    if (e->n != 1)
        fail_msg("%d messages sent, expected one error %s", e->n, code);
    assert_true(addr_equal(&e->o[0].to, &src->addr));
    if (!is_error(e, 0, code))
        fail_msg("expected error %s, got %s", code, e->o[0].buf);
}

/* Index of the one message sent to a (fails if none or several). */
static int sent_to(const struct env *e, const struct addr *a)
{
    int found = -1;
    for (int k = 0; k < e->n; k++)
        if (e->o[k].kind != OUT_WS && addr_equal(&e->o[k].to, a)) {
            if (found >= 0)
                fail_msg("two messages to one address");
            found = k;
        }
    return found;
}

/* {<body>,"pad":"xx.."} of exactly total bytes. */
static const char *padded(const char *body, size_t total)
{
    static char bufs[4][OUT_BUF];
    static int slot;
    char *b = bufs[slot++ % 4];
    size_t bl = strlen(body);
    assert_true(total >= bl + 11 && total < OUT_BUF);
    size_t pad = total - bl - 11;
    int n = snprintf(b, OUT_BUF, "{%s,\"pad\":\"", body);
    memset(b + n, 'x', pad);
    memcpy(b + n + pad, "\"}", 3);
    assert_int_equal(strlen(b), total);
    return b;
}

/* Announces src (padded so the token fits); the shareId and token into id/tok. */
static void announce(struct env *e, const struct tracker_src *src, char id[IDS_LEN + 1],
                     char tok[IDS_TOKEN_HEXLEN + 1])
{
    udp(e, src, padded("\"action\":\"announce\"", 128));
    expect_reply(e, src, "announceReceived");
    char buf[64];
    assert_true(get_str(e, 0, 1, "shareId", buf, sizeof buf));
    assert_int_equal(strlen(buf), IDS_LEN);
    if (id)
        memcpy(id, buf, IDS_LEN + 1);
    if (tok)
        assert_true(get_str(e, 0, 1, "token", tok, IDS_TOKEN_HEXLEN + 1));
}

static uint64_t limited(const struct env *e, enum stats_limit l) { return tracker_stats(e->t)->limited[l]; }

/* ---- UDP requests per source IP ---- */

static const char ALIVE[] = "{\"action\":\"alive\"}";

static void test_requests_burst_notice_then_silence(void **state)
{
    struct env *e = *state = env_new("rate_requests_per_sec", "1", "rate_requests_burst", "5", NULL);
    /* The burst: answered as usual, from any port of the IP. */
    for (int i = 0; i < 5; i++) {
        struct tracker_src s = udp_src("198.51.100.1", (uint16_t)(1000 + i));
        udp(e, &s, ALIVE);
        expect_error(e, &s, "notAnnounced");
    }
    /* Over it: one rateLimited... */
    struct tracker_src s = udp_src("198.51.100.1", 2000);
    udp(e, &s, ALIVE);
    expect_error(e, &s, "rateLimited");
    /* ... then silence, for every port of that IP, for the rest of the second. */
    for (int i = 0; i < 100; i++) {
        struct tracker_src p = udp_src("198.51.100.1", (uint16_t)(3000 + i));
        assert_int_equal(udp(e, &p, ALIVE), 0);
    }
    e->now += 999; /* 0.999 tokens: still over, and the notice is not due */
    assert_int_equal(udp(e, &s, ALIVE), 0);
    assert_int_equal(limited(e, STATS_L_REQUESTS), 102);
    /* Another IP is not affected. */
    struct tracker_src o = udp_src("198.51.100.2", 1000);
    udp(e, &o, ALIVE);
    expect_error(e, &o, "notAnnounced");
    /* One second on: one token refilled (answered), then the next notice. */
    e->now += 1;
    udp(e, &s, ALIVE);
    expect_error(e, &s, "notAnnounced");
    udp(e, &s, ALIVE);
    expect_error(e, &s, "rateLimited");
    assert_int_equal(udp(e, &s, ALIVE), 0);
    /* A long pause refills the burst, not more. */
    e->now += 3600000;
    int answered = 0;
    for (int i = 0; i < 20; i++) {
        udp(e, &s, ALIVE);
        answered += e->n == 1 && is_error(e, 0, "notAnnounced");
    }
    assert_int_equal(answered, 5);
}

/* The notice is an ordinary small reply: it obeys the 4x rule (udp() checks)
 * and, to a request too small for it, is simply not sent. */
static void test_requests_notice_respects_4x(void **state)
{
    struct env *e = *state = env_new("rate_requests_per_sec", "1", "rate_requests_burst", "1", NULL);
    struct tracker_src s = udp_src("198.51.100.3", 1000);
    udp(e, &s, "{}"); /* a 2-byte request: badRequest would not fit 8 bytes either */
    assert_int_equal(e->n, 0);
    udp(e, &s, ALIVE); /* 18 bytes: the 60-odd byte notice fits */
    expect_error(e, &s, "rateLimited");
    assert_true(e->o[0].len <= 4 * strlen(ALIVE));
}

static void test_requests_garbage_counts_never_answered(void **state)
{
    struct env *e = *state = env_new("rate_requests_per_sec", "1", "rate_requests_burst", "5", NULL);
    struct tracker_src s = udp_src("198.51.100.4", 1000);
    static const char *const garbage[] = { "not json", "[1,2,3]", "{\"action\":\"alive\"} x", "\xff\xfe{}",
                                           "" };
    /* Under the limit: garbage is dropped without a reply... */
    for (int i = 0; i < 5; i++)
        assert_int_equal(udp_n(e, &s, garbage[i], strlen(garbage[i])), 0);
    /* ... and it counted: the bucket is empty, a real request gets the notice. */
    udp(e, &s, ALIVE);
    expect_error(e, &s, "rateLimited");
    /* A second on: a token and a notice are both due. The garbage takes the
     * token and gets nothing; the notice is still there for a request. */
    e->now += 1000;
    assert_int_equal(udp_n(e, &s, garbage[0], strlen(garbage[0])), 0);
    udp(e, &s, ALIVE);
    expect_error(e, &s, "rateLimited");
    /* Over the limit with the notice due, garbage still gets nothing. */
    e->now += 2000; /* two tokens */
    udp(e, &s, ALIVE);
    expect_error(e, &s, "notAnnounced");
    udp(e, &s, ALIVE);
    expect_error(e, &s, "notAnnounced");
    for (int i = 0; i < 5; i++)
        assert_int_equal(udp_n(e, &s, garbage[i], strlen(garbage[i])), 0);
    udp(e, &s, ALIVE);
    expect_error(e, &s, "rateLimited");
}

static void test_requests_zero_is_off(void **state)
{
    struct env *e = *state = env_new("rate_requests_per_sec", "0", "rate_requests_burst", "1", NULL);
    struct tracker_src s = udp_src("198.51.100.5", 1000);
    for (int i = 0; i < 10000; i++) {
        udp(e, &s, ALIVE);
        if (!(e->n == 1 && is_error(e, 0, "notAnnounced")))
            fail_msg("request %d with the limit off: %d messages", i, e->n);
    }
    assert_int_equal(limited(e, STATS_L_REQUESTS), 0);
}

static void test_requests_exempt_cidrs(void **state)
{
    struct env *e = *state = env_new("rate_requests_per_sec", "1", "rate_requests_burst", "2", "rate_exempt",
                                     "198.51.100.0/24,2001:db8:1::/48", NULL);
    static const char *const exempt[] = { "198.51.100.6", "198.51.100.255", "2001:db8:1:2::5",
                                          "2001:db8:1:ffff::1" };
    static const char *const limited_ips[] = { "198.51.101.6", "2001:db8:2::1" };
    for (int k = 0; k < 4; k++) {
        struct tracker_src s = udp_src(exempt[k], 1000);
        for (int i = 0; i < 500; i++) {
            udp(e, &s, ALIVE);
            if (!(e->n == 1 && is_error(e, 0, "notAnnounced")))
                fail_msg("exempt %s, request %d: %d messages", exempt[k], i, e->n);
        }
    }
    for (int k = 0; k < 2; k++) {
        struct tracker_src s = udp_src(limited_ips[k], 1000);
        int answered = 0, notices = 0;
        for (int i = 0; i < 500; i++) {
            udp(e, &s, ALIVE);
            answered += e->n == 1 && is_error(e, 0, "notAnnounced");
            notices += e->n == 1 && is_error(e, 0, "rateLimited");
        }
        assert_int_equal(answered, 2);
        assert_int_equal(notices, 1);
    }
}

/* "Per IP" is the /64 for IPv6: addresses of one /64 share a bucket (and its
 * notice); the next /64 and distinct IPv4 addresses have their own. */
static void test_requests_ipv6_slash64_shares_bucket(void **state)
{
    struct env *e = *state = env_new("rate_requests_per_sec", "1", "rate_requests_burst", "4", NULL);
    struct tracker_src a = udp_src("2001:db8:a:b::1", 1000);
    struct tracker_src b = udp_src("2001:db8:a:b:ffff:1:2:3", 2000);
    int answered = 0, notices = 0;
    for (int i = 0; i < 20; i++) {
        struct tracker_src *s = i % 2 ? &b : &a;
        udp(e, s, ALIVE);
        answered += e->n == 1 && is_error(e, 0, "notAnnounced");
        notices += e->n == 1 && is_error(e, 0, "rateLimited");
    }
    assert_int_equal(answered, 4);
    assert_int_equal(notices, 1);
    struct tracker_src c = udp_src("2001:db8:a:c::1", 1000);
    answered = 0;
    for (int i = 0; i < 20; i++) {
        udp(e, &c, ALIVE);
        answered += e->n == 1 && is_error(e, 0, "notAnnounced");
    }
    assert_int_equal(answered, 4);
    /* IPv4 is exact: 192.0.2.1 and 192.0.2.2 are two subscribers. */
    for (int ipn = 1; ipn <= 2; ipn++) {
        char ip[32];
        snprintf(ip, sizeof ip, "192.0.2.%d", ipn);
        struct tracker_src s = udp_src(ip, 1000);
        answered = 0;
        for (int i = 0; i < 20; i++) {
            udp(e, &s, ALIVE);
            answered += e->n == 1 && is_error(e, 0, "notAnnounced");
        }
        assert_int_equal(answered, 4);
    }
}

/* A WebSocket message over its connection's bucket (counted in ws.c): told
 * once a second per IP, then silence. */
static void test_ws_rate_limited_notice_once_per_second(void **state)
{
    struct env *e = *state = env_new(NULL);
    int conn = 0;
    uint32_t slot = REGISTRY_NIL;
    struct tracker_src s = udp_src("198.51.100.7", 5000);
    s.transport = TRACKER_WS;
    s.conn = &conn;
    s.conn_peer = &slot;
    e->n = 0;
    tracker_ws_rate_limited(e->t, &s, e->now);
    assert_int_equal(e->n, 1);
    assert_int_equal(e->o[0].kind, OUT_WS);
    assert_ptr_equal(e->o[0].conn, &conn);
    assert_true(is_error(e, 0, "rateLimited"));
    for (int i = 0; i < 50; i++) {
        e->n = 0;
        tracker_ws_rate_limited(e->t, &s, e->now + 999);
        assert_int_equal(e->n, 0);
    }
    e->n = 0;
    tracker_ws_rate_limited(e->t, &s, e->now + 1000);
    assert_int_equal(e->n, 1);
    assert_int_equal(limited(e, STATS_L_REQUESTS), 52);
}

/* ---- income per target ---- */

static void test_income_per_target_refused_without_income(void **state)
{
    struct env *e = *state = env_new("rate_income_per_sec", "1", "rate_income_burst", "3", NULL);
    struct tracker_src b = udp_src("203.0.113.10", 1000), c = udp_src("203.0.113.11", 1000);
    char bid[IDS_LEN + 1], cid[IDS_LEN + 1], push_b[64], push_c[64];
    announce(e, &b, bid, NULL);
    announce(e, &c, cid, NULL);
    snprintf(push_b, sizeof push_b, "{\"action\":\"push\",\"shareId\":\"%s\"}", bid);
    snprintf(push_c, sizeof push_c, "{\"action\":\"push\",\"shareId\":\"%s\"}", cid);
    struct tracker_src pushers[6];
    for (int i = 0; i < 6; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "198.51.100.%d", 20 + i); /* six IPs: not a per-pusher limit */
        pushers[i] = udp_src(ip, 4000);
        announce(e, &pushers[i], NULL, NULL);
    }
    /* The burst: every push pairs both sides. */
    for (int i = 0; i < 3; i++) {
        udp(e, &pushers[i], push_b);
        assert_int_equal(e->n, 2);
        assert_true(is_action(e, sent_to(e, &b.addr), "income"));
        assert_true(is_action(e, sent_to(e, &pushers[i].addr), "pushReceived"));
    }
    /* Over it: the push is refused with rateLimited and the target hears nothing. */
    udp(e, &pushers[3], push_b);
    expect_error(e, &pushers[3], "rateLimited");
    udp(e, &pushers[4], push_b); /* another IP: its own notice */
    expect_error(e, &pushers[4], "rateLimited");
    assert_int_equal(udp(e, &pushers[3], push_b), 0); /* notice given this second: silence */
    assert_int_equal(limited(e, STATS_L_INCOME), 3);
    assert_int_equal(tracker_stats(e->t)->pushes, 3);
    /* Another target is not affected, nor are the refused pushers otherwise. */
    udp(e, &pushers[3], push_c);
    assert_int_equal(e->n, 2);
    assert_true(is_action(e, sent_to(e, &c.addr), "income"));
    /* One second refills one income for b. */
    e->now += 1000;
    udp(e, &pushers[5], push_b);
    assert_int_equal(e->n, 2);
    assert_true(is_action(e, sent_to(e, &b.addr), "income"));
    udp(e, &pushers[5], push_b);
    expect_error(e, &pushers[5], "rateLimited");
}

static void test_income_zero_is_off(void **state)
{
    struct env *e = *state = env_new("rate_income_per_sec", "0", NULL);
    struct tracker_src a = udp_src("198.51.100.30", 1000), b = udp_src("203.0.113.30", 1000);
    char bid[IDS_LEN + 1], push[64];
    announce(e, &a, NULL, NULL);
    announce(e, &b, bid, NULL);
    snprintf(push, sizeof push, "{\"action\":\"push\",\"shareId\":\"%s\"}", bid);
    for (int i = 0; i < 1000; i++) {
        udp(e, &a, push);
        assert_int_equal(e->n, 2);
        assert_true(is_action(e, sent_to(e, &b.addr), "income"));
    }
    assert_int_equal(limited(e, STATS_L_INCOME), 0);
}

/* ---- response bytes per destination IP ---- */

/* Requests "from" many ports of one IP (as forged sources would claim):
 * whatever they are, the bytes sent to that IP stay within the bucket. */
static void test_response_bytes_capped_per_destination_ip(void **state)
{
    struct env *e = *state = env_new("rate_response_bytes_per_sec", "1000", NULL); /* burst 2000 */
    assert_int_equal(addr_parse_ip(&e->watch_ip, "192.0.2.77", 0), 0);
    size_t max_one = 0;
    for (int i = 0; i < 500; i++) {
        struct tracker_src s = udp_src("192.0.2.77", (uint16_t)(10000 + i));
        udp(e, &s, padded("\"action\":\"announce\"", 128));
        if (e->n == 1 && e->o[0].len > max_one)
            max_one = e->o[0].len;
    }
    assert_true(max_one > 100);
    assert_true(e->bytes_to_ip <= 2000);
    assert_true(e->bytes_to_ip > 2000 - max_one); /* the burst was really available */
    uint64_t refused = limited(e, STATS_L_RESPONSE_BYTES);
    assert_true(refused >= 500 - 2000 / 100);
    /* Another IP has its own budget. */
    struct tracker_src o = udp_src("192.0.2.78", 1000);
    udp(e, &o, padded("\"action\":\"announce\"", 128));
    expect_reply(e, &o, "announceReceived");
    /* Small replies take what the big ones left (less than one small reply
     * stays), then half a second refills 500 bytes, no more. */
    size_t small = 0;
    for (int i = 0; i < 100; i++) {
        struct tracker_src s = udp_src("192.0.2.77", (uint16_t)(20000 + i));
        udp(e, &s, ALIVE);
        if (e->n)
            small = e->o[0].len;
    }
    assert_true(small > 0);
    e->now += 500;
    size_t before = e->bytes_to_ip;
    for (int i = 0; i < 100; i++) {
        struct tracker_src s = udp_src("192.0.2.77", (uint16_t)(30000 + i));
        udp(e, &s, ALIVE);
    }
    assert_true(e->bytes_to_ip - before <= 500 + small);
    assert_true(e->bytes_to_ip - before + small > 500);
}

/* income and probe answers count against their destination IP too: pushes
 * from anywhere cannot aim more than the budget at one address. */
static void test_response_bytes_cover_income_and_probe(void **state)
{
    struct env *e = *state = env_new("rate_response_bytes_per_sec", "500", NULL); /* burst 1000 */
    struct tracker_src v = udp_src("192.0.2.99", 1000);
    char vid[IDS_LEN + 1], vtok[IDS_TOKEN_HEXLEN + 1], push[64];
    announce(e, &v, vid, vtok);
    assert_int_equal(addr_parse_ip(&e->watch_ip, "192.0.2.99", 0), 0);
    e->bytes_to_ip = 0;
    e->now += 10000; /* the victim's bucket full again */
    snprintf(push, sizeof push, "{\"action\":\"push\",\"shareId\":\"%s\"}", vid);
    int incomes = 0;
    for (int i = 0; i < 200; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "198.18.%d.%d", i / 200, i % 200 + 1);
        struct tracker_src a = udp_src(ip, 5000);
        announce(e, &a, NULL, NULL);
        udp(e, &a, push);
        assert_true(sent_to(e, &a.addr) >= 0); /* the pusher's own budget is untouched */
        incomes += sent_to(e, &v.addr) >= 0;
    }
    assert_true(incomes >= 1);
    assert_true(incomes < 200);
    assert_true(e->bytes_to_ip <= 1000);
    /* The probe socket's answers draw on the same budget. */
    char body[128];
    snprintf(body, sizeof body, "\"action\":\"probe\",\"shareId\":\"%s\",\"token\":\"%s\"", vid, vtok);
    struct tracker_src vp = udp_src("192.0.2.99", 1001);
    int answered = 0;
    while (answered < 20 && probe(e, &vp, padded(body, 200)) == 1)
        answered++;
    assert_true(answered < 20);
    assert_int_equal(e->n, 0);
    assert_true(e->bytes_to_ip <= 1000);
    e->now += 60000;
    probe(e, &vp, padded(body, 200));
    assert_int_equal(e->n, 1);
    assert_int_equal(e->o[0].kind, OUT_PROBE);
    assert_true(is_action(e, 0, "probeReceived"));
}

static void test_response_bytes_zero_off_and_exempt(void **state)
{
    struct env *e = *state = env_new("rate_response_bytes_per_sec", "100", "rate_exempt", "10.9.0.0/16", NULL);
    for (int i = 0; i < 300; i++) {
        struct tracker_src s = udp_src("10.9.1.1", (uint16_t)(1000 + i));
        udp(e, &s, padded("\"action\":\"announce\"", 128));
        expect_reply(e, &s, "announceReceived");
    }
    tracker_free(e->t);
    e->cfg.rate_response_bytes_per_sec = 0;
    e->cfg.rate_exempt.n = 0;
    e->t = tracker_new(&e->cfg);
    tracker_set_sink(e->t, udp_sink, e);
    for (int i = 0; i < 300; i++) {
        struct tracker_src s = udp_src("10.9.1.1", (uint16_t)(1000 + i));
        udp(e, &s, padded("\"action\":\"announce\"", 128));
        expect_reply(e, &s, "announceReceived");
    }
    assert_int_equal(limited(e, STATS_L_RESPONSE_BYTES), 0);
}

/* ---- access key ---- */

static void test_access_key_udp(void **state)
{
    struct env *e = *state = env_new("access_key", "s3cret-K3y", NULL);
    struct tracker_src s = udp_src("198.51.100.40", 1000), s2 = udp_src("198.51.100.40", 1001);
    static const char *const refused[] = {
        "{\"action\":\"announce\"}",
        "{\"action\":\"announce\",\"key\":\"wrong\"}",
        "{\"action\":\"announce\",\"key\":\"s3cret-K3\"}",   /* a prefix */
        "{\"action\":\"announce\",\"key\":\"s3cret-K3yy\"}", /* longer */
        "{\"action\":\"announce\",\"key\":\"S3CRET-K3Y\"}",  /* case matters */
        "{\"action\":\"announce\",\"key\":7}",
        "{\"action\":\"announce\",\"key\":[\"s3cret-K3y\"]}",
    };
    for (int k = 0; k < 7; k++) {
        /* Missing or wrong: unauthorized once a second per IP, then silence. */
        udp(e, &s, refused[k]);
        expect_error(e, &s, "unauthorized");
        assert_int_equal(udp(e, &s2, refused[k]), 0);
        assert_int_equal(udp(e, &s, refused[k]), 0);
        e->now += 1000;
    }
    assert_int_equal(registry_count(tracker_registry(e->t)), 0); /* nothing was admitted */
    assert_int_equal(limited(e, STATS_L_ACCESS_KEY), 21);
    /* Garbage is never answered, key or not. */
    assert_int_equal(udp(e, &s, "{\"key\":\"s3cret-K3y\""), 0);
    /* The right key works, for every action. */
    udp(e, &s, padded("\"action\":\"announce\",\"key\":\"s3cret-K3y\"", 128));
    expect_reply(e, &s, "announceReceived");
    udp(e, &s, "{\"action\":\"pulse\",\"key\":\"s3cret-K3y\"}");
    expect_reply(e, &s, "pulseReceived");
    udp(e, &s, "{\"action\":\"alive\",\"key\":\"s3cret-K3y\"}");
    expect_reply(e, &s, "alived");
    /* A live peer is not exempt from it either. */
    udp(e, &s, "{\"action\":\"alive\"}");
    expect_error(e, &s, "unauthorized");
}

static void test_access_key_probe_socket(void **state)
{
    struct env *e = *state = env_new("access_key", "pr0be-key", NULL);
    struct tracker_src s = udp_src("198.51.100.41", 1000);
    udp(e, &s, padded("\"action\":\"announce\",\"key\":\"pr0be-key\"", 128));
    expect_reply(e, &s, "announceReceived");
    char id[16], tok[40], body[160];
    assert_true(get_str(e, 0, 1, "shareId", id, sizeof id));
    assert_true(get_str(e, 0, 1, "token", tok, sizeof tok));
    snprintf(body, sizeof body, "\"action\":\"probe\",\"shareId\":\"%s\",\"token\":\"%s\"", id, tok);
    probe(e, &s, padded(body, 200));
    assert_int_equal(e->n, 1);
    assert_int_equal(e->o[0].kind, OUT_PROBE);
    assert_true(is_error(e, 0, "unauthorized"));
    probe(e, &s, padded(body, 200));
    assert_int_equal(e->n, 0); /* the notice was given this second */
    snprintf(body, sizeof body, "\"action\":\"probe\",\"shareId\":\"%s\",\"token\":\"%s\",\"key\":\"pr0be-key\"", id,
             tok);
    probe(e, &s, padded(body, 240));
    assert_int_equal(e->n, 1);
    assert_int_equal(e->o[0].kind, OUT_PROBE);
    assert_true(is_action(e, 0, "probeReceived"));
}

/* ---- retry cookies ---- */

static const char BARE[] = "{\"action\":\"announce\"}"; /* 21 bytes: the smallest announce */

/* Fills the tracker with n peers from 10.1.0.x (each below the threshold). */
static void fill(struct env *e, int n)
{
    for (int i = 0; i < n; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.1.0.%d", i + 1);
        struct tracker_src s = udp_src(ip, 1000);
        udp(e, &s, BARE);
        expect_reply(e, &s, "announceReceived");
        char c[64];
        assert_false(get_str(e, 0, 1, "cookie", c, sizeof c));
    }
}

/* Sends a bare announce from s: returns its retry cookie (asserting the shape). */
static void get_cookie(struct env *e, const struct tracker_src *s, char cookie[64])
{
    assert_int_equal(strlen(BARE), 21);
    uint32_t before = registry_count(tracker_registry(e->t));
    udp(e, s, BARE);
    expect_error(e, s, "retry");
    assert_true(e->o[0].len <= 4 * 21); /* fits the 4x of the bare announce */
    assert_true(get_str(e, 0, 1, "cookie", cookie, 64));
    assert_int_equal(strlen(cookie), 22);
    for (const char *p = cookie; *p; p++)
        assert_true((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                    *p == '-' || *p == '_');
    /* Stateless: nothing was stored for the asker. */
    assert_int_equal(registry_count(tracker_registry(e->t)), before);
}

static int announce_with_cookie(struct env *e, const struct tracker_src *s, const char *cookie)
{
    char req[128];
    snprintf(req, sizeof req, "{\"action\":\"announce\",\"cookie\":\"%s\"}", cookie);
    udp(e, s, req);
    assert_int_equal(e->n, 1);
    return is_action(e, 0, "announceReceived");
}

static void test_retry_below_threshold_no_cookie(void **state)
{
    struct env *e = *state = env_new("max_peers", "8", "retry_threshold", "0.5", NULL);
    fill(e, 4); /* counts 0..3 are below 0.5 x 8 */
    struct tracker_src s = udp_src("10.2.0.1", 1000);
    char cookie[64];
    get_cookie(e, &s, cookie);
    assert_int_equal(limited(e, STATS_L_RETRY), 1);
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_RETRY], 1);
}

static void test_retry_cookie_admits_only_its_address(void **state)
{
    struct env *e = *state = env_new("max_peers", "8", "retry_threshold", "0.5", NULL);
    fill(e, 4);
    struct tracker_src s = udp_src("10.2.0.1", 1000);
    struct tracker_src other_port = udp_src("10.2.0.1", 1001), other_ip = udp_src("10.2.0.2", 1000);
    char cookie[64];
    get_cookie(e, &s, cookie);
    /* Someone else's cookie (another port or IP) does not admit. */
    assert_false(announce_with_cookie(e, &other_port, cookie));
    assert_true(is_error(e, 0, "retry"));
    assert_false(announce_with_cookie(e, &other_ip, cookie));
    assert_true(is_error(e, 0, "retry"));
    /* Nor does a cookie with one character changed, or a wrong shape. */
    char bad[64];
    snprintf(bad, sizeof bad, "%s", cookie);
    bad[5] = bad[5] == 'A' ? 'B' : 'A';
    assert_false(announce_with_cookie(e, &s, bad));
    assert_true(is_error(e, 0, "retry"));
    bad[5] = cookie[5];
    bad[21] = '\0';
    assert_false(announce_with_cookie(e, &s, bad));
    assert_true(is_error(e, 0, "retry"));
    assert_false(announce_with_cookie(e, &s, ""));
    udp(e, &s, "{\"action\":\"announce\",\"cookie\":12345}");
    expect_error(e, &s, "retry");
    assert_int_equal(registry_count(tracker_registry(e->t)), 4);
    /* The asker repeating with its cookie is admitted. */
    assert_true(announce_with_cookie(e, &s, cookie));
    assert_int_equal(registry_count(tracker_registry(e->t)), 5);
    /* Once live it re-announces, pulses and pushes without one. */
    udp(e, &s, BARE);
    expect_reply(e, &s, "announceReceived");
    udp(e, &s, "{\"action\":\"pulse\"}");
    expect_reply(e, &s, "pulseReceived");
    /* Peers admitted before the threshold re-announce without one too. */
    struct tracker_src first = udp_src("10.1.0.1", 1000);
    udp(e, &first, BARE);
    expect_reply(e, &first, "announceReceived");
}

static void test_retry_cookie_window_and_the_next(void **state)
{
    struct env *e = *state = env_new("max_peers", "8", "retry_threshold", "0.5", NULL);
    fill(e, 4);
    assert_int_equal(e->now % 30000, 0);
    uint64_t w0 = e->now;
    struct tracker_src s1 = udp_src("10.3.0.1", 1000), s2 = udp_src("10.3.0.2", 1000);
    struct tracker_src s3 = udp_src("10.3.0.3", 1000), s4 = udp_src("10.3.0.4", 1000);
    char c1[64], c2[64], c3[64], c4[64];
    /* Minted at the very start of a window: good until the next one ends. */
    get_cookie(e, &s1, c1);
    get_cookie(e, &s2, c2);
    get_cookie(e, &s4, c4);
    e->now = w0 + 59999;
    assert_true(announce_with_cookie(e, &s1, c1));
    e->now = w0 + 60000;
    assert_false(announce_with_cookie(e, &s2, c2));
    assert_true(is_error(e, 0, "retry"));
    /* Minted at the last moment of a window: still good 30 s later. */
    e->now = w0 + 90000 - 1;
    get_cookie(e, &s3, c3);
    e->now += 30000;
    assert_true(announce_with_cookie(e, &s3, c3));
    /* Four windows on, the first cookies are long dead. */
    e->now = w0 + 120000;
    assert_false(announce_with_cookie(e, &s4, c4));
    assert_true(is_error(e, 0, "retry"));
}

/* A re-claim (shareId + token of an id that is not live) adds a peer too,
 * so it needs the cookie as well; WebSocket announces never do (the TCP
 * handshake already proved the address). */
static void test_retry_reclaim_needs_cookie_ws_does_not(void **state)
{
    struct env *e = *state = env_new("max_peers", "8", "retry_threshold", "0.5", NULL);
    /* A peer announces, then its id expires. */
    struct tracker_src old = udp_src("10.4.0.1", 1000);
    char id[IDS_LEN + 1], tok[IDS_TOKEN_HEXLEN + 1];
    announce(e, &old, id, tok);
    e->now += (uint64_t)e->cfg.peer_ttl * 1000 + 2000;
    tracker_expire(e->t, e->now, 100);
    assert_int_equal(registry_count(tracker_registry(e->t)), 0);
    fill(e, 4);
    char body[160], cookie[64];
    snprintf(body, sizeof body, "\"action\":\"announce\",\"shareId\":\"%s\",\"token\":\"%s\"", id, tok);
    udp(e, &old, padded(body, 128));
    expect_error(e, &old, "retry");
    assert_true(get_str(e, 0, 1, "cookie", cookie, sizeof cookie));
    char body2[256];
    snprintf(body2, sizeof body2, "%s,\"cookie\":\"%.22s\"", body, cookie);
    udp(e, &old, padded(body2, 160));
    expect_reply(e, &old, "announceReceived");
    char got[16];
    assert_true(get_str(e, 0, 1, "shareId", got, sizeof got));
    assert_string_equal(got, id);
    /* Over WebSocket: admitted at once, above the threshold. */
    int conn = 0;
    uint32_t slot = REGISTRY_NIL;
    struct tracker_src w = udp_src("10.4.0.9", 5555);
    w.transport = TRACKER_WS;
    w.conn = &conn;
    w.conn_peer = &slot;
    e->n = 0;
    tracker_on_ws_message(e->t, BARE, strlen(BARE), &w, e->now);
    assert_int_equal(e->n, 1);
    assert_int_equal(e->o[0].kind, OUT_WS);
    assert_true(is_action(e, 0, "announceReceived"));
    assert_true(slot != REGISTRY_NIL);
}

static void test_retry_threshold_one_is_off(void **state)
{
    struct env *e = *state = env_new("max_peers", "8", "retry_threshold", "1", NULL);
    fill(e, 8);
    struct tracker_src s = udp_src("10.5.0.1", 1000);
    udp(e, &s, BARE);
    expect_error(e, &s, "full");
    assert_int_equal(limited(e, STATS_L_RETRY), 0);
}

/* Requests without the access key are refused before anything else: no
 * cookie is minted for them. */
static void test_access_key_before_retry(void **state)
{
    struct env *e = *state = env_new("max_peers", "2", "retry_threshold", "0", "access_key", "kk", NULL);
    struct tracker_src s = udp_src("10.6.0.1", 1000);
    udp(e, &s, BARE);
    expect_error(e, &s, "unauthorized");
    udp(e, &s, padded("\"action\":\"announce\",\"key\":\"kk\"", 64));
    expect_error(e, &s, "retry");
}

int main(void)
{
    unit_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_requests_burst_notice_then_silence, teardown_env),
        cmocka_unit_test_teardown(test_requests_notice_respects_4x, teardown_env),
        cmocka_unit_test_teardown(test_requests_garbage_counts_never_answered, teardown_env),
        cmocka_unit_test_teardown(test_requests_zero_is_off, teardown_env),
        cmocka_unit_test_teardown(test_requests_exempt_cidrs, teardown_env),
        cmocka_unit_test_teardown(test_requests_ipv6_slash64_shares_bucket, teardown_env),
        cmocka_unit_test_teardown(test_ws_rate_limited_notice_once_per_second, teardown_env),
        cmocka_unit_test_teardown(test_income_per_target_refused_without_income, teardown_env),
        cmocka_unit_test_teardown(test_income_zero_is_off, teardown_env),
        cmocka_unit_test_teardown(test_response_bytes_capped_per_destination_ip, teardown_env),
        cmocka_unit_test_teardown(test_response_bytes_cover_income_and_probe, teardown_env),
        cmocka_unit_test_teardown(test_response_bytes_zero_off_and_exempt, teardown_env),
        cmocka_unit_test_teardown(test_access_key_udp, teardown_env),
        cmocka_unit_test_teardown(test_access_key_probe_socket, teardown_env),
        cmocka_unit_test_teardown(test_retry_below_threshold_no_cookie, teardown_env),
        cmocka_unit_test_teardown(test_retry_cookie_admits_only_its_address, teardown_env),
        cmocka_unit_test_teardown(test_retry_cookie_window_and_the_next, teardown_env),
        cmocka_unit_test_teardown(test_retry_reclaim_needs_cookie_ws_does_not, teardown_env),
        cmocka_unit_test_teardown(test_retry_threshold_one_is_off, teardown_env),
        cmocka_unit_test_teardown(test_access_key_before_retry, teardown_env),
    };
    return cmocka_run_group_tests_name("tracker_limits", tests, NULL, NULL);
}
