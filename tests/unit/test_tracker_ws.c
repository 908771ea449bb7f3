/* test_tracker_ws: the tracker's WebSocket paths without sockets — WS announce,
 * one identity over UDP and WS (attach, replace, move), income on every
 * transport, each side expiring on its own, and relay with its limits — over
 * a fixed clock, a capturing UDP sink and fake WebSocket connections that
 * record every message and close code. */
#include "unit.h"

#include <cjson/cJSON.h>

#include "addr.h"
#include "config.h"
#include "ids.h"
#include "proto.h"
#include "registry.h"
#include "stats.h"
#include "tracker.h"

/* ---- the environment ---- */

#define OUT_MAX 16   /* messages one request may cause */
#define CLOSE_MAX 4  /* WebSocket closes one request may cause */
#define BODY_MAX 40000

/* A fake WebSocket connection: what ws.c keeps per connection that the
 * tracker sees (its TCP address and identity slot), plus what happened to it. */
struct fconn {
    struct addr tcp;
    uint32_t peer;     /* the identity slot the tracker fills (REGISTRY_NIL: none) */
    int closed;        /* the tracker asked for a close */
    uint16_t code;     /* ... with this status */
};

enum { OUT_UDP = 0, OUT_WS = 1 };

/* One message the tracker sent, on either transport. buf is owned by the env. */
struct out {
    int kind;             /* OUT_UDP or OUT_WS */
    struct addr to;       /* OUT_UDP: destination */
    uint8_t local;        /* OUT_UDP: local address index */
    struct fconn *conn;   /* OUT_WS: connection */
    size_t len;
    char *buf;            /* NUL-terminated copy */
};

struct env {
    struct config cfg;
    struct tracker *t;
    uint64_t now;                 /* fake monotonic milliseconds */
    int n;                        /* messages sent by the last request */
    struct out o[OUT_MAX];
    int nclose;                   /* closes asked for by the last request */
    struct fconn *closed[CLOSE_MAX];
};

static void env_clear(struct env *e)
{
    for (int k = 0; k < e->n; k++)
        free(e->o[k].buf);
    e->n = 0;
    e->nclose = 0;
}

static struct out *env_push(struct env *e, const char *buf, size_t len)
{
    if (e->n >= OUT_MAX)
        fail_msg("more than %d messages sent for one request", OUT_MAX);
    struct out *o = &e->o[e->n++];
    memset(o, 0, sizeof *o);
    o->buf = malloc(len + 1);
    assert_non_null(o->buf);
    memcpy(o->buf, buf, len);
    o->buf[len] = '\0';
    o->len = len;
    return o;
}

static void udp_sink(void *ctx, const struct addr *to, uint8_t local, const char *buf, size_t len)
{
    struct out *o = env_push(ctx, buf, len);
    o->kind = OUT_UDP;
    o->to = *to;
    o->local = local;
}

static void ws_sink(void *ctx, void *conn, const char *buf, size_t len)
{
    struct out *o = env_push(ctx, buf, len);
    o->kind = OUT_WS;
    o->conn = conn;
}

/* As ws.c does: the connection forgets its identity, then closes. */
static void ws_close_sink(void *ctx, void *conn, uint16_t code)
{
    struct env *e = ctx;
    struct fconn *c = conn;
    if (e->nclose >= CLOSE_MAX)
        fail_msg("more than %d closes for one request", CLOSE_MAX);
    if (c->closed)
        fail_msg("a connection closed twice");
    e->closed[e->nclose++] = c;
    c->peer = REGISTRY_NIL;
    c->closed = 1;
    c->code = code;
}

/* A tracker over the default config, changed by the given limits (-1: default). */
static struct env *env_new(long max_datagram, long relay_max_bytes, long relay_bytes_per_sec)
{
    struct env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    char err[256];
    config_defaults(&e->cfg);
    /* Issue 5's abuse limits are tested on their own (test_tracker_limits.c). */
    e->cfg.rate_requests_per_sec = e->cfg.rate_income_per_sec = 0;
    e->cfg.rate_response_bytes_per_sec = 0;
    e->cfg.retry_threshold = 1;
    e->cfg.max_peers = 64;
    if (max_datagram >= 0)
        e->cfg.max_datagram = max_datagram;
    if (relay_max_bytes >= 0)
        e->cfg.relay_max_bytes = relay_max_bytes;
    if (relay_bytes_per_sec >= 0)
        e->cfg.relay_bytes_per_sec = relay_bytes_per_sec;
    if (config_finish(&e->cfg, err, sizeof err) != 0)
        fail_msg("config_finish: %s", err);
    e->t = tracker_new(&e->cfg);
    assert_non_null(e->t);
    tracker_set_sink(e->t, udp_sink, e);
    tracker_set_ws_sink(e->t, ws_sink, ws_close_sink, e);
    e->now = 7000000; /* any start: the clock is monotonic, not wall time */
    return e;
}

static void env_free(struct env *e)
{
    env_clear(e);
    tracker_free(e->t);
    free(e);
}

static int setup_default(void **state)
{
    *state = env_new(-1, -1, -1);
    return 0;
}

static int teardown_env(void **state)
{
    env_free(*state);
    return 0;
}

static struct tracker_src udp_of(const char *ip, uint16_t port, uint8_t local)
{
    struct tracker_src s;
    memset(&s, 0, sizeof s);
    s.transport = TRACKER_UDP;
    if (addr_parse_ip(&s.addr, ip, port) != 0)
        fail_msg("bad test address %s", ip);
    s.local = local;
    return s;
}

static struct fconn conn_of(const char *ip, uint16_t port)
{
    struct fconn c;
    memset(&c, 0, sizeof c);
    if (addr_parse_ip(&c.tcp, ip, port) != 0)
        fail_msg("bad test address %s", ip);
    c.peer = REGISTRY_NIL;
    return c;
}

/* Every message sent must be one JSON object with a string action; no
 * datagram may exceed max_datagram, and no reply to the UDP requester
 * (req_addr, NULL over WS) 4x the request. */
static void check_sent(const struct env *e, const struct addr *req_addr, size_t req_len)
{
    for (int k = 0; k < e->n; k++) {
        const struct out *o = &e->o[k];
        if (o->kind == OUT_UDP) {
            if (o->len > (size_t)e->cfg.max_datagram)
                fail_msg("datagram of %zu bytes > max_datagram %ld: %s", o->len, e->cfg.max_datagram, o->buf);
            if (req_addr && addr_equal(&o->to, req_addr) && o->len > 4 * req_len)
                fail_msg("reply of %zu bytes to a %zu-byte request: %s", o->len, req_len, o->buf);
        }
        cJSON *j = cJSON_ParseWithLength(o->buf, o->len);
        if (!j || !cJSON_IsObject(j) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "action")))
            fail_msg("sent message is not a JSON object with an action: %s", o->buf);
        cJSON_Delete(j);
    }
}

/* One WebSocket text message from connection c. */
static void ws_req(struct env *e, struct fconn *c, const char *json)
{
    struct tracker_src s;
    memset(&s, 0, sizeof s);
    s.transport = TRACKER_WS;
    s.addr = c->tcp;
    s.conn = c;
    s.conn_peer = &c->peer;
    env_clear(e);
    tracker_on_ws_message(e->t, json, strlen(json), &s, e->now);
    check_sent(e, NULL, 0);
}

/* One datagram from s; returns what tracker_on_datagram returned. */
static int udp_req(struct env *e, const struct tracker_src *s, const char *json)
{
    env_clear(e);
    size_t len = strlen(json);
    int rc = tracker_on_datagram(e->t, json, len, s, e->now);
    check_sent(e, &s->addr, len);
    return rc;
}

