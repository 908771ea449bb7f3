/* punch: libpunch's public API and state machine (see include/punch.h).
 *
 * One handle = one UDP socket + at most one WebSocket to the tracker + one
 * peer session. Registration: announce (with candidates and our X25519
 * public key; a "retry" error's cookie is echoed), then one NAT probe to the
 * probe address, then pulses. Session: push (connect) or income (accept)
 * gives the peer's addresses, public key and the pairing nonce; both sides
 * knock every address every PUNCH_KNOCK_MS until a knock is acknowledged,
 * else fall back to the relay; then the encrypted stream runs on that path.
 *
 * Nothing here blocks after punch_new: punch_poll drains the sockets, runs
 * the timers and queues events; times come from the caller. */
#include "punch_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PUNCH_KNOCK_MS 100          /* between knock rounds */
#define PUNCH_KNOCK_FAST_MS 20      /* between the first rounds: the peer's first knocks open */
#define PUNCH_KNOCK_FAST_ROUNDS 5   /* its NAT a few ms after ours, no need to wait 100 ms */
#define PUNCH_HOPELESS_MS 1500      /* knocking deadline when a random NAT or a missing UDP
                                     * side leaves little chance (an open NAT answers fast) */
#define PUNCH_RELAY_KNOCK_MS 100    /* between relay knocks (a handful: the relay is reliable) */
#define PUNCH_ACK_GRACE_MS 250      /* wait for the peer's own knock after our ack */
#define PUNCH_ANNOUNCE_MS 1000      /* announce retry (sobani clients: 1 s) */
#define PUNCH_RETRY_GAP_MS 200      /* answer "retry" cookies at most this often */
#define PUNCH_PUSH_MS 1000          /* push retry until pushReceived */
#define PUNCH_REPUSH_MS 2000        /* re-push once if the peer stayed silent (lost income) */
#define PUNCH_PROBE_MS 300          /* probe retry */
#define PUNCH_PROBE_WAIT_MS 1500    /* then the NAT stays "unknown" */
#define PUNCH_RELAY_WAIT_MS 10000   /* relay knocks unanswered this long: no path */
#define PUNCH_RELAY_PAUSE_MS 100    /* after a rateLimited relay */
#define PUNCH_WS_RETRY_MS 1000
#define PUNCH_WS_TRIES 4
#define PUNCH_EVQ 80                /* queued events (DATA included) */
#define PUNCH_RX_MAX 65536
#define PUNCH_OUT_MAX 8192          /* one JSON request */
#define PUNCH_ANNOUNCE_PAD 200      /* room in the 4x cap for token, ttl, nat, probe */

enum punch_reg { PUNCH_REG_ANNOUNCING, PUNCH_REG_PROBING, PUNCH_REG_DONE };

enum punch_sess {
    PUNCH_S_NONE,        /* no peer */
    PUNCH_S_WAIT,        /* connect requested, not registered yet */
    PUNCH_S_PUSHING,     /* push sent, waiting for pushReceived */
    PUNCH_S_KNOCKING,
    PUNCH_S_RELAYING,    /* relay knocks until one is acknowledged */
    PUNCH_S_CONNECTED,
    PUNCH_S_FAILED
};

struct punch_evq_item {
    struct punch_event ev;
    uint8_t data[PUNCH_MSG_MAX];
};

struct punch {
    struct punch_config cfg;
    char *key;                          /* owned copies of cfg strings */
    char host_hdr[320];                 /* "host:port" for the WebSocket upgrade */
    struct punch_addr tracker, tracker_tcp, probe;
    int has_probe;                      /* probe known (configured or announced) */
    int probe_cfg;                      /* configured by the caller: wins */
    int fd, family;
    struct punch_addr local;
    struct punch_addr cands[PUNCH_MAX_CANDIDATES];
    int ncand;
    int loop_ok;                        /* the tracker is on loopback: loopback peers are fine */
    uint8_t pk[crypto_kx_PUBLICKEYBYTES], sk[crypto_kx_SECRETKEYBYTES];
    char pk_b64[PUNCH_PK_B64 + 4];

    /* registration */
    enum punch_reg reg;
    char share_id[PUNCH_ID_LEN + 1];
    char token[PUNCH_TOKEN_LEN + 1];
    long ttl;
    char cookie[PUNCH_COOKIE_MAX + 1];
    uint64_t announce_at, probe_at, probe_until, pulse_at;
    uint64_t retry_ms;                  /* when we last answered a "retry" */
    enum punch_nat nat;

    /* WebSocket */
    struct punch_ws ws;
    int ws_wanted, ws_announced, ws_attached, ws_failures;
    uint64_t ws_retry_at;

    /* session */
    enum punch_sess st;
    char peer_id[PUNCH_ID_LEN + 1];
    int is_client;
    int have_pair;                      /* keys derived for the current nonce */
    uint8_t peer_pk[PUNCH_PK_LEN];
    struct punch_keys keys;             /* the current pairing */
    struct punch_keys alt[3];           /* earlier pairings with the same peer (re-push, reordering) */
    int nalt;
    struct punch_target targets[PUNCH_MAX_TARGETS];
    int ntargets;
    uint64_t push_at, repush_at, knock_at, knock_deadline, relay_at, relay_deadline;
    uint32_t kseq;
    unsigned krounds;                   /* knock rounds sent in this pairing */
    int kack_due;                       /* a relay knock came before our relay was attached */
    uint32_t kack_seq;                  /* ... its sequence number, answered on attach */
    struct {
        uint64_t sent;                  /* caller's ms (0 = unused) */
        uint64_t sent_us;               /* CLOCK_MONOTONIC, for a sub-ms RTT */
        int16_t target;                 /* -1 = relay */
    } ksent[256];
    int heard;                          /* any authentic packet from the peer */
    int got_ack, got_knock, peer_predicted;
    uint64_t ack_ms;
    double ack_rtt;
    struct punch_addr ack_from;
    enum punch_path ack_kind;
    enum punch_path path;
    struct punch_addr peer_addr;
    uint64_t last_rx, last_tx;
    uint64_t relay_pause;               /* no relayed stream frames before this (rateLimited) */
    int close_sent_event;
    struct punch_stream *stream;

    /* events */
    struct punch_evq_item *evq;
    unsigned evq_head, evq_len;
    uint64_t now;                       /* of the current punch_poll */

