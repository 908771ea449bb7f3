/* fuzz_tracker: the whole protocol logic through tracker.h, with a fixed
 * clock and sinks that check everything punchd would send.
 *
 * Input: two settings bytes (compat, max_datagram, max_peers, token key,
 * relay limit; access key, retry threshold, rate limits, exemptions), then
 * records [op][len:2][bytes]. op's low bits
 * pick a sender (8 UDP endpoints, IPv4 and IPv6, some sharing an IP; or 4
 * WebSocket connections), others how far the clock moves first, and one
 * closes the chosen WebSocket connection instead. Before a request is
 * handed in, "$I<s>" and "$T<s>" in it become the shareId and token most
 * recently given to sender s (s = 0-9, a, b), and "$C<s>" the last retry
 * cookie, so the fuzzer can reach push, relay, override, renewal, attach and
 * the retry round trip without guessing random values.
 *
 * Checked on every datagram the tracker sends: a compact JSON object in
 * UTF-8, at most max_datagram bytes, addressed to a real sender's observed
 * address; a reply goes to the requester and is at most 4x its request
 * (only income and relayed go to others); a dropped datagram is never
 * answered. Per destination IP (IPv4 address, IPv6 /64), unless exempt:
 * the UDP bytes sent over any interval stay within the response limit's
 * bucket (burst + rate x time), the answers to requests within the request
 * limit's, and rateLimited / unauthorized come at most once per second.
 * Every WebSocket message is a JSON object in UTF-8. After each step: no
 * more than max_peers live, and nothing due is left unexpired. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "proto.h"
#include "registry.h"
#include "tracker.h"

#define FUZZ_T_UDP 8
#define FUZZ_T_WS 4
#define FUZZ_T_SLOTS (FUZZ_T_UDP + FUZZ_T_WS)
#define FUZZ_T_REQ_MAX 4096
#define FUZZ_T_EVENTS 2048          /* sends remembered for the rate checks */

/* One UDP datagram sent, for the per-IP rate checks. */
struct fuzz_t_event {
    uint64_t at;
    uint8_t key[9];                 /* ratelimit's per-IP key: v4 address or v6 /64 */
    uint8_t kind;                   /* enum fuzz_t_kind */
    size_t len;
};

enum fuzz_t_kind { FUZZ_T_ANSWER = 0, FUZZ_T_NOTIFY, FUZZ_T_RATE_LIMITED, FUZZ_T_UNAUTHORIZED };

struct fuzz_tracker {
    struct config cfg;
    struct tracker *t;
    struct addr udp[FUZZ_T_UDP];
    char conns[FUZZ_T_WS];          /* the connections' identities (addresses only) */
    uint32_t conn_peer[FUZZ_T_WS];
    int conn_open[FUZZ_T_WS];
    char ids[FUZZ_T_SLOTS][16];     /* last shareId / token each sender was given */
    char tokens[FUZZ_T_SLOTS][64];
    char cookies[FUZZ_T_SLOTS][64];
    int exempt_v4;                  /* the IPv4 senders are in rate_exempt */
    uint64_t now;
    size_t nev;
    struct fuzz_t_event ev[FUZZ_T_EVENTS];
    /* The request being handled. */
    int cur_slot;
    size_t cur_len;
    int cur_udp;
    int cur_keyless;                /* access_key set and the request lacks it */
    int replies;                    /* datagrams to the requester */
    int sent;                       /* datagrams in all */
};

static int fuzz_t_slot_of_addr(const struct fuzz_tracker *f, const struct addr *a)
{
    for (int i = 0; i < FUZZ_T_UDP; i++)
        if (addr_equal(&f->udp[i], a))
            return i;
    return -1;
}

/* Remembers a shareId/token handed to slot (announce, pulse renewal). */
static void fuzz_t_learn(struct fuzz_tracker *f, int slot, const char *buf, size_t len)
{
    char v[64];
    if (fuzz_json_str(buf, len, 1, "shareId", v, sizeof f->ids[0]) > 0)
        memcpy(f->ids[slot], v, sizeof f->ids[0]);
    if (fuzz_json_str(buf, len, 1, "token", v, sizeof f->tokens[0]) > 0)
        memcpy(f->tokens[slot], v, sizeof f->tokens[0]);
    if (fuzz_json_str(buf, len, 1, "cookie", v, sizeof f->cookies[0]) > 0)
        memcpy(f->cookies[slot], v, sizeof f->cookies[0]);
}

static size_t fuzz_t_ip_key(const struct addr *a, uint8_t key[9])
{
    memset(key, 0, 9);
    key[0] = a->family;
    memcpy(key + 1, a->ip, a->family == AF_INET ? 4 : 8);
    return 9;
}

