/* punch_int.h: libpunch's private modules, shared by the src/client sources and the
 * unit tests. Every external name starts with punch_ (the library is linked
 * into other programs). The pure modules (addr formatting, msg, wire, stream)
 * do no I/O and take the time as a parameter, so they test without sockets. */
#ifndef PUNCH_INT_H
#define PUNCH_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "punch.h"

/* ---- addresses (punch_addr.c) ---- */

struct punch_addr {
    uint8_t family;   /* AF_INET or AF_INET6; 0 = none */
    uint16_t port;    /* host order */
    uint8_t ip[16];   /* IPv4 in the first 4 bytes */
};

/* Parses an endpoint literal "a.b.c.d:port" or "[v6]:port" (port 1-65535)
 * from s[0..n). Returns 0 or -1. */
int punch_addr_parse(struct punch_addr *a, const char *s, size_t n);

/* Parses an IP literal (no port) with the given port. Returns 0 or -1. */
int punch_addr_parse_ip(struct punch_addr *a, const char *s, uint16_t port);

/* Formats "a.b.c.d:port" / "[v6]:port" into buf (cap >= PUNCH_ADDR_STRLEN).
 * Returns the length. */
size_t punch_addr_format(const struct punch_addr *a, char *buf, size_t cap);

int punch_addr_equal(const struct punch_addr *a, const struct punch_addr *b);

/* Kernel conversions. from_sockaddr normalises v4-mapped IPv6 to IPv4;
 * to_sockaddr maps IPv4 for an AF_INET6 socket. to_sockaddr returns the
 * length, or 0 if a cannot be sent on a socket of that family. */
int punch_addr_from_sockaddr(struct punch_addr *a, const struct sockaddr *sa, socklen_t len);
socklen_t punch_addr_to_sockaddr(const struct punch_addr *a, struct sockaddr_storage *ss,
                                 int sock_family);

/* Splits "HOST:PORT" / "[v6]:PORT" and resolves HOST (getaddrinfo, may
 * block). host/hostcap receive the host part (for an HTTP Host header).
 * Returns 0, PUNCH_E_INVAL (syntax) or PUNCH_E_RESOLVE. */
int punch_addr_resolve(struct punch_addr *a, const char *hostport, char *host, size_t hostcap);

/* 1 for loopback, unspecified, link-local or multicast addresses: never
 * worth listing as a candidate. */
int punch_addr_is_local_only(const struct punch_addr *a);

/* The socket's reachable addresses: the bound IP if it is specific, else every
 * up, non-loopback interface address of the socket's family (getifaddrs), each
 * with the socket's port. Returns how many were written (<= max). */
int punch_addr_candidates(const struct punch_addr *bound, struct punch_addr *out, int max);

/* ---- knock targets (punch_addr.c, pure) ---- */

#define PUNCH_MAX_CANDIDATES 8
#define PUNCH_MAX_PREDICTED 8
#define PUNCH_MAX_TARGETS (1 + PUNCH_MAX_CANDIDATES + PUNCH_MAX_PREDICTED)

struct punch_target {
    struct punch_addr addr;
    enum punch_path kind;  /* DIRECT or PREDICTED */
};

/* Builds the list of addresses to knock, in sending order: predicted ports
 * first (each new destination takes the next port of a sequential NAT, so
 * both sides must open their k-th new mapping towards the other's k-th
 * predicted port), then peeraddr (may be NULL), then candidates. Skips
 * duplicates, other families than family (0 = any) and local-only
 * addresses except loopback peeraddr/candidates when allow_loopback.
 * Returns the count (<= max). */
int punch_targets_build(struct punch_target *out, int max, int family, int allow_loopback,
                        const struct punch_addr *peeraddr, const struct punch_addr *cands,
                        int ncands, const struct punch_addr *pred, int npred);

/* ---- tracker messages (punch_msg.c, pure) ---- */

#define PUNCH_TOKEN_LEN 32
#define PUNCH_NONCE_LEN 16        /* the pairing nonce, 32 hex characters on the wire */
#define PUNCH_PK_LEN 32           /* X25519 public key */
#define PUNCH_PK_B64 44           /* its base64 (original variant, padded) */
#define PUNCH_COOKIE_MAX 256
#define PUNCH_RELAY_MAX 4096      /* base64 characters of one relayed packet */
#define PUNCH_PUSH_PAD 600        /* a push is padded to this many bytes */