    uint8_t *rx;                        /* PUNCH_RX_MAX + 1 */
    char *out;                          /* PUNCH_OUT_MAX */
    uint8_t frame[PUNCH_PACKET_MAX];
    uint8_t pkt[PUNCH_PACKET_MAX];
};

/* ---- small helpers ---- */

uint64_t punch_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Microseconds of CLOCK_MONOTONIC: only to measure a knock's round trip
 * finer than the caller's millisecond clock (loopback and LANs are fast). */
static uint64_t punch_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

const char *punch_nat_name(enum punch_nat nat)
{
    switch (nat) {
    case PUNCH_NAT_EIM:
        return "eim";
    case PUNCH_NAT_SEQUENTIAL:
        return "sequential";
    case PUNCH_NAT_RANDOM:
        return "random";
    default:
        return "unknown";
    }
}

const char *punch_path_name(enum punch_path path)
{
    switch (path) {
    case PUNCH_PATH_DIRECT:
        return "direct";
    case PUNCH_PATH_PREDICTED:
        return "predicted";
    case PUNCH_PATH_RELAY:
        return "relay";
    default:
        return "none";
    }
}

void punch_config_init(struct punch_config *c)
{
    memset(c, 0, sizeof *c);
    c->punch_ms = 5000;
    c->pulse_ms = 2000;
    c->lost_ms = 15000;
}

static void punch_errf(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* A free event slot at the tail, or NULL when the queue is full. */
static struct punch_evq_item *punch_ev_push(struct punch *p, enum punch_event_type type)
{
    if (p->evq_len >= PUNCH_EVQ)
        return NULL;
    struct punch_evq_item *it = &p->evq[(p->evq_head + p->evq_len) % PUNCH_EVQ];
    p->evq_len++;
    memset(&it->ev, 0, sizeof it->ev);
    it->ev.type = type;
    return it;
}

static unsigned punch_ev_room(const struct punch *p) { return PUNCH_EVQ - p->evq_len; }

/* Queues an error event. Control events keep a few slots free of data so
 * that they always fit; if even those are gone the oldest is overwritten. */
static void punch_ev_error(struct punch *p, int code, int fatal, const char *fmt, ...)
{
    struct punch_evq_item *it = punch_ev_push(p, PUNCH_EV_ERROR);
    if (!it)
        return;
    it->ev.error = code;
    it->ev.fatal = fatal;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->ev.text, sizeof it->ev.text, fmt, ap);
    va_end(ap);
}

static void punch_fail(struct punch *p, int code, const char *why)
{
    if (p->st == PUNCH_S_FAILED)
        return;
    p->st = PUNCH_S_FAILED;
    punch_ev_error(p, code, 1, "%s", why);
}

/* ---- sending ---- */

static void punch_sendto(struct punch *p, const struct punch_addr *to, const void *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = punch_addr_to_sockaddr(to, &ss, p->family);
    if (!sl)
        return;
    /* UDP: a failed send is a lost datagram; every sender here retries. */
    while (sendto(p->fd, buf, len, 0, (struct sockaddr *)&ss, sl) < 0 && errno == EINTR)
        ;
}

static void punch_to_tracker(struct punch *p, int len)
{
    if (len > 0)
        punch_sendto(p, &p->tracker, p->out, (size_t)len);
}

static void punch_ws_want(struct punch *p)
{
    p->ws_wanted = 1;
}

static void punch_send_announce(struct punch *p, int over_ws)
{
    struct punch_announce_args a;
    memset(&a, 0, sizeof a);
    a.key = over_ws ? NULL : p->key;
    a.pubkey_b64 = p->pk_b64;
    a.cand = p->cands;
    a.ncand = p->ncand;
    if (p->reg == PUNCH_REG_DONE || (over_ws && !p->cfg.ws_only)) {
        /* Attach or re-claim: the same identity. */
        a.share_id = p->share_id;
        a.token = p->token;
    }
    if (!over_ws) {
        a.cookie = p->cookie[0] ? p->cookie : NULL;
        a.pad_to = PUNCH_ANNOUNCE_PAD;
    }
    int n = punch_msg_announce(p->out, PUNCH_OUT_MAX, &a);
    if (n <= 0)
        return;
    if (over_ws)
        punch_ws_send(&p->ws, p->out, (size_t)n);
    else
        punch_to_tracker(p, n);
}

static void punch_send_push(struct punch *p)
{
    if (p->cfg.ws_only) {
        int n = punch_msg_push(p->out, PUNCH_OUT_MAX, p->peer_id, NULL, 0);
        if (n > 0)
            punch_ws_send(&p->ws, p->out, (size_t)n);
        return;
    }
    punch_to_tracker(p, punch_msg_push(p->out, PUNCH_OUT_MAX, p->peer_id, p->key, PUNCH_PUSH_PAD));
}

/* Seals a frame for the peer; returns the packet length or -1. */
static ssize_t punch_seal(struct punch *p, const uint8_t *frame, size_t n)
{
    return punch_wire_seal(&p->keys, frame, n, p->pkt, sizeof p->pkt);
}

/* Sends the sealed packet in p->pkt through the tracker's relay (WebSocket). */
static void punch_relay_pkt(struct punch *p, size_t len)
{
    char b64[PUNCH_RELAY_MAX + 1];
    if (!p->ws_attached || sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL) > sizeof b64)
        return;
    sodium_bin2base64(b64, sizeof b64, p->pkt, len, sodium_base64_VARIANT_ORIGINAL);
    int n = punch_msg_relay(p->out, PUNCH_OUT_MAX, p->peer_id, b64, strlen(b64), NULL);
    if (n > 0)
        punch_ws_send(&p->ws, p->out, (size_t)n);
}

/* Seals a frame and sends it on the session's path (direct or relay). */
static void punch_send_frame(struct punch *p, const uint8_t *frame, size_t n, int relay,
                             const struct punch_addr *to)
{
    ssize_t len = punch_seal(p, frame, n);
    if (len < 0)
        return;
    if (relay)
        punch_relay_pkt(p, (size_t)len);
    else
        punch_sendto(p, to, p->pkt, (size_t)len);
    p->last_tx = p->now;
}

static void punch_send_knock(struct punch *p, uint8_t type, uint8_t via, uint32_t kseq, int relay,
                             const struct punch_addr *to)
{
    uint8_t f[6];
    f[0] = type;
    f[1] = via;
    punch_put32(f + 2, kseq);
    punch_send_frame(p, f, sizeof f, relay, to);
}

/* ---- events out ---- */

