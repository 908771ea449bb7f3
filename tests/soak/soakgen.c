/* soakgen: the soak test's UDP traffic (tests/soak/soak.py drives it; docs/soak.md).
 *
 * One process, one thread, a few UDP sockets. It plays:
 *  - the bulk: N peers (100k by default) that announce, pulse every
 *    --interval seconds and now and then push to a random live peer, with
 *    churn: "churn" peers go silent after a while and come back as a new
 *    peer once their old id has certainly expired; "leave" peers go silent
 *    for good. At most one request per peer is in flight, unanswered ones are
 *    resent after --timeout-ms, and --window caps requests in flight in all.
 *  - hostile sources: garbage datagrams (every drop reason) from many
 *    addresses that each stay under the request limit, a flood from a few
 *    addresses far over it, and a spray of announces, pulses and pushes from
 *    tens of thousands of one-shot addresses (forged sources).
 * then, after --secs, a verification phase: every peer that kept pulsing
 * pushes to another such peer (the reply must name the target at its
 * address, and the target must get the income), and a sample of the ids that
 * went silent is pushed to (each must be unknownShareId).
 *
 * Many source addresses without many sockets (as bench/ does): a datagram
 * leaves socket s with source 127.x.y.z chosen by IP_PKTINFO in sendmsg's
 * control data; all of 127.0.0.0/8 is local, so replies to 127.x.y.z:port_s
 * come back to socket s, and IP_PKTINFO on receive says who they are for.
 * Only 127.0.0.0/8 targets are accepted.
 *
 * Output: one JSON line per second on stdout (progress), and a last line
 * {"final":true,...} with every counter; exit status 0 when it ran to the
 * end (whether the checks held is for the driver to judge), 2 on bad usage,
 * 1 on a system error. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SG_MAX_SOCKS 16
#define SG_BATCH 64             /* datagrams per sendmmsg / recvmmsg */
#define SG_REQCAP 1700          /* bytes of one request (the oversized garbage is 1600) */
#define SG_RXCAP 2048           /* bytes kept of one reply */
#define SG_NIL UINT32_MAX
#define SG_SLOT_MS 10           /* timer wheel granularity */
#define SG_WHEEL 8192           /* slots: ~82 s horizon; later events are re-armed */
#define SG_MARGIN_MS 3000       /* expiry is "not earlier, at most ~1 s later": 3 s either side */
#define SG_MAX_PEERS (250u * 256u * SG_MAX_SOCKS)

/* Source address ranges (second octet) of each kind of traffic. */
#define SG_NET_BULK 64
#define SG_NET_FLOOD 200
#define SG_NET_GARBAGE 201
#define SG_NET_SPRAY 202

enum sg_role { SG_STAY, SG_CHURN, SG_LEAVE };
enum sg_state { SG_IDLE, SG_LIVE, SG_SILENT, SG_GONE };
enum sg_kind { SG_K_NONE, SG_K_ANNOUNCE, SG_K_PULSE, SG_K_PUSH, SG_K_VPUSH, SG_K_XPUSH };

/* One simulated peer of the bulk. */
struct sg_peer {
    char sid[9];          /* current shareId ("" = none) */
    char old_sid[9];      /* the id it had before going silent (churn) */
    char tsid[9];         /* target shareId of the push in flight */
    uint8_t role, state, kind; /* kind: what is in flight (SG_K_NONE: nothing) */
    uint8_t income_ok;    /* verification: the expected income arrived */
    int64_t sent_ms;      /* when the request in flight was (first) sent */
    int64_t wake_ms;      /* its timer: next action, or the in-flight timeout */
    int64_t ok_sent_ms;   /* send time of the last request answered without error */
    int64_t ok_rcv_ms;    /* arrival of that answer */
    int64_t stop_ms;      /* churn/leave: when it goes silent */
    uint32_t tpeer;       /* target peer of the push in flight (SG_NIL: an id only) */
    uint32_t vtarget;     /* verification: live peer to push (SG_NIL: none/done) */
    uint32_t vexp;        /* verification: index in the expired list to push (SG_NIL) */
    uint32_t vfrom;       /* verification: the peer whose income is expected */
    uint32_t prev, next;  /* timer wheel links */
    int32_t slot;         /* wheel slot, -1 = not in the wheel */
};

/* An id that went silent: (id, arrival of its last answer). */
struct sg_gone {
    char sid[9];
    int64_t ok_rcv_ms;
};

