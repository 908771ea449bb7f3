/* tracker: announce / pulse / alive / push / relay over the registry, for
 * both transports (see tracker.h). */
#include "tracker.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "proto.h"
#include "ratelimit.h"
#include "xmem.h"

#define TRACKER_BUF_MIN 65536 /* > the largest max_datagram (65507) + NUL */
#define TRACKER_AMPLIFICATION 4 /* a UDP reply is at most 4x its request */
#define TRACKER_ENVELOPE 1024   /* room around a relay payload in "relayed" */
#define TRACKER_SEQ_STEP_MAX 16 /* ports between two mappings of a "sequential" NAT */
#define TRACKER_PREDICTED 4     /* ports predicted for a sequential NAT */
#define TRACKER_NONCE_BYTES 16  /* pairing nonce: 32 hex characters */
#define TRACKER_RL_SLOTS 32768  /* buckets per limiter table (see ratelimit.h) */
#define TRACKER_COOKIE_BYTES 16 /* retry cookie MAC, sent as 22 base64url characters */
#define TRACKER_COOKIE_WINDOW_MS 30000 /* a cookie is good for this window and the next */

struct tracker {
    const struct config *cfg;
    struct registry *reg;
    tracker_send_fn send;          /* UDP sink of the current lock holder */
    void *send_ctx;
    tracker_send_fn main_send;     /* UDP sink set with tracker_set_sink() */
    void *main_ctx;
    pthread_mutex_t lock;          /* recursive: a sink may call back in */
    unsigned lock_depth;           /* changed only by the holder */
    tracker_ws_send_fn ws_send;    /* WebSocket sink */
    tracker_ws_close_fn ws_close;
    void *ws_ctx;
    tracker_send_fn probe_send;    /* probe socket sink (NULL: no probe socket) */
    void *probe_ctx;
    struct addr probe_bound;
    struct ratelimit *rl_req;      /* UDP requests per source IP */
    struct ratelimit *rl_income;   /* income per target shareId */
    struct ratelimit *rl_resp;     /* UDP bytes sent per destination IP */
    struct ratelimit *rl_notice;   /* "you are limited" at most once a second per IP */
    struct ratelimit *rl_miss;     /* unknownShareId answers per source IP (id guessing) */
    unsigned char cookie_key[crypto_auth_KEYBYTES];
    unsigned char access_hash[crypto_generichash_BYTES]; /* of access_key, for comparing */
    uint64_t now;                  /* time of the request being handled */
    struct stats st;
    size_t req_len;                /* bytes of the request being answered */
    struct proto_req req;          /* the request being answered */
    char *scratch;                 /* decoder's NUL-terminated copy of a request */
    size_t scratch_cap;
    char *payload;                 /* a relay's re-serialised "data" */
    size_t payload_cap;
    char *out;                     /* encoded reply */
    size_t out_cap;
};

static const char *const tracker_error_codes[STATS_E_COUNT] = {
    [STATS_E_BAD_REQUEST] = "badRequest",
    [STATS_E_UNKNOWN_ACTION] = "unknownAction",
    [STATS_E_NOT_ANNOUNCED] = "notAnnounced",
    [STATS_E_UNKNOWN_SHARE_ID] = "unknownShareId",
    [STATS_E_UNAUTHORIZED] = "unauthorized",
    [STATS_E_FULL] = "full",
    [STATS_E_UNREACHABLE] = "unreachable",
    [STATS_E_TOO_LARGE] = "tooLarge",
    [STATS_E_RATE_LIMITED] = "rateLimited",
    [STATS_E_RETRY] = "retry",
};

const char *tracker_error_code(enum stats_error e)
{
    return (unsigned)e < STATS_E_COUNT ? tracker_error_codes[e] : "unknown";
}

struct tracker *tracker_new(const struct config *cfg)
{
    struct tracker *t = xcalloc(1, sizeof *t);
    t->cfg = cfg;
    t->reg = registry_new((uint32_t)cfg->max_peers, (uint64_t)cfg->peer_ttl * 1000u);
    /* Sized once from the limits; requests never allocate. Large buffers are
     * resident only as far as they are actually used. */
    t->scratch_cap = TRACKER_BUF_MIN;
    if ((size_t)cfg->ws_max_message + 1 > t->scratch_cap)
        t->scratch_cap = (size_t)cfg->ws_max_message + 1;
    t->payload_cap = (size_t)cfg->relay_max_bytes + 64;
    t->out_cap = TRACKER_BUF_MIN;
    if ((size_t)cfg->relay_max_bytes + TRACKER_ENVELOPE > t->out_cap)
        t->out_cap = (size_t)cfg->relay_max_bytes + TRACKER_ENVELOPE;
    t->rl_req = ratelimit_new(TRACKER_RL_SLOTS, (double)cfg->rate_requests_per_sec,
                              (double)cfg->rate_requests_burst);
    t->rl_income = ratelimit_new(TRACKER_RL_SLOTS, (double)cfg->rate_income_per_sec,
                                 (double)cfg->rate_income_burst);
    t->rl_resp = ratelimit_new(TRACKER_RL_SLOTS, (double)cfg->rate_response_bytes_per_sec,
                               2. * (double)cfg->rate_response_bytes_per_sec);
    t->rl_notice = ratelimit_new(TRACKER_RL_SLOTS, 0, 1);
    t->rl_miss = ratelimit_new(TRACKER_RL_SLOTS, (double)cfg->rate_requests_per_sec,
                               (double)cfg->rate_requests_burst);
    crypto_auth_keygen(t->cookie_key);
    crypto_generichash(t->access_hash, sizeof t->access_hash, (const unsigned char *)cfg->access_key,
                       strlen(cfg->access_key), NULL, 0);
    t->scratch = xmalloc(t->scratch_cap);
    t->payload = xmalloc(t->payload_cap);
    t->out = xmalloc(t->out_cap);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    if (pthread_mutex_init(&t->lock, &ma) != 0)
        abort();
    pthread_mutexattr_destroy(&ma);
    return t;
}

void tracker_lock_with(struct tracker *t, tracker_send_fn send, void *ctx)
{
    pthread_mutex_lock(&t->lock);
    if (t->lock_depth++ == 0) {
        t->send = send;
        t->send_ctx = ctx;
    }
}

void tracker_lock(struct tracker *t) { tracker_lock_with(t, t->main_send, t->main_ctx); }

void tracker_unlock(struct tracker *t)
{
    t->lock_depth--;
    pthread_mutex_unlock(&t->lock);
}

void tracker_count_worker(struct tracker *t, unsigned worker, uint64_t datagrams)
{
    if (worker < CONFIG_WORKERS_MAX)
        t->st.worker_datagrams[worker] += datagrams;
}