/* Token-bucket bound: over every interval ending now, what was sent to key
 * (of the kinds in mask, weighted by bytes or counted) is at most
 * burst + rate x interval. Called after recording the newest event. */
static void fuzz_t_check_bucket(const struct fuzz_tracker *f, const uint8_t key[9], unsigned mask,
                                int bytes, double rate, double burst)
{
    double sum = 0;
    for (size_t i = f->nev; i-- > 0;) {
        const struct fuzz_t_event *e = &f->ev[i];
        if (memcmp(e->key, key, 9) != 0 || !(mask & (1u << e->kind)))
            continue;
        sum += bytes ? (double)e->len : 1.0;
        double allowed = burst + rate * (double)(f->now - e->at) / 1000.0;
        FUZZ_CHECK(sum <= allowed * (1 + 1e-9) + 1e-6);
    }
}

/* Per-IP limits on what was just sent to `to`. */
static void fuzz_t_rate_checks(struct fuzz_tracker *f, const struct addr *to, enum fuzz_t_kind kind,
                               size_t len)
{
    if (f->nev == FUZZ_T_EVENTS || (f->exempt_v4 && to->family == AF_INET))
        return;
    struct fuzz_t_event *e = &f->ev[f->nev++];
    e->at = f->now;
    fuzz_t_ip_key(to, e->key);
    e->kind = (uint8_t)kind;
    e->len = len;
    const struct config *c = &f->cfg;
    if (c->rate_response_bytes_per_sec > 0)
        fuzz_t_check_bucket(f, e->key, 0xf, 1, (double)c->rate_response_bytes_per_sec,
                            2.0 * (double)c->rate_response_bytes_per_sec);
    if (c->rate_requests_per_sec > 0 && kind == FUZZ_T_ANSWER)
        fuzz_t_check_bucket(f, e->key, 1u << FUZZ_T_ANSWER, 0, (double)c->rate_requests_per_sec,
                            (double)c->rate_requests_burst);
    if (kind == FUZZ_T_RATE_LIMITED || kind == FUZZ_T_UNAUTHORIZED) {
        /* At most once per second per source IP. */
        for (size_t i = f->nev - 1; i-- > 0;)
            if (f->ev[i].kind == kind && memcmp(f->ev[i].key, e->key, 9) == 0) {
                FUZZ_CHECK(f->now - f->ev[i].at >= 1000);
                break;
            }
    }
}

static void fuzz_t_udp_sink(void *ctx, const struct addr *to, uint8_t local, const char *buf, size_t len)
{
    struct fuzz_tracker *f = ctx;
    (void)local;
    FUZZ_CHECK(f->cur_slot >= 0); /* only while a request is handled */
    f->sent++;
    if (fuzz_trace())
        fprintf(stderr, "  udp -> %d: %.*s\n", fuzz_t_slot_of_addr(f, to), (int)len, buf);
    FUZZ_CHECK(len <= (size_t)f->cfg.max_datagram);
    FUZZ_CHECK(fuzz_json_object(buf, len));
    int slot = fuzz_t_slot_of_addr(f, to);
    FUZZ_CHECK(slot >= 0); /* never to an override or made-up address */
    char action[32];
    FUZZ_CHECK(fuzz_json_str(buf, len, 0, "action", action, sizeof action) > 0);
    int notification = strcmp(action, "income") == 0 || strcmp(action, "relayed") == 0;
    enum fuzz_t_kind kind = FUZZ_T_NOTIFY;
    if (!notification) {
        /* A reply: to the requester, and small (anti-amplification). */
        FUZZ_CHECK(f->cur_udp && slot == f->cur_slot);
        FUZZ_CHECK(len <= 4 * f->cur_len);
        f->replies++;
        FUZZ_CHECK(f->replies == 1);
        char code[32] = "";
        fuzz_json_str(buf, len, 1, "code", code, sizeof code);
        /* unauthorized for a missing access key is a notice (once a
         * second); for a wrong token it is an ordinary answer. */
        kind = strcmp(code, "rateLimited") == 0                        ? FUZZ_T_RATE_LIMITED
               : strcmp(code, "unauthorized") == 0 && f->cur_keyless ? FUZZ_T_UNAUTHORIZED
                                                                       : FUZZ_T_ANSWER;
    }
    fuzz_t_rate_checks(f, to, kind, len);
    fuzz_t_learn(f, slot, buf, len);
}

