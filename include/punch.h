/* punch.h: libpunch, the client library of punchd (NAT rendezvous tracker).
 *
 * One `struct punch` is one peer endpoint: a UDP socket registered with a
 * punchd tracker (or a WebSocket when UDP is blocked), which connects to one
 * other peer by shareId (punch_connect) or accepts the first peer that pushes
 * to it (config accept_income). It finds a path (direct UDP through both NATs,
 * a predicted port of a sequential NAT, or the tracker's relay over
 * WebSocket) and then carries an ordered, reliable, end-to-end encrypted
 * message stream (X25519 key exchange through the tracker, ChaCha20-Poly1305).
 *
 * Caller-driven: no threads, no global state, no blocking after punch_new.
 *   - punch_fds() lists the descriptors to wait on (and for what),
 *   - punch_timeout_ms() says how long to wait at most,
 *   - punch_poll(p, now) does all pending I/O and timers without blocking,
 *   - punch_next_event() hands out what happened (registered, connected,
 *     data, peer closed, errors).
 * A game loop may simply call punch_poll() every frame and drain events.
 * Times are milliseconds of a monotonic clock the caller chooses
 * (punch_now_ms() is CLOCK_MONOTONIC).
 *
 * Return values: 0 (or a count) on success, a negative PUNCH_E_* code on
 * failure. Strings passed in are copied; pointers handed out stay owned by the
 * library (lifetimes noted at each function). See docs/libpunch.md.
 */
#ifndef PUNCH_H
#define PUNCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PUNCH_ID_LEN 8          /* a shareId: 8 characters of [0-9A-Za-z] */
#define PUNCH_MSG_MAX 1100      /* bytes of one message given to punch_send */
#define PUNCH_ADDR_STRLEN 56    /* "[v6]:port" + NUL */
#define PUNCH_MAX_FDS 2         /* descriptors punch_fds may list */
#define PUNCH_FINGERPRINT_LEN 39 /* "xxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxx" */

/* Error codes (negative). */
#define PUNCH_E_INVAL   (-1)    /* a bad argument */
#define PUNCH_E_AGAIN   (-2)    /* the send queue is full: poll, then retry */
#define PUNCH_E_STATE   (-3)    /* not possible now (no peer yet, already closed...) */
#define PUNCH_E_SYS     (-4)    /* a socket call failed (see errno) */
#define PUNCH_E_RESOLVE (-5)    /* a host name could not be resolved */
#define PUNCH_E_TRACKER (-6)    /* the tracker answered an error (event text names it) */
#define PUNCH_E_NOPATH  (-7)    /* punching failed and the relay is not allowed */
#define PUNCH_E_PEER    (-8)    /* the peer is unknown, or cannot do end-to-end crypto */
#define PUNCH_E_LOST    (-9)    /* the peer stopped answering */
#define PUNCH_E_WS      (-10)   /* the WebSocket to the tracker failed */

enum punch_nat {
    PUNCH_NAT_UNKNOWN = 0,      /* no probe answered (or WebSocket only) */
    PUNCH_NAT_EIM,              /* same mapping for every destination ("cone") */
    PUNCH_NAT_SEQUENTIAL,       /* a new port per destination, handed out in order */
    PUNCH_NAT_RANDOM            /* anything else: only a relay is sure to work */
};

enum punch_path {
    PUNCH_PATH_NONE = 0,
    PUNCH_PATH_DIRECT,          /* the peer's public address or one of its own candidates */
    PUNCH_PATH_PREDICTED,       /* a port predicted for a sequential NAT */
    PUNCH_PATH_RELAY            /* through the tracker's WebSocket relay */
};

struct punch_config {
    const char *tracker;        /* "HOST:PORT" or "[v6]:PORT" (required) */
    const char *probe;          /* "HOST:PORT" to probe the NAT at; NULL = the tracker's "probe" */
    const char *key;            /* access key ("key" / ?key=), NULL = none */
    const char *bind_ip;        /* local IP literal for the UDP socket; NULL = any */
    uint16_t bind_port;         /* local UDP port; 0 = any */
    uint16_t ws_port;           /* tracker TCP port; 0 = the tracker's UDP port number */
    int ws_only;                /* register over WebSocket only (UDP to the tracker blocked) */
    int relay_only;             /* skip punching: use the relay at once */
    int no_relay;               /* never fall back to the relay (PUNCH_E_NOPATH instead) */
    int accept_income;          /* the first peer that pushes to us becomes our peer */
    uint32_t punch_ms;          /* knocking deadline before the relay (default 5000) */
    uint32_t pulse_ms;          /* keep-alive interval (default 2000, as sobani clients) */
    uint32_t lost_ms;           /* peer silent this long once connected -> PUNCH_E_LOST (15000) */
};