void tracker_free(struct tracker *t)
{
    if (!t)
        return;
    registry_free(t->reg);
    pthread_mutex_destroy(&t->lock);
    ratelimit_free(t->rl_req);
    ratelimit_free(t->rl_income);
    ratelimit_free(t->rl_resp);
    ratelimit_free(t->rl_notice);
    ratelimit_free(t->rl_miss);
    free(t->scratch);
    free(t->payload);
    free(t->out);
    free(t);
}

void tracker_set_sink(struct tracker *t, tracker_send_fn send, void *ctx)
{
    t->send = t->main_send = send;
    t->send_ctx = t->main_ctx = ctx;
}

void tracker_set_ws_sink(struct tracker *t, tracker_ws_send_fn send, tracker_ws_close_fn close,
                         void *ctx)
{
    t->ws_send = send;
    t->ws_close = close;
    t->ws_ctx = ctx;
}

void tracker_set_probe(struct tracker *t, const struct addr *bound, tracker_send_fn send, void *ctx)
{
    t->probe_bound = *bound;
    t->probe_send = send;
    t->probe_ctx = ctx;
}

const struct stats *tracker_stats(const struct tracker *t) { return &t->st; }
struct registry *tracker_registry(struct tracker *t) { return t->reg; }

void tracker_count_drop(struct tracker *t, enum proto_drop reason)
{
    if ((unsigned)reason < PROTO_DROP_COUNT)
        t->st.dropped[reason]++;
}

void tracker_count_limit(struct tracker *t, enum stats_limit which)
{
    if ((unsigned)which < STATS_L_COUNT)
        t->st.limited[which]++;
}

/* ---- limits ---- */

/* 1 if a's IP is inside one of the rate_exempt networks. */
static int tracker_exempt(const struct tracker *t, const struct addr *a)
{
    return config_cidrs_has(&t->cfg->rate_exempt, a);
}

/* Response rate limiting (as DNS servers do against reflection): UDP bytes
 * to any one IP, whatever the requests claimed as their source. */
static int tracker_resp_ok(struct tracker *t, const struct addr *to, size_t len)
{
    uint8_t k[9];
    if (tracker_exempt(t, to) || ratelimit_take(t->rl_resp, k, ratelimit_ip_key(to, k), (double)len, t->now))
        return 1;
    t->st.limited[STATS_L_RESPONSE_BYTES]++;
    return 0;
}

/* 1 if src may be told it hit a limit now (once per second per IP). */
static int tracker_notice(struct tracker *t, const struct tracker_src *src)
{
    uint8_t k[9];
    return ratelimit_notice(t->rl_notice, k, ratelimit_ip_key(&src->addr, k), t->now);
}

/* ---- sending ---- */

static int tracker_app(const struct tracker *t) { return t->cfg->compat == CONFIG_COMPAT_SOBANI_APP; }

/* Encodes r under budget into t->out; returns the length or -1 (counted). */
static ssize_t tracker_encode(struct tracker *t, const struct proto_reply *r, size_t budget)
{
    ssize_t n = proto_encode(r, t->out, t->out_cap, budget);
    if (n < 0)
        t->st.replies_too_large++;
    return n;
}

/* A datagram to a UDP peer: never larger than max_datagram (nor budget). */
/* ... through the given UDP sink (the main socket's or the probe socket's). */
static int tracker_send_dgram(struct tracker *t, tracker_send_fn send, void *ctx,
                              const struct addr *to, uint8_t local, const struct proto_reply *r,
                              size_t budget)
{
    if (budget > (size_t)t->cfg->max_datagram)
        budget = (size_t)t->cfg->max_datagram;
    ssize_t n = tracker_encode(t, r, budget);
    if (n < 0)
        return -1;
    if (!tracker_resp_ok(t, to, (size_t)n))
        return 0; /* dropped like a lost datagram: the limit is per destination */
    if (send)
        send(ctx, to, local, t->out, (size_t)n);
    return 0;
}

static int tracker_send_udp(struct tracker *t, const struct addr *to, uint8_t local,
                            const struct proto_reply *r, size_t budget)
{
    return tracker_send_dgram(t, t->send, t->send_ctx, to, local, r, budget);
}

static int tracker_send_ws(struct tracker *t, void *conn, const struct proto_reply *r)
{
    ssize_t n = tracker_encode(t, r, t->out_cap);
    if (n < 0)
        return -1;
    if (t->ws_send)
        t->ws_send(t->ws_ctx, conn, t->out, (size_t)n);
    return 0;
}

/* A reply to the requester. Over UDP never more than 4x the request
 * (anti-amplification); a WebSocket has a handshake, so no such limit. */
static void tracker_reply(struct tracker *t, const struct tracker_src *src, const struct proto_reply *r)
{
    if (src->transport == TRACKER_WS)
        tracker_send_ws(t, src->conn, r);
    else if (src->transport == TRACKER_PROBE)
        tracker_send_dgram(t, t->probe_send, t->probe_ctx, &src->addr, src->local, r,
                           TRACKER_AMPLIFICATION * t->req_len);
    else
        tracker_send_udp(t, &src->addr, src->local, r, TRACKER_AMPLIFICATION * t->req_len);
}

static void tracker_error(struct tracker *t, const struct tracker_src *src, enum stats_error code,
                          const char *message)
{
    struct proto_reply r;
    t->st.errors[code]++;
    if (code == STATS_E_FULL)
        t->st.limited[STATS_L_FULL]++;
    proto_reply_init(&r, "error", 1);
    proto_reply_str(&r, "code", tracker_error_codes[code], PROTO_KEEP);
    proto_reply_str(&r, "message", message, PROTO_PRIO_MESSAGE);
    tracker_reply(t, src, &r);
}

/* Sender is not a live peer: notAnnounced, or {"action":"expired"} for the app. */
static void tracker_not_announced(struct tracker *t, const struct tracker_src *src)
{
    if (tracker_app(t)) {
        struct proto_reply r;
        t->st.errors[STATS_E_NOT_ANNOUNCED]++;
        proto_reply_init(&r, "expired", 0);
        tracker_reply(t, src, &r);
        return;
    }
    tracker_error(t, src, STATS_E_NOT_ANNOUNCED, "sender is not announced (or has expired)");
}

/* ---- field helpers ---- */

static const struct proto_field *tracker_f(const struct tracker *t, enum proto_key k) { return &t->req.f[k]; }

static int tracker_present(const struct tracker *t, enum proto_key k)
{
    return tracker_f(t, k)->type != PROTO_T_ABSENT;
}

static int tracker_is(const struct tracker *t, enum proto_key k, enum proto_type type)
{
    return tracker_f(t, k)->type == type;
}

/* 1 if the request's token proves ownership of id. */
static int tracker_token_ok(const struct tracker *t, const char id[IDS_LEN])
{
    const struct proto_field *tok = tracker_f(t, PROTO_K_TOKEN);
    return tok->type == PROTO_T_STRING && !tok->too_long &&
           ids_token_verify(&t->cfg->token_key, id, tok->s, tok->len) == 0;
}