enum punch_msg_action {
    PUNCH_MSG_OTHER = 0,
    PUNCH_MSG_ANNOUNCED,          /* announceReceived / announced */
    PUNCH_MSG_PULSED,             /* pulseReceived */
    PUNCH_MSG_ALIVED,
    PUNCH_MSG_PUSHED,             /* pushReceived / pushed */
    PUNCH_MSG_INCOME,
    PUNCH_MSG_PROBED,             /* probeReceived */
    PUNCH_MSG_RELAYED,
    PUNCH_MSG_ERROR,
    PUNCH_MSG_EXPIRED             /* sobani-app vocabulary for notAnnounced */
};

/* One message from the tracker, copied into fixed fields (every length is
 * bounded; anything malformed is left absent). */
struct punch_msg {
    enum punch_msg_action action;
    char share_id[PUNCH_ID_LEN + 1];      /* ANNOUNCED/PULSED: ours ("" = absent) */
    char token[PUNCH_TOKEN_LEN + 1];
    long ttl;                             /* seconds, 0 = absent */
    int has_addr;
    struct punch_addr addr;               /* ANNOUNCED/PROBED: as the tracker saw us */
    int has_probe;
    struct punch_addr probe;              /* ANNOUNCED: where to send the probe */
    int has_nat;
    enum punch_nat nat;
    char peer_id[PUNCH_ID_LEN + 1];       /* PUSHED/INCOME/RELAYED ("" = absent) */
    int has_peeraddr;
    struct punch_addr peeraddr;           /* (UDP only: a TCP peeraddr is left absent) */
    int peer_udp;                         /* -1 unknown, 0 the peer has no UDP side, 1 it has */
    int ncand;
    struct punch_addr cand[PUNCH_MAX_CANDIDATES];
    int npred;
    struct punch_addr pred[PUNCH_MAX_PREDICTED];
    int has_pubkey;
    uint8_t pubkey[PUNCH_PK_LEN];
    int has_nonce;
    uint8_t nonce[PUNCH_NONCE_LEN];
    char code[32];                        /* ERROR */
    char cookie[PUNCH_COOKIE_MAX + 1];    /* ERROR "retry" */
    size_t relay_len;                     /* RELAYED: base64 packet in relay[] */
    char relay[PUNCH_RELAY_MAX + 1];
};

/* Parses one tracker message (one JSON object, len <= 65536). Returns 0 with
 * m filled (action OTHER for anything unknown), or -1 if it is not a JSON
 * object. */
int punch_msg_parse(const char *buf, size_t len, struct punch_msg *m);

/* Fields of an announce. */
struct punch_announce_args {
    const char *share_id, *token;         /* re-claim / attach (both or neither) */
    const char *key;                      /* access key or NULL */
    const char *cookie;                   /* retry cookie or NULL */
    const char *pubkey_b64;               /* NULL = none */
    const struct punch_addr *cand;
    int ncand;
    size_t pad_to;                        /* pad the request to this many bytes (0 = none) */
};

/* Builders: write one JSON request into out (NUL-terminated) and return its
 * length, or -1 if it does not fit cap. Strings are JSON-escaped. */
int punch_msg_announce(char *out, size_t cap, const struct punch_announce_args *a);
int punch_msg_pulse(char *out, size_t cap, const char *key);
int punch_msg_push(char *out, size_t cap, const char *peer_id, const char *key, size_t pad_to);
int punch_msg_probe(char *out, size_t cap, const char *share_id, const char *token, const char *key);
/* {"action":"relay","shareId":PEER,"data":{"p":B64}} (+ "token" over UDP if given). */
int punch_msg_relay(char *out, size_t cap, const char *peer_id, const char *b64, size_t b64len,
                    const char *token);

enum punch_nat punch_nat_parse(const char *s);

/* ---- peer packets and crypto (punch_wire.c, pure) ---- */

#define PUNCH_WIRE_MAGIC 0xD7
#define PUNCH_WIRE_HDR (1 + PUNCH_NONCE_LEN + 8)   /* magic, pairing nonce, counter */
#define PUNCH_WIRE_TAG 16
#define PUNCH_WIRE_OVERHEAD (PUNCH_WIRE_HDR + PUNCH_WIRE_TAG)
#define PUNCH_FRAME_MAX (PUNCH_MSG_MAX + 16)        /* a plaintext frame */
#define PUNCH_PACKET_MAX (PUNCH_FRAME_MAX + PUNCH_WIRE_OVERHEAD)

