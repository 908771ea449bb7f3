/* connlimit: open TCP connections per source IP (exact IPv4, IPv6 /64), for
 * max_connections_per_ip. An exact count, unlike ratelimit: every increment
 * is undone when its connection closes. The table has a fixed capacity sized
 * from max_connections, so it never grows with the number of clients. */
#ifndef PUNCHD_CONNLIMIT_H
#define PUNCHD_CONNLIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

struct connlimit;

/* A table for up to `entries` distinct IPs at once. Owned by the caller. */
struct connlimit *connlimit_new(size_t entries);
void connlimit_free(struct connlimit *cl);

/* Counts one more connection from a's IP unless it already has max (or the
 * table is full). Returns 1 if counted, 0 if refused. */
int connlimit_add(struct connlimit *cl, const struct addr *a, unsigned max);

/* Undoes one connlimit_add() that returned 1 for a's IP. */
void connlimit_del(struct connlimit *cl, const struct addr *a);

/* Connections counted for a's IP. */
unsigned connlimit_count(const struct connlimit *cl, const struct addr *a);

#endif