/* One socket's pending batch of datagrams to send. */
struct sg_tx {
    unsigned n;
    struct mmsghdr msg[SG_BATCH];
    struct iovec iov[SG_BATCH];
    union {
        char b[CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } ctl[SG_BATCH];
    char buf[SG_BATCH][SG_REQCAP];
};

/* Counters: everything the driver compares with punchd's /metrics. */
struct sg_count {
    uint64_t sent_total;
    uint64_t sent_announce, sent_pulse, sent_push, resent;
    uint64_t ann_ok, pulse_ok, push_ok, incomes, late, timeouts, bulk_other;
    uint64_t err_not_announced, err_unknown, err_rate_limited, err_other;
    uint64_t lost_early;       /* notAnnounced while it had certainly not expired: a lost peer */
    uint64_t starved;          /* notAnnounced after a long silence of unanswered requests */
    uint64_t push_unknown_live;/* unknownShareId for a target that had certainly not expired */
    uint64_t rejoins, rejoin_same_id;
    uint64_t gone_recorded;
    /* hostile */
    uint64_t g_sent[4];        /* garbage by reason: too_large, invalid_utf8, not_json, not_object */
    uint64_t g_replies;        /* replies to garbage sources (must stay 0) */
    uint64_t f_sent, f_sent_alive, f_sent_unknown, f_sent_garbage, f_sent_pulse;
    uint64_t f_rate_limited, f_not_announced, f_unknown_action, f_other, f_alived;
    uint64_t s_sent, s_sent_announce, s_sent_pulse, s_sent_push;
    uint64_t s_announced, s_not_announced, s_unknown, s_other;
    uint64_t other_replies;
    /* verification */
    uint64_t v_live, v_uncertain, v_ok, v_bad_reply, v_unknown, v_income_ok, v_incomplete;
    uint64_t v_exp_candidates, v_exp_checked, v_exp_gone, v_exp_present, v_exp_other;
};

struct sg {
    /* options */
    struct sockaddr_in target;
    uint32_t npeers;
    int nsock;
    double secs, ttl, interval, churn, leave, push_frac, churn_active;
    double garbage_rate, flood_rate, spray_rate;
    int garbage_ips, flood_ips, spray_ips;
    int window, timeout_ms, verify_max_s;
    uint32_t exp_sample;
    uint64_t rng;
    /* state */
    int fd[SG_MAX_SOCKS];
    uint16_t port[SG_MAX_SOCKS];
    int ep;
    struct sg_tx *tx;
    struct sg_peer *p;
    uint32_t wheel[SG_WHEEL];
    int64_t wheel_ms;           /* the slot time processed last */
    uint32_t *ready;            /* FIFO of peers due but waiting for the window */
    uint32_t rhead, rtail, rcount;
    uint32_t ninflight;
    struct sg_gone *gone;
    uint32_t ngone, gone_cap;
    int64_t t0, t_end, t_verify_end;
    int verifying;
    uint32_t v_pending;         /* verification tasks not yet done */
    uint64_t g_n, f_n, s_n;     /* hostile datagrams scheduled so far */
    struct sg_count c;
};

static struct sg G;

/* ---- small helpers ---- */

static int64_t sg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t sg_rand(void)
{
    uint64_t x = G.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    G.rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double sg_unif(void) { return (double)(sg_rand() >> 11) / 9007199254740992.0; }

static in_addr_t sg_ip(int net, uint32_t j)
{
    return htonl((127u << 24) | ((uint32_t)net << 16) | ((j / 250u) << 8) | (1u + j % 250u));
}

static in_addr_t sg_peer_ip(uint32_t p) { return sg_ip(SG_NET_BULK, p / (uint32_t)G.nsock); }

/* "127.64.b.c:port" of peer p, as punchd prints it. */
static void sg_peer_addr(uint32_t p, char *out, size_t cap)
{
    struct in_addr a = { .s_addr = sg_peer_ip(p) };
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, G.port[p % (uint32_t)G.nsock]);
}

/* Copies the string value of "key":"..." in json (NUL-terminated, at most
 * cap-1 bytes) into out; 0, or -1 if absent. Replies are compact JSON
 * written by punchd, so a plain search is enough here. */
static int sg_field(const char *json, const char *key, char *out, size_t cap)
{
    char pat[40];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *s = strstr(json, pat);
    if (!s)
        return -1;
    s += strlen(pat);
    const char *e = strchr(s, '"');
    if (!e || (size_t)(e - s) >= cap)
        return -1;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = 0;
    return 0;
}

/* ---- sending ---- */

static void sg_flush(int s)
{
    struct sg_tx *t = &G.tx[s];
    unsigned off = 0;
    while (off < t->n) {
        int n = sendmmsg(G.fd[s], t->msg + off, t->n - off, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == ENOBUFS) {
                /* Our own socket buffer is full: the rest is lost like a dropped datagram. */
                break;
            }
            fprintf(stderr, "soakgen: sendmmsg: %s\n", strerror(errno));
            break;
        }
        off += (unsigned)n;
    }
    t->n = 0;
}

/* Queues len bytes of data to the target from (socket s, source ip). */
static void sg_send(int s, in_addr_t src, const char *data, size_t len)
{
    struct sg_tx *t = &G.tx[s];
    if (t->n == SG_BATCH)
        sg_flush(s);
    unsigned k = t->n++;
    if (len > SG_REQCAP)
        len = SG_REQCAP;
    memcpy(t->buf[k], data, len);
    t->iov[k] = (struct iovec){ .iov_base = t->buf[k], .iov_len = len };
    struct msghdr *m = &t->msg[k].msg_hdr;
    *m = (struct msghdr){ .msg_name = &G.target, .msg_namelen = sizeof G.target,
                          .msg_iov = &t->iov[k], .msg_iovlen = 1,
                          .msg_control = t->ctl[k].b, .msg_controllen = sizeof t->ctl[k].b };
    struct cmsghdr *c = CMSG_FIRSTHDR(m);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo pi = { 0 };
    pi.ipi_spec_dst.s_addr = src;
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    G.c.sent_total++;
}

/* ---- timer wheel (one entry per peer; doubly linked for O(1) moves) ---- */

static void sg_unarm(uint32_t i)
{
    struct sg_peer *p = &G.p[i];
    if (p->slot < 0)
        return;
    if (p->prev != SG_NIL)
        G.p[p->prev].next = p->next;
    else
        G.wheel[p->slot] = p->next;
    if (p->next != SG_NIL)
        G.p[p->next].prev = p->prev;
    p->slot = -1;
}

static void sg_arm(uint32_t i, int64_t at_ms)
{
    struct sg_peer *p = &G.p[i];
    sg_unarm(i);
    p->wake_ms = at_ms;
    int64_t t = at_ms;
    if (t < G.wheel_ms + SG_SLOT_MS) /* the slot of wheel_ms itself is done */
        t = G.wheel_ms + SG_SLOT_MS;
    if (t - G.wheel_ms >= (int64_t)(SG_WHEEL - 1) * SG_SLOT_MS)
        t = G.wheel_ms + (int64_t)(SG_WHEEL - 2) * SG_SLOT_MS; /* re-armed when it fires */
    int s = (int)((t / SG_SLOT_MS) % SG_WHEEL);
    p->slot = s;
    p->prev = SG_NIL;
    p->next = G.wheel[s];
    if (p->next != SG_NIL)
        G.p[p->next].prev = i;
    G.wheel[s] = i;
}