/* 1 if no access_key is set or the request's "key" is it. Compared as
 * hashes in constant time, so neither content nor length leaks. */
static int tracker_access_ok(const struct tracker *t)
{
    if (!t->cfg->access_key[0])
        return 1;
    const struct proto_field *k = tracker_f(t, PROTO_K_KEY);
    if (k->type != PROTO_T_STRING || k->too_long)
        return 0;
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof h, (const unsigned char *)k->s, k->len, NULL, 0);
    return sodium_memcmp(h, t->access_hash, sizeof h) == 0;
}

/* The retry cookie for address a in time window w: a MAC, no state kept. */
static void tracker_cookie(const struct tracker *t, const struct addr *a, uint64_t w,
                           char out[sodium_base64_ENCODED_LEN(TRACKER_COOKIE_BYTES,
                                                              sodium_base64_VARIANT_URLSAFE_NO_PADDING)])
{
    unsigned char msg[sizeof *a + sizeof w], mac[crypto_auth_BYTES];
    memcpy(msg, a, sizeof *a);
    memcpy(msg + sizeof *a, &w, sizeof w);
    crypto_auth(mac, msg, sizeof msg, t->cookie_key);
    sodium_bin2base64(out, sodium_base64_ENCODED_LEN(TRACKER_COOKIE_BYTES,
                                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                      mac, TRACKER_COOKIE_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

#define TRACKER_COOKIE_LEN \
    sodium_base64_ENCODED_LEN(TRACKER_COOKIE_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)

/* 1 if the request carries a cookie minted for its source in this window or the last. */
static int tracker_cookie_ok(const struct tracker *t, const struct tracker_src *src)
{
    const struct proto_field *c = tracker_f(t, PROTO_K_COOKIE);
    if (c->type != PROTO_T_STRING || c->len != TRACKER_COOKIE_LEN - 1)
        return 0;
    uint64_t w = t->now / TRACKER_COOKIE_WINDOW_MS;
    char want[TRACKER_COOKIE_LEN];
    int ok = 0;
    for (uint64_t k = 0; k < 2 && k <= w; k++) {
        tracker_cookie(t, &src->addr, w - k, want);
        ok |= sodium_memcmp(want, c->s, TRACKER_COOKIE_LEN - 1) == 0;
    }
    return ok;
}

/* Above retry_threshold, a new UDP peer must first prove it receives at its
 * source address (as QUIC Retry does): returns 1 after answering "retry". */
static int tracker_retry(struct tracker *t, const struct tracker_src *src)
{
    double threshold = t->cfg->retry_threshold;
    if (src->transport != TRACKER_UDP || threshold >= 1 ||
        (double)registry_count(t->reg) < threshold * (double)registry_capacity(t->reg) ||
        tracker_cookie_ok(t, src))
        return 0;
    char cookie[TRACKER_COOKIE_LEN];
    tracker_cookie(t, &src->addr, t->now / TRACKER_COOKIE_WINDOW_MS, cookie);
    struct proto_reply r;
    proto_reply_init(&r, "error", 1);
    proto_reply_str(&r, "code", "retry", PROTO_KEEP);
    proto_reply_str(&r, "cookie", cookie, PROTO_KEEP);
    proto_reply_str(&r, "message", "repeat this announce with the cookie", PROTO_PRIO_MESSAGE);
    t->st.errors[STATS_E_RETRY]++;
    t->st.limited[STATS_L_RETRY]++;
    tracker_reply(t, src, &r);
    return 1;
}

/* A multiaddr, if sent, must be a string of at most REGISTRY_MULTIADDR_MAX bytes. */
static int tracker_multiaddr_ok(const struct tracker *t)
{
    const struct proto_field *m = tracker_f(t, PROTO_K_MULTIADDR);
    return m->type == PROTO_T_ABSENT ||
           (m->type == PROTO_T_STRING && !m->too_long && m->len <= REGISTRY_MULTIADDR_MAX);
}

static void tracker_keep_multiaddr(struct tracker *t, uint32_t pi)
{
    const struct proto_field *m = tracker_f(t, PROTO_K_MULTIADDR);
    if (m->type == PROTO_T_STRING)
        registry_set_multiaddr(t->reg, pi, m->s, m->len);
}

/* A pubkey, if sent, is 1..REGISTRY_PUBKEY_MAX characters of base64/base64url. */
static int tracker_pubkey_ok(const struct tracker *t)
{
    const struct proto_field *k = tracker_f(t, PROTO_K_PUBKEY);
    if (k->type == PROTO_T_ABSENT)
        return 1;
    if (k->type != PROTO_T_STRING || k->too_long || k->len == 0 || k->len > REGISTRY_PUBKEY_MAX)
        return 0;
    for (size_t i = 0; i < k->len; i++) {
        char c = k->s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '=' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* The optional fields announce and pulse share: multiaddr, candidates, pubkey.
 * Returns 0, or -1 after answering badRequest. */
static int tracker_check_self_fields(struct tracker *t, const struct tracker_src *src)
{
    if (!tracker_multiaddr_ok(t)) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "multiaddr must be a string of at most 256 bytes");
        return -1;
    }
    if (t->req.cand == PROTO_CAND_BAD) {
        tracker_error(t, src, STATS_E_BAD_REQUEST,
                      "candidates must be a list of at most 8 \"ip:port\" strings");
        return -1;
    }
    if (!tracker_pubkey_ok(t)) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "pubkey must be 1-64 base64 characters");
        return -1;
    }
    return 0;
}

/* Stores the request's multiaddr, candidates and pubkey for peer pi. Only
 * for a request that cannot be forged (a new peer, a valid token, or a
 * WebSocket): otherwise one spoofed datagram from a peer's address would hand
 * the next pusher an attacker's candidates and key. */
static void tracker_keep_self_fields(struct tracker *t, uint32_t pi, int trusted)
{
    if (!trusted)
        return;
    tracker_keep_multiaddr(t, pi);
    if (t->req.cand == PROTO_CAND_OK) {
        struct peer_extra *e = registry_extra_of(t->reg, pi);
        e->ncand = t->req.ncand;
        memcpy(e->cand, t->req.cand_addr, t->req.ncand * sizeof e->cand[0]);
    }
    const struct proto_field *k = tracker_f(t, PROTO_K_PUBKEY);
    if (k->type == PROTO_T_STRING) {
        struct peer_extra *e = registry_extra_of(t->reg, pi);
        memcpy(e->pubkey, k->s, k->len);
        e->pubkey[k->len] = '\0';
        e->pubkey_len = (uint8_t)k->len;
    }
}

static const char *const tracker_nat_names[] = { "unknown", "eim", "sequential", "random" };

static const char *tracker_nat_name(const struct peer *p)
{
    return tracker_nat_names[p->extra && p->extra->nat <= PEER_NAT_RANDOM ? p->extra->nat : 0];
}

/* A successful request from peer pi refreshes it; over UDP also answer it
 * (and send its income) from the local address it last talked to. */
static void tracker_seen(struct tracker *t, uint32_t pi, const struct tracker_src *src, uint64_t now)
{
    struct peer *p = registry_peer(t->reg, pi);
    if (src->transport == TRACKER_UDP) {
        p->local = src->local;
        registry_touch(t->reg, pi, now);
    }
}

/* The live peer that sent src's request, or REGISTRY_NIL: by address over
 * UDP, by the connection's identity over WebSocket. */
static uint32_t tracker_sender(struct tracker *t, const struct tracker_src *src)
{
    if (src->transport == TRACKER_UDP)
        return registry_find_addr(t->reg, &src->addr);
    uint32_t pi = src->conn_peer ? *src->conn_peer : REGISTRY_NIL;
    if (pi == REGISTRY_NIL)
        return REGISTRY_NIL;
    const struct peer *p = registry_peer(t->reg, pi);
    if (!p->in_use || !(p->flags & PEER_WS) || p->extra->ws_conn != src->conn)
        return REGISTRY_NIL;
    return pi;
}

/* ["udp"], ["ws"] or ["udp","ws"]: the transports peer p has. */
static const char *tracker_transports(const struct peer *p)
{
    int udp = p->addr.family != 0, ws = (p->flags & PEER_WS) != 0;
    return udp && ws ? "[\"udp\",\"ws\"]" : ws ? "[\"ws\"]" : "[\"udp\"]";
}

/* The address others are told for peer p, and which transport it belongs
 * to: the override if set, else the UDP address if any, else the TCP one. */
static const struct addr *tracker_public_addr(const struct peer *p, const char **transport)
{
    *transport = "udp";
    /* The override stands for the UDP side: it goes when that side expires. */
    if (p->addr.family && p->extra && p->extra->override.family)
        return &p->extra->override;
    if (p->addr.family || !(p->flags & PEER_WS))
        return &p->addr;
    *transport = "ws";
    return &p->extra->ws_addr;
}

/* Buffers for the strings of one peer's fields in a reply. */
struct tracker_peer_strs {
    char addr[ADDR_STRLEN];
    char id[IDS_LEN + 1];
    char cand[REGISTRY_CANDIDATES_MAX * (ADDR_STRLEN + 3) + 3];
    char pred[TRACKER_PREDICTED * (ADDR_STRLEN + 3) + 3];
};

/* Writes n endpoints as a JSON array of strings into buf (cap bytes). */
static size_t tracker_addr_list(char *buf, size_t cap, const struct addr *a, unsigned n)
{
    size_t len = 0;
    buf[len++] = '[';
    for (unsigned i = 0; i < n && len + ADDR_STRLEN + 4 < cap; i++) {
        if (i)
            buf[len++] = ',';
        buf[len++] = '"';
        len += addr_format(&a[i], buf + len, cap - len);
        buf[len++] = '"';
    }
    buf[len++] = ']';
    buf[len] = '\0';
    return len;
}

/* Ports a sequential NAT will likely hand out next, after the probe's
 * mapping, in the direction it counts. Returns how many were written. */
static unsigned tracker_predict(const struct peer *p, struct addr out[TRACKER_PREDICTED])
{
    if (!p->extra || p->extra->nat != PEER_NAT_SEQUENTIAL)
        return 0;
    const struct addr *probe = &p->extra->probe;
    int dir = probe->port > p->addr.port ? 1 : -1;
    unsigned n = 0;
    for (int k = 1; k <= TRACKER_PREDICTED; k++) {
        long port = (long)probe->port + dir * k;
        if (port < 1 || port > 65535)
            break;
        out[n] = *probe;
        out[n].port = (uint16_t)port;
        n++;
    }
    return n;
}

/* Adds peer p's public address, id, transports and multiaddr to r; and,
 * with with_addr_transport (income), which transport peeraddr belongs to. */
static void tracker_peer_fields(struct proto_reply *r, const struct peer *p,
                                struct tracker_peer_strs *ps, int with_addr_transport)
{
    const char *addr_transport;
    addr_format(tracker_public_addr(p, &addr_transport), ps->addr, sizeof ps->addr);
    memcpy(ps->id, p->id, IDS_LEN);
    ps->id[IDS_LEN] = '\0';
    proto_reply_str(r, "peeraddr", ps->addr, PROTO_KEEP);
    proto_reply_str(r, "peerShareId", ps->id, PROTO_KEEP);
    const char *tr = tracker_transports(p);
    proto_reply_add(r, "transports", tr, strlen(tr), PROTO_RAW, PROTO_PRIO_TRANSPORTS);
    if (with_addr_transport)
        proto_reply_str(r, "addrTransport", addr_transport, PROTO_PRIO_TRANSPORTS);
    if (p->extra && p->extra->multiaddr_len)
        proto_reply_add(r, "multiaddr", p->extra->multiaddr, p->extra->multiaddr_len, PROTO_STR,
                        PROTO_PRIO_MULTIADDR);
    proto_reply_str(r, "nat", tracker_nat_name(p), PROTO_PRIO_NAT);
    if (p->extra && p->extra->ncand) {
        size_t n = tracker_addr_list(ps->cand, sizeof ps->cand, p->extra->cand, p->extra->ncand);
        proto_reply_add(r, "candidates", ps->cand, n, PROTO_RAW, PROTO_PRIO_CANDIDATES);
    }
    struct addr pred[TRACKER_PREDICTED];
    unsigned np = tracker_predict(p, pred);
    if (np) {
        size_t n = tracker_addr_list(ps->pred, sizeof ps->pred, pred, np);
        proto_reply_add(r, "predicted", ps->pred, n, PROTO_RAW, PROTO_PRIO_PREDICTED);
    }
    if (p->extra && p->extra->pubkey_len)
        proto_reply_add(r, "pubkey", p->extra->pubkey, p->extra->pubkey_len, PROTO_STR,
                        PROTO_PRIO_PUBKEY);
}

/* ---- actions ---- */

static void tracker_announce_reply(struct tracker *t, const struct tracker_src *src, uint32_t pi)
{
    const struct peer *p = registry_peer(t->reg, pi);
    char id[IDS_LEN + 1], token[IDS_TOKEN_HEXLEN + 1], addr[ADDR_STRLEN], ttl[24];
    struct proto_reply r;
    memcpy(id, p->id, IDS_LEN);
    id[IDS_LEN] = '\0';
    size_t alen = addr_format(&src->addr, addr, sizeof addr);
    /* The token (an HMAC, the costliest part of an announce) only when it can
     * fit: the smallest reply carrying it, {"action":"announced","data":
     * {"shareId":"..","addr":"..","token":".."}}, takes 105 + alen bytes. */
    int with_token = src->transport != TRACKER_UDP ||
                     TRACKER_AMPLIFICATION * t->req_len >= 105 + alen;
    if (with_token)
        ids_token(&t->cfg->token_key, p->id, token);
    snprintf(ttl, sizeof ttl, "%ld", t->cfg->peer_ttl);
    const char *tr = tracker_transports(p);
    proto_reply_init(&r, tracker_app(t) ? "announced" : "announceReceived", 1);
    proto_reply_str(&r, "shareId", id, PROTO_KEEP);
    proto_reply_str(&r, "addr", addr, PROTO_PRIO_ADDR);
    if (with_token)
        proto_reply_str(&r, "token", token, PROTO_PRIO_TOKEN);
    proto_reply_add(&r, "ttl", ttl, strlen(ttl), PROTO_RAW, PROTO_PRIO_TTL);
    proto_reply_add(&r, "transports", tr, strlen(tr), PROTO_RAW, PROTO_PRIO_TRANSPORTS);
    proto_reply_str(&r, "nat", tracker_nat_name(p), PROTO_PRIO_NAT);
    char probe[ADDR_STRLEN];
    if (t->probe_send && src->transport == TRACKER_UDP) {
        /* Where to send the probe: a wildcard probe socket is reached at the
         * IP this request arrived on. */
        struct addr pa = t->probe_bound;
        if (addr_is_any(&pa) && src->local_addr) {
            pa = *src->local_addr;
            pa.port = t->probe_bound.port;
        }
        if (!addr_is_any(&pa)) {
            addr_format(&pa, probe, sizeof probe);
            proto_reply_str(&r, "probe", probe, PROTO_PRIO_NAT);
        }
    }
    tracker_reply(t, src, &r);
}

/* A fresh shareId not held by a live peer, or -1 in the (2^-47-likely) case
 * that every draw collides. */
static int tracker_new_id(struct tracker *t, char id[IDS_LEN])
{
    for (int tries = 0; tries < 16; tries++) {
        ids_random(id);
        if (registry_find_id(t->reg, id, IDS_LEN) == REGISTRY_NIL)
            return 0;
    }
    return -1;
}

/* Adds a new peer with id on src's transport. Returns its index or NIL (full). */
static uint32_t tracker_add_peer(struct tracker *t, const char id[IDS_LEN],
                                 const struct tracker_src *src, uint64_t now)
{
    static const struct addr none;
    uint32_t pi = registry_add(t->reg, id, src->transport == TRACKER_UDP ? &src->addr : &none,
                               src->local, now);
    if (pi == REGISTRY_NIL)
        return pi;
    if (src->transport == TRACKER_WS) {
        registry_set_ws(t->reg, pi, src->conn, &src->addr);
        *src->conn_peer = pi;
    }
    t->st.announced++;
    return pi;
}

/* Gives live peer pi src's transport (attach, or follow a NAT rebinding). */
static void tracker_attach(struct tracker *t, uint32_t pi, const struct tracker_src *src, uint64_t now)
{
    if (src->transport == TRACKER_UDP) {
        registry_set_addr(t->reg, pi, &src->addr, src->local, now);
        return;
    }
    struct peer *p = registry_peer(t->reg, pi);
    if ((p->flags & PEER_WS) && p->extra->ws_conn != src->conn) {
        /* One WebSocket per identity: the newer connection wins. */
        void *old = p->extra->ws_conn;
        registry_set_ws(t->reg, pi, NULL, NULL);
        if (t->ws_close)
            t->ws_close(t->ws_ctx, old, 1000);
    }
    registry_set_ws(t->reg, pi, src->conn, &src->addr);
    *src->conn_peer = pi;
}

static void tracker_announce(struct tracker *t, const struct tracker_src *src, uint64_t now)
{
    const struct proto_field *sid = tracker_f(t, PROTO_K_SHAREID);
    int has_sid = tracker_present(t, PROTO_K_SHAREID), has_tok = tracker_present(t, PROTO_K_TOKEN);

    if ((has_sid && sid->type != PROTO_T_STRING) ||
        (has_tok && !tracker_is(t, PROTO_K_TOKEN, PROTO_T_STRING))) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "shareId and token must be strings");
        return;
    }
    if (has_sid != has_tok) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "shareId and token go together");
        return;
    }
    if (tracker_check_self_fields(t, src) != 0)
        return;

    uint32_t cur = tracker_sender(t, src);
    uint32_t pi;
    if (has_sid) {
        /* Re-claim or attach: only the token's holder may. */
        if (sid->too_long || !ids_valid(sid->s, sid->len) || !tracker_token_ok(t, sid->s)) {
            tracker_error(t, src, STATS_E_UNAUTHORIZED, "token does not match shareId");
            return;
        }
        pi = registry_find_id(t->reg, sid->s, sid->len);
        if (pi != cur && cur != REGISTRY_NIL) {
            tracker_error(t, src, STATS_E_BAD_REQUEST, "this sender holds another shareId");
            return;
        }
        if (pi == REGISTRY_NIL) {
            if (tracker_retry(t, src))
                return;
            pi = tracker_add_peer(t, sid->s, src, now);
            if (pi == REGISTRY_NIL) {
                tracker_error(t, src, STATS_E_FULL, "tracker is full, retry later");
                return;
            }
        } else if (pi != cur) {
            tracker_attach(t, pi, src, now);
        }
    } else if (cur != REGISTRY_NIL) {
        pi = cur;
    } else {
        char id[IDS_LEN];
        if (tracker_retry(t, src))
            return;
        if (registry_count(t->reg) >= registry_capacity(t->reg) || tracker_new_id(t, id) != 0 ||
            (pi = tracker_add_peer(t, id, src, now)) == REGISTRY_NIL) {
            tracker_error(t, src, STATS_E_FULL, "tracker is full, retry later");
            return;
        }
    }
    tracker_seen(t, pi, src, now);
    /* A re-announce without shareId+token from a known address may be forged. */
    tracker_keep_self_fields(t, pi, has_sid || pi != cur || src->transport == TRACKER_WS);
    tracker_announce_reply(t, src, pi);
}