/* {<body>,"pad":"xxx..."} of total bytes, so a UDP reply has room for every
 * optional field. Returns a buffer valid until the fourth next call. */
static const char *padded(const char *body, size_t total)
{
    static char bufs[4][BODY_MAX];
    static int slot;
    char *b = bufs[slot++ % 4];
    size_t bl = strlen(body);
    assert_true(total < BODY_MAX && total >= bl + 11);
    size_t pad = total - bl - 11;
    int n = snprintf(b, BODY_MAX, "{%s,\"pad\":\"", body);
    memset(b + n, 'x', pad);
    memcpy(b + n + pad, "\"}", 3);
    assert_int_equal(strlen(b), total);
    return b;
}

#define UDP_PAD 700 /* request size whose 4x budget fits the largest reply */

/* ---- reading what was sent ---- */

static cJSON *out_json(const struct env *e, int k)
{
    assert_true(k >= 0 && k < e->n);
    cJSON *j = cJSON_ParseWithLength(e->o[k].buf, e->o[k].len);
    assert_non_null(j);
    return j;
}

static void expect_action(const struct env *e, int k, const char *action)
{
    cJSON *j = out_json(e, k);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "action");
    if (!cJSON_IsString(a) || strcmp(a->valuestring, action) != 0)
        fail_msg("expected action %s, got %s", action, e->o[k].buf);
    cJSON_Delete(j);
}

/* data.<field> of message k as a string into out: 1 if present, 0 if absent. */
static int dstr(const struct env *e, int k, const char *field, char *out, size_t cap)
{
    cJSON *j = out_json(e, k);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"), field);
    int present = f != NULL;
    if (present) {
        if (!cJSON_IsString(f))
            fail_msg("data.%s is not a string: %s", field, e->o[k].buf);
        if (out)
            snprintf(out, cap, "%s", f->valuestring);
    }
    cJSON_Delete(j);
    return present;
}

static void expect_dstr(const struct env *e, int k, const char *field, const char *want)
{
    char got[512];
    if (!dstr(e, k, field, got, sizeof got))
        fail_msg("data.%s missing: %s", field, e->o[k].buf);
    if (strcmp(got, want) != 0)
        fail_msg("data.%s = \"%s\", expected \"%s\" in %s", field, got, want, e->o[k].buf);
}

/* data.<field> of message k equals the JSON text want (structurally). */
static void expect_djson(const struct env *e, int k, const char *field, const char *want)
{
    cJSON *j = out_json(e, k), *w = cJSON_Parse(want);
    assert_non_null(w);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"), field);
    if (!f || !cJSON_Compare(f, w, 1))
        fail_msg("data.%s is not %s in %s", field, want, e->o[k].buf);
    cJSON_Delete(w);
    cJSON_Delete(j);
}

/* data.transports of message k is exactly the array want, e.g. ["udp","ws"]. */
static void expect_transports(const struct env *e, int k, const char *want)
{
    expect_djson(e, k, "transports", want);
}

/* How many messages went to connection c / to UDP address a. */
static int ws_count(const struct env *e, const struct fconn *c)
{
    int n = 0;
    for (int k = 0; k < e->n; k++)
        n += e->o[k].kind == OUT_WS && e->o[k].conn == c;
    return n;
}

static int udp_count(const struct env *e, const struct tracker_src *s)
{
    int n = 0;
    for (int k = 0; k < e->n; k++)
        n += e->o[k].kind == OUT_UDP && addr_equal(&e->o[k].to, &s->addr);
    return n;
}

/* Index of the single message to connection c. */
static int ws_to(const struct env *e, const struct fconn *c)
{
    int found = -1;
    for (int k = 0; k < e->n; k++) {
        if (e->o[k].kind == OUT_WS && e->o[k].conn == c) {
            if (found >= 0)
                fail_msg("two messages to one connection: %s / %s", e->o[found].buf, e->o[k].buf);
            found = k;
        }
    }
    if (found < 0)
        fail_msg("nothing sent to the connection (%d messages sent)", e->n);
    return found;
}

/* Index of the single datagram to s's address (from s's local address). */
static int udp_to(const struct env *e, const struct tracker_src *s)
{
    int found = -1;
    for (int k = 0; k < e->n; k++) {
        if (e->o[k].kind == OUT_UDP && addr_equal(&e->o[k].to, &s->addr)) {
            if (found >= 0)
                fail_msg("two datagrams to one address: %s / %s", e->o[found].buf, e->o[k].buf);
            found = k;
        }
    }
    if (found < 0) {
        char a[ADDR_STRLEN];
        addr_format(&s->addr, a, sizeof a);
        fail_msg("nothing sent to %s (%d messages sent)", a, e->n);
    }
    assert_int_equal(e->o[found].local, s->local);
    return found;
}

/* The request caused exactly one message, to c, with this action. */
static int expect_ws_only(const struct env *e, const struct fconn *c, const char *action)
{
    if (e->n != 1)
        fail_msg("%d messages sent, expected only %s", e->n, action);
    int k = ws_to(e, c);
    expect_action(e, k, action);
    return k;
}

static int expect_udp_only(const struct env *e, const struct tracker_src *s, const char *action)
{
    if (e->n != 1)
        fail_msg("%d messages sent, expected only %s", e->n, action);
    int k = udp_to(e, s);
    expect_action(e, k, action);
    return k;
}

static void expect_ws_error(const struct env *e, const struct fconn *c, const char *code)
{
    expect_dstr(e, expect_ws_only(e, c, "error"), "code", code);
}

static void expect_udp_error(const struct env *e, const struct tracker_src *s, const char *code)
{
    expect_dstr(e, expect_udp_only(e, s, "error"), "code", code);
}

/* ---- requests ---- */

static const char *announce_with(const char *id, const char *tok)
{
    static char b[256];
    snprintf(b, sizeof b, "\"action\":\"announce\",\"shareId\":\"%s\",\"token\":\"%s\"", id, tok);
    return b;
}

static const char *push_body(const char *id)
{
    static char b[128];
    snprintf(b, sizeof b, "\"action\":\"push\",\"shareId\":\"%s\"", id);
    return b;
}

static const char *ws_push(const char *id)
{
    static char b[160];
    snprintf(b, sizeof b, "{%s}", push_body(id));
    return b;
}

/* {"action":"relay","shareId":id[,"token":tok],"data":<data>} */
static const char *relay_req(const char *id, const char *tok, const char *data)
{
    static char b[BODY_MAX];
    int n;
    if (tok)
        n = snprintf(b, sizeof b, "{\"action\":\"relay\",\"shareId\":\"%s\",\"token\":\"%s\",\"data\":%s}", id,
                     tok, data);
    else
        n = snprintf(b, sizeof b, "{\"action\":\"relay\",\"shareId\":\"%s\",\"data\":%s}", id, data);
    assert_true(n > 0 && (size_t)n < sizeof b);
    return b;
}

/* A JSON string that serialises to exactly n (>= 2) bytes: "xxx...". */
static const char *json_str_of(size_t n)
{
    static char b[BODY_MAX];
    assert_true(n >= 2 && n < sizeof b);
    b[0] = '"';
    memset(b + 1, 'x', n - 2);
    b[n - 1] = '"';
    b[n] = '\0';
    return b;
}

/* Checks the announce reply at k: shareId, a token proving it, addr and the
 * exact transports; returns the id and token. */