static void sg_ready_push(uint32_t i)
{
    G.ready[G.rtail] = i;
    G.rtail = (G.rtail + 1) % G.npeers;
    G.rcount++;
}

/* ---- the bulk peers ---- */

static int sg_certainly_alive(const struct sg_peer *p, int64_t now)
{
    return p->state == SG_LIVE && p->ok_sent_ms > 0 &&
           now < p->ok_sent_ms + (int64_t)(G.ttl * 1000) - SG_MARGIN_MS;
}

/* Sends peer i's request of kind k (a resend keeps sent_ms). */
static void sg_peer_send(uint32_t i, int kind, int64_t now, int resend)
{
    struct sg_peer *p = &G.p[i];
    char buf[96];
    int n;
    switch (kind) {
    case SG_K_ANNOUNCE:
        n = snprintf(buf, sizeof buf, "{\"action\":\"announce\"}");
        G.c.sent_announce++;
        break;
    case SG_K_PULSE:
        n = snprintf(buf, sizeof buf, "{\"action\":\"pulse\"}");
        G.c.sent_pulse++;
        break;
    default:
        n = snprintf(buf, sizeof buf, "{\"action\":\"push\",\"shareId\":\"%s\"}", p->tsid);
        G.c.sent_push++;
        break;
    }
    if (resend) {
        G.c.resent++;
    } else {
        p->kind = (uint8_t)kind;
        p->sent_ms = now;
        G.ninflight++;
    }
    sg_send((int)(i % (uint32_t)G.nsock), sg_peer_ip(i), buf, (size_t)n);
    sg_arm(i, now + G.timeout_ms);
}

/* A random peer other than i that has certainly not expired, SG_NIL if none found. */
static uint32_t sg_random_live(uint32_t i, int64_t now)
{
    for (int tries = 0; tries < 8; tries++) {
        uint32_t j = (uint32_t)(sg_rand() % G.npeers);
        if (j != i && sg_certainly_alive(&G.p[j], now) && G.p[j].sid[0])
            return j;
    }
    return SG_NIL;
}

static void sg_record_gone(struct sg_peer *p)
{
    if (G.ngone == G.gone_cap) {
        G.gone_cap = G.gone_cap ? G.gone_cap * 2 : 65536;
        G.gone = realloc(G.gone, (size_t)G.gone_cap * sizeof *G.gone);
        if (!G.gone) {
            fprintf(stderr, "soakgen: out of memory\n");
            exit(1);
        }
    }
    memcpy(G.gone[G.ngone].sid, p->sid, sizeof p->sid);
    G.gone[G.ngone].ok_rcv_ms = p->ok_rcv_ms;
    G.ngone++;
    G.c.gone_recorded++;
}

/* Peer i is due (not in flight, window permitting): its next action. */
static void sg_peer_act(uint32_t i, int64_t now)
{
    struct sg_peer *p = &G.p[i];
    if (p->state == SG_SILENT) {
        /* churn: back as a new peer (the old id has certainly expired by now),
         * active for a while again */
        p->state = SG_IDLE;
        p->stop_ms = now + (int64_t)((0.5 + sg_unif()) * G.churn_active * 1000);
        G.c.rejoins++;
    }
    if (p->state == SG_GONE)
        return;
    if (p->state == SG_IDLE) {
        sg_peer_send(i, SG_K_ANNOUNCE, now, 0);
        return;
    }
    if (!G.verifying && p->role != SG_STAY && now >= p->stop_ms) {
        sg_record_gone(p);
        memcpy(p->old_sid, p->sid, sizeof p->sid);
        p->sid[0] = 0;
        if (p->role == SG_LEAVE) {
            p->state = SG_GONE;
            return;
        }
        p->state = SG_SILENT;
        p->stop_ms = INT64_MAX;
        sg_arm(i, p->ok_rcv_ms + (int64_t)(G.ttl * 1000) + SG_MARGIN_MS +
                      (int64_t)(sg_unif() * 2000));
        return;
    }
    if (p->vtarget != SG_NIL) {
        p->tpeer = p->vtarget;
        memcpy(p->tsid, G.p[p->vtarget].sid, sizeof p->tsid);
        sg_peer_send(i, SG_K_VPUSH, now, 0);
        return;
    }
    if (p->vexp != SG_NIL) {
        p->tpeer = SG_NIL;
        memcpy(p->tsid, G.gone[p->vexp].sid, sizeof p->tsid);
        sg_peer_send(i, SG_K_XPUSH, now, 0);
        return;
    }
    if (!G.verifying && sg_unif() < G.push_frac) {
        uint32_t j = sg_random_live(i, now);
        if (j != SG_NIL) {
            p->tpeer = j;
            memcpy(p->tsid, G.p[j].sid, sizeof p->tsid);
            sg_peer_send(i, SG_K_PUSH, now, 0);
            return;
        }
    }
    sg_peer_send(i, SG_K_PULSE, now, 0);
}

/* The next regular action of peer i after an answer: one interval after the
 * last send, with a little jitter so the load stays spread. */
static void sg_peer_next(uint32_t i, int64_t now, int soon)
{
    struct sg_peer *p = &G.p[i];
    if (soon) {
        sg_arm(i, now);
        return;
    }
    int64_t iv = (int64_t)(G.interval * 1000);
    int64_t at = p->sent_ms + iv - iv / 10 + (int64_t)(sg_unif() * (double)(iv / 5));
    sg_arm(i, at > now ? at : now);
}