static void fuzz_t_ws_sink(void *ctx, void *conn, const char *buf, size_t len)
{
    struct fuzz_tracker *f = ctx;
    FUZZ_CHECK(f->cur_slot >= 0);
    int i = (int)((char *)conn - f->conns);
    FUZZ_CHECK(i >= 0 && i < FUZZ_T_WS && f->conn_open[i]);
    if (fuzz_trace())
        fprintf(stderr, "  ws -> %d: %.*s\n", FUZZ_T_UDP + i, (int)len, buf);
    FUZZ_CHECK(fuzz_json_object(buf, len));
    f->sent++;
    fuzz_t_learn(f, FUZZ_T_UDP + i, buf, len);
}

static void fuzz_t_ws_close(void *ctx, void *conn, uint16_t code)
{
    struct fuzz_tracker *f = ctx;
    int i = (int)((char *)conn - f->conns);
    FUZZ_CHECK(i >= 0 && i < FUZZ_T_WS && f->conn_open[i]);
    FUZZ_CHECK(code >= 1000 && code < 5000);
    /* As ws.c does: the connection forgets its identity and closes. */
    f->conn_peer[i] = REGISTRY_NIL;
    f->conn_open[i] = 0;
}

/* Copies req[0..len) into out, replacing $I<s> / $T<s> / $C<s>; returns the new length. */
static size_t fuzz_t_substitute(const struct fuzz_tracker *f, const uint8_t *req, size_t len, char *out,
                                size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o < cap; i++) {
        if (req[i] == '$' && i + 2 < len && (req[i + 1] == 'I' || req[i + 1] == 'T' || req[i + 1] == 'C')) {
            char c = (char)req[i + 2];
            int s = c >= '0' && c <= '9' ? c - '0' : c == 'a' ? 10 : c == 'b' ? 11 : -1;
            if (s >= 0) {
                const char *v = req[i + 1] == 'I' ? f->ids[s] : req[i + 1] == 'T' ? f->tokens[s] : f->cookies[s];
                size_t n = strlen(v);
                if (n > cap - o)
                    n = cap - o;
                memcpy(out + o, v, n);
                o += n;
                i += 2;
                continue;
            }
        }
        out[o++] = (char)req[i];
    }
    return o;
}

static void fuzz_t_close_conn(struct fuzz_tracker *f, int i)
{
    if (f->conn_open[i])
        tracker_ws_closed(f->t, &f->conns[i], f->conn_peer[i]);
    f->conn_peer[i] = REGISTRY_NIL;
    f->conn_open[i] = 0;
}