static void punch_emit_registered(struct punch *p)
{
    struct punch_evq_item *it = punch_ev_push(p, PUNCH_EV_NAT);
    if (it)
        it->ev.nat = p->nat;
    it = punch_ev_push(p, PUNCH_EV_REGISTERED);
    if (it) {
        memcpy(it->ev.share_id, p->share_id, sizeof it->ev.share_id);
        it->ev.nat = p->nat;
    }
    if (p->st == PUNCH_S_WAIT) {
        p->st = PUNCH_S_PUSHING;
        p->push_at = p->now;
    }
}

static void punch_connected(struct punch *p, enum punch_path path, double rtt, const struct punch_addr *peer)
{
    p->st = PUNCH_S_CONNECTED;
    p->path = path;
    if (peer)
        p->peer_addr = *peer;
    p->last_rx = p->now;
    if (rtt > 0 && p->stream->srtt_ms == 0) {
        /* The knock's round trip is the stream's first RTT sample. */
        double rto = 2 * rtt + 50;
        p->stream->srtt_ms = rtt;
        p->stream->rto_ms = rto < PUNCH_RTO_MIN ? PUNCH_RTO_MIN : rto > PUNCH_RTO_MAX ? PUNCH_RTO_MAX
                                                                                       : (uint32_t)rto;
    }
    struct punch_evq_item *it = punch_ev_push(p, PUNCH_EV_CONNECTED);
    if (!it)
        return;
    it->ev.path = path;
    it->ev.rtt_ms = rtt;
    memcpy(it->ev.share_id, p->peer_id, sizeof it->ev.share_id);
    if (path == PUNCH_PATH_RELAY)
        snprintf(it->ev.peer_addr, sizeof it->ev.peer_addr, "relay");
    else
        punch_addr_format(&p->peer_addr, it->ev.peer_addr, sizeof it->ev.peer_addr);
}

/* Stream delivery into the event queue: refuses when it is nearly full
 * (flow control: the sender retransmits), keeping slots for control events. */
static int punch_deliver(void *ctx, const uint8_t *data, size_t len, int fin)
{
    struct punch *p = ctx;
    if (punch_ev_room(p) <= 4)
        return -1;
    if (fin) {
        punch_ev_push(p, PUNCH_EV_PEER_CLOSED);
        return 0;
    }
    struct punch_evq_item *it = punch_ev_push(p, PUNCH_EV_DATA);
    memcpy(it->data, data, len);
    it->ev.data = it->data;
    it->ev.len = len;
    return 0;
}

/* ---- the session ---- */

static int punch_relay_allowed(const struct punch *p) { return !p->cfg.no_relay; }

static void punch_enter_relay(struct punch *p)
{
    if (p->st == PUNCH_S_RELAYING || p->st == PUNCH_S_CONNECTED || p->st == PUNCH_S_FAILED)
        return;
    if (!punch_relay_allowed(p)) {
        punch_fail(p, PUNCH_E_NOPATH, "no direct path and the relay is disabled");
        return;
    }
    p->st = PUNCH_S_RELAYING;
    p->relay_at = p->now;
    p->relay_deadline = p->now + PUNCH_RELAY_WAIT_MS;
    punch_ws_want(p);
}

/* Starts (or restarts, for a fresh nonce) the pairing described by m. */
static void punch_pair_start(struct punch *p, const struct punch_msg *m, int is_client)
{
    if (!m->has_nonce) {
        punch_fail(p, PUNCH_E_TRACKER, "the tracker sent no pairing nonce (punchd too old?)");
        return;
    }
    if (p->have_pair) {
        /* The same pairing again (income on both transports), or an older one late. */
        if (memcmp(m->nonce, p->keys.nonce, PUNCH_NONCE_LEN) == 0)
            return;
        for (int i = 0; i < p->nalt; i++)
            if (memcmp(m->nonce, p->alt[i].nonce, PUNCH_NONCE_LEN) == 0)
                return;
    }
    if (!m->has_pubkey) {
        punch_fail(p, PUNCH_E_PEER, "the peer sent no public key (not a libpunch peer?)");
        return;
    }
    struct punch_keys k;
    if (punch_wire_keys(&k, is_client, p->pk, p->sk, m->pubkey, m->nonce) != 0) {
        punch_fail(p, PUNCH_E_PEER, "the peer's public key is unusable");
        return;
    }
    if (p->have_pair) {
        /* Keep the previous pairing: the peer may still be on it (a reordered
         * reply); whichever the peer's first authentic packet uses wins. */
        memmove(&p->alt[1], &p->alt[0], sizeof p->alt[0] * 2);
        p->alt[0] = p->keys;
        if (p->nalt < 3)
            p->nalt++;
    }
    p->keys = k;
    sodium_memzero(&k, sizeof k);
    p->have_pair = 1;
    p->is_client = is_client;
    memcpy(p->peer_pk, m->pubkey, sizeof p->peer_pk);
    memcpy(p->peer_id, m->peer_id, sizeof p->peer_id);
    p->ntargets = punch_targets_build(p->targets, PUNCH_MAX_TARGETS, p->family, p->loop_ok,
                                      m->has_peeraddr ? &m->peeraddr : NULL, m->cand, m->ncand,
                                      m->pred, m->npred);
    p->got_ack = p->got_knock = p->peer_predicted = p->heard = 0;
    int restart = p->st == PUNCH_S_KNOCKING || p->st == PUNCH_S_RELAYING;
    if (!restart) {
        /* A random NAT (ours or the peer's) or a peer without UDP only lets
         * a knock through an open NAT, which answers the first rounds: do not
         * make the relay wait for the full deadline then. */
        uint32_t ms = p->cfg.punch_ms;
        int hopeless = p->nat == PUNCH_NAT_RANDOM || (m->has_nat && m->nat == PUNCH_NAT_RANDOM) ||
                       p->cfg.ws_only || m->peer_udp == 0;
        if (hopeless && ms > PUNCH_HOPELESS_MS)
            ms = PUNCH_HOPELESS_MS;
        p->knock_deadline = p->now + ms;
        p->krounds = 0;
        p->repush_at = is_client ? p->now + PUNCH_REPUSH_MS : 0;
    }
    if (p->cfg.relay_only) {
        if (p->st == PUNCH_S_RELAYING)
            return;
        p->st = PUNCH_S_PUSHING; /* any non-final state: punch_enter_relay moves on */
        punch_enter_relay(p);
        return;
    }
    if (p->st != PUNCH_S_RELAYING)
        p->st = PUNCH_S_KNOCKING;
    p->knock_at = p->now;
}