enum punch_event_type {
    PUNCH_EV_NONE = 0,
    PUNCH_EV_NAT,               /* nat: our NAT's behaviour (emitted just before REGISTERED) */
    PUNCH_EV_REGISTERED,        /* share_id: ours; hand it to the other peer now */
    PUNCH_EV_INCOME,            /* share_id: a peer pushed to us (accepted if accept_income) */
    PUNCH_EV_CONNECTED,         /* path, rtt_ms, peer_addr, share_id (peer's): stream is open */
    PUNCH_EV_DATA,              /* data/len: one message from the peer, in order */
    PUNCH_EV_PEER_CLOSED,       /* the peer sent its bye (after all its data) */
    PUNCH_EV_ERROR              /* error, fatal, text */
};

struct punch_event {
    enum punch_event_type type;
    char share_id[PUNCH_ID_LEN + 1];
    enum punch_nat nat;
    enum punch_path path;
    double rtt_ms;                      /* round trip of the winning knock */
    char peer_addr[PUNCH_ADDR_STRLEN];  /* "ip:port", or "relay" */
    const uint8_t *data;                /* DATA: valid until the next punch_next_event/punch_poll */
    size_t len;
    int error;                          /* ERROR: a PUNCH_E_* code */
    int fatal;                          /* ERROR: 1 = this handle can do nothing more useful */
    char text[160];                     /* ERROR: a short explanation */
};

struct punch_pollfd {
    int fd;
    short events;                       /* POLLIN and/or POLLOUT (poll.h values) */
};

struct punch;

/* Fills c with the defaults (everything off, intervals at their defaults). */
void punch_config_init(struct punch_config *c);

/* Creates an endpoint: resolves the tracker (getaddrinfo: may block on DNS;
 * pass literals to avoid that), opens the UDP socket and starts registering.
 * On success *out owns everything and must be released with punch_free.
 * On failure returns a PUNCH_E_* code and writes a message into err (if
 * given). cfg's strings are copied. */
int punch_new(const struct punch_config *cfg, uint64_t now_ms, struct punch **out, char *err,
              size_t errcap);

/* Closes the sockets and frees p (NULL is fine). */
void punch_free(struct punch *p);

/* Connects to the peer with that shareId: pushes to it through the tracker as
 * soon as we are registered, then punches. One peer per handle. Returns 0,
 * PUNCH_E_INVAL (not a shareId) or PUNCH_E_STATE (a peer is already set). */
int punch_connect(struct punch *p, const char *share_id);

/* Does every pending read, write and timer without blocking, then returns:
 * 0, or PUNCH_E_SYS on an unusable socket. Events are queued for
 * punch_next_event. */
int punch_poll(struct punch *p, uint64_t now_ms);

/* Writes up to max descriptors to wait on into fds; returns how many. */
int punch_fds(const struct punch *p, struct punch_pollfd *fds, int max);

/* Milliseconds until punch_poll has timer work (0 = now; never more than 1000). */
int punch_timeout_ms(const struct punch *p, uint64_t now_ms);

/* Takes the next event into *ev: returns 1, or 0 when there is none. Data
 * and strings in ev are valid until the next punch_next_event or punch_poll. */
int punch_next_event(struct punch *p, struct punch_event *ev);

/* Queues one message (1..PUNCH_MSG_MAX bytes, copied) for the peer; it is sent
 * encrypted, in order, retransmitted until acknowledged. Allowed before the
 * connection exists (sent once it does). Returns 0, PUNCH_E_INVAL,
 * PUNCH_E_AGAIN (queue full) or PUNCH_E_STATE (after punch_close). */
int punch_send(struct punch *p, const void *data, size_t len);

/* Messages punch_send would accept now. */
size_t punch_send_room(const struct punch *p);

/* Says bye: the peer gets PUNCH_EV_PEER_CLOSED after every queued message.
 * Returns 0 or PUNCH_E_STATE (already closed). */
int punch_close(struct punch *p);

/* 1 once our bye is acknowledged and the peer's bye received, else 0. */
int punch_finished(const struct punch *p);

/* Our shareId (NUL-terminated, owned by p), or NULL before registration. */
const char *punch_share_id(const struct punch *p);

/* The local UDP port (host order), or 0. */
uint16_t punch_local_port(const struct punch *p);

/* The pairing's fingerprint: 128 bits of a hash of both peers' public keys,
 * as 8 groups of 4 hex digits, the same on both sides. Two users who read
 * the same fingerprint to each other (out of band) know that no one, not
 * even the tracker, sits in the middle. Writes PUNCH_FINGERPRINT_LEN + 1
 * bytes into out; returns 0, or PUNCH_E_STATE before the peer's key is known. */
int punch_fingerprint(const struct punch *p, char out[PUNCH_FINGERPRINT_LEN + 1]);

/* Smoothed round-trip time of the stream in ms (0 before a sample). */
double punch_rtt_ms(const struct punch *p);

/* Names: "eim"/"sequential"/"random"/"unknown"; "direct"/"predicted"/"relay"/"none". */
const char *punch_nat_name(enum punch_nat nat);
const char *punch_path_name(enum punch_path path);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t punch_now_ms(void);

#ifdef __cplusplus
}
#endif

#endif
