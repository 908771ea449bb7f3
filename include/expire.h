/* expire: drives the tracker's expiry from the event loop.
 *
 * One ev_timer fires at the oldest peer's deadline (at least every 250 ms, so
 * a peer added to an empty registry is never missed) and removes what is due,
 * at most EXPIRE_BUDGET peers per tick so the loop is never blocked for long;
 * when more are due it comes back at once, after pending I/O. */
#ifndef PUNCHD_EXPIRE_H
#define PUNCHD_EXPIRE_H

#include <ev.h>

#include "tracker.h"

/* Peers removed per tick. Measured (uprobe on tracker_expire, 1M peers):
 * 326-481 ns per peer, so 4096 took up to 2.6 ms; 512 stays near 0.25 ms. */
#define EXPIRE_BUDGET 512
#define EXPIRE_MAX_SLEEP 0.25 /* seconds between checks when nothing is due sooner */

struct expire {
    struct ev_loop *loop;
    ev_timer timer;
    struct tracker *tracker;
};

/* Starts expiry for t on loop; e is owned by the caller and must stay put. */
void expire_start(struct expire *e, struct ev_loop *loop, struct tracker *t);
void expire_stop(struct expire *e);

#endif