static void punch_knock_round(struct punch *p)
{
    for (int i = 0; i < p->ntargets; i++) {
        uint32_t k = p->kseq++;
        p->ksent[k & 255].sent = p->now;
        p->ksent[k & 255].sent_us = punch_now_us();
        p->ksent[k & 255].target = (int16_t)i;
        punch_send_knock(p, PUNCH_F_KNOCK, (uint8_t)p->targets[i].kind, k, 0, &p->targets[i].addr);
    }
}

/* An authentic knock came from src: if we did not know that address (the
 * peer's NAT mapping towards us, e.g. when it registered over WebSocket
 * only), knock it too, as ICE does with peer-reflexive candidates. */
static void punch_learn_target(struct punch *p, const struct punch_addr *src)
{
    for (int i = 0; i < p->ntargets; i++)
        if (punch_addr_equal(&p->targets[i].addr, src))
            return;
    if (p->ntargets >= PUNCH_MAX_TARGETS)
        return;
    p->targets[p->ntargets].addr = *src;
    p->targets[p->ntargets].kind = PUNCH_PATH_DIRECT;
    p->ntargets++;
    if (p->st == PUNCH_S_KNOCKING)
        p->knock_at = p->now; /* answer it at once */
}

/* Knocking has an answer: connected once the peer has been heard knocking
 * too (so both sides agree on "predicted"), or after a short grace. */
static void punch_check_direct(struct punch *p)
{
    if (!p->got_ack || (p->st != PUNCH_S_KNOCKING && p->st != PUNCH_S_RELAYING))
        return;
    if (!p->got_knock && p->now < p->ack_ms + PUNCH_ACK_GRACE_MS)
        return;
    enum punch_path path = (p->ack_kind == PUNCH_PATH_PREDICTED || p->peer_predicted) ? PUNCH_PATH_PREDICTED
                                                                                     : PUNCH_PATH_DIRECT;
    punch_connected(p, path, p->ack_rtt, &p->ack_from);
}

/* An opened frame from the peer; relay = it came through the tracker. */
static void punch_on_frame(struct punch *p, const uint8_t *f, size_t n, int relay, const struct punch_addr *src)
{
    p->heard = 1;
    p->last_rx = p->now;
    if (n < 1)
        return;
    if ((f[0] == PUNCH_F_KNOCK || f[0] == PUNCH_F_KACK) && n == 6) {
        uint8_t via = f[1];
        uint32_t kseq = punch_get32(f + 2);
        if (f[0] == PUNCH_F_KNOCK) {
            if (relay) {
                /* The peer gave up punching (or was told to): meet it there. */
                if (p->st == PUNCH_S_KNOCKING)
                    punch_enter_relay(p);
                punch_ws_want(p);
                if (!p->ws_attached) {
                    p->kack_due = 1;
                    p->kack_seq = kseq;
                }
            } else {
                p->got_knock = 1;
                if (via == PUNCH_PATH_PREDICTED)
                    p->peer_predicted = 1;
                punch_learn_target(p, src);
            }
            punch_send_knock(p, PUNCH_F_KACK, via, kseq, relay, src);
            punch_check_direct(p);
            return;
        }
        /* KACK: which of our knocks it answers gives the kind and the RTT. */
        if (p->st != PUNCH_S_KNOCKING && p->st != PUNCH_S_RELAYING)
            return;
        const uint64_t sent = p->ksent[kseq & 255].sent;
        int ti = p->ksent[kseq & 255].target;
        if (sent == 0 || kseq >= p->kseq || p->kseq - kseq > 255)
            return;
        uint64_t us = punch_now_us(), sent_us = p->ksent[kseq & 255].sent_us;
        double rtt = us >= sent_us ? (double)(us - sent_us) / 1000.0 : (double)(p->now - sent);
        if (relay) {
            if (ti == -1 && p->st == PUNCH_S_RELAYING)
                punch_connected(p, PUNCH_PATH_RELAY, rtt, NULL);
            return;
        }
        if (ti < 0 || ti >= p->ntargets || p->st != PUNCH_S_KNOCKING)
            return;
        if (!p->got_ack) {
            p->got_ack = 1;
            p->ack_ms = p->now;
            p->ack_rtt = rtt;
            p->ack_from = *src;
            p->ack_kind = p->targets[ti].kind;
        }
        punch_check_direct(p);
        return;
    }
    if (p->st != PUNCH_S_CONNECTED)
        return; /* stream frames before we chose a path: the peer retransmits */
    if (!relay && p->path != PUNCH_PATH_RELAY && src)
        p->peer_addr = *src; /* follow the peer if its NAT rebound (authentic, not a replay) */
    punch_stream_input(p->stream, f, n, p->now, punch_deliver, p);
}

/* A packet that may be the peer's (direct, or decoded from a relay). */
static void punch_on_packet(struct punch *p, const uint8_t *pkt, size_t len, int relay,
                            const struct punch_addr *src)
{
    if (!p->have_pair || p->st == PUNCH_S_FAILED)
        return;
    if (!relay && p->cfg.relay_only)
        return; /* told to skip punching: direct packets are not answered */
    ssize_t n = punch_wire_open(&p->keys, pkt, len, p->frame, sizeof p->frame);
    for (int i = 0; n == PUNCH_WIRE_NOT_OURS && i < p->nalt && p->st != PUNCH_S_CONNECTED; i++) {
        n = punch_wire_open(&p->alt[i], pkt, len, p->frame, sizeof p->frame);
        if (n >= 0) {
            struct punch_keys t = p->keys; /* the peer is on this pairing: switch */
            p->keys = p->alt[i];
            p->alt[i] = t;
        }
    }
    if (n < 0)
        return; /* a stranger, another pairing, a forgery or a replay: ignored */
    punch_on_frame(p, p->frame, (size_t)n, relay, src);
}

/* ---- tracker messages ---- */