static void expect_announced(const struct env *e, int k, const char *addr, const char *transports,
                             char id[IDS_LEN + 1], char tok[IDS_TOKEN_HEXLEN + 1])
{
    char sid[64], t[64];
    expect_action(e, k, "announceReceived");
    if (!dstr(e, k, "shareId", sid, sizeof sid) || !ids_valid(sid, strlen(sid)))
        fail_msg("no valid shareId: %s", e->o[k].buf);
    if (!dstr(e, k, "token", t, sizeof t) || strlen(t) != IDS_TOKEN_HEXLEN)
        fail_msg("no token: %s", e->o[k].buf);
    assert_int_equal(ids_token_verify(&e->cfg.token_key, sid, t, strlen(t)), 0);
    expect_dstr(e, k, "addr", addr);
    expect_transports(e, k, transports);
    memcpy(id, sid, IDS_LEN + 1);
    memcpy(tok, t, IDS_TOKEN_HEXLEN + 1);
}

static void ws_announce(struct env *e, struct fconn *c, char id[IDS_LEN + 1], char tok[IDS_TOKEN_HEXLEN + 1])
{
    char a[ADDR_STRLEN];
    addr_format(&c->tcp, a, sizeof a);
    ws_req(e, c, "{\"action\":\"announce\"}");
    expect_announced(e, expect_ws_only(e, c, "announceReceived"), a, "[\"ws\"]", id, tok);
    assert_int_not_equal(c->peer, REGISTRY_NIL);
}

static void udp_announce(struct env *e, const struct tracker_src *s, char id[IDS_LEN + 1],
                         char tok[IDS_TOKEN_HEXLEN + 1])
{
    char a[ADDR_STRLEN];
    addr_format(&s->addr, a, sizeof a);
    assert_int_equal(udp_req(e, s, padded("\"action\":\"announce\"", UDP_PAD)), 0);
    expect_announced(e, expect_udp_only(e, s, "announceReceived"), a, "[\"udp\"]", id, tok);
}

/* Attaches connection c to (id, tok), which already has a UDP side. */
static void ws_attach(struct env *e, struct fconn *c, const char *id, const char *tok)
{
    char body[320], a[ADDR_STRLEN], gid[IDS_LEN + 1], gtok[IDS_TOKEN_HEXLEN + 1];
    snprintf(body, sizeof body, "{%s}", announce_with(id, tok));
    addr_format(&c->tcp, a, sizeof a);
    ws_req(e, c, body);
    expect_announced(e, expect_ws_only(e, c, "announceReceived"), a, "[\"udp\",\"ws\"]", gid, gtok);
    assert_string_equal(gid, id);
    assert_string_equal(gtok, tok);
}

static struct registry *reg(struct env *e) { return tracker_registry(e->t); }

static uint32_t by_id(struct env *e, const char *id) { return registry_find_id(reg(e), id, IDS_LEN); }

/* ---- WS announce ---- */

static void test_ws_announce(void **state)
{
    struct env *e = *state;
    struct fconn c = conn_of("198.51.100.5", 50001), c6 = conn_of("2001:db8::5", 50002);
    char id[IDS_LEN + 1], tok[IDS_TOKEN_HEXLEN + 1], id6[IDS_LEN + 1], tok6[IDS_TOKEN_HEXLEN + 1];

    /* addr is the observed TCP address; the only transport is ws. */
    ws_announce(e, &c, id, tok);
    assert_int_equal(c.peer, by_id(e, id));
    const struct peer *p = registry_peer(reg(e), c.peer);
    assert_int_equal(p->addr.family, 0); /* no UDP side */
    assert_true(p->flags & PEER_WS);
    assert_ptr_equal(p->extra->ws_conn, &c);
    assert_true(addr_equal(&p->extra->ws_addr, &c.tcp));
    /* Not reachable by its TCP address over UDP. */
    struct tracker_src as_udp = udp_of("198.51.100.5", 50001, 0);
    assert_int_equal(registry_find_addr(reg(e), &as_udp.addr), REGISTRY_NIL);
    ws_announce(e, &c6, id6, tok6);
    expect_dstr(e, 0, "addr", "[2001:db8::5]:50002");
    assert_string_not_equal(id, id6);

    /* Announcing again on the same connection: the same identity. */
    ws_req(e, &c, "{\"action\":\"announce\"}");
    expect_dstr(e, expect_ws_only(e, &c, "announceReceived"), "shareId", id);
    expect_dstr(e, 0, "token", tok);
    /* The other actions work over WS too, with no UDP side. */
    ws_req(e, &c, "{\"action\":\"alive\"}");
    expect_ws_only(e, &c, "alived");
    ws_req(e, &c, "{\"action\":\"pulse\"}");
    expect_dstr(e, expect_ws_only(e, &c, "pulseReceived"), "status", "0");
    /* A connection that never announced is nobody. */
    struct fconn x = conn_of("198.51.100.6", 50003);
    ws_req(e, &x, "{\"action\":\"alive\"}");
    expect_ws_error(e, &x, "notAnnounced");

    const struct stats *st = tracker_stats(e->t);
    assert_int_equal(st->announced, 2);
    assert_int_equal(st->requests[STATS_WS][PROTO_ACT_ANNOUNCE], 3);
    assert_int_equal(st->requests[STATS_UDP][PROTO_ACT_ANNOUNCE], 0);
    assert_int_equal(registry_count(reg(e)), 2);
}

/* ---- one identity, two transports ---- */

static void test_attach_udp_then_ws(void **state)
{
    struct env *e = *state;
    struct tracker_src a = udp_of("203.0.113.10", 40010, 3);
    struct fconn c = conn_of("203.0.113.10", 50010);
    char id[IDS_LEN + 1], tok[IDS_TOKEN_HEXLEN + 1];
    udp_announce(e, &a, id, tok);
    uint32_t pi = by_id(e, id);

    /* Same id, same token, the TCP address, both transports. */
    ws_attach(e, &c, id, tok);
    assert_int_equal(c.peer, pi);
    assert_int_equal(registry_count(reg(e)), 1);
    assert_int_equal(registry_find_addr(reg(e), &a.addr), pi);
    assert_int_equal(tracker_stats(e->t)->announced, 1);
    assert_int_equal(e->nclose, 0);

    /* The UDP side sees both transports as well. */
    assert_int_equal(udp_req(e, &a, padded("\"action\":\"announce\"", UDP_PAD)), 0);
    int k = expect_udp_only(e, &a, "announceReceived");
    expect_dstr(e, k, "shareId", id);
    expect_dstr(e, k, "addr", "203.0.113.10:40010");
    expect_transports(e, k, "[\"udp\",\"ws\"]");
    /* And the WS side keeps both on a bare re-announce. */
    ws_req(e, &c, "{\"action\":\"announce\"}");
    expect_transports(e, expect_ws_only(e, &c, "announceReceived"), "[\"udp\",\"ws\"]");
    expect_dstr(e, 0, "addr", "203.0.113.10:50010");
}

static void test_attach_ws_then_udp(void **state)
{
    struct env *e = *state;
    struct fconn c = conn_of("203.0.113.20", 50020);
    struct tracker_src a = udp_of("203.0.113.21", 40021, 5);
    char id[IDS_LEN + 1], tok[IDS_TOKEN_HEXLEN + 1], gid[IDS_LEN + 1], gtok[IDS_TOKEN_HEXLEN + 1];
    ws_announce(e, &c, id, tok);
    uint32_t pi = c.peer;

    assert_int_equal(udp_req(e, &a, padded(announce_with(id, tok), UDP_PAD)), 0);
    expect_announced(e, expect_udp_only(e, &a, "announceReceived"), "203.0.113.21:40021", "[\"udp\",\"ws\"]",
                     gid, gtok);
    assert_string_equal(gid, id);
    assert_string_equal(gtok, tok);
    assert_int_equal(registry_find_addr(reg(e), &a.addr), pi);
    assert_int_equal(by_id(e, id), pi);
    assert_int_equal(registry_peer(reg(e), pi)->local, 5);
    assert_int_equal(registry_count(reg(e)), 1);
    assert_int_equal(e->nclose, 0);
    assert_false(c.closed);
    /* The address now speaks for the identity with plain requests. */
    assert_int_equal(udp_req(e, &a, "{\"action\":\"alive\"}"), 0);
    expect_udp_only(e, &a, "alived");
    ws_req(e, &c, "{\"action\":\"alive\"}");
    expect_ws_only(e, &c, "alived");
}