/* Parses the override's "ip" and "port" (string or number) into a. */
static int tracker_override_addr(const struct tracker *t, struct addr *a)
{
    const struct proto_field *ip = tracker_f(t, PROTO_K_IP), *port = tracker_f(t, PROTO_K_PORT);
    long pn = -1;
    if (port->type == PROTO_T_NUMBER) {
        if (port->num >= 1 && port->num <= 65535 && port->num == (double)(long)port->num)
            pn = (long)port->num;
    } else if (port->type == PROTO_T_STRING && port->len >= 1 && port->len <= 5) {
        pn = 0;
        for (size_t i = 0; i < port->len; i++) {
            if (port->s[i] < '0' || port->s[i] > '9')
                return -1;
            pn = pn * 10 + (port->s[i] - '0');
        }
        if (pn < 1 || pn > 65535)
            return -1;
    }
    if (pn < 1 || ip->type != PROTO_T_STRING || ip->too_long)
        return -1;
    return addr_parse_ip(a, ip->s, (uint16_t)pn);
}

static void tracker_pulse(struct tracker *t, const struct tracker_src *src, uint64_t now)
{
    const struct proto_field *sid = tracker_f(t, PROTO_K_SHAREID);
    const struct proto_field *ovr = tracker_f(t, PROTO_K_OVERRIDE);
    const struct proto_field *port = tracker_f(t, PROTO_K_PORT);

    if ((tracker_present(t, PROTO_K_OVERRIDE) && ovr->type != PROTO_T_BOOL) ||
        (tracker_present(t, PROTO_K_SHAREID) && sid->type != PROTO_T_BOOL && sid->type != PROTO_T_STRING) ||
        (tracker_present(t, PROTO_K_TOKEN) && !tracker_is(t, PROTO_K_TOKEN, PROTO_T_STRING)) ||
        (tracker_present(t, PROTO_K_IP) && !tracker_is(t, PROTO_K_IP, PROTO_T_STRING)) ||
        (tracker_present(t, PROTO_K_PORT) && port->type != PROTO_T_STRING && port->type != PROTO_T_NUMBER)) {
        tracker_error(t, src, STATS_E_BAD_REQUEST,
                      "override and shareId are booleans; token and ip strings; port a string or number");
        return;
    }
    if (tracker_check_self_fields(t, src) != 0)
        return;

    uint32_t pi = tracker_sender(t, src);
    if (pi == REGISTRY_NIL) {
        tracker_not_announced(t, src);
        return;
    }
    const struct peer *p = registry_peer(t->reg, pi);
    int token_ok = tracker_token_ok(t, p->id);
    int renew = sid->type == PROTO_T_BOOL && sid->boolval;
    int override = ovr->type == PROTO_T_BOOL && ovr->boolval && token_ok;
    struct addr ov;

    /* Everything is checked before anything changes: an error leaves no trace. */
    if (renew && !token_ok) {
        tracker_error(t, src, STATS_E_UNAUTHORIZED, "a new shareId needs the current token");
        return;
    }
    if (override && tracker_override_addr(t, &ov) != 0) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "override needs an IP literal ip and a port 1-65535");
        return;
    }
    char newid[IDS_LEN];
    if (renew && tracker_new_id(t, newid) != 0) {
        tracker_error(t, src, STATS_E_FULL, "no free shareId, retry later");
        return;
    }

    if (override)
        registry_set_override(t->reg, pi, &ov);
    if (renew)
        registry_set_id(t->reg, pi, newid);
    tracker_keep_self_fields(t, pi, token_ok || src->transport == TRACKER_WS);
    tracker_seen(t, pi, src, now);

    struct proto_reply r;
    char id[IDS_LEN + 1], token[IDS_TOKEN_HEXLEN + 1];
    proto_reply_init(&r, "pulseReceived", 1);
    proto_reply_str(&r, "status", "0", PROTO_KEEP);
    proto_reply_str(&r, "overriden", override ? "true" : "false", PROTO_KEEP);
    if (renew) {
        memcpy(id, newid, IDS_LEN);
        id[IDS_LEN] = '\0';
        ids_token(&t->cfg->token_key, newid, token);
        proto_reply_str(&r, "shareId", id, PROTO_KEEP);
        proto_reply_str(&r, "token", token, PROTO_PRIO_TOKEN);
    }
    /* Only once a probe told it: the bare sobani shape stays as it was. */
    const struct peer *pp = registry_peer(t->reg, pi);
    if (pp->extra && pp->extra->nat != PEER_NAT_UNKNOWN)
        proto_reply_str(&r, "nat", tracker_nat_name(pp), PROTO_PRIO_NAT);
    tracker_reply(t, src, &r);
}

