/* tracker: announce / pulse / alive / push over the registry (see tracker.h). */
#include "tracker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "proto.h"
#include "xmem.h"

#define TRACKER_BUF_MAX 65536 /* > the largest max_datagram (65507) + NUL */
#define TRACKER_AMPLIFICATION 4 /* a UDP reply is at most 4x its request */

struct tracker {
    const struct config *cfg;
    struct registry *reg;
    tracker_send_fn send;
    void *send_ctx;
    struct stats st;
    size_t req_len;              /* bytes of the request being answered */
    struct proto_req req;        /* the request being answered */
    char scratch[TRACKER_BUF_MAX]; /* decoder's NUL-terminated copy */
    char out[TRACKER_BUF_MAX];     /* encoded reply */
};

static const char *const tracker_error_codes[STATS_E_COUNT] = {
    [STATS_E_BAD_REQUEST] = "badRequest",
    [STATS_E_UNKNOWN_ACTION] = "unknownAction",
    [STATS_E_NOT_ANNOUNCED] = "notAnnounced",
    [STATS_E_UNKNOWN_SHARE_ID] = "unknownShareId",
    [STATS_E_UNAUTHORIZED] = "unauthorized",
    [STATS_E_FULL] = "full",
};

struct tracker *tracker_new(const struct config *cfg)
{
    struct tracker *t = xcalloc(1, sizeof *t);
    t->cfg = cfg;
    t->reg = registry_new((uint32_t)cfg->max_peers, (uint64_t)cfg->peer_ttl * 1000u);
    return t;
}

void tracker_free(struct tracker *t)
{
    if (!t)
        return;
    registry_free(t->reg);
    free(t);
}

void tracker_set_sink(struct tracker *t, tracker_send_fn send, void *ctx)
{
    t->send = send;
    t->send_ctx = ctx;
}

const struct stats *tracker_stats(const struct tracker *t) { return &t->st; }
struct registry *tracker_registry(struct tracker *t) { return t->reg; }

void tracker_count_drop(struct tracker *t, enum proto_drop reason)
{
    if ((unsigned)reason < PROTO_DROP_COUNT)
        t->st.dropped[reason]++;
}

/* ---- sending ---- */

static int tracker_app(const struct tracker *t) { return t->cfg->compat == CONFIG_COMPAT_SOBANI_APP; }

static void tracker_send_to(struct tracker *t, const struct addr *to, uint8_t local,
                            const struct proto_reply *r, size_t budget)
{
    if (budget > (size_t)t->cfg->max_datagram)
        budget = (size_t)t->cfg->max_datagram;
    ssize_t n = proto_encode(r, t->out, sizeof t->out, budget);
    if (n < 0) {
        t->st.replies_too_large++;
        return;
    }
    if (t->send)
        t->send(t->send_ctx, to, local, t->out, (size_t)n);
}

/* A reply to the requester: never more than 4x the request (anti-amplification). */
static void tracker_reply(struct tracker *t, const struct tracker_src *src, const struct proto_reply *r)
{
    tracker_send_to(t, &src->addr, src->local, r, TRACKER_AMPLIFICATION * t->req_len);
}