static void test_attach_wrong_token(void **state)
{
    struct env *e = *state;
    struct tracker_src a = udp_of("203.0.113.30", 40030, 1), a2 = udp_of("203.0.113.31", 40031, 1);
    struct fconn c = conn_of("203.0.113.32", 50032), w = conn_of("203.0.113.33", 50033);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idw[IDS_LEN + 1], tokw[IDS_TOKEN_HEXLEN + 1];
    char body[320];
    udp_announce(e, &a, ida, toka);
    ws_announce(e, &w, idw, tokw);

    /* UDP identity, WS attach with a wrong token or another peer's token. */
    snprintf(body, sizeof body, "{%s}", announce_with(ida, "0123456789abcdef0123456789abcdef"));
    ws_req(e, &c, body);
    expect_ws_error(e, &c, "unauthorized");
    snprintf(body, sizeof body, "{%s}", announce_with(ida, tokw));
    ws_req(e, &c, body);
    expect_ws_error(e, &c, "unauthorized");
    assert_int_equal(c.peer, REGISTRY_NIL);
    assert_false(registry_peer(reg(e), by_id(e, ida))->flags & PEER_WS);

    /* WS identity, UDP attach with a wrong token. */
    assert_int_equal(udp_req(e, &a2, padded(announce_with(idw, toka), 200)), 0);
    expect_udp_error(e, &a2, "unauthorized");
    assert_int_equal(registry_find_addr(reg(e), &a2.addr), REGISTRY_NIL);
    assert_int_equal(registry_peer(reg(e), by_id(e, idw))->addr.family, 0);

    assert_int_equal(registry_count(reg(e)), 2);
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_UNAUTHORIZED], 3);
    assert_int_equal(e->nclose, 0);
    assert_false(w.closed);
}

static void test_attach_shareid_without_token(void **state)
{
    struct env *e = *state;
    struct tracker_src a = udp_of("203.0.113.40", 40040, 1);
    struct fconn c = conn_of("203.0.113.41", 50041);
    char id[IDS_LEN + 1], tok[IDS_TOKEN_HEXLEN + 1], body[320];
    udp_announce(e, &a, id, tok);

    snprintf(body, sizeof body, "{\"action\":\"announce\",\"shareId\":\"%s\"}", id);
    ws_req(e, &c, body);
    expect_ws_error(e, &c, "badRequest");
    /* The reverse too. */
    snprintf(body, sizeof body, "{\"action\":\"announce\",\"token\":\"%s\"}", tok);
    ws_req(e, &c, body);
    expect_ws_error(e, &c, "badRequest");
    assert_int_equal(c.peer, REGISTRY_NIL);
    assert_int_equal(registry_count(reg(e)), 1);
    assert_false(registry_peer(reg(e), by_id(e, id))->flags & PEER_WS);
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_BAD_REQUEST], 2);
}

static void test_attach_not_live_reclaims(void **state)
{
    struct env *e = *state;
    struct tracker_src a = udp_of("203.0.113.50", 40050, 2);
    struct fconn c = conn_of("203.0.113.51", 50051);
    char id[IDS_LEN + 1], tok[IDS_TOKEN_HEXLEN + 1], gid[IDS_LEN + 1], gtok[IDS_TOKEN_HEXLEN + 1];
    char body[320];
    udp_announce(e, &a, id, tok);
    e->now += (uint64_t)e->cfg.peer_ttl * 1000;
    assert_int_equal(tracker_expire(e->t, e->now, 10), 1);
    assert_int_equal(by_id(e, id), REGISTRY_NIL);

    /* Over WS: the id comes back as a WS-only peer. */
    snprintf(body, sizeof body, "{%s}", announce_with(id, tok));
    ws_req(e, &c, body);
    expect_announced(e, expect_ws_only(e, &c, "announceReceived"), "203.0.113.51:50051", "[\"ws\"]", gid, gtok);
    assert_string_equal(gid, id);
    assert_string_equal(gtok, tok);
    assert_int_equal(c.peer, by_id(e, id));
    assert_int_equal(registry_find_addr(reg(e), &a.addr), REGISTRY_NIL);

    /* It ends with its connection; over UDP it comes back again. */
    tracker_ws_closed(e->t, &c, c.peer);
    assert_int_equal(by_id(e, id), REGISTRY_NIL);
    assert_int_equal(udp_req(e, &a, padded(announce_with(id, tok), UDP_PAD)), 0);
    expect_announced(e, expect_udp_only(e, &a, "announceReceived"), "203.0.113.50:40050", "[\"udp\"]", gid,
                     gtok);
    assert_string_equal(gid, id);
    assert_int_equal(tracker_stats(e->t)->announced, 3);
    assert_int_equal(registry_count(reg(e)), 1);
}

static void test_second_ws_replaces_first(void **state)
{
    struct env *e = *state;
    struct fconn c1 = conn_of("198.51.100.60", 50060), c2 = conn_of("198.51.100.61", 50061);
    struct tracker_src b = udp_of("198.51.100.62", 40062, 1);
    char id[IDS_LEN + 1], tok[IDS_TOKEN_HEXLEN + 1], idb[IDS_LEN + 1], tokb[IDS_TOKEN_HEXLEN + 1];
    char gid[IDS_LEN + 1], gtok[IDS_TOKEN_HEXLEN + 1], body[320];
    ws_announce(e, &c1, id, tok);
    uint32_t pi = c1.peer;
    udp_announce(e, &b, idb, tokb);

    snprintf(body, sizeof body, "{%s}", announce_with(id, tok));
    ws_req(e, &c2, body);
    /* The newer connection gets the identity... */
    expect_announced(e, expect_ws_only(e, &c2, "announceReceived"), "198.51.100.61:50061", "[\"ws\"]", gid,
                     gtok);
    assert_string_equal(gid, id);
    assert_int_equal(c2.peer, pi);
    /* ... the older one is closed with 1000, once, and forgets it. */
    assert_int_equal(e->nclose, 1);
    assert_ptr_equal(e->closed[0], &c1);
    assert_true(c1.closed);
    assert_int_equal(c1.code, 1000);
    assert_int_equal(c1.peer, REGISTRY_NIL);
    assert_false(c2.closed);
    assert_ptr_equal(registry_peer(reg(e), pi)->extra->ws_conn, &c2);
    assert_true(addr_equal(&registry_peer(reg(e), pi)->extra->ws_addr, &c2.tcp));

    /* Income goes to the new connection only. */
    assert_int_equal(udp_req(e, &b, padded(push_body(id), UDP_PAD)), 0);
    assert_int_equal(e->n, 2);
    assert_int_equal(ws_count(e, &c1), 0);
    int k = ws_to(e, &c2);
    expect_action(e, k, "income");
    expect_dstr(e, k, "peerShareId", idb);
    expect_dstr(e, udp_to(e, &b), "peeraddr", "198.51.100.61:50061"); /* the new TCP address */
    /* The old connection speaks for nobody. */
    ws_req(e, &c1, "{\"action\":\"alive\"}");
    expect_ws_error(e, &c1, "notAnnounced");
    /* Its late end changes nothing. */
    tracker_ws_closed(e->t, &c1, pi);
    assert_int_equal(by_id(e, id), pi);
    assert_true(registry_peer(reg(e), pi)->flags & PEER_WS);
    /* Re-announcing on the holding connection replaces nothing. */
    ws_req(e, &c2, body);
    expect_dstr(e, expect_ws_only(e, &c2, "announceReceived"), "shareId", id);
    assert_int_equal(e->nclose, 0);
    assert_false(c2.closed);
    assert_int_equal(registry_count(reg(e)), 2);
}