static void tracker_alive(struct tracker *t, const struct tracker_src *src, uint64_t now)
{
    uint32_t pi = tracker_sender(t, src);
    if (pi == REGISTRY_NIL) {
        tracker_not_announced(t, src);
        return;
    }
    tracker_seen(t, pi, src, now);
    struct proto_reply r;
    proto_reply_init(&r, "alived", 0);
    tracker_reply(t, src, &r);
}

/* Sends r to peer pi on every transport it has; UDP datagrams are capped by
 * max_datagram. */
static void tracker_notify(struct tracker *t, uint32_t pi, const struct proto_reply *r)
{
    const struct peer *p = registry_peer(t->reg, pi);
    if (p->flags & PEER_WS)
        tracker_send_ws(t, p->extra->ws_conn, r);
    if (p->addr.family)
        tracker_send_udp(t, &p->addr, p->local, r, (size_t)t->cfg->max_datagram);
}

/* Checks shared by push and relay: a string shareId naming a live peer other
 * than the live sender. Returns 0 with both indexes, or -1 after answering. */
static int tracker_pair(struct tracker *t, const struct tracker_src *src, uint32_t *ai, uint32_t *bi)
{
    const struct proto_field *sid = tracker_f(t, PROTO_K_SHAREID);
    if (sid->type != PROTO_T_STRING) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "shareId must be a string");
        return -1;
    }
    if (t->req.action == PROTO_ACT_RELAY && !t->req.has_data) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "relay needs data");
        return -1;
    }
    *ai = tracker_sender(t, src);
    if (*ai == REGISTRY_NIL) {
        tracker_not_announced(t, src);
        return -1;
    }
    /* Guessing shareIds: misses per source IP share the request rate. Over
     * WebSocket an IP's connections each have a message bucket of their own,
     * so without this one IP could try ids hundreds of times faster than
     * over UDP. Checked before the lookup, so a hit reveals nothing either. */
    uint8_t k[9];
    size_t kl = ratelimit_ip_key(&src->addr, k);
    int exempt = tracker_exempt(t, &src->addr);
    if (!exempt && !ratelimit_has(t->rl_miss, k, kl, 1, t->now)) {
        t->st.limited[STATS_L_UNKNOWN_IDS]++;
        tracker_error(t, src, STATS_E_RATE_LIMITED, "too many unknown shareIds from this address, slow down");
        return -1;
    }
    *bi = sid->too_long ? REGISTRY_NIL : registry_find_id(t->reg, sid->s, sid->len);
    if (*bi == *ai && t->req.action == PROTO_ACT_RELAY) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "cannot relay to oneself");
        return -1;
    }
    if (*bi == REGISTRY_NIL || *bi == *ai) {
        if (!exempt)
            ratelimit_take(t->rl_miss, k, kl, 1, t->now);
        tracker_error(t, src, STATS_E_UNKNOWN_SHARE_ID, "no live peer has that shareId");
        return -1;
    }
    return 0;
}