static void sg_task_done(void)
{
    if (G.v_pending)
        G.v_pending--;
}

/* A reply or income for bulk peer i. */
static void sg_bulk_rx(uint32_t i, const char *msg, int64_t now)
{
    struct sg_peer *p = &G.p[i];
    char action[24], code[24], sid[12], addr[48];
    if (sg_field(msg, "action", action, sizeof action) != 0) {
        G.c.bulk_other++;
        return;
    }
    if (strcmp(action, "income") == 0) {
        G.c.incomes++;
        if (p->vfrom != SG_NIL && !p->income_ok && sg_field(msg, "peerShareId", sid, sizeof sid) == 0 &&
            strcmp(sid, G.p[p->vfrom].sid) == 0) {
            p->income_ok = 1;
            G.c.v_income_ok++;
        }
        return;
    }
    if (p->kind == SG_K_NONE) {
        G.c.late++; /* the answer to a request already answered (it was resent) */
        return;
    }
    int kind = p->kind;
    int64_t sent = p->sent_ms;
    p->kind = SG_K_NONE;
    G.ninflight--;
    sg_unarm(i);
    int is_error = strcmp(action, "error") == 0;
    if (is_error && sg_field(msg, "code", code, sizeof code) != 0)
        code[0] = 0;
    if (!is_error) {
        p->ok_sent_ms = sent;
        p->ok_rcv_ms = now;
    }
    switch (kind) {
    case SG_K_ANNOUNCE:
        if (strcmp(action, "announceReceived") == 0 && sg_field(msg, "shareId", sid, sizeof sid) == 0 &&
            strlen(sid) == 8) {
            G.c.ann_ok++;
            if (p->old_sid[0] && strcmp(p->old_sid, sid) == 0)
                G.c.rejoin_same_id++; /* the old id did not expire */
            p->old_sid[0] = 0;
            memcpy(p->sid, sid, sizeof p->sid);
            p->state = SG_LIVE;
            sg_peer_next(i, now, 0);
        } else {
            if (is_error && strcmp(code, "rateLimited") == 0)
                G.c.err_rate_limited++;
            else
                G.c.err_other++;
            sg_arm(i, now + 1000);
        }
        return;
    case SG_K_PULSE:
        if (strcmp(action, "pulseReceived") == 0) {
            G.c.pulse_ok++;
            sg_peer_next(i, now, 0);
            return;
        }
        break;
    default:
        if (strcmp(action, "pushReceived") == 0) {
            G.c.push_ok++;
            if (kind == SG_K_VPUSH) {
                char want[48];
                sg_peer_addr(p->tpeer, want, sizeof want);
                if (sg_field(msg, "peerShareId", sid, sizeof sid) == 0 && strcmp(sid, p->tsid) == 0 &&
                    sg_field(msg, "peeraddr", addr, sizeof addr) == 0 && strcmp(addr, want) == 0)
                    G.c.v_ok++;
                else
                    G.c.v_bad_reply++;
                p->vtarget = SG_NIL;
                sg_task_done();
                sg_peer_next(i, now, p->vexp != SG_NIL);
            } else if (kind == SG_K_XPUSH) {
                G.c.v_exp_present++; /* an id that should have expired still resolves */
                p->vexp = SG_NIL;
                sg_task_done();
                sg_peer_next(i, now, 0);
            } else {
                sg_peer_next(i, now, 0);
            }
            return;
        }
        break;
    }
    /* errors to pulse and push */
    if (!is_error) {
        G.c.bulk_other++;
        sg_peer_next(i, now, 0);
        return;
    }
    if (strcmp(code, "notAnnounced") == 0) {
        G.c.err_not_announced++;
        /* Lost by punchd only if its last answered request was recent. */
        if (p->ok_sent_ms > 0 && sent < p->ok_sent_ms + (int64_t)(G.ttl * 1000) - SG_MARGIN_MS)
            G.c.lost_early++;
        else
            G.c.starved++;
        if (kind == SG_K_VPUSH || kind == SG_K_XPUSH) {
            /* A pusher that is gone cannot verify anything: its tasks stay undone. */
            if (p->vtarget != SG_NIL) {
                p->vtarget = SG_NIL;
                G.c.v_incomplete++;
                sg_task_done();
            }
            if (p->vexp != SG_NIL) {
                p->vexp = SG_NIL;
                G.c.v_incomplete++;
                sg_task_done();
            }
        }
        p->sid[0] = 0;
        p->state = SG_IDLE;
        sg_arm(i, now);
        return;
    }
    if (strcmp(code, "unknownShareId") == 0) {
        G.c.err_unknown++;
        if (kind == SG_K_VPUSH) {
            G.c.v_unknown++; /* a peer that kept pulsing is not resolvable */
            p->vtarget = SG_NIL;
            sg_task_done();
            sg_peer_next(i, now, p->vexp != SG_NIL);
        } else if (kind == SG_K_XPUSH) {
            G.c.v_exp_gone++;
            p->vexp = SG_NIL;
            sg_task_done();
            sg_peer_next(i, now, 0);
        } else {
            struct sg_peer *t = &G.p[p->tpeer];
            if (t->ok_sent_ms > 0 && strcmp(t->sid, p->tsid) == 0 &&
                sent < t->ok_sent_ms + (int64_t)(G.ttl * 1000) - SG_MARGIN_MS)
                G.c.push_unknown_live++;
            sg_peer_next(i, now, 0);
        }
        return;
    }
    if (strcmp(code, "rateLimited") == 0) {
        /* income limit of a popular target, or a verification push to a
         * target that just got several: try again in a second */
        G.c.err_rate_limited++;
        sg_arm(i, now + 1000);
        return;
    }
    G.c.err_other++;
    if (kind == SG_K_VPUSH || kind == SG_K_XPUSH) {
        if (kind == SG_K_VPUSH)
            p->vtarget = SG_NIL;
        else
            p->vexp = SG_NIL;
        G.c.v_incomplete++;
        sg_task_done();
    }
    sg_peer_next(i, now, 0);
}

