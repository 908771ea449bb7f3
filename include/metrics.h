/* metrics: the /healthz and /metrics bodies, rendered from the tracker's
 * counters. Every label set is bounded (fixed enums), and every series is
 * printed from the start, at zero. */
#ifndef PUNCHD_METRICS_H
#define PUNCHD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"

struct metrics_gauges {
    uint64_t peers;          /* live identities */
    uint64_t ws_connections; /* open TCP connections */
    uint64_t uptime;         /* whole seconds since start */
    unsigned workers;        /* the `workers` setting (per-worker series) */
};

/* Writes the Prometheus text exposition into out. Returns its length, or 0
 * if cap is too small (8 KiB is plenty). */
size_t metrics_render(char *out, size_t cap, const struct stats *st, const struct metrics_gauges *g);

/* Writes {"status":"ok","peers":N,"uptime":S}. Returns its length. */
size_t metrics_healthz(char *out, size_t cap, const struct metrics_gauges *g);

#endif