static void test_udp_attach_moves_udp_side(void **state)
{
    struct env *e = *state;
    struct tracker_src a1 = udp_of("192.0.2.70", 40070, 1), a2 = udp_of("192.0.2.70", 40099, 7);
    struct tracker_src b = udp_of("192.0.2.71", 40071, 2);
    struct fconn c = conn_of("192.0.2.72", 50072);
    char id[IDS_LEN + 1], tok[IDS_TOKEN_HEXLEN + 1], idb[IDS_LEN + 1], tokb[IDS_TOKEN_HEXLEN + 1];
    char gid[IDS_LEN + 1], gtok[IDS_TOKEN_HEXLEN + 1];
    udp_announce(e, &a1, id, tok);
    ws_attach(e, &c, id, tok);
    udp_announce(e, &b, idb, tokb);
    uint32_t pi = by_id(e, id);

    /* The NAT rebinds: the UDP side moves, the WS side stays. */
    assert_int_equal(udp_req(e, &a2, padded(announce_with(id, tok), UDP_PAD)), 0);
    expect_announced(e, expect_udp_only(e, &a2, "announceReceived"), "192.0.2.70:40099", "[\"udp\",\"ws\"]", gid,
                     gtok);
    assert_string_equal(gid, id);
    assert_int_equal(registry_find_addr(reg(e), &a1.addr), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(reg(e), &a2.addr), pi);
    assert_int_equal(c.peer, pi);
    assert_int_equal(e->nclose, 0);
    assert_int_equal(udp_req(e, &a1, "{\"action\":\"alive\"}"), 0);
    expect_udp_error(e, &a1, "notAnnounced");

    /* Income reaches the new address and the connection, not the old address. */
    assert_int_equal(udp_req(e, &b, padded(push_body(id), UDP_PAD)), 0);
    assert_int_equal(e->n, 3);
    assert_int_equal(udp_count(e, &a1), 0);
    expect_action(e, udp_to(e, &a2), "income"); /* from a2's local address (7) */
    expect_action(e, ws_to(e, &c), "income");
    expect_dstr(e, udp_to(e, &b), "peeraddr", "192.0.2.70:40099");
    assert_int_equal(registry_count(reg(e)), 2);
}

static void test_holder_of_other_identity(void **state)
{
    struct env *e = *state;
    struct tracker_src a = udp_of("192.0.2.80", 40080, 1);
    struct fconn cb = conn_of("192.0.2.81", 50081), cw = conn_of("192.0.2.82", 50082);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idb[IDS_LEN + 1], tokb[IDS_TOKEN_HEXLEN + 1];
    char idw[IDS_LEN + 1], tokw[IDS_TOKEN_HEXLEN + 1], body[320];
    udp_announce(e, &a, ida, toka);
    ws_announce(e, &cb, idb, tokb);
    ws_announce(e, &cw, idw, tokw);
    uint32_t pa = by_id(e, ida), pb = by_id(e, idb), pw = by_id(e, idw);

    /* A connection holding B asks for A, with A's token: badRequest, nothing moves. */
    snprintf(body, sizeof body, "{%s}", announce_with(ida, toka));
    ws_req(e, &cb, body);
    expect_ws_error(e, &cb, "badRequest");
    assert_int_equal(cb.peer, pb);
    assert_false(registry_peer(reg(e), pa)->flags & PEER_WS);
    assert_int_equal(e->nclose, 0);
    /* An address holding A asks for W, with W's token. */
    assert_int_equal(udp_req(e, &a, padded(announce_with(idw, tokw), 200)), 0);
    expect_udp_error(e, &a, "badRequest");
    assert_int_equal(registry_peer(reg(e), pw)->addr.family, 0);
    assert_int_equal(registry_find_addr(reg(e), &a.addr), pa);
    /* Re-claiming an id that is not live, while holding another: badRequest too. */
    char dead[IDS_LEN + 1] = "Zz9Zz9Zz", dtok[IDS_TOKEN_HEXLEN + 1];
    ids_token(&e->cfg.token_key, dead, dtok);
    snprintf(body, sizeof body, "{%s}", announce_with(dead, dtok));
    ws_req(e, &cw, body);
    expect_ws_error(e, &cw, "badRequest");
    assert_int_equal(udp_req(e, &a, padded(announce_with(dead, dtok), 200)), 0);
    expect_udp_error(e, &a, "badRequest");
    assert_int_equal(by_id(e, dead), REGISTRY_NIL);
    assert_int_equal(cw.peer, pw);
    assert_int_equal(registry_count(reg(e)), 3);
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_BAD_REQUEST], 4);
}

/* ---- push across transports ---- */

/* Checks an income/pushReceived at k describing the other peer. */
static void expect_peer(const struct env *e, int k, const char *action, const char *peer_id, const char *peeraddr,
                        const char *transports)
{
    expect_action(e, k, action);
    expect_dstr(e, k, "peerShareId", peer_id);
    expect_dstr(e, k, "peeraddr", peeraddr);
    expect_transports(e, k, transports);
}

static void test_push_udp_to_ws_and_udp(void **state)
{
    struct env *e = *state;
    struct tracker_src a = udp_of("203.0.113.90", 40090, 1), b = udp_of("198.51.100.91", 40091, 4);
    struct fconn cb = conn_of("198.51.100.92", 50092);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idb[IDS_LEN + 1], tokb[IDS_TOKEN_HEXLEN + 1];
    udp_announce(e, &a, ida, toka);
    udp_announce(e, &b, idb, tokb);
    ws_attach(e, &cb, idb, tokb);

    assert_int_equal(udp_req(e, &a, padded(push_body(idb), UDP_PAD)), 0);
    assert_int_equal(e->n, 3);
    /* income on both of B's transports, naming A by its UDP address. */
    int kw = ws_to(e, &cb), ku = udp_to(e, &b), ka = udp_to(e, &a);
    expect_peer(e, kw, "income", ida, "203.0.113.90:40090", "[\"udp\"]");
    expect_dstr(e, kw, "addrTransport", "udp");
    expect_peer(e, ku, "income", ida, "203.0.113.90:40090", "[\"udp\"]");
    expect_dstr(e, ku, "addrTransport", "udp");
    /* pushReceived to A: B's UDP address (not its TCP one), both transports. */
    expect_peer(e, ka, "pushReceived", idb, "198.51.100.91:40091", "[\"udp\",\"ws\"]");
    assert_int_equal(tracker_stats(e->t)->pushes, 1);

    /* B's override is what others are told, still as its UDP address. */
    char body[320];
    snprintf(body, sizeof body,
             "{\"action\":\"pulse\",\"override\":true,\"ip\":\"9.9.9.9\",\"port\":999,\"token\":\"%s\"}", tokb);
    ws_req(e, &cb, body);
    expect_dstr(e, expect_ws_only(e, &cb, "pulseReceived"), "overriden", "true");
    assert_int_equal(udp_req(e, &a, padded(push_body(idb), UDP_PAD)), 0);
    expect_peer(e, udp_to(e, &a), "pushReceived", idb, "9.9.9.9:999", "[\"udp\",\"ws\"]");
    /* and income still goes to B's observed address, not the override */
    expect_action(e, udp_to(e, &b), "income");
    assert_int_equal(e->n, 3);

    /* From B's WS side to A: pushReceived over WS, income names B by UDP. */
    ws_req(e, &cb, ws_push(ida));
    assert_int_equal(e->n, 2);
    expect_peer(e, ws_to(e, &cb), "pushReceived", ida, "203.0.113.90:40090", "[\"udp\"]");
    int ki = udp_to(e, &a);
    expect_peer(e, ki, "income", idb, "9.9.9.9:999", "[\"udp\",\"ws\"]");
    expect_dstr(e, ki, "addrTransport", "udp");
}

