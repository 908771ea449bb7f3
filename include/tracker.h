/* tracker: the sobani protocol logic — announce, pulse, alive, push — over a
 * registry, transport-agnostic and clock-agnostic.
 *
 * The caller hands in each request with the current monotonic time and the
 * sender's address; replies and notifications leave through the send callback
 * set with tracker_set_sink(). No sockets, no event loop, no logging here, so
 * every rule is testable with a fake clock and a capturing sink. */
#ifndef PUNCHD_TRACKER_H
#define PUNCHD_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "config.h"
#include "registry.h"
#include "stats.h"

/* TRACKER_PROBE: a datagram to the NAT-detection probe socket (UDP too). */
enum tracker_transport { TRACKER_UDP = 0, TRACKER_WS = 1, TRACKER_PROBE = 2 };

/* Where a request came from. Zero-initialise, then fill what applies. */
struct tracker_src {
    uint8_t transport;  /* enum tracker_transport */
    uint8_t local;      /* UDP: the transport's index of the local address it arrived on */
    struct addr addr;   /* observed source: UDP ip:port, or the WebSocket's TCP ip:port */
    const struct addr *local_addr; /* UDP: the local address it arrived on, if known */
    void *conn;         /* WS: the connection (opaque here) */
    uint32_t *conn_peer;/* WS: the connection's identity slot, REGISTRY_NIL if none;
                           the tracker updates it on announce */
};

/* Sends buf[0..len) to `to`, leaving from local address index `local`. The
 * buffer is only valid during the call. */
typedef void (*tracker_send_fn)(void *ctx, const struct addr *to, uint8_t local, const char *buf,
                                size_t len);

/* Queues text message buf[0..len) on WebSocket connection conn. */
typedef void (*tracker_ws_send_fn)(void *ctx, void *conn, const char *buf, size_t len);

/* Closes WebSocket connection conn with status code (it lost its identity to
 * a newer connection); the connection must forget its identity slot. */
typedef void (*tracker_ws_close_fn)(void *ctx, void *conn, uint16_t code);

struct tracker;

/* Creates a tracker for cfg (which must outlive it). Owned by the caller. */
struct tracker *tracker_new(const struct config *cfg);
void tracker_free(struct tracker *t);

void tracker_set_sink(struct tracker *t, tracker_send_fn send, void *ctx);
void tracker_set_ws_sink(struct tracker *t, tracker_ws_send_fn send, tracker_ws_close_fn close,
                         void *ctx);

/* Threads. With `workers` > 1 several event loops share one tracker: each
 * call into it (and any read of its stats or registry) is made between
 * tracker_lock() and tracker_unlock(). The lock is recursive (a sink may call
 * back in). tracker_lock_with() also sends this holder's UDP datagrams through
 * send/ctx (a worker's own socket: every worker socket shares the port, so
 * any of them reaches any peer); tracker_lock() uses the tracker_set_sink()
 * one. The outermost lock chooses the sink. Single-threaded callers (the unit
 * tests) may skip locking. */
void tracker_lock(struct tracker *t);
void tracker_lock_with(struct tracker *t, tracker_send_fn send, void *ctx);
void tracker_unlock(struct tracker *t);

/* Counts datagrams received by worker number `worker` (per-worker metric). */
void tracker_count_worker(struct tracker *t, unsigned worker, uint64_t datagrams);

/* The probe socket: its bound address (a wildcard IP is replaced, in what
 * clients are told, by the IP each request arrived on) and its sink. */
void tracker_set_probe(struct tracker *t, const struct addr *bound, tracker_send_fn send, void *ctx);

/* Handles one datagram that arrived on the probe socket: only "probe" is
 * served there. Returns as tracker_on_datagram(). */
int tracker_on_probe(struct tracker *t, const char *buf, size_t len, const struct tracker_src *src,
                     uint64_t now_ms);

/* Handles one datagram of len bytes (untrusted) from src at time now_ms
 * (monotonic milliseconds). Replies go through the sink. Returns 0 when the
 * datagram was a request (answered or not), or -1 - enum proto_drop when it
 * was dropped unanswered (counted in the stats). */
int tracker_on_datagram(struct tracker *t, const char *buf, size_t len,
                        const struct tracker_src *src, uint64_t now_ms);

/* Handles one reassembled WebSocket text message (valid UTF-8) from src
 * (transport TRACKER_WS). Anything that is not one JSON object is answered
 * with badRequest: the connection stays. */
void tracker_on_ws_message(struct tracker *t, const char *buf, size_t len,
                           const struct tracker_src *src, uint64_t now_ms);

/* The WebSocket connection conn, holding identity peer (or REGISTRY_NIL),
 * has ended: the peer loses its WebSocket side, and is gone at once if it has
 * no UDP side. */
void tracker_ws_closed(struct tracker *t, void *conn, uint32_t peer);

/* A WebSocket message over its connection's request rate: answered with
 * rateLimited at most once per second per source IP, else ignored. */
void tracker_ws_rate_limited(struct tracker *t, const struct tracker_src *src, uint64_t now_ms);

/* Counts a refusal at a limit enforced at the edge (e.g. connections per IP). */
void tracker_count_limit(struct tracker *t, enum stats_limit which);

/* Counts a datagram the transport dropped before handing it in (e.g. too large). */
void tracker_count_drop(struct tracker *t, enum proto_drop reason);

/* Expires at most budget peers due at now_ms. Returns how many expired. */
size_t tracker_expire(struct tracker *t, uint64_t now_ms, size_t budget);

/* Sets *deadline_ms to when the next peer is due. Returns 0, or -1 if none. */
int tracker_next_expiry(const struct tracker *t, uint64_t *deadline_ms);

const struct stats *tracker_stats(const struct tracker *t);

/* The wire name of an error code ("badRequest", ...). */
const char *tracker_error_code(enum stats_error e);
struct registry *tracker_registry(struct tracker *t);

#endif