static void punch_registered_reply(struct punch *p, const struct punch_msg *m, int from_ws)
{
    if (!m->share_id[0])
        return;
    if (from_ws) {
        p->ws_attached = 1;
        p->ws_failures = 0;
        if (p->st == PUNCH_S_RELAYING)
            p->relay_at = p->now; /* knock through the relay right away */
        if (p->kack_due && p->have_pair) {
            p->kack_due = 0; /* and answer the peer's relay knock we could not answer yet */
            punch_send_knock(p, PUNCH_F_KACK, PUNCH_PATH_RELAY, p->kack_seq, 1, NULL);
        }
    }
    if (p->reg != PUNCH_REG_ANNOUNCING) {
        if (m->token[0])
            memcpy(p->token, m->token, sizeof p->token);
        memcpy(p->share_id, m->share_id, sizeof p->share_id);
        return;
    }
    if (from_ws != (p->cfg.ws_only != 0))
        return;
    memcpy(p->share_id, m->share_id, sizeof p->share_id);
    memcpy(p->token, m->token, sizeof p->token);
    if (m->ttl > 0)
        p->ttl = m->ttl;
    if (!p->probe_cfg && m->has_probe) {
        p->probe = m->probe;
        p->has_probe = 1;
    }
    p->pulse_at = p->now + p->cfg.pulse_ms;
    if (!from_ws && p->has_probe && p->token[0]) {
        p->reg = PUNCH_REG_PROBING;
        p->probe_at = p->now;
        p->probe_until = p->now + PUNCH_PROBE_WAIT_MS;
        return;
    }
    p->nat = m->has_nat ? m->nat : PUNCH_NAT_UNKNOWN;
    p->reg = PUNCH_REG_DONE;
    punch_emit_registered(p);
}

static void punch_on_error(struct punch *p, const struct punch_msg *m, int from_ws)
{
    if (strcmp(m->code, "retry") == 0) {
        /* Repeat the announce with the cookie (also a re-claim after expiry);
         * at most every PUNCH_RETRY_GAP_MS so a confused tracker cannot make
         * us loop at network speed. */
        if (!from_ws && m->cookie[0])
            memcpy(p->cookie, m->cookie, sizeof p->cookie); /* the timer resends it anyway */
        if (!from_ws && m->cookie[0] && (!p->retry_ms || p->now >= p->retry_ms + PUNCH_RETRY_GAP_MS)) {
            p->retry_ms = p->now ? p->now : 1;
            punch_send_announce(p, 0);
            p->announce_at = p->now + PUNCH_ANNOUNCE_MS;
        }
        return;
    }
    if (strcmp(m->code, "notAnnounced") == 0) {
        if (p->reg == PUNCH_REG_DONE && !from_ws)
            punch_send_announce(p, 0); /* expired: re-claim the same id */
        return;
    }
    if (strcmp(m->code, "unknownShareId") == 0) {
        if (p->st == PUNCH_S_PUSHING) {
            punch_fail(p, PUNCH_E_PEER, "unknownShareId: no live peer has that shareId");
        } else if (p->st == PUNCH_S_RELAYING || (p->st == PUNCH_S_CONNECTED && p->path == PUNCH_PATH_RELAY)) {
            punch_fail(p, PUNCH_E_LOST, "the peer left the tracker");
        }
        return;
    }
    if (strcmp(m->code, "unauthorized") == 0 && p->reg == PUNCH_REG_PROBING) {
        p->nat = PUNCH_NAT_UNKNOWN;
        p->reg = PUNCH_REG_DONE;
        punch_emit_registered(p);
        return;
    }
    if (strcmp(m->code, "rateLimited") == 0) {
        /* A relayed frame was refused: the stream retransmits it; give the
         * tracker's bucket a moment instead of hammering it. */
        p->relay_pause = p->now + PUNCH_RELAY_PAUSE_MS;
        return;
    }
    if (strcmp(m->code, "full") == 0)
        return; /* the announce is retried */
    if (strcmp(m->code, "badRequest") == 0 && from_ws && !p->cfg.ws_only && !p->ws_attached) {
        punch_ws_free(&p->ws);
        p->ws_wanted = 0;
        punch_ev_error(p, PUNCH_E_TRACKER, 0, "tracker refused the relay attach: %s", m->code);
        return;
    }
    punch_ev_error(p, PUNCH_E_TRACKER, 0, "tracker error: %s", m->code[0] ? m->code : "(no code)");
}

static void punch_on_tracker_msg(struct punch *p, const char *buf, size_t len, int from_ws,
                                 int from_probe)
{
    struct punch_msg *m = malloc(sizeof *m);
    if (!m)
        return;
    if (punch_msg_parse(buf, len, m) != 0)
        goto out;
    switch (m->action) {
    case PUNCH_MSG_ANNOUNCED:
        if (!from_probe)
            punch_registered_reply(p, m, from_ws);
        break;
    case PUNCH_MSG_PROBED:
        if (p->reg == PUNCH_REG_PROBING) {
            p->nat = m->has_nat ? m->nat : PUNCH_NAT_UNKNOWN;
            p->reg = PUNCH_REG_DONE;
            punch_emit_registered(p);
        }
        break;
    case PUNCH_MSG_PULSED:
        if (m->has_nat && p->reg == PUNCH_REG_DONE)
            p->nat = m->nat;
        break;
    case PUNCH_MSG_PUSHED:
        if ((p->st == PUNCH_S_PUSHING || p->st == PUNCH_S_KNOCKING || p->st == PUNCH_S_RELAYING) &&
            p->is_client && strcmp(m->peer_id, p->peer_id) == 0)
            punch_pair_start(p, m, 1);
        break;
    case PUNCH_MSG_INCOME: {
        if (!m->peer_id[0])
            break;
        int ours = p->peer_id[0] && strcmp(m->peer_id, p->peer_id) == 0;
        if (p->st == PUNCH_S_NONE && p->cfg.accept_income) {
            struct punch_evq_item *it = punch_ev_push(p, PUNCH_EV_INCOME);
            if (it)
                memcpy(it->ev.share_id, m->peer_id, sizeof it->ev.share_id);
            p->st = PUNCH_S_PUSHING; /* any pre-pairing state */
            p->is_client = 0;
            punch_pair_start(p, m, 0);
        } else if (ours && !p->is_client && (p->st == PUNCH_S_KNOCKING || p->st == PUNCH_S_RELAYING)) {
            punch_pair_start(p, m, 0); /* the peer pushed again: its newest nonce */
        } else if (p->st == PUNCH_S_NONE) {
            struct punch_evq_item *it = punch_ev_push(p, PUNCH_EV_INCOME);
            if (it)
                memcpy(it->ev.share_id, m->peer_id, sizeof it->ev.share_id);
        }
        break;
    }
    case PUNCH_MSG_RELAYED: {
        if (!m->relay_len || !p->peer_id[0] || strcmp(m->peer_id, p->peer_id) != 0)
            break;
        uint8_t pkt[PUNCH_PACKET_MAX];
        size_t plen = 0;
        if (sodium_base642bin(pkt, sizeof pkt, m->relay, m->relay_len, NULL, &plen, NULL,
                              sodium_base64_VARIANT_ORIGINAL) == 0)
            punch_on_packet(p, pkt, plen, 1, NULL);
        break;
    }
    case PUNCH_MSG_EXPIRED:
        if (p->reg == PUNCH_REG_DONE && !from_ws)
            punch_send_announce(p, 0);
        break;
    case PUNCH_MSG_ERROR:
        punch_on_error(p, m, from_ws);
        break;
    default:
        break;
    }
out:
    free(m);
}

