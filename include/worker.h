/* worker: the `workers` setting — extra UDP sockets on the main socket's port
 * (SO_REUSEPORT: the kernel spreads clients over them by source address), each
 * served by its own thread and libev loop.
 *
 * All of them share the one tracker under its lock (tracker_lock), so a push
 * finds a peer whatever socket it announced on, and a reply to any peer may
 * leave from any of them (same address, same port). The main thread keeps
 * worker 0 (the first socket), the TCP side, the probe socket, expiry and
 * signals. */
#ifndef PUNCHD_WORKER_H
#define PUNCHD_WORKER_H

#include <stddef.h>

#include "udp.h"

struct workers;

/* Starts cfg->workers - 1 threads, each with a socket joined to first's port
 * (first must have been opened with cfg->workers > 1). Signals are blocked in
 * them (the main loop handles SIGINT/SIGTERM). Returns the set (stop it with
 * workers_stop()), or NULL with a reason in err; nothing is left running then.
 * With cfg->workers == 1 it returns an empty set. */
struct workers *workers_start(const struct config *cfg, struct udp *first, char *err, size_t errcap);

/* Stops every worker thread, waits for it, frees its socket and loop. */
void workers_stop(struct workers *w);

#endif