static void tracker_push(struct tracker *t, const struct tracker_src *src, uint64_t now)
{
    uint32_t ai, bi;
    if (tracker_pair(t, src, &ai, &bi) != 0)
        return;
    /* A push flood must not aim income at a victim: income per target is capped. */
    if (!tracker_exempt(t, &src->addr) &&
        !ratelimit_take(t->rl_income, registry_peer(t->reg, bi)->id, IDS_LEN, 1, now)) {
        t->st.limited[STATS_L_INCOME]++;
        if (tracker_notice(t, src))
            tracker_error(t, src, STATS_E_RATE_LIMITED, "too many pushes to this peer, retry later");
        return;
    }
    tracker_seen(t, ai, src, now);

    /* Both sides learn each other at the same moment: that is what makes
     * simultaneous hole punching work. The target first, then the requester. */
    struct proto_reply income, reply;
    struct tracker_peer_strs as, bs;
    /* One fresh nonce per pairing, told to both: knocks without it are ignored. */
    unsigned char nonce_bin[TRACKER_NONCE_BYTES];
    char nonce[2 * TRACKER_NONCE_BYTES + 1];
    ids_random_bytes(nonce_bin, sizeof nonce_bin);
    sodium_bin2hex(nonce, sizeof nonce, nonce_bin, sizeof nonce_bin);
    proto_reply_init(&income, "income", 1);
    tracker_peer_fields(&income, registry_peer(t->reg, ai), &as, 1);
    proto_reply_str(&income, "nonce", nonce, PROTO_PRIO_NONCE);
    tracker_notify(t, bi, &income);

    proto_reply_init(&reply, tracker_app(t) ? "pushed" : "pushReceived", 1);
    tracker_peer_fields(&reply, registry_peer(t->reg, bi), &bs, 0);
    proto_reply_str(&reply, "nonce", nonce, PROTO_PRIO_NONCE);
    tracker_reply(t, src, &reply);
    t->st.pushes++;
}