static void test_push_ws_only_uses_tcp_address(void **state)
{
    struct env *e = *state;
    struct tracker_src a = udp_of("203.0.113.100", 40100, 6);
    struct fconn cc = conn_of("198.51.100.101", 50101), cd = conn_of("2001:db8::102", 50102);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idc[IDS_LEN + 1], tokc[IDS_TOKEN_HEXLEN + 1];
    char idd[IDS_LEN + 1], tokd[IDS_TOKEN_HEXLEN + 1];
    udp_announce(e, &a, ida, toka);
    ws_announce(e, &cc, idc, tokc);
    ws_announce(e, &cd, idd, tokd);

    /* WS-only C pushes UDP-only A. */
    ws_req(e, &cc, ws_push(ida));
    assert_int_equal(e->n, 2);
    expect_peer(e, ws_to(e, &cc), "pushReceived", ida, "203.0.113.100:40100", "[\"udp\"]");
    int k = udp_to(e, &a);
    expect_peer(e, k, "income", idc, "198.51.100.101:50101", "[\"ws\"]");
    expect_dstr(e, k, "addrTransport", "ws");

    /* UDP-only A pushes WS-only C: income over WS only. */
    assert_int_equal(udp_req(e, &a, padded(push_body(idc), UDP_PAD)), 0);
    assert_int_equal(e->n, 2);
    expect_peer(e, udp_to(e, &a), "pushReceived", idc, "198.51.100.101:50101", "[\"ws\"]");
    k = ws_to(e, &cc);
    expect_peer(e, k, "income", ida, "203.0.113.100:40100", "[\"udp\"]");
    expect_dstr(e, k, "addrTransport", "udp");

    /* WS-only to WS-only, IPv6 TCP address bracketed. */
    ws_req(e, &cc, ws_push(idd));
    assert_int_equal(e->n, 2);
    expect_peer(e, ws_to(e, &cc), "pushReceived", idd, "[2001:db8::102]:50102", "[\"ws\"]");
    k = ws_to(e, &cd);
    expect_peer(e, k, "income", idc, "198.51.100.101:50101", "[\"ws\"]");
    expect_dstr(e, k, "addrTransport", "ws");

    /* Push errors over WS. */
    ws_req(e, &cc, ws_push(idc));
    expect_ws_error(e, &cc, "unknownShareId");
    ws_req(e, &cc, ws_push("nobody00"));
    expect_ws_error(e, &cc, "unknownShareId");
    struct fconn x = conn_of("198.51.100.103", 50103);
    ws_req(e, &x, ws_push(ida));
    expect_ws_error(e, &x, "notAnnounced");
    assert_int_equal(tracker_stats(e->t)->pushes, 3);
}

/* ---- each side lives on its own ---- */

static void test_udp_side_expires_alone(void **state)
{
    struct env *e = *state;
    struct tracker_src a = udp_of("192.0.2.110", 40110, 1), b = udp_of("192.0.2.111", 40111, 2);
    struct fconn cb = conn_of("192.0.2.112", 50112);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idb[IDS_LEN + 1], tokb[IDS_TOKEN_HEXLEN + 1];
    udp_announce(e, &b, idb, tokb);
    uint64_t b_seen = e->now;
    ws_attach(e, &cb, idb, tokb);
    uint32_t pi = by_id(e, idb);
    uint64_t ttl = (uint64_t)e->cfg.peer_ttl * 1000;

    /* WS traffic does not keep the UDP side alive. */
    e->now += ttl / 2;
    ws_req(e, &cb, "{\"action\":\"alive\"}");
    expect_ws_only(e, &cb, "alived");
    ws_req(e, &cb, "{\"action\":\"pulse\"}");
    expect_ws_only(e, &cb, "pulseReceived");
    udp_announce(e, &a, ida, toka); /* A is seen later than B */
    e->now = b_seen + ttl - 1;
    assert_int_equal(tracker_expire(e->t, e->now, 10), 0);
    e->now = b_seen + ttl;
    assert_int_equal(tracker_expire(e->t, e->now, 10), 1);
    assert_int_equal(tracker_stats(e->t)->expired, 1);

    /* The identity lives on over WS; its UDP address is nobody now. */
    assert_int_equal(by_id(e, idb), pi);
    assert_int_equal(registry_find_addr(reg(e), &b.addr), REGISTRY_NIL);
    assert_int_equal(cb.peer, pi);
    assert_int_equal(udp_req(e, &b, "{\"action\":\"alive\"}"), 0);
    expect_udp_error(e, &b, "notAnnounced");
    /* Pushes reach it over WS only, and name it by its TCP address. */
    assert_int_equal(udp_req(e, &a, padded(push_body(idb), UDP_PAD)), 0);
    assert_int_equal(e->n, 2);
    assert_int_equal(udp_count(e, &b), 0);
    expect_peer(e, udp_to(e, &a), "pushReceived", idb, "192.0.2.112:50112", "[\"ws\"]");
    expect_peer(e, ws_to(e, &cb), "income", ida, "192.0.2.110:40110", "[\"udp\"]");
    ws_req(e, &cb, "{\"action\":\"announce\"}");
    expect_transports(e, expect_ws_only(e, &cb, "announceReceived"), "[\"ws\"]");

    /* Its connection ends: it is gone at once. */
    tracker_ws_closed(e->t, &cb, pi);
    assert_int_equal(by_id(e, idb), REGISTRY_NIL);
    assert_int_equal(udp_req(e, &a, padded(push_body(idb), UDP_PAD)), 0);
    expect_udp_error(e, &a, "unknownShareId");
    assert_int_equal(registry_count(reg(e)), 1);
}

static void test_ws_side_ends_alone(void **state)
{
    struct env *e = *state;
    struct tracker_src a = udp_of("192.0.2.120", 40120, 1), b = udp_of("192.0.2.121", 40121, 2);
    struct fconn cb = conn_of("192.0.2.122", 50122);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idb[IDS_LEN + 1], tokb[IDS_TOKEN_HEXLEN + 1];
    udp_announce(e, &b, idb, tokb);
    uint64_t b_seen = e->now;
    ws_attach(e, &cb, idb, tokb);
    uint32_t pi = by_id(e, idb);
    e->now += 1000;
    udp_announce(e, &a, ida, toka);

    /* The connection ends: the UDP side stays. */
    tracker_ws_closed(e->t, &cb, pi);
    assert_int_equal(by_id(e, idb), pi);
    assert_false(registry_peer(reg(e), pi)->flags & PEER_WS);
    assert_int_equal(e->nclose, 0); /* ended by the transport, not closed by the tracker */
    assert_int_equal(udp_req(e, &a, padded(push_body(idb), UDP_PAD)), 0);
    assert_int_equal(e->n, 2);
    assert_int_equal(ws_count(e, &cb), 0);
    expect_peer(e, udp_to(e, &a), "pushReceived", idb, "192.0.2.121:40121", "[\"udp\"]");
    int k = udp_to(e, &b);
    expect_peer(e, k, "income", ida, "192.0.2.120:40120", "[\"udp\"]");
    /* The UDP side then expires on its own schedule, and with it the peer. */
    e->now = b_seen + (uint64_t)e->cfg.peer_ttl * 1000;
    assert_int_equal(tracker_expire(e->t, e->now, 10), 1);
    assert_int_equal(by_id(e, idb), REGISTRY_NIL);
    assert_int_equal(udp_req(e, &a, padded(push_body(idb), UDP_PAD)), 0);
    expect_udp_error(e, &a, "unknownShareId");
}