static void punch_on_ws_msg(void *user, const char *msg, size_t len)
{
    punch_on_tracker_msg(user, msg, len, 1, 0);
}

/* ---- I/O ---- */

static int punch_read_udp(struct punch *p)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        ssize_t n = recvfrom(p->fd, p->rx, PUNCH_RX_MAX, MSG_TRUNC, (struct sockaddr *)&ss, &sl);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH)
                continue; /* an ICMP error from a knocked address */
            return PUNCH_E_SYS;
        }
        if (n > PUNCH_RX_MAX)
            continue; /* truncated: not ours */
        struct punch_addr src;
        if (punch_addr_from_sockaddr(&src, (struct sockaddr *)&ss, sl) != 0)
            continue;
        int from_tracker = punch_addr_equal(&src, &p->tracker);
        int from_probe = p->has_probe && punch_addr_equal(&src, &p->probe);
        if ((from_tracker || from_probe) && n > 0 && p->rx[0] == '{')
            punch_on_tracker_msg(p, (const char *)p->rx, (size_t)n, 0, from_probe && !from_tracker);
        else if (n > 0 && p->rx[0] == PUNCH_WIRE_MAGIC)
            punch_on_packet(p, p->rx, (size_t)n, 0, &src);
    }
    return 0;
}

/* The WebSocket failed or closed: retry later while it is needed (a new
 * one attaches, or in WebSocket-only mode re-claims, the same identity). */
static void punch_ws_lost(struct punch *p)
{
    p->ws_attached = 0;
    p->ws_failures++;
    p->ws_retry_at = p->now + PUNCH_WS_RETRY_MS;
    int vital = p->cfg.ws_only || p->st == PUNCH_S_RELAYING ||
                (p->st == PUNCH_S_CONNECTED && p->path == PUNCH_PATH_RELAY);
    if (!vital) {
        p->ws_wanted = 0;
        p->ws_failures = 0;
    } else if (p->ws_failures >= PUNCH_WS_TRIES) {
        p->ws_wanted = 0;
        char why[sizeof p->ws.error + 32];
        snprintf(why, sizeof why, "WebSocket to the tracker: %s", p->ws.error[0] ? p->ws.error : "failed");
        if (p->cfg.ws_only && p->reg != PUNCH_REG_DONE)
            punch_ev_error(p, PUNCH_E_WS, 1, "%s", why);
        else
            punch_fail(p, PUNCH_E_WS, why);
    }
}

static void punch_ws_step(struct punch *p)
{
    if (!p->ws_wanted)
        return;
    if (p->ws.state == PUNCH_WS_IDLE || (p->ws.state == PUNCH_WS_FAILED && p->now >= p->ws_retry_at)) {
        if (!p->cfg.ws_only && !p->token[0])
            return; /* attaching needs our token: after registration */
        p->ws_announced = 0;
        p->ws_attached = 0;
        if (punch_ws_start(&p->ws, &p->tracker_tcp, p->host_hdr, p->key, punch_on_ws_msg, p) != 0) {
            punch_ws_lost(p);
            return;
        }
    }
    if (p->ws.state == PUNCH_WS_FAILED || p->ws.state == PUNCH_WS_IDLE)
        return;
    if (!p->ws_announced) {
        /* Queued now, sent by wslay right after the upgrade. */
        punch_send_announce(p, 1);
        p->ws_announced = 1;
    }
    if (punch_ws_io(&p->ws) != 0)
        punch_ws_lost(p);
}

/* ---- timers ---- */

/* Keep-alive interval on the peer path: the pulse interval, but at least
 * three keep-alives within lost_ms so a short lost_ms does not lose a quiet
 * but healthy peer. */
static uint64_t punch_keepalive_ms(const struct punch *p)
{
    uint64_t ka = p->cfg.pulse_ms, third = p->cfg.lost_ms / 3;
    return third && third < ka ? third : ka;
}

static void punch_timers(struct punch *p)
{
    uint64_t now = p->now;
    if (!p->cfg.ws_only) {
        if (p->reg == PUNCH_REG_ANNOUNCING && now >= p->announce_at) {
            punch_send_announce(p, 0);
            p->announce_at = now + PUNCH_ANNOUNCE_MS;
        }
        if (p->reg == PUNCH_REG_PROBING) {
            if (now >= p->probe_until) {
                p->nat = PUNCH_NAT_UNKNOWN;
                p->reg = PUNCH_REG_DONE;
                punch_emit_registered(p);
            } else if (now >= p->probe_at) {
                int n = punch_msg_probe(p->out, PUNCH_OUT_MAX, p->share_id, p->token, p->key);
                if (n > 0)
                    punch_sendto(p, &p->probe, p->out, (size_t)n);
                p->probe_at = now + PUNCH_PROBE_MS;
            }
        }
        if (p->reg == PUNCH_REG_DONE && now >= p->pulse_at) {
            punch_to_tracker(p, punch_msg_pulse(p->out, PUNCH_OUT_MAX, p->key));
            p->pulse_at = now + p->cfg.pulse_ms;
        }
    }
    if (p->st == PUNCH_S_PUSHING && p->reg == PUNCH_REG_DONE && now >= p->push_at) {
        if (!p->cfg.ws_only || p->ws.state == PUNCH_WS_OPEN)
            punch_send_push(p);
        p->push_at = now + PUNCH_PUSH_MS;
    }
    if (p->st == PUNCH_S_KNOCKING) {
        if (p->repush_at && now >= p->repush_at) {
            /* Silence: the peer may never have got its income. */
            if (!p->heard)
                punch_send_push(p);
            p->repush_at = 0;
        }
        if (now >= p->knock_deadline) {
            punch_enter_relay(p);
        } else if (now >= p->knock_at) {
            punch_knock_round(p);
            p->krounds++;
            p->knock_at = now + (p->krounds < PUNCH_KNOCK_FAST_ROUNDS ? PUNCH_KNOCK_FAST_MS : PUNCH_KNOCK_MS);
        }
    }
    punch_check_direct(p);
    if (p->st == PUNCH_S_RELAYING) {
        if (now >= p->relay_deadline) {
            punch_fail(p, PUNCH_E_NOPATH, "no path: the peer answered neither knocks nor the relay");
        } else if (now >= p->relay_at && p->ws_attached) {
            uint32_t k = p->kseq++;
            p->ksent[k & 255].sent = now;
            p->ksent[k & 255].sent_us = punch_now_us();
            p->ksent[k & 255].target = -1;
            punch_send_knock(p, PUNCH_F_KNOCK, PUNCH_PATH_RELAY, k, 1, NULL);
            p->relay_at = now + PUNCH_RELAY_KNOCK_MS;
        }
    }
    if (p->st == PUNCH_S_CONNECTED) {
        uint64_t stalled = 0;
        if ((punch_stream_stalled(p->stream, now, &stalled) && stalled >= p->cfg.lost_ms) ||
            now >= p->last_rx + p->cfg.lost_ms) {
            punch_fail(p, PUNCH_E_LOST, "the peer stopped answering");
            return;
        }
        if (now >= p->last_tx + punch_keepalive_ms(p))
            p->stream->ack_due = 1; /* keep-alive: keeps the NAT mappings open */
        int relay = p->path == PUNCH_PATH_RELAY;
        size_t n;
        uint8_t frame[PUNCH_FRAME_MAX];
        if (relay && now < p->relay_pause)
            return;
        while ((n = punch_stream_next(p->stream, now, frame, sizeof frame)) > 0)
            punch_send_frame(p, frame, n, relay, &p->peer_addr);
    }
}