static void tracker_error(struct tracker *t, const struct tracker_src *src, enum stats_error code,
                          const char *message)
{
    struct proto_reply r;
    t->st.errors[code]++;
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

/* The address others are told for peer p: its override if set, else observed. */
static const struct addr *tracker_public_addr(const struct peer *p)
{
    if (p->extra && p->extra->override.family)
        return &p->extra->override;
    return &p->addr;
}

/* A successful request from peer pi: refresh it, and answer it (and send its
 * income) from the local address it last talked to. */
static void tracker_seen(struct tracker *t, uint32_t pi, const struct tracker_src *src, uint64_t now)
{
    registry_peer(t->reg, pi)->local = src->local;
    registry_touch(t->reg, pi, now);
}

/* ---- actions ---- */

static void tracker_announce_reply(struct tracker *t, const struct tracker_src *src, uint32_t pi)
{
    const struct peer *p = registry_peer(t->reg, pi);
    char id[IDS_LEN + 1], token[IDS_TOKEN_HEXLEN + 1], addr[ADDR_STRLEN], ttl[24];
    struct proto_reply r;
    memcpy(id, p->id, IDS_LEN);
    id[IDS_LEN] = '\0';
    ids_token(&t->cfg->token_key, p->id, token);
    addr_format(&src->addr, addr, sizeof addr);
    snprintf(ttl, sizeof ttl, "%ld", t->cfg->peer_ttl);
    proto_reply_init(&r, tracker_app(t) ? "announced" : "announceReceived", 1);
    proto_reply_str(&r, "shareId", id, PROTO_KEEP);
    proto_reply_str(&r, "addr", addr, PROTO_PRIO_ADDR);
    proto_reply_str(&r, "token", token, PROTO_PRIO_TOKEN);
    proto_reply_add(&r, "ttl", ttl, strlen(ttl), PROTO_RAW, PROTO_PRIO_TTL);
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
    if (!tracker_multiaddr_ok(t)) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "multiaddr must be a string of at most 256 bytes");
        return;
    }

    uint32_t cur = registry_find_addr(t->reg, &src->addr);
    uint32_t pi;
    if (has_sid) {
        /* Re-claim or attach: only the token's holder may. */
        if (sid->too_long || !ids_valid(sid->s, sid->len) || !tracker_token_ok(t, sid->s)) {
            tracker_error(t, src, STATS_E_UNAUTHORIZED, "token does not match shareId");
            return;
        }
        pi = registry_find_id(t->reg, sid->s, sid->len);
        if (pi != REGISTRY_NIL && pi != cur) {
            if (cur != REGISTRY_NIL) {
                tracker_error(t, src, STATS_E_BAD_REQUEST, "this address holds another shareId");
                return;
            }
            /* Same identity from a new address: the NAT rebound; follow it. */
            registry_set_addr(t->reg, pi, &src->addr, src->local);
        } else if (pi == REGISTRY_NIL) {
            if (cur != REGISTRY_NIL) {
                tracker_error(t, src, STATS_E_BAD_REQUEST, "this address holds another shareId");
                return;
            }
            pi = registry_add(t->reg, sid->s, &src->addr, src->local, now);
            if (pi == REGISTRY_NIL) {
                tracker_error(t, src, STATS_E_FULL, "tracker is full, retry later");
                return;
            }
            t->st.announced++;
        }
    } else if (cur != REGISTRY_NIL) {
        pi = cur;
    } else {
        char id[IDS_LEN];
        if (registry_count(t->reg) >= registry_capacity(t->reg) || tracker_new_id(t, id) != 0) {
            tracker_error(t, src, STATS_E_FULL, "tracker is full, retry later");
            return;
        }
        pi = registry_add(t->reg, id, &src->addr, src->local, now);
        t->st.announced++;
    }
    tracker_seen(t, pi, src, now);
    tracker_keep_multiaddr(t, pi);
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
        (tracker_present(t, PROTO_K_PORT) && port->type != PROTO_T_STRING && port->type != PROTO_T_NUMBER))
        return tracker_error(t, src, STATS_E_BAD_REQUEST,
                             "override and shareId are booleans; token and ip strings; port a string or number");
    if (!tracker_multiaddr_ok(t)) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "multiaddr must be a string of at most 256 bytes");
        return;
    }

    uint32_t pi = registry_find_addr(t->reg, &src->addr);
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
    tracker_keep_multiaddr(t, pi);
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
    tracker_reply(t, src, &r);
}

static void tracker_alive(struct tracker *t, const struct tracker_src *src, uint64_t now)
{
    uint32_t pi = registry_find_addr(t->reg, &src->addr);
    if (pi == REGISTRY_NIL) {
        tracker_not_announced(t, src);
        return;
    }
    tracker_seen(t, pi, src, now);
    struct proto_reply r;
    proto_reply_init(&r, "alived", 0);
    tracker_reply(t, src, &r);
}