/* A timer of peer i fired. */
static void sg_peer_timer(uint32_t i, int64_t now)
{
    struct sg_peer *p = &G.p[i];
    if (p->wake_ms > now + SG_SLOT_MS) {
        sg_arm(i, p->wake_ms); /* beyond the wheel's horizon when armed */
        return;
    }
    if (p->kind != SG_K_NONE) {
        G.c.timeouts++;
        sg_peer_send(i, p->kind, now, 1);
        return;
    }
    sg_ready_push(i);
}

/* ---- hostile traffic ---- */

static void sg_hostile(int64_t now)
{
    double el = (double)(now - G.t0) / 1000.0;
    static const char *garbage[4] = { NULL, "\xff\xfe{\"action\":\"pulse\"}", "this is not json", "[1,2,3]" };
    static char big[1600];
    if (!big[0])
        memset(big, 'x', sizeof big);
    int s = 0;
    /* garbage: every drop reason, round robin over many addresses, each far under the limit */
    uint64_t due = (uint64_t)(G.garbage_rate * el);
    for (int k = 0; G.g_n < due && k < 2000; k++, G.g_n++) {
        int r = (int)(G.g_n % 4);
        const char *d = r == 0 ? big : garbage[r];
        size_t len = r == 0 ? sizeof big : strlen(d);
        sg_send(s, sg_ip(SG_NET_GARBAGE, (uint32_t)(G.g_n / 4 % (uint64_t)G.garbage_ips)), d, len);
        G.c.g_sent[r]++;
        s = (s + 1) % G.nsock;
    }
    /* flood: a few addresses far over the request limit */
    due = (uint64_t)(G.flood_rate * el);
    for (int k = 0; G.f_n < due && k < 4000; k++, G.f_n++) {
        in_addr_t ip = sg_ip(SG_NET_FLOOD, (uint32_t)(G.f_n % (uint64_t)G.flood_ips));
        switch ((G.f_n / (uint64_t)G.flood_ips) % 4) {
        case 0:
            sg_send(0, ip, "{\"action\":\"alive\"}", 18);
            G.c.f_sent_alive++;
            break;
        case 1:
            sg_send(0, ip, "{\"action\":\"hax\"}", 16);
            G.c.f_sent_unknown++;
            break;
        case 2:
            sg_send(0, ip, "zzzzzzzzzzzz", 12);
            G.c.f_sent_garbage++;
            break;
        default:
            sg_send(0, ip, "{\"action\":\"pulse\"}", 18);
            G.c.f_sent_pulse++;
            break;
        }
        G.c.f_sent++;
    }
    /* spray: one-shot forged sources; announces create peers that never pulse */
    due = (uint64_t)(G.spray_rate * el);
    for (int k = 0; G.s_n < due && k < 4000; k++, G.s_n++) {
        in_addr_t ip = sg_ip(SG_NET_SPRAY, (uint32_t)(G.s_n % (uint64_t)G.spray_ips));
        char buf[64];
        int n;
        switch ((G.s_n + G.s_n / (uint64_t)G.spray_ips) % 4) {
        case 0:
        case 1:
            n = snprintf(buf, sizeof buf, "{\"action\":\"announce\"}");
            G.c.s_sent_announce++;
            break;
        case 2:
            n = snprintf(buf, sizeof buf, "{\"action\":\"pulse\"}");
            G.c.s_sent_pulse++;
            break;
        default: {
            /* a random id: unknown unless a 1-in-2^47 guess hits */
            static const char al[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
            char id[9];
            for (int c = 0; c < 8; c++)
                id[c] = al[sg_rand() % 62];
            id[8] = 0;
            n = snprintf(buf, sizeof buf, "{\"action\":\"push\",\"shareId\":\"%s\"}", id);
            G.c.s_sent_push++;
            break;
        }
        }
        sg_send(s, ip, buf, (size_t)n);
        G.c.s_sent++;
        s = (s + 1) % G.nsock;
    }
}

/* A datagram to a hostile source address. */
static void sg_hostile_rx(int net, const char *msg)
{
    char action[24], code[24];
    int ok = sg_field(msg, "action", action, sizeof action) == 0;
    int err = ok && strcmp(action, "error") == 0 && sg_field(msg, "code", code, sizeof code) == 0;
    if (net == SG_NET_GARBAGE) {
        G.c.g_replies++;
    } else if (net == SG_NET_FLOOD) {
        if (err && strcmp(code, "rateLimited") == 0)
            G.c.f_rate_limited++;
        else if (err && strcmp(code, "notAnnounced") == 0)
            G.c.f_not_announced++;
        else if (err && strcmp(code, "unknownAction") == 0)
            G.c.f_unknown_action++;
        else if (ok && strcmp(action, "alived") == 0)
            G.c.f_alived++;
        else
            G.c.f_other++;
    } else if (net == SG_NET_SPRAY) {
        if (ok && strcmp(action, "announceReceived") == 0)
            G.c.s_announced++;
        else if (err && strcmp(code, "notAnnounced") == 0)
            G.c.s_not_announced++;
        else if (err && strcmp(code, "unknownShareId") == 0)
            G.c.s_unknown++;
        else
            G.c.s_other++;
    } else {
        G.c.other_replies++;
    }
}

/* ---- receiving ---- */

static void sg_rx(int s, int64_t now)
{
    static char buf[SG_BATCH][SG_RXCAP + 1];
    static struct mmsghdr msg[SG_BATCH];
    static struct iovec iov[SG_BATCH];
    static union {
        char b[CMSG_SPACE(sizeof(struct in_pktinfo)) + 64];
        struct cmsghdr align;
    } ctl[SG_BATCH];
    for (int round = 0; round < 64; round++) {
        for (int k = 0; k < SG_BATCH; k++) {
            iov[k] = (struct iovec){ .iov_base = buf[k], .iov_len = SG_RXCAP };
            msg[k].msg_hdr = (struct msghdr){ .msg_iov = &iov[k], .msg_iovlen = 1,
                                              .msg_control = ctl[k].b,
                                              .msg_controllen = sizeof ctl[k].b };
        }
        int n = recvmmsg(G.fd[s], msg, SG_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int k = 0; k < n; k++) {
            buf[k][msg[k].msg_len < SG_RXCAP ? msg[k].msg_len : SG_RXCAP] = 0;
            in_addr_t dst = 0;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg[k].msg_hdr); c;
                 c = CMSG_NXTHDR(&msg[k].msg_hdr, c))
                if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                    struct in_pktinfo pi;
                    memcpy(&pi, CMSG_DATA(c), sizeof pi);
                    dst = pi.ipi_addr.s_addr;
                }
            uint32_t h = ntohl(dst);
            int net = (int)((h >> 16) & 0xff);
            if ((h >> 24) != 127 || (h & 0xff) == 0) {
                G.c.other_replies++;
                continue;
            }
            if (net == SG_NET_BULK) {
                uint32_t j = ((h >> 8) & 0xff) * 250u + (h & 0xff) - 1u;
                uint32_t i = j * (uint32_t)G.nsock + (uint32_t)s;
                if (i < G.npeers)
                    sg_bulk_rx(i, buf[k], now);
                else
                    G.c.other_replies++;
            } else {
                sg_hostile_rx(net, buf[k]);
            }
        }
        if (n < SG_BATCH)
            return;
    }
}