/* ---- public API ---- */

int punch_new(const struct punch_config *cfg, uint64_t now_ms, struct punch **out, char *err, size_t errcap)
{
    *out = NULL;
    if (!cfg || !cfg->tracker) {
        punch_errf(err, errcap, "no tracker given");
        return PUNCH_E_INVAL;
    }
    if (sodium_init() < 0) {
        punch_errf(err, errcap, "libsodium failed to initialise");
        return PUNCH_E_SYS;
    }
    struct punch *p = calloc(1, sizeof *p);
    if (!p) {
        punch_errf(err, errcap, "out of memory");
        return PUNCH_E_SYS;
    }
    p->fd = -1;
    p->ws.fd = -1;
    p->cfg = *cfg;
    if (!p->cfg.punch_ms)
        p->cfg.punch_ms = 5000;
    if (!p->cfg.pulse_ms)
        p->cfg.pulse_ms = 2000;
    if (!p->cfg.lost_ms)
        p->cfg.lost_ms = 15000;
    p->cfg.tracker = p->cfg.probe = p->cfg.key = p->cfg.bind_ip = NULL; /* not kept */
    p->now = now_ms;
    int rc = PUNCH_E_SYS;
    p->evq = calloc(PUNCH_EVQ, sizeof *p->evq);
    p->stream = malloc(sizeof *p->stream);
    p->rx = malloc(PUNCH_RX_MAX + 1);
    p->out = malloc(PUNCH_OUT_MAX);
    if (cfg->key && !(p->key = strdup(cfg->key)))
        goto fail_mem;
    if (!p->evq || !p->stream || !p->rx || !p->out)
        goto fail_mem;
    punch_stream_init(p->stream);

    char host[300];
    rc = punch_addr_resolve(&p->tracker, cfg->tracker, host, sizeof host);
    if (rc != 0) {
        punch_errf(err, errcap, rc == PUNCH_E_INVAL ? "tracker must be HOST:PORT" : "cannot resolve tracker %s",
                   cfg->tracker);
        goto fail;
    }
    p->tracker_tcp = p->tracker;
    if (cfg->ws_port)
        p->tracker_tcp.port = cfg->ws_port;
    snprintf(p->host_hdr, sizeof p->host_hdr, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
             (unsigned)p->tracker_tcp.port);
    static const uint8_t v6loop[16] = {[15] = 1};
    p->loop_ok = (p->tracker.family == AF_INET && p->tracker.ip[0] == 127) ||
                 (p->tracker.family == AF_INET6 && memcmp(p->tracker.ip, v6loop, 16) == 0);
    if (cfg->probe) {
        char ph[300];
        rc = punch_addr_resolve(&p->probe, cfg->probe, ph, sizeof ph);
        if (rc != 0) {
            punch_errf(err, errcap, rc == PUNCH_E_INVAL ? "probe must be HOST:PORT" : "cannot resolve probe %s",
                       cfg->probe);
            goto fail;
        }
        if (p->probe.family != p->tracker.family) {
            rc = PUNCH_E_INVAL;
            punch_errf(err, errcap, "probe and tracker must be of the same address family");
            goto fail;
        }
        p->has_probe = p->probe_cfg = 1;
    }

    /* The UDP socket: the tracker's family, bound as asked. */
    p->family = p->tracker.family;
    struct punch_addr bind_addr;
    memset(&bind_addr, 0, sizeof bind_addr);
    bind_addr.family = (uint8_t)p->family;
    if (cfg->bind_ip && punch_addr_parse_ip(&bind_addr, cfg->bind_ip, 0) != 0) {
        rc = PUNCH_E_INVAL;
        punch_errf(err, errcap, "bind address must be an IP literal: %s", cfg->bind_ip);
        goto fail;
    }
    if (bind_addr.family != p->family) {
        rc = PUNCH_E_INVAL;
        punch_errf(err, errcap, "bind address and tracker must be of the same address family");
        goto fail;
    }
    bind_addr.port = cfg->bind_port;
    p->fd = socket(p->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t sl = punch_addr_to_sockaddr(&bind_addr, &ss, p->family);
    if (p->fd < 0 || bind(p->fd, (struct sockaddr *)&ss, sl) != 0) {
        rc = PUNCH_E_SYS;
        punch_errf(err, errcap, "cannot open the UDP socket: %s", strerror(errno));
        goto fail;
    }
    sl = sizeof ss;
    if (getsockname(p->fd, (struct sockaddr *)&ss, &sl) != 0 ||
        punch_addr_from_sockaddr(&p->local, (struct sockaddr *)&ss, sl) != 0) {
        rc = PUNCH_E_SYS;
        punch_errf(err, errcap, "getsockname: %s", strerror(errno));
        goto fail;
    }
    p->ncand = punch_addr_candidates(&p->local, p->cands, PUNCH_MAX_CANDIDATES);

    /* A fresh X25519 key per handle. */
    crypto_kx_keypair(p->pk, p->sk);
    sodium_bin2base64(p->pk_b64, sizeof p->pk_b64, p->pk, sizeof p->pk, sodium_base64_VARIANT_ORIGINAL);

    p->reg = PUNCH_REG_ANNOUNCING;
    p->announce_at = now_ms;
    if (cfg->ws_only)
        p->ws_wanted = 1;
    *out = p;
    return 0;

fail_mem:
    rc = PUNCH_E_SYS;
    punch_errf(err, errcap, "out of memory");
fail:
    punch_free(p);
    return rc;
}

void punch_free(struct punch *p)
{
    if (!p)
        return;
    punch_ws_free(&p->ws);
    if (p->fd >= 0)
        close(p->fd);
    sodium_memzero(p->sk, sizeof p->sk);
    sodium_memzero(&p->keys, sizeof p->keys);
    sodium_memzero(p->alt, sizeof p->alt);
    free(p->key);
    free(p->evq);
    free(p->stream);
    free(p->rx);
    free(p->out);
    free(p);
}

int punch_connect(struct punch *p, const char *share_id)
{
    if (!share_id || strlen(share_id) != PUNCH_ID_LEN)
        return PUNCH_E_INVAL;
    for (size_t i = 0; i < PUNCH_ID_LEN; i++) {
        char c = share_id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return PUNCH_E_INVAL;
    }
    if (p->st != PUNCH_S_NONE)
        return PUNCH_E_STATE;
    memcpy(p->peer_id, share_id, PUNCH_ID_LEN + 1);
    p->is_client = 1;
    if (p->reg == PUNCH_REG_DONE) {
        p->st = PUNCH_S_PUSHING;
        p->push_at = p->now;
    } else {
        p->st = PUNCH_S_WAIT;
    }
    return 0;
}

int punch_poll(struct punch *p, uint64_t now_ms)
{
    if (now_ms > p->now)
        p->now = now_ms;
    if (p->st == PUNCH_S_CONNECTED)
        punch_stream_redeliver(p->stream, punch_deliver, p);
    int rc = punch_read_udp(p);
    punch_ws_step(p);
    punch_timers(p);
    punch_ws_step(p); /* flush what the timers queued */
    return rc;
}

int punch_fds(const struct punch *p, struct punch_pollfd *fds, int max)
{
    int n = 0;
    if (n < max && p->fd >= 0) {
        fds[n].fd = p->fd;
        fds[n].events = POLLIN;
        n++;
    }
    short ev = punch_ws_events(&p->ws);
    if (n < max && ev && p->ws.fd >= 0) {
        fds[n].fd = p->ws.fd;
        fds[n].events = ev;
        n++;
    }
    return n;
}

static void punch_min(uint64_t *t, uint64_t v)
{
    if (v < *t)
        *t = v;
}

int punch_timeout_ms(const struct punch *p, uint64_t now_ms)
{
    if (p->evq_len)
        return 0;
    uint64_t t = now_ms + 1000;
    if (!p->cfg.ws_only) {
        if (p->reg == PUNCH_REG_ANNOUNCING)
            punch_min(&t, p->announce_at);
        if (p->reg == PUNCH_REG_PROBING) {
            punch_min(&t, p->probe_at);
            punch_min(&t, p->probe_until);
        }
        if (p->reg == PUNCH_REG_DONE)
            punch_min(&t, p->pulse_at);
    }
    if (p->ws_wanted && p->ws.state == PUNCH_WS_FAILED)
        punch_min(&t, p->ws_retry_at);
    switch (p->st) {
    case PUNCH_S_PUSHING:
        punch_min(&t, p->push_at);
        break;
    case PUNCH_S_KNOCKING:
        punch_min(&t, p->knock_at);
        punch_min(&t, p->knock_deadline);
        if (p->repush_at)
            punch_min(&t, p->repush_at);
        if (p->got_ack)
            punch_min(&t, p->ack_ms + PUNCH_ACK_GRACE_MS);
        break;
    case PUNCH_S_RELAYING:
        punch_min(&t, p->relay_at);
        punch_min(&t, p->relay_deadline);
        break;
    case PUNCH_S_CONNECTED:
        if (p->path == PUNCH_PATH_RELAY && now_ms < p->relay_pause)
            punch_min(&t, p->relay_pause);
        else
            punch_min(&t, punch_stream_deadline(p->stream, now_ms));
        punch_min(&t, p->last_tx + punch_keepalive_ms(p));
        punch_min(&t, p->last_rx + p->cfg.lost_ms);
        break;
    default:
        break;
    }
    return t <= now_ms ? 0 : (int)(t - now_ms);
}

int punch_next_event(struct punch *p, struct punch_event *ev)
{
    if (!p->evq_len)
        return 0;
    struct punch_evq_item *it = &p->evq[p->evq_head];
    *ev = it->ev;
    if (ev->type == PUNCH_EV_DATA)
        ev->data = it->data;
    p->evq_head = (p->evq_head + 1) % PUNCH_EVQ;
    p->evq_len--;
    return 1;
}

int punch_send(struct punch *p, const void *data, size_t len)
{
    if (p->st == PUNCH_S_FAILED)
        return PUNCH_E_STATE;
    return punch_stream_queue(p->stream, data, len, 0);
}

size_t punch_send_room(const struct punch *p)
{
    return punch_stream_room(p->stream);
}

int punch_close(struct punch *p)
{
    if (p->st == PUNCH_S_FAILED)
        return PUNCH_E_STATE;
    return punch_stream_queue(p->stream, NULL, 0, 1);
}

int punch_finished(const struct punch *p)
{
    return punch_stream_finished(p->stream);
}

const char *punch_share_id(const struct punch *p)
{
    return p->share_id[0] ? p->share_id : NULL;
}

uint16_t punch_local_port(const struct punch *p)
{
    return p->local.port;
}

int punch_fingerprint(const struct punch *p, char out[PUNCH_FINGERPRINT_LEN + 1])
{
    if (!p->have_pair)
        return PUNCH_E_STATE;
    punch_wire_fingerprint(p->pk, p->peer_pk, out);
    return 0;
}

double punch_rtt_ms(const struct punch *p)
{
    return p->stream->srtt_ms;
}