int fuzz_tracker_one(const uint8_t *data, size_t size)
{
    static const long datagram_sizes[4] = { 256, 512, 1472, 4096 };
    static const uint64_t steps_ms[8] = { 0, 1, 100, 1000, 5000, 20000, 59000, 61000 };
    fuzz_init();
    fuzz_rand_reset();
    if (size == 0)
        return 0;
    static const double thresholds[4] = { 1.0, 0.5, 0.25, 0.0 };
    struct fuzz_in in = { data, size };
    uint8_t settings = fuzz_u8(&in);
    uint8_t more = fuzz_u8(&in);
    struct fuzz_tracker *f = calloc(1, sizeof *f);
    char err[256];
    if (!f)
        abort();
    config_defaults(&f->cfg);
    f->cfg.compat = (settings & 1) ? CONFIG_COMPAT_SOBANI_APP : CONFIG_COMPAT_README;
    f->cfg.max_datagram = datagram_sizes[settings >> 2 & 3];
    f->cfg.max_peers = 4 + (settings >> 4 & 3) * 2;
    f->cfg.peer_ttl = 60;
    f->cfg.relay_max_bytes = 600;
    f->cfg.relay_bytes_per_sec = (settings & 0x40) ? 0 : 1000;
    if (settings & 0x80)
        memcpy(f->cfg.token_key_hex, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 65);
    if (more & 1)
        memcpy(f->cfg.access_key, "k3y", 4);
    f->cfg.retry_threshold = thresholds[more >> 1 & 3];
    switch (more >> 3 & 3) {
    case 0: /* all off, as benchmarks run */
        f->cfg.rate_requests_per_sec = 0;
        f->cfg.rate_income_per_sec = 0;
        f->cfg.rate_response_bytes_per_sec = 0;
        break;
    case 1: /* tight: reached within a few records */
        f->cfg.rate_requests_per_sec = 2;
        f->cfg.rate_requests_burst = 4;
        f->cfg.rate_income_per_sec = 1;
        f->cfg.rate_income_burst = 2;
        f->cfg.rate_response_bytes_per_sec = 512;
        break;
    default: /* the shipped defaults */
        break;
    }
    if (more & 0x20) {
        struct config_cidrs *x = &f->cfg.rate_exempt;
        FUZZ_CHECK(addr_parse_cidr(&x->c[0], "198.51.100.0/24") == 0);
        x->n = 1;
        f->exempt_v4 = 1;
    }
    FUZZ_CHECK(config_finish(&f->cfg, err, sizeof err) == 0);
    f->t = tracker_new(&f->cfg);
    tracker_set_sink(f->t, fuzz_t_udp_sink, f);
    tracker_set_ws_sink(f->t, fuzz_t_ws_sink, fuzz_t_ws_close, f);
    for (int i = 0; i < FUZZ_T_UDP; i++)
        /* Pairs share an IP (two sockets behind one NAT); half are IPv6. */
        fuzz_addr(&f->udp[i], (settings & 2) && i >= 4, (unsigned)(i / 2 + 1), (uint16_t)(40000 + i));
    for (int i = 0; i < FUZZ_T_WS; i++)
        f->conn_peer[i] = REGISTRY_NIL;
    f->cur_slot = -1;

    char *req = malloc(FUZZ_T_REQ_MAX);
    if (!req)
        abort();
    uint64_t now = 1000000000;
    while (in.left > 0) {
        uint8_t op = fuzz_u8(&in);
        size_t n = fuzz_u16(&in) % FUZZ_T_REQ_MAX;
        if (n > in.left)
            n = in.left;
        const uint8_t *raw = in.p;
        in.p += n, in.left -= n;
        now += steps_ms[op >> 4 & 7];
        f->now = now;
        int ws = (op & 8) != 0;
        int slot = ws ? FUZZ_T_UDP + (op & 3) : (op & 7);
        if (ws && (op & 0x80)) {
            fuzz_t_close_conn(f, op & 3);
        } else {
            size_t len = fuzz_t_substitute(f, raw, n, req, FUZZ_T_REQ_MAX);
            /* An exact-size copy, so a read past the request is caught. */
            char *exact = malloc(len ? len : 1);
            if (!exact)
                abort();
            memcpy(exact, req, len);
            if (fuzz_trace())
                fprintf(stderr, "t=%llu %s %d <- %.*s\n", (unsigned long long)now, ws ? "ws" : "udp", slot,
                        (int)len, exact);
            f->cur_slot = slot;
            f->cur_len = len;
            f->cur_keyless = 0;
            if (f->cfg.access_key[0]) {
                /* What the tracker will read as "key". */
                char *scratch = malloc(len + 1);
                struct proto_req *pr = malloc(sizeof *pr);
                if (!scratch || !pr)
                    abort();
                const struct proto_field *k = &pr->f[PROTO_K_KEY];
                f->cur_keyless = proto_decode(exact, len, scratch, len + 1, pr) == 0 &&
                                 !(k->type == PROTO_T_STRING && strcmp(k->s, f->cfg.access_key) == 0);
                free(pr);
                free(scratch);
            }
            f->cur_udp = !ws;
            f->replies = 0;
            f->sent = 0;
            struct tracker_src src;
            memset(&src, 0, sizeof src);
            if (ws) {
                int i = op & 3;
                if (!f->conn_open[i]) { /* a new connection in this slot */
                    f->conn_open[i] = 1;
                    f->conn_peer[i] = REGISTRY_NIL;
                }
                src.transport = TRACKER_WS;
                fuzz_addr(&src.addr, 0, 200, (uint16_t)(50000 + i));
                src.conn = &f->conns[i];
                src.conn_peer = &f->conn_peer[i];
                /* ws.c hands in only valid UTF-8 text. */
                if (proto_utf8_valid((const unsigned char *)exact, len))
                    tracker_on_ws_message(f->t, exact, len, &src, now);
            } else {
                src.transport = TRACKER_UDP;
                src.local = (uint8_t)(op >> 7);
                src.addr = f->udp[slot];
                int rc = tracker_on_datagram(f->t, exact, len, &src, now);
                FUZZ_CHECK(rc == 0 || (rc <= -1 && rc >= -PROTO_DROP_COUNT));
                if (rc < 0)
                    FUZZ_CHECK(f->sent == 0); /* garbage is never answered */
            }
            f->cur_slot = -1;
            free(exact);
        }
        tracker_expire(f->t, now, 1u << 20);
        uint64_t deadline;
        if (tracker_next_expiry(f->t, &deadline) == 0)
            FUZZ_CHECK(deadline > now);
        FUZZ_CHECK(registry_count(tracker_registry(f->t)) <= (uint32_t)f->cfg.max_peers);
    }
    for (int i = 0; i < FUZZ_T_WS; i++)
        fuzz_t_close_conn(f, i);
    free(req);
    tracker_free(f->t);
    free(f);
    return 0;
}
