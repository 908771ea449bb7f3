/* udp: the UDP socket at the edge — bind, receive datagrams into the tracker,
 * send its replies from the local address each request arrived on.
 *
 * Bound to a wildcard address (0.0.0.0, ::) on a host with several addresses,
 * a reply leaving from another local address is dropped by the client's NAT,
 * so the destination address of each request is read with IP_PKTINFO /
 * IPV6_RECVPKTINFO and reused as the source of every datagram to that peer.
 * Local addresses are interned in a small table; peers store a 1-byte index. */
#ifndef PUNCHD_UDP_H
#define PUNCHD_UDP_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "config.h"
#include "tracker.h"

struct udp_stats {
    uint64_t received;    /* datagrams read */
    uint64_t sent;        /* datagrams sent */
    uint64_t send_errors; /* sendmsg failures (e.g. EAGAIN: the reply is dropped) */
};

struct udp;

/* Binds cfg->bind:cfg->port, registers with loop and installs itself as t's
 * sink. Returns the new socket owner (free with udp_free()), or NULL with a
 * reason in err. */
struct udp *udp_new(struct ev_loop *loop, const struct config *cfg, struct tracker *t, char *err,
                    size_t errcap);
/* Worker number `worker` (>= 1) of the port first is bound to (cfg->workers
 * > 1: first was bound with SO_REUSEPORT): another socket on the same address
 * and port, served by loop (another thread's). It shares first's tracker and
 * local-address table, and sends through itself while it holds the tracker
 * lock. Free it with udp_free() before first. */
struct udp *udp_new_worker(struct ev_loop *loop, struct udp *first, unsigned worker, char *err,
                           size_t errcap);
/* The NAT-detection probe socket: probe_bind (else bind) : probe_port (else
 * udp_port, the main socket's number). Serves only "probe" (tracker_on_probe)
 * and installs itself as t's probe sink. Same ownership as udp_new(). */
struct udp *udp_new_probe(struct ev_loop *loop, const struct config *cfg, struct tracker *t,
                          unsigned udp_port, char *err, size_t errcap);
void udp_free(struct udp *u);

/* The address actually bound (port filled in when cfg->port was 0). */
const struct addr *udp_bound(const struct udp *u);
const struct udp_stats *udp_stats(const struct udp *u);

#endif
