/* expire: the expiry timer (see expire.h). */
#include "expire.h"

#include "clock.h"

static void expire_schedule(struct expire *e, double after)
{
    ev_timer_stop(e->loop, &e->timer);
    ev_timer_set(&e->timer, after, 0.);
    ev_timer_start(e->loop, &e->timer);
}

static void expire_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct expire *e = w->data;
    uint64_t now = clock_mono_ms();
    tracker_lock(e->tracker);
    size_t n = tracker_expire(e->tracker, now, EXPIRE_BUDGET);
    uint64_t deadline;
    int due_known = tracker_next_expiry(e->tracker, &deadline) == 0;
    tracker_unlock(e->tracker);
    if (n == EXPIRE_BUDGET) {
        expire_schedule(e, 0.);
        return;
    }
    double after = EXPIRE_MAX_SLEEP;
    if (due_known) {
        /* +1 ms: libev may fire a hair early by our clock; never expire early. */
        double due = deadline > now ? (double)(deadline - now + 1) / 1000. : 0.001;
        if (due < after)
            after = due;
    }
    expire_schedule(e, after);
}

void expire_start(struct expire *e, struct ev_loop *loop, struct tracker *t)
{
    e->loop = loop;
    e->tracker = t;
    ev_timer_init(&e->timer, expire_on_timer, EXPIRE_MAX_SLEEP, 0.);
    e->timer.data = e;
    ev_timer_start(loop, &e->timer);
}

void expire_stop(struct expire *e) { ev_timer_stop(e->loop, &e->timer); }
