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

#define EXPIRE_BUDGET 4096    /* peers removed per tick (well under 1 ms) */
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
