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

/* Where a request came from. */
struct tracker_src {
    struct addr addr; /* observed source address */
    uint8_t local;    /* the transport's index of the local address it arrived on */
};

/* Sends buf[0..len) to `to`, leaving from local address index `local`. The
 * buffer is only valid during the call. */
typedef void (*tracker_send_fn)(void *ctx, const struct addr *to, uint8_t local, const char *buf,
                                size_t len);

struct tracker;

/* Creates a tracker for cfg (which must outlive it). Owned by the caller. */
struct tracker *tracker_new(const struct config *cfg);
void tracker_free(struct tracker *t);

void tracker_set_sink(struct tracker *t, tracker_send_fn send, void *ctx);

/* Handles one datagram of len bytes (untrusted) from src at time now_ms
 * (monotonic milliseconds). Replies go through the sink. Returns 0 when the
 * datagram was a request (answered or not), or -1 - enum proto_drop when it
 * was dropped unanswered (counted in the stats). */
int tracker_on_datagram(struct tracker *t, const char *buf, size_t len,
                         const struct tracker_src *src, uint64_t now_ms);

/* Counts a datagram the transport dropped before handing it in (e.g. too large). */
void tracker_count_drop(struct tracker *t, enum proto_drop reason);

/* Expires at most budget peers due at now_ms. Returns how many expired. */
size_t tracker_expire(struct tracker *t, uint64_t now_ms, size_t budget);

/* Sets *deadline_ms to when the next peer is due. Returns 0, or -1 if none. */
int tracker_next_expiry(const struct tracker *t, uint64_t *deadline_ms);

const struct stats *tracker_stats(const struct tracker *t);
struct registry *tracker_registry(struct tracker *t);

#endif