/* Takes n bytes from peer pi's relay bucket (rate relay_bytes_per_sec, burst
 * one second's worth). Returns 0, or -1 if the bucket holds too few. */
static int tracker_relay_take(struct tracker *t, uint32_t pi, size_t n, uint64_t now)
{
    double rate = (double)t->cfg->relay_bytes_per_sec;
    if (rate <= 0)
        return 0;
    struct peer_extra *e = registry_extra_of(t->reg, pi);
    return ratelimit_bucket_take(&e->relay, rate, rate, (double)n, now) ? 0 : -1;
}

static void tracker_relay(struct tracker *t, const struct tracker_src *src, uint64_t now)
{
    uint32_t ai, bi;
    if (tracker_pair(t, src, &ai, &bi) != 0)
        return;
    const struct peer *a = registry_peer(t->reg, ai);
    /* A UDP source can be forged: relaying in someone's name needs their token. */
    if (src->transport == TRACKER_UDP && !tracker_token_ok(t, a->id)) {
        tracker_error(t, src, STATS_E_UNAUTHORIZED, "relay over UDP needs the sender's token");
        return;
    }
    if (t->req.data_too_large) {
        tracker_error(t, src, STATS_E_TOO_LARGE, "relay payload exceeds relay_max_bytes");
        return;
    }
    if (tracker_relay_take(t, ai, t->req.data_len, now) != 0) {
        tracker_error(t, src, STATS_E_RATE_LIMITED, "relay rate exceeded, slow down");
        return;
    }
    a = registry_peer(t->reg, ai);
    const struct peer *b = registry_peer(t->reg, bi);
    char a_id[IDS_LEN + 1];
    memcpy(a_id, a->id, IDS_LEN);
    a_id[IDS_LEN] = '\0';
    struct proto_reply r;
    proto_reply_init(&r, "relayed", 1);
    proto_reply_str(&r, "peerShareId", a_id, PROTO_KEEP);
    proto_reply_add(&r, "payload", t->payload, t->req.data_len, PROTO_RAW, PROTO_KEEP);
    /* WebSocket when the target has it (reliable, any size), else one datagram. */
    int ok;
    if (b->flags & PEER_WS)
        ok = tracker_send_ws(t, b->extra->ws_conn, &r) == 0;
    else
        ok = b->addr.family &&
             tracker_send_udp(t, &b->addr, b->local, &r, (size_t)t->cfg->max_datagram) == 0;
    if (!ok) {
        tracker_error(t, src, STATS_E_UNREACHABLE,
                      "target cannot receive this relay (no WebSocket, too big for UDP)");
        return;
    }
    tracker_seen(t, ai, src, now);
    t->st.relayed++;
    t->st.relayed_bytes += t->req.data_len;
}

/* How a NAT maps: the same endpoint for both destinations (eim), a port a
 * small step away (sequential: predictable), or anything else (random). */
static enum peer_nat tracker_classify(const struct addr *main_map, const struct addr *probe_map)
{
    if (main_map->family != probe_map->family ||
        memcmp(main_map->ip, probe_map->ip, sizeof main_map->ip) != 0)
        return PEER_NAT_RANDOM;
    int step = (int)probe_map->port - (int)main_map->port;
    if (step == 0)
        return PEER_NAT_EIM;
    if (step >= -TRACKER_SEQ_STEP_MAX && step <= TRACKER_SEQ_STEP_MAX)
        return PEER_NAT_SEQUENTIAL;
    return PEER_NAT_RANDOM;
}

/* {"action":"probe","shareId":S,"token":T} on the probe socket: compare the
 * mapping seen here with the one at the main socket. */
static void tracker_probe(struct tracker *t, const struct tracker_src *src)
{
    const struct proto_field *sid = tracker_f(t, PROTO_K_SHAREID);
    if (sid->type != PROTO_T_STRING || !tracker_is(t, PROTO_K_TOKEN, PROTO_T_STRING)) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "probe needs shareId and token strings");
        return;
    }
    /* The token, not the address, proves who probes: a forged probe must not
     * mislabel someone else's NAT. */
    if (sid->too_long || !ids_valid(sid->s, sid->len) || !tracker_token_ok(t, sid->s)) {
        tracker_error(t, src, STATS_E_UNAUTHORIZED, "token does not match shareId");
        return;
    }
    uint32_t pi = registry_find_id(t->reg, sid->s, sid->len);
    if (pi == REGISTRY_NIL || registry_peer(t->reg, pi)->addr.family == 0) {
        tracker_error(t, src, STATS_E_NOT_ANNOUNCED, "announce over UDP before probing");
        return;
    }
    enum peer_nat nat = tracker_classify(&registry_peer(t->reg, pi)->addr, &src->addr);
    struct peer_extra *e = registry_extra_of(t->reg, pi);
    e->nat = (uint8_t)nat;
    e->probe = src->addr;
    char addr[ADDR_STRLEN];
    addr_format(&src->addr, addr, sizeof addr);
    struct proto_reply r;
    proto_reply_init(&r, "probeReceived", 1);
    proto_reply_str(&r, "addr", addr, PROTO_KEEP);
    proto_reply_str(&r, "nat", tracker_nat_names[nat], PROTO_KEEP);
    tracker_reply(t, src, &r);
    t->st.probes++;
}