static void test_ws_only_gone_at_once(void **state)
{
    struct env *e = *state;
    struct tracker_src a = udp_of("192.0.2.130", 40130, 1);
    struct fconn cc = conn_of("192.0.2.131", 50131);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idc[IDS_LEN + 1], tokc[IDS_TOKEN_HEXLEN + 1];
    udp_announce(e, &a, ida, toka);
    ws_announce(e, &cc, idc, tokc);
    uint32_t pi = cc.peer;
    /* A WS-only peer is not in the expiry order: time alone does not end it. */
    e->now += (uint64_t)e->cfg.peer_ttl * 1000 * 10;
    assert_int_equal(tracker_expire(e->t, e->now, 10), 1); /* only A */
    assert_int_equal(by_id(e, idc), pi);
    udp_announce(e, &a, ida, toka);

    /* As ws.c does: the slot is forgotten, then the tracker told. */
    cc.peer = REGISTRY_NIL;
    tracker_ws_closed(e->t, &cc, pi);
    assert_int_equal(by_id(e, idc), REGISTRY_NIL);
    assert_int_equal(registry_count(reg(e)), 1);
    assert_int_equal(udp_req(e, &a, padded(push_body(idc), UDP_PAD)), 0);
    expect_udp_error(e, &a, "unknownShareId");
    assert_int_equal(udp_req(e, &a, relay_req(idc, toka, "{\"x\":1}")), 0);
    expect_udp_error(e, &a, "unknownShareId");
    /* Ending it twice, or a slot that holds nothing, is harmless. */
    tracker_ws_closed(e->t, &cc, pi);
    tracker_ws_closed(e->t, &cc, REGISTRY_NIL);
    assert_int_equal(registry_count(reg(e)), 1);
}

/* ---- relay ---- */

/* The relayed message at k: from sender id, carrying exactly payload (JSON). */
static void expect_relayed(const struct env *e, int k, const char *from, const char *payload)
{
    expect_action(e, k, "relayed");
    expect_dstr(e, k, "peerShareId", from);
    expect_djson(e, k, "payload", payload);
}

static void test_relay_ws_to_ws(void **state)
{
    struct env *e = *state;
    struct fconn ca = conn_of("198.51.100.140", 50140), cb = conn_of("198.51.100.141", 50141);
    struct tracker_src b = udp_of("198.51.100.142", 40142, 3);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idb[IDS_LEN + 1], tokb[IDS_TOKEN_HEXLEN + 1];
    ws_announce(e, &ca, ida, toka);
    ws_announce(e, &cb, idb, tokb);

    static const char *const payloads[] = {
        "{\"sdp\":\"v=0\\r\\no=- 1 2 IN IP4 0.0.0.0\",\"type\":\"offer\"}",
        "\"a string\"",
        "42",
        "null",
        "[1,\"two\",{\"three\":[3]},true]",
        "{\"nested\":{\"deep\":{\"u\":\"\\u00e9\\\"\"}}}",
    };
    size_t bytes = 0;
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        ws_req(e, &ca, relay_req(idb, NULL, payloads[i]));
        /* Delivered to the target; success gets no reply. */
        expect_relayed(e, expect_ws_only(e, &cb, "relayed"), ida, payloads[i]);
        cJSON *p = cJSON_Parse(payloads[i]);
        char *s = cJSON_PrintUnformatted(p);
        bytes += strlen(s);
        free(s);
        cJSON_Delete(p);
    }
    const struct stats *st = tracker_stats(e->t);
    assert_int_equal(st->relayed, 6);
    assert_int_equal(st->relayed_bytes, bytes);

    /* A target with both transports gets it over WS only, even when large. */
    assert_int_equal(udp_req(e, &b, padded(announce_with(idb, tokb), UDP_PAD)), 0);
    expect_transports(e, expect_udp_only(e, &b, "announceReceived"), "[\"udp\",\"ws\"]");
    const char *big = json_str_of(4000); /* far over max_datagram */
    ws_req(e, &ca, relay_req(idb, NULL, big));
    expect_relayed(e, expect_ws_only(e, &cb, "relayed"), ida, big);
    /* And back. */
    ws_req(e, &cb, relay_req(ida, NULL, "{\"answer\":1}"));
    expect_relayed(e, expect_ws_only(e, &ca, "relayed"), idb, "{\"answer\":1}");
    assert_int_equal(st->relayed, 8);
}

static void test_relay_to_udp_fits_max_datagram(void **state)
{
    (void)state;
    struct env *e = env_new(512, -1, -1);
    struct fconn ca = conn_of("198.51.100.150", 50150);
    struct tracker_src b = udp_of("198.51.100.151", 40151, 4), c = udp_of("198.51.100.152", 40152, 5);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idb[IDS_LEN + 1], tokb[IDS_TOKEN_HEXLEN + 1];
    char idc[IDS_LEN + 1], tokc[IDS_TOKEN_HEXLEN + 1];
    ws_announce(e, &ca, ida, toka);
    assert_int_equal(udp_req(e, &b, padded("\"action\":\"announce\"", 128)), 0);
    assert_true(dstr(e, 0, "shareId", idb, sizeof idb));
    assert_true(dstr(e, 0, "token", tokb, sizeof tokb));
    assert_int_equal(udp_req(e, &c, padded("\"action\":\"announce\"", 128)), 0);
    assert_true(dstr(e, 0, "shareId", idc, sizeof idc));
    assert_true(dstr(e, 0, "token", tokc, sizeof tokc));

    /* A small one arrives as one datagram from B's local address. */
    ws_req(e, &ca, relay_req(idb, NULL, "{\"k\":\"v\"}"));
    int k = expect_udp_only(e, &b, "relayed");
    expect_relayed(e, k, ida, "{\"k\":\"v\"}");
    size_t envelope = e->o[k].len - strlen("{\"k\":\"v\"}");

    /* Exactly max_datagram fits; one byte more is unreachable, and B gets nothing. */
    const char *fit = json_str_of(512 - envelope);
    ws_req(e, &ca, relay_req(idb, NULL, fit));
    k = expect_udp_only(e, &b, "relayed");
    assert_int_equal(e->o[k].len, 512);
    expect_relayed(e, k, ida, fit);
    ws_req(e, &ca, relay_req(idb, NULL, json_str_of(512 - envelope + 1)));
    expect_ws_error(e, &ca, "unreachable");
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_UNREACHABLE], 1);
    assert_int_equal(tracker_stats(e->t)->relayed, 2);

    /* UDP to UDP and UDP to WS need the sender's token. */
    assert_int_equal(udp_req(e, &c, relay_req(idb, tokc, "[1]")), 0);
    expect_relayed(e, expect_udp_only(e, &b, "relayed"), idc, "[1]");
    assert_int_equal(udp_req(e, &c, relay_req(ida, tokc, "[2]")), 0);
    expect_relayed(e, expect_ws_only(e, &ca, "relayed"), idc, "[2]");
    assert_int_equal(udp_req(e, &c, relay_req(ida, NULL, padded("\"x\":2", 100))), 0);
    expect_udp_error(e, &c, "unauthorized");
    assert_int_equal(udp_req(e, &c, relay_req(ida, tokb, padded("\"x\":2", 100))), 0);
    expect_udp_error(e, &c, "unauthorized");
    env_free(e);
}