/* Adds peer p's public address, id and multiaddr to r (strings in the caller's buffers). */
static void tracker_peer_fields(struct proto_reply *r, const struct peer *p, char addr[ADDR_STRLEN],
                                char id[IDS_LEN + 1])
{
    addr_format(tracker_public_addr(p), addr, ADDR_STRLEN);
    memcpy(id, p->id, IDS_LEN);
    id[IDS_LEN] = '\0';
    proto_reply_str(r, "peeraddr", addr, PROTO_KEEP);
    proto_reply_str(r, "peerShareId", id, PROTO_KEEP);
    if (p->extra && p->extra->multiaddr_len)
        proto_reply_add(r, "multiaddr", p->extra->multiaddr, p->extra->multiaddr_len, PROTO_STR,
                        PROTO_PRIO_MULTIADDR);
}

static void tracker_push(struct tracker *t, const struct tracker_src *src, uint64_t now)
{
    const struct proto_field *sid = tracker_f(t, PROTO_K_SHAREID);
    if (sid->type != PROTO_T_STRING) {
        tracker_error(t, src, STATS_E_BAD_REQUEST, "shareId must be a string");
        return;
    }
    uint32_t ai = registry_find_addr(t->reg, &src->addr);
    if (ai == REGISTRY_NIL) {
        tracker_not_announced(t, src);
        return;
    }
    uint32_t bi = sid->too_long ? REGISTRY_NIL : registry_find_id(t->reg, sid->s, sid->len);
    if (bi == REGISTRY_NIL || bi == ai) {
        tracker_error(t, src, STATS_E_UNKNOWN_SHARE_ID, "no live peer has that shareId");
        return;
    }
    tracker_seen(t, ai, src, now);
    const struct peer *a = registry_peer(t->reg, ai), *b = registry_peer(t->reg, bi);

    /* Both sides learn each other at the same moment: that is what makes
     * simultaneous hole punching work. The target first, then the requester. */
    struct proto_reply income, reply;
    char a_addr[ADDR_STRLEN], a_id[IDS_LEN + 1], b_addr[ADDR_STRLEN], b_id[IDS_LEN + 1];
    proto_reply_init(&income, "income", 1);
    tracker_peer_fields(&income, a, a_addr, a_id);
    tracker_send_to(t, &b->addr, b->local, &income, (size_t)t->cfg->max_datagram);

    proto_reply_init(&reply, tracker_app(t) ? "pushed" : "pushReceived", 1);
    tracker_peer_fields(&reply, b, b_addr, b_id);
    tracker_reply(t, src, &reply);
    t->st.pushes++;
}

int tracker_on_datagram(struct tracker *t, const char *buf, size_t len,
                        const struct tracker_src *src, uint64_t now_ms)
{
    if (len > (size_t)t->cfg->max_datagram) {
        t->st.dropped[PROTO_DROP_TOO_LARGE]++;
        return -1 - PROTO_DROP_TOO_LARGE;
    }
    int rc = proto_decode(buf, len, t->scratch, sizeof t->scratch, &t->req);
    if (rc < 0) {
        t->st.dropped[-1 - rc]++;
        return rc;
    }
    t->req_len = len;
    t->st.requests[STATS_UDP][t->req.action]++;
    switch (t->req.action) {
    case PROTO_ACT_ANNOUNCE:
        tracker_announce(t, src, now_ms);
        break;
    case PROTO_ACT_PULSE:
        tracker_pulse(t, src, now_ms);
        break;
    case PROTO_ACT_ALIVE:
        tracker_alive(t, src, now_ms);
        break;
    case PROTO_ACT_PUSH:
        tracker_push(t, src, now_ms);
        break;
    case PROTO_ACT_UNKNOWN:
        tracker_error(t, src, STATS_E_UNKNOWN_ACTION, "unknown action");
        break;
    default:
        tracker_error(t, src, STATS_E_BAD_REQUEST, "a string action is required");
        break;
    }
    return 0;
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