/* ---- phases ---- */

/* End of the load: every certainly-live peer gets one verification push to
 * another (a shuffled ring, so each is pusher once and target once), and a
 * sample of the silent ids is handed out to push to. */
static void sg_start_verify(int64_t now)
{
    G.verifying = 1;
    uint32_t *live = malloc((size_t)G.npeers * sizeof *live);
    if (!live) {
        fprintf(stderr, "soakgen: out of memory\n");
        exit(1);
    }
    uint32_t n = 0;
    int64_t horizon = now + (int64_t)G.verify_max_s * 1000;
    for (uint32_t i = 0; i < G.npeers; i++) {
        struct sg_peer *p = &G.p[i];
        p->vtarget = p->vexp = p->vfrom = SG_NIL;
        p->income_ok = 0;
        if (p->state != SG_LIVE)
            continue;
        if (sg_certainly_alive(p, now))
            live[n++] = i;
        else
            G.c.v_uncertain++;
    }
    for (uint32_t k = n; k > 1; k--) {
        uint32_t j = (uint32_t)(sg_rand() % k);
        uint32_t t = live[k - 1];
        live[k - 1] = live[j];
        live[j] = t;
    }
    G.c.v_live = n;
    for (uint32_t k = 0; n > 1 && k < n; k++) {
        uint32_t a = live[k], b = live[(k + 1) % n];
        G.p[a].vtarget = b;
        G.p[b].vfrom = a;
        G.v_pending++;
    }
    /* ids certainly expired before the verification pushes can reach punchd */
    uint32_t *cand = malloc(((size_t)G.ngone + 1) * sizeof *cand);
    uint32_t nc = 0;
    for (uint32_t g = 0; cand && g < G.ngone; g++)
        if (now > G.gone[g].ok_rcv_ms + (int64_t)(G.ttl * 1000) + SG_MARGIN_MS)
            cand[nc++] = g;
    G.c.v_exp_candidates = nc;
    uint32_t want = G.exp_sample < nc ? G.exp_sample : nc;
    if (want > n)
        want = n;
    for (uint32_t k = 0; k < want; k++) {
        uint32_t j = k + (uint32_t)(sg_rand() % (nc - k));
        uint32_t t = cand[k];
        cand[k] = cand[j];
        cand[j] = t;
        G.p[live[k]].vexp = cand[k];
        G.v_pending++;
    }
    G.c.v_exp_checked = want;
    free(cand);
    free(live);
    G.t_verify_end = horizon;
}

static void sg_progress(int64_t now, const char *phase)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i < G.npeers; i++)
        live += G.p[i].state == SG_LIVE;
    printf("{\"t\":%.1f,\"phase\":\"%s\",\"live\":%u,\"inflight\":%u,\"ready\":%u,\"sent\":%llu,"
           "\"timeouts\":%llu,\"incomes\":%llu,\"verify_pending\":%u}\n",
           (double)(now - G.t0) / 1000.0, phase, live, G.ninflight, G.rcount,
           (unsigned long long)G.c.sent_total, (unsigned long long)G.c.timeouts,
           (unsigned long long)G.c.incomes, G.v_pending);
    fflush(stdout);
}

#define SG_J(name) printf(",\"%s\":%llu", #name, (unsigned long long)G.c.name)