/* Frame types (first plaintext byte). */
#define PUNCH_F_KNOCK 1   /* via u8, kseq u32 */
#define PUNCH_F_KACK 2    /* via u8 (echoed), kseq u32 (echoed) */
#define PUNCH_F_DATA 3    /* flags u8, seq u32, ack u32, payload */
#define PUNCH_F_ACK 4     /* 0 u8, ack u32 */

/* Keys and counters of one pairing. Each direction has its own key (crypto_kx
 * session keys, then bound to the pairing nonce), the sender's counter is
 * the AEAD nonce (strictly increasing, never reused), and the receiver keeps
 * a 64-packet replay window. */
struct punch_keys {
    uint8_t nonce[PUNCH_NONCE_LEN];
    uint8_t rx[32], tx[32];
    uint64_t tx_ctr;      /* last counter sent (first packet: 1) */
    uint64_t rx_max;      /* highest counter accepted (0 = none) */
    uint64_t rx_seen;     /* bit i: rx_max - i was accepted */
};

/* Derives the keys: is_client = 1 for the pusher (pushReceived), 0 for the
 * target (income). Returns 0, or -1 for a bad peer key. */
int punch_wire_keys(struct punch_keys *k, int is_client, const uint8_t my_pk[32],
                    const uint8_t my_sk[32], const uint8_t peer_pk[32],
                    const uint8_t nonce[PUNCH_NONCE_LEN]);

/* Seals frame[0..n) into out (cap >= n + PUNCH_WIRE_OVERHEAD). Returns the
 * packet length or -1. */
ssize_t punch_wire_seal(struct punch_keys *k, const uint8_t *frame, size_t n, uint8_t *out,
                        size_t cap);

/* Opens a packet into frame (cap >= len). Returns the frame length, or
 * PUNCH_WIRE_NOT_OURS (not a packet, or another pairing's nonce: ignored
 * before any crypto), PUNCH_WIRE_FORGED (authentication failed) or
 * PUNCH_WIRE_REPLAY. Only an authentic packet moves the replay window. */
#define PUNCH_WIRE_NOT_OURS (-1)
#define PUNCH_WIRE_FORGED (-2)
#define PUNCH_WIRE_REPLAY (-3)
ssize_t punch_wire_open(struct punch_keys *k, const uint8_t *pkt, size_t len, uint8_t *frame,
                        size_t cap);

/* The fingerprint of a pairing's two public keys (order does not matter):
 * writes PUNCH_FINGERPRINT_LEN + 1 bytes. */
void punch_wire_fingerprint(const uint8_t a[32], const uint8_t b[32], char out[PUNCH_FINGERPRINT_LEN + 1]);

/* Big-endian helpers. */
void punch_put32(uint8_t *p, uint32_t v);
uint32_t punch_get32(const uint8_t *p);
void punch_put64(uint8_t *p, uint64_t v);
uint64_t punch_get64(const uint8_t *p);

/* ---- reliable ordered message stream (punch_stream.c, pure) ---- */

#define PUNCH_STREAM_SLOTS 64     /* queued + in flight messages (the last one: FIN only) */
#define PUNCH_STREAM_WINDOW 32    /* in flight at most; also the reorder window */
#define PUNCH_RTO_MIN 200
#define PUNCH_RTO_MAX 3000

struct punch_stream_out {
    uint16_t len;
    uint8_t fin;
    uint8_t tries;        /* transmissions so far */
    uint64_t sent_ms;     /* last transmission */
    uint8_t data[PUNCH_MSG_MAX];
};

struct punch_stream_in {
    uint8_t have, fin;
    uint16_t len;
    uint8_t data[PUNCH_MSG_MAX];
};

struct punch_stream {
    struct punch_stream_out out[PUNCH_STREAM_SLOTS];
    uint32_t snd_una;     /* oldest unacknowledged seq */
    uint32_t snd_nxt;     /* next seq to transmit for the first time */
    uint32_t snd_end;     /* next seq to queue */
    int fin_queued;
    uint64_t stall_ms;    /* when snd_una last advanced or first went out */
    struct punch_stream_in in[PUNCH_STREAM_WINDOW];
    uint32_t rcv_nxt;     /* next seq to deliver */
    int fin_received;
    int ack_due;
    uint32_t rto_ms;
    double srtt_ms;       /* 0 = no sample yet */
};