static void test_relay_bad_requests(void **state)
{
    struct env *e = *state;
    struct fconn ca = conn_of("198.51.100.160", 50160), cb = conn_of("198.51.100.161", 50161);
    struct fconn x = conn_of("198.51.100.162", 50162);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idb[IDS_LEN + 1], tokb[IDS_TOKEN_HEXLEN + 1];
    char body[320];
    ws_announce(e, &ca, ida, toka);
    ws_announce(e, &cb, idb, tokb);

    snprintf(body, sizeof body, "{\"action\":\"relay\",\"shareId\":\"%s\"}", idb);
    ws_req(e, &ca, body); /* no data */
    expect_ws_error(e, &ca, "badRequest");
    ws_req(e, &ca, relay_req(ida, NULL, "{\"x\":1}")); /* to oneself */
    expect_ws_error(e, &ca, "badRequest");
    ws_req(e, &ca, "{\"action\":\"relay\",\"data\":1}"); /* no target */
    expect_ws_error(e, &ca, "badRequest");
    ws_req(e, &ca, "{\"action\":\"relay\",\"shareId\":7,\"data\":1}");
    expect_ws_error(e, &ca, "badRequest");
    ws_req(e, &ca, relay_req("nobody00", NULL, "1"));
    expect_ws_error(e, &ca, "unknownShareId");
    ws_req(e, &x, relay_req(idb, NULL, "1")); /* from nobody */
    expect_ws_error(e, &x, "notAnnounced");
    const struct stats *st = tracker_stats(e->t);
    assert_int_equal(st->errors[STATS_E_BAD_REQUEST], 4);
    assert_int_equal(st->relayed, 0);
    /* data:null is data. */
    ws_req(e, &ca, relay_req(idb, NULL, "null"));
    expect_relayed(e, expect_ws_only(e, &cb, "relayed"), ida, "null");
}

static void test_relay_too_large(void **state)
{
    (void)state;
    struct env *e = env_new(-1, 1000, -1);
    struct fconn ca = conn_of("198.51.100.170", 50170), cb = conn_of("198.51.100.171", 50171);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idb[IDS_LEN + 1], tokb[IDS_TOKEN_HEXLEN + 1];
    ws_announce(e, &ca, ida, toka);
    ws_announce(e, &cb, idb, tokb);

    /* The limit counts the payload as serialised: exactly 1000 bytes pass... */
    const char *at = json_str_of(1000);
    ws_req(e, &ca, relay_req(idb, NULL, at));
    expect_relayed(e, expect_ws_only(e, &cb, "relayed"), ida, at);
    /* ... 1001 do not, and the target gets nothing. */
    ws_req(e, &ca, relay_req(idb, NULL, json_str_of(1001)));
    expect_ws_error(e, &ca, "tooLarge");
    /* Whitespace in the request is not payload: {"k":"x..."} of 1000 bytes
     * compact, sent with 200 bytes of spaces around it. */
    char data[1400];
    int n = snprintf(data, sizeof data, "{%100s\"k\"%50s:%50s%s }", "", "", "", json_str_of(1000 - 6));
    assert_true(n > 1200 && (size_t)n < sizeof data);
    ws_req(e, &ca, relay_req(idb, NULL, data));
    int k = expect_ws_only(e, &cb, "relayed");
    expect_relayed(e, k, ida, data);
    cJSON *j = out_json(e, k);
    char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"),
                                                                      "payload"));
    assert_int_equal(strlen(s), 1000);
    free(s);
    cJSON_Delete(j);
    const struct stats *st = tracker_stats(e->t);
    assert_int_equal(st->errors[STATS_E_TOO_LARGE], 1);
    assert_int_equal(st->relayed, 2);
    assert_int_equal(st->relayed_bytes, 2000);
    env_free(e);
}

static void test_relay_rate_limited(void **state)
{
    (void)state;
    struct env *e = env_new(-1, -1, 1000);
    struct fconn ca = conn_of("198.51.100.180", 50180), cb = conn_of("198.51.100.181", 50181);
    struct fconn cc = conn_of("198.51.100.182", 50182);
    char ida[IDS_LEN + 1], toka[IDS_TOKEN_HEXLEN + 1], idb[IDS_LEN + 1], tokb[IDS_TOKEN_HEXLEN + 1];
    char idc[IDS_LEN + 1], tokc[IDS_TOKEN_HEXLEN + 1];
    ws_announce(e, &ca, ida, toka);
    ws_announce(e, &cb, idb, tokb);
    ws_announce(e, &cc, idc, tokc);

    /* The bucket starts with one second's worth (1000 bytes). */
    ws_req(e, &ca, relay_req(idb, NULL, json_str_of(600)));
    expect_ws_only(e, &cb, "relayed");
    ws_req(e, &ca, relay_req(idb, NULL, json_str_of(401)));
    expect_ws_error(e, &ca, "rateLimited");
    /* A refused relay takes nothing: the 400 left still go. */
    ws_req(e, &ca, relay_req(idb, NULL, json_str_of(400)));
    expect_ws_only(e, &cb, "relayed");
    ws_req(e, &ca, relay_req(idb, NULL, json_str_of(2)));
    expect_ws_error(e, &ca, "rateLimited");
    /* The bucket is per identity: C still has its full second. */
    ws_req(e, &cc, relay_req(idb, NULL, json_str_of(1000)));
    expect_ws_only(e, &cb, "relayed");

    /* 100 ms later A has 100 bytes again. */
    e->now += 100;
    ws_req(e, &ca, relay_req(idb, NULL, json_str_of(101)));
    expect_ws_error(e, &ca, "rateLimited");
    ws_req(e, &ca, relay_req(idb, NULL, json_str_of(100)));
    expect_ws_only(e, &cb, "relayed");
    /* After a long pause it holds one second's worth, no more. */
    e->now += 60 * 1000;
    ws_req(e, &ca, relay_req(idb, NULL, json_str_of(1001)));
    expect_ws_error(e, &ca, "rateLimited");
    ws_req(e, &ca, relay_req(idb, NULL, json_str_of(1000)));
    expect_ws_only(e, &cb, "relayed");

    const struct stats *st = tracker_stats(e->t);
    assert_int_equal(st->errors[STATS_E_RATE_LIMITED], 4);
    assert_int_equal(st->relayed, 5);
    assert_int_equal(st->relayed_bytes, 600 + 400 + 1000 + 100 + 1000);
    env_free(e);

    /* relay_bytes_per_sec 0: no limit. */
    e = env_new(-1, -1, 0);
    ca = conn_of("198.51.100.183", 50183);
    cb = conn_of("198.51.100.184", 50184);
    ws_announce(e, &ca, ida, toka);
    ws_announce(e, &cb, idb, tokb);
    for (int i = 0; i < 20; i++) {
        ws_req(e, &ca, relay_req(idb, NULL, json_str_of(16384)));
        expect_ws_only(e, &cb, "relayed");
    }
    assert_int_equal(tracker_stats(e->t)->errors[STATS_E_RATE_LIMITED], 0);
    env_free(e);
}

int main(void)
{
    unit_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ws_announce, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_attach_udp_then_ws, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_attach_ws_then_udp, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_attach_wrong_token, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_attach_shareid_without_token, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_attach_not_live_reclaims, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_second_ws_replaces_first, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_udp_attach_moves_udp_side, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_holder_of_other_identity, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_push_udp_to_ws_and_udp, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_push_ws_only_uses_tcp_address, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_udp_side_expires_alone, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_ws_side_ends_alone, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_ws_only_gone_at_once, setup_default, teardown_env),
        cmocka_unit_test_setup_teardown(test_relay_ws_to_ws, setup_default, teardown_env),
        cmocka_unit_test(test_relay_to_udp_fits_max_datagram),
        cmocka_unit_test_setup_teardown(test_relay_bad_requests, setup_default, teardown_env),
        cmocka_unit_test(test_relay_too_large),
        cmocka_unit_test(test_relay_rate_limited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