static void sg_final(int64_t now)
{
    printf("{\"final\":true,\"elapsed\":%.1f,\"peers\":%u", (double)(now - G.t0) / 1000.0, G.npeers);
    SG_J(sent_total); SG_J(sent_announce); SG_J(sent_pulse); SG_J(sent_push); SG_J(resent);
    SG_J(ann_ok); SG_J(pulse_ok); SG_J(push_ok); SG_J(incomes); SG_J(late); SG_J(timeouts);
    SG_J(bulk_other); SG_J(err_not_announced); SG_J(err_unknown); SG_J(err_rate_limited);
    SG_J(err_other); SG_J(lost_early); SG_J(starved); SG_J(push_unknown_live); SG_J(rejoins);
    SG_J(rejoin_same_id); SG_J(gone_recorded);
    printf(",\"g_sent\":{\"too_large\":%llu,\"invalid_utf8\":%llu,\"not_json\":%llu,\"not_object\":%llu}",
           (unsigned long long)G.c.g_sent[0], (unsigned long long)G.c.g_sent[1],
           (unsigned long long)G.c.g_sent[2], (unsigned long long)G.c.g_sent[3]);
    SG_J(g_replies); SG_J(f_sent); SG_J(f_sent_alive); SG_J(f_sent_unknown); SG_J(f_sent_garbage);
    SG_J(f_sent_pulse); SG_J(f_rate_limited); SG_J(f_not_announced); SG_J(f_unknown_action);
    SG_J(f_alived); SG_J(f_other); SG_J(s_sent); SG_J(s_sent_announce); SG_J(s_sent_pulse);
    SG_J(s_sent_push); SG_J(s_announced); SG_J(s_not_announced); SG_J(s_unknown); SG_J(s_other);
    SG_J(other_replies); SG_J(v_live); SG_J(v_uncertain); SG_J(v_ok); SG_J(v_bad_reply);
    SG_J(v_unknown); SG_J(v_income_ok); SG_J(v_incomplete); SG_J(v_exp_candidates);
    SG_J(v_exp_checked); SG_J(v_exp_gone); SG_J(v_exp_present); SG_J(v_exp_other);
    printf(",\"verify_pending\":%u,\"flood_ips\":%d,\"garbage_ips\":%d,\"spray_ips\":%d,"
           "\"load_secs\":%.1f}\n", G.v_pending, G.flood_ips, G.garbage_ips, G.spray_ips,
           (double)(G.t_end - G.t0) / 1000.0);
    fflush(stdout);
}

/* ---- set-up ---- */

static void sg_usage(void)
{
    fprintf(stderr,
            "usage: soakgen --target 127.0.0.1:PORT [--peers 100000] [--secs 60] [--ttl 10]\n"
            "  [--interval 3] [--churn 0.2] [--churn-active 15] [--leave 0.05] [--push 0.05]\n"
            "  [--garbage-rate 300] [--garbage-ips 200] [--flood-rate 4000] [--flood-ips 8]\n"
            "  [--spray-rate 1000] [--spray-ips 40000] [--window 4096] [--timeout-ms 1000]\n"
            "  [--verify-max 30] [--expired-sample 20000] [--sockets 16] [--seed 1]\n");
    exit(2);
}

static int sg_open_sockets(void)
{
    G.ep = epoll_create1(0);
    if (G.ep < 0)
        return -1;
    for (int s = 0; s < G.nsock; s++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return -1;
        int on = 1, sz = 8 << 20;
        /* FORCE works as root (beyond rmem_max); the plain one otherwise */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) != 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
            return -1;
        socklen_t al = sizeof a;
        getsockname(fd, (struct sockaddr *)&a, &al);
        G.fd[s] = fd;
        G.port[s] = ntohs(a.sin_port);
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)s };
        if (epoll_ctl(G.ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            return -1;
    }
    return 0;
}

static int sg_parse_target(const char *s)
{
    char ip[64];
    const char *c = strrchr(s, ':');
    if (!c || (size_t)(c - s) >= sizeof ip)
        return -1;
    memcpy(ip, s, (size_t)(c - s));
    ip[c - s] = 0;
    G.target.sin_family = AF_INET;
    long port = strtol(c + 1, NULL, 10);
    if (inet_pton(AF_INET, ip, &G.target.sin_addr) != 1 || port <= 0 || port > 65535)
        return -1;
    G.target.sin_port = htons((uint16_t)port);
    return (ntohl(G.target.sin_addr.s_addr) >> 24) == 127 ? 0 : -1; /* loopback only */
}