/* Delivery callback: 0 = taken, -1 = no room now (the message stays and is
 * offered again on the next input or punch_stream_redeliver). */
typedef int (*punch_stream_deliver_fn)(void *ctx, const uint8_t *data, size_t len, int fin);

void punch_stream_init(struct punch_stream *s);
/* Queues a message (copied) or the FIN (fin=1, len 0). 0, PUNCH_E_AGAIN,
 * PUNCH_E_INVAL or PUNCH_E_STATE (after the FIN). */
int punch_stream_queue(struct punch_stream *s, const uint8_t *data, size_t len, int fin);
size_t punch_stream_room(const struct punch_stream *s);
/* The next frame due at now (retransmission, new data, or a bare ACK):
 * writes it to frame and returns its length, or 0 when nothing is due. */
size_t punch_stream_next(struct punch_stream *s, uint64_t now, uint8_t *frame, size_t cap);
/* Takes a DATA or ACK frame. Returns 0, or -1 for a malformed frame. */
int punch_stream_input(struct punch_stream *s, const uint8_t *frame, size_t n, uint64_t now,
                       punch_stream_deliver_fn deliver, void *ctx);
/* Offers held in-order messages again (after the application made room). */
void punch_stream_redeliver(struct punch_stream *s, punch_stream_deliver_fn deliver, void *ctx);
/* When punch_stream_next has work next (UINT64_MAX = none). */
uint64_t punch_stream_deadline(const struct punch_stream *s, uint64_t now);
/* 1 if unacknowledged data has waited since stall_ms; how long (ms) in *for_ms. */
int punch_stream_stalled(const struct punch_stream *s, uint64_t now, uint64_t *for_ms);
/* 1 once our FIN is acknowledged and the peer's FIN delivered. */
int punch_stream_finished(const struct punch_stream *s);

/* ---- WebSocket client (punch_ws.c) ---- */

enum punch_ws_state {
    PUNCH_WS_IDLE = 0, PUNCH_WS_CONNECTING, PUNCH_WS_HANDSHAKE, PUNCH_WS_OPEN, PUNCH_WS_FAILED
};

typedef void (*punch_ws_msg_fn)(void *ctx, const char *msg, size_t len);

struct punch_ws {
    enum punch_ws_state state;
    int fd;
    char key_b64[32];         /* Sec-WebSocket-Key we sent */
    char *req;                /* the upgrade request, then freed */
    size_t req_len, req_off;
    char *head;               /* response bytes until the end of the head */
    size_t head_len;
    void *ctx;                /* wslay_event_context_ptr */
    uint8_t *rest;            /* bytes read past the head, for wslay first */
    size_t rest_len, rest_off;
    punch_ws_msg_fn on_msg;
    void *user;
    char error[96];
};

/* Starts a non-blocking connect to to and queues the upgrade request for
 * "/" (with ?key= when key is set). Returns 0 or PUNCH_E_SYS. */
int punch_ws_start(struct punch_ws *w, const struct punch_addr *to, const char *host,
                   const char *key, punch_ws_msg_fn on_msg, void *user);
/* Does all possible I/O. Returns 0, or -1 once the connection failed or
 * closed (error[] says why; state FAILED). */
int punch_ws_io(struct punch_ws *w);
/* Queues one text message (copied); sent once the handshake is done. */
int punch_ws_send(struct punch_ws *w, const char *msg, size_t len);
/* POLLIN/POLLOUT this connection waits for (0 when idle/failed). */
short punch_ws_events(const struct punch_ws *w);
void punch_ws_free(struct punch_ws *w);
/* Pure: the Sec-WebSocket-Accept for key (28 characters + NUL into out). */
void punch_ws_accept_key(const char *key, char out[29]);
/* Pure: checks a response head (status 101 and the accept value). Returns the
 * head length consumed (> 0), 0 if incomplete, or -1 if refused. */
long punch_ws_check_head(const char *buf, size_t len, const char *key_b64, char *why, size_t whycap);

#endif