static void tracker_dispatch(struct tracker *t, const struct tracker_src *src, uint64_t now)
{
    switch (t->req.action) {
    case PROTO_ACT_ANNOUNCE:
        tracker_announce(t, src, now);
        break;
    case PROTO_ACT_PULSE:
        tracker_pulse(t, src, now);
        break;
    case PROTO_ACT_ALIVE:
        tracker_alive(t, src, now);
        break;
    case PROTO_ACT_PUSH:
        tracker_push(t, src, now);
        break;
    case PROTO_ACT_RELAY:
        tracker_relay(t, src, now);
        break;
    case PROTO_ACT_PROBE:
        tracker_error(t, src, STATS_E_BAD_REQUEST,
                      t->probe_send ? "send probes to the probe address" : "no probe address here");
        break;
    case PROTO_ACT_UNKNOWN:
        tracker_error(t, src, STATS_E_UNKNOWN_ACTION, "unknown action");
        break;
    default:
        tracker_error(t, src, STATS_E_BAD_REQUEST, "a string action is required");
        break;
    }
}

static int tracker_decode(struct tracker *t, const char *buf, size_t len)
{
    return proto_decode_relay(buf, len, t->scratch, t->scratch_cap, &t->req, t->payload,
                              t->payload_cap, (size_t)t->cfg->relay_max_bytes);
}

/* The checks every UDP request passes before its action: the per-IP request
 * rate (before parsing: garbage counts too), then the access key. Returns 1
 * to go on with t->req decoded, 0 when handled (answered or silent), or
 * -1 - enum proto_drop for a dropped datagram. */
static int tracker_udp_gate(struct tracker *t, const char *buf, size_t len,
                            const struct tracker_src *src, uint64_t now_ms)
{
    t->now = now_ms;
    if (len > (size_t)t->cfg->max_datagram) {
        t->st.dropped[PROTO_DROP_TOO_LARGE]++;
        return -1 - PROTO_DROP_TOO_LARGE;
    }
    uint8_t k[9];
    size_t kl = ratelimit_ip_key(&src->addr, k);
    if (!tracker_exempt(t, &src->addr) && !ratelimit_take(t->rl_req, k, kl, 1, now_ms)) {
        t->st.limited[STATS_L_REQUESTS]++;
        /* Once a second a request (never garbage) is told; then silence.
         * Decoding only when that is due keeps a flood cheap. */
        if (!ratelimit_notice_due(t->rl_notice, k, kl, now_ms) || tracker_decode(t, buf, len) < 0)
            return 0;
        ratelimit_notice(t->rl_notice, k, kl, now_ms);
        t->req_len = len;
        tracker_error(t, src, STATS_E_RATE_LIMITED, "too many requests from this address, slow down");
        return 0;
    }
    int rc = tracker_decode(t, buf, len);
    if (rc < 0) {
        t->st.dropped[-1 - rc]++;
        return rc;
    }
    t->req_len = len;
    t->st.requests[STATS_UDP][t->req.action]++;
    if (!tracker_access_ok(t)) {
        t->st.limited[STATS_L_ACCESS_KEY]++;
        if (tracker_notice(t, src))
            tracker_error(t, src, STATS_E_UNAUTHORIZED, "this tracker needs an access key (\"key\")");
        return 0;
    }
    return 1;
}

int tracker_on_datagram(struct tracker *t, const char *buf, size_t len,
                        const struct tracker_src *src, uint64_t now_ms)
{
    int rc = tracker_udp_gate(t, buf, len, src, now_ms);
    if (rc == 1)
        tracker_dispatch(t, src, now_ms);
    return rc < 0 ? rc : 0;
}

int tracker_on_probe(struct tracker *t, const char *buf, size_t len, const struct tracker_src *src,
                     uint64_t now_ms)
{
    int rc = tracker_udp_gate(t, buf, len, src, now_ms);
    if (rc != 1)
        return rc < 0 ? rc : 0;
    if (t->req.action == PROTO_ACT_PROBE)
        tracker_probe(t, src);
    else
        tracker_error(t, src, STATS_E_BAD_REQUEST, "only probe is served on the probe address");
    return 0;
}

void tracker_on_ws_message(struct tracker *t, const char *buf, size_t len,
                           const struct tracker_src *src, uint64_t now_ms)
{
    t->now = now_ms;
    t->req_len = len;
    if (len + 1 > t->scratch_cap || tracker_decode(t, buf, len) < 0) {
        t->st.requests[STATS_WS][PROTO_ACT_NONE]++;
        tracker_error(t, src, STATS_E_BAD_REQUEST, "a message must be one JSON object");
        return;
    }
    t->st.requests[STATS_WS][t->req.action]++;
    tracker_dispatch(t, src, now_ms);
}

void tracker_ws_rate_limited(struct tracker *t, const struct tracker_src *src, uint64_t now_ms)
{
    t->now = now_ms;
    t->st.limited[STATS_L_REQUESTS]++;
    if (tracker_notice(t, src))
        tracker_error(t, src, STATS_E_RATE_LIMITED, "too many messages on this connection, slow down");
}

void tracker_ws_closed(struct tracker *t, void *conn, uint32_t pi)
{
    if (pi == REGISTRY_NIL || pi >= registry_capacity(t->reg))
        return;
    struct peer *p = registry_peer(t->reg, pi);
    if (!p->in_use || !(p->flags & PEER_WS) || p->extra->ws_conn != conn)
        return; /* replaced by a newer connection, or already gone */
    registry_set_ws(t->reg, pi, NULL, NULL);
    if (!p->addr.family)
        registry_remove(t->reg, pi); /* its last transport ended: gone at once */
}

static void tracker_on_expire(void *ctx, uint32_t i, const struct peer *p)
{
    (void)i;
    (void)p;
    ((struct tracker *)ctx)->st.expired++;
}

size_t tracker_expire(struct tracker *t, uint64_t now_ms, size_t budget)
{
    return registry_expire(t->reg, now_ms, budget, tracker_on_expire, t);
}

int tracker_next_expiry(const struct tracker *t, uint64_t *deadline_ms)
{
    return registry_next_deadline(t->reg, deadline_ms);
}