static void sg_options(int argc, char **argv)
{
    G.npeers = 100000; G.nsock = 16; G.secs = 60; G.ttl = 10; G.interval = 3;
    G.churn = 0.2; G.churn_active = 15; G.leave = 0.05; G.push_frac = 0.05;
    G.garbage_rate = 300; G.garbage_ips = 200; G.flood_rate = 4000; G.flood_ips = 8;
    G.spray_rate = 1000; G.spray_ips = 40000; G.window = 4096; G.timeout_ms = 1000;
    G.verify_max_s = 30; G.exp_sample = 20000; G.rng = 1;
    int have_target = 0;
    for (int k = 1; k < argc; k++) {
        const char *o = argv[k];
        if (k + 1 >= argc)
            sg_usage();
        const char *v = argv[++k];
        double d = strtod(v, NULL);
        if (!strcmp(o, "--target")) {
            if (sg_parse_target(v) != 0)
                sg_usage();
            have_target = 1;
        } else if (!strcmp(o, "--peers")) G.npeers = (uint32_t)d;
        else if (!strcmp(o, "--sockets")) G.nsock = (int)d;
        else if (!strcmp(o, "--secs")) G.secs = d;
        else if (!strcmp(o, "--ttl")) G.ttl = d;
        else if (!strcmp(o, "--interval")) G.interval = d;
        else if (!strcmp(o, "--churn")) G.churn = d;
        else if (!strcmp(o, "--churn-active")) G.churn_active = d;
        else if (!strcmp(o, "--leave")) G.leave = d;
        else if (!strcmp(o, "--push")) G.push_frac = d;
        else if (!strcmp(o, "--garbage-rate")) G.garbage_rate = d;
        else if (!strcmp(o, "--garbage-ips")) G.garbage_ips = (int)d;
        else if (!strcmp(o, "--flood-rate")) G.flood_rate = d;
        else if (!strcmp(o, "--flood-ips")) G.flood_ips = (int)d;
        else if (!strcmp(o, "--spray-rate")) G.spray_rate = d;
        else if (!strcmp(o, "--spray-ips")) G.spray_ips = (int)d;
        else if (!strcmp(o, "--window")) G.window = (int)d;
        else if (!strcmp(o, "--timeout-ms")) G.timeout_ms = (int)d;
        else if (!strcmp(o, "--verify-max")) G.verify_max_s = (int)d;
        else if (!strcmp(o, "--expired-sample")) G.exp_sample = (uint32_t)d;
        else if (!strcmp(o, "--seed")) G.rng = (uint64_t)d * 2654435761u + 1;
        else
            sg_usage();
    }
    if (!have_target || G.nsock < 1 || G.nsock > SG_MAX_SOCKS || G.npeers < 2 ||
        G.npeers > SG_MAX_PEERS || G.ttl < 1 || G.interval <= 0 || G.window < 1 ||
        G.timeout_ms < 10 || G.garbage_ips < 1 || G.garbage_ips > 64000 || G.flood_ips < 1 ||
        G.flood_ips > 250 || G.spray_ips < 1 || G.spray_ips > 64000)
        sg_usage();
}

int main(int argc, char **argv)
{
    sg_options(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    G.p = calloc(G.npeers, sizeof *G.p);
    G.ready = calloc(G.npeers, sizeof *G.ready);
    G.tx = calloc((size_t)G.nsock, sizeof *G.tx);
    if (!G.p || !G.ready || !G.tx) {
        fprintf(stderr, "soakgen: out of memory\n");
        return 1;
    }
    if (sg_open_sockets() != 0) {
        fprintf(stderr, "soakgen: sockets: %s\n", strerror(errno));
        return 1;
    }
    for (int s = 0; s < SG_WHEEL; s++)
        G.wheel[s] = SG_NIL;
    G.t0 = sg_now_ms();
    G.wheel_ms = G.t0 - G.t0 % SG_SLOT_MS;
    G.t_end = G.t0 + (int64_t)(G.secs * 1000);
    G.t_verify_end = INT64_MAX;
    for (uint32_t i = 0; i < G.npeers; i++) {
        struct sg_peer *p = &G.p[i];
        p->slot = -1;
        p->vtarget = p->vexp = p->vfrom = SG_NIL;
        double r = sg_unif();
        p->role = r < G.leave ? SG_LEAVE : r < G.leave + G.churn ? SG_CHURN : SG_STAY;
        p->stop_ms = INT64_MAX;
        if (p->role == SG_LEAVE) /* gone for good somewhere in the middle of the run */
            p->stop_ms = G.t0 + (int64_t)((0.2 + 0.4 * sg_unif()) * G.secs * 1000);
        else if (p->role == SG_CHURN) /* active for a while; the phase is random */
            p->stop_ms = G.t0 + (int64_t)((0.3 + 1.2 * sg_unif()) * G.churn_active * 1000);
        sg_ready_push(i); /* everyone announces at the start, as the window allows */
    }

    int64_t last_progress = G.t0;
    struct epoll_event ev[SG_MAX_SOCKS];
    for (;;) {
        int64_t now = sg_now_ms();
        if (!G.verifying && now >= G.t_end) {
            for (int s = 0; s < G.nsock; s++)
                sg_flush(s);
            sg_start_verify(now);
        }
        if (G.verifying && (G.v_pending == 0 || now >= G.t_verify_end))
            break;
        int n = epoll_wait(G.ep, ev, SG_MAX_SOCKS, 2);
        now = sg_now_ms();
        for (int k = 0; k < n; k++)
            sg_rx((int)ev[k].data.u32, now);
        /* timers due */
        while (G.wheel_ms + SG_SLOT_MS <= now) {
            G.wheel_ms += SG_SLOT_MS;
            int s = (int)((G.wheel_ms / SG_SLOT_MS) % SG_WHEEL);
            uint32_t i = G.wheel[s];
            G.wheel[s] = SG_NIL;
            while (i != SG_NIL) {
                uint32_t nx = G.p[i].next;
                G.p[i].slot = -1;
                if (nx != SG_NIL)
                    G.p[nx].prev = SG_NIL;
                sg_peer_timer(i, now);
                i = nx;
            }
        }
        /* due peers, as the window allows */
        while (G.rcount && G.ninflight < (uint32_t)G.window) {
            uint32_t i = G.ready[G.rhead];
            G.rhead = (G.rhead + 1) % G.npeers;
            G.rcount--;
            sg_peer_act(i, now);
        }
        if (!G.verifying)
            sg_hostile(now);
        for (int s = 0; s < G.nsock; s++)
            if (G.tx[s].n)
                sg_flush(s);
        if (now - last_progress >= 1000) {
            last_progress = now;
            sg_progress(now, G.verifying ? "verify" : "load");
        }
    }
    /* stragglers: incomes sent with the last answers */
    int64_t until = sg_now_ms() + 500;
    while (sg_now_ms() < until) {
        int n = epoll_wait(G.ep, ev, SG_MAX_SOCKS, 50);
        for (int k = 0; k < n; k++)
            sg_rx((int)ev[k].data.u32, sg_now_ms());
    }
    G.c.v_incomplete += G.v_pending;
    sg_final(sg_now_ms());
    return 0;
}
