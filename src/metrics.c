/* metrics: /healthz and /metrics bodies (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>

#include "proto.h"
#include "tracker.h"

struct metrics_w {
    char *out;
    size_t cap, len;
    int overflow;
};

static void metrics_printf(struct metrics_w *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void metrics_printf(struct metrics_w *w, const char *fmt, ...)
{
    if (w->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->out + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->cap - w->len)
        w->overflow = 1;
    else
        w->len += (size_t)n;
}

static void metrics_head(struct metrics_w *w, const char *name, const char *type, const char *help)
{
    metrics_printf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

size_t metrics_render(char *out, size_t cap, const struct stats *st, const struct metrics_gauges *g)
{
    static const char *const transports[STATS_TRANSPORT_COUNT] = { "udp", "ws" };
    static const enum proto_action actions[] = { PROTO_ACT_ANNOUNCE, PROTO_ACT_PULSE,
                                                 PROTO_ACT_ALIVE, PROTO_ACT_PUSH, PROTO_ACT_RELAY,
                                                 PROTO_ACT_PROBE };
    static const char *const limits[STATS_L_COUNT] = {
        [STATS_L_REQUESTS] = "requests",          [STATS_L_INCOME] = "income",
        [STATS_L_RESPONSE_BYTES] = "response_bytes", [STATS_L_CONNECTIONS_PER_IP] = "connections_per_ip",
        [STATS_L_CONNECTIONS] = "connections",    [STATS_L_ACCESS_KEY] = "access_key",
        [STATS_L_RETRY] = "retry",                [STATS_L_FULL] = "max_peers",
        [STATS_L_UNKNOWN_IDS] = "unknown_share_ids",
    };
    struct metrics_w w = { out, cap, 0, 0 };

    metrics_head(&w, "punchd_peers", "gauge", "Live identities (shareIds).");
    metrics_printf(&w, "punchd_peers %llu\n", (unsigned long long)g->peers);
    metrics_head(&w, "punchd_ws_connections", "gauge", "Open WebSocket connections.");
    metrics_printf(&w, "punchd_ws_connections %llu\n", (unsigned long long)g->ws_connections);

    metrics_head(&w, "punchd_requests_total", "counter", "Requests by transport and action.");
    for (int tr = 0; tr < STATS_TRANSPORT_COUNT; tr++) {
        for (size_t a = 0; a < sizeof actions / sizeof actions[0]; a++)
            metrics_printf(&w, "punchd_requests_total{transport=\"%s\",action=\"%s\"} %llu\n",
                           transports[tr], proto_action_name(actions[a]),
                           (unsigned long long)st->requests[tr][actions[a]]);
        /* Unknown and missing actions share one label: the label set stays bounded. */
        metrics_printf(&w, "punchd_requests_total{transport=\"%s\",action=\"unknown\"} %llu\n",
                       transports[tr],
                       (unsigned long long)(st->requests[tr][PROTO_ACT_UNKNOWN] +
                                            st->requests[tr][PROTO_ACT_NONE]));
    }

    metrics_head(&w, "punchd_errors_total", "counter", "Error replies by code.");
    for (int e = 0; e < STATS_E_COUNT; e++)
        metrics_printf(&w, "punchd_errors_total{code=\"%s\"} %llu\n",
                       tracker_error_code((enum stats_error)e), (unsigned long long)st->errors[e]);

    metrics_head(&w, "punchd_dropped_datagrams_total", "counter",
                 "Datagrams dropped without a reply, by reason.");
    for (int d = 0; d < PROTO_DROP_COUNT; d++)
        metrics_printf(&w, "punchd_dropped_datagrams_total{reason=\"%s\"} %llu\n",
                       proto_drop_name((enum proto_drop)d), (unsigned long long)st->dropped[d]);

    metrics_head(&w, "punchd_limited_total", "counter",
                 "Requests refused, left unanswered or datagrams not sent at a limit, by limit.");
    for (int l = 0; l < STATS_L_COUNT; l++)
        metrics_printf(&w, "punchd_limited_total{limit=\"%s\"} %llu\n", limits[l],
                       (unsigned long long)st->limited[l]);

    metrics_head(&w, "punchd_relayed_bytes_total", "counter", "Relay payload bytes delivered.");
    metrics_printf(&w, "punchd_relayed_bytes_total %llu\n", (unsigned long long)st->relayed_bytes);
    metrics_head(&w, "punchd_relayed_messages_total", "counter", "Relay messages delivered.");
    metrics_printf(&w, "punchd_relayed_messages_total %llu\n", (unsigned long long)st->relayed);
    metrics_head(&w, "punchd_pushes_total", "counter", "Successful pushes.");
    metrics_printf(&w, "punchd_pushes_total %llu\n", (unsigned long long)st->pushes);
    metrics_head(&w, "punchd_expired_total", "counter", "UDP sides expired after peer_ttl.");
    metrics_printf(&w, "punchd_expired_total %llu\n", (unsigned long long)st->expired);
    metrics_head(&w, "punchd_udp_datagrams_total", "counter", "UDP datagrams read, by worker.");
    for (unsigned k = 0; k < g->workers && k < CONFIG_WORKERS_MAX; k++)
        metrics_printf(&w, "punchd_udp_datagrams_total{worker=\"%u\"} %llu\n", k,
                       (unsigned long long)st->worker_datagrams[k]);
    metrics_head(&w, "punchd_uptime_seconds", "gauge", "Seconds since start.");
    metrics_printf(&w, "punchd_uptime_seconds %llu\n", (unsigned long long)g->uptime);
    return w.overflow ? 0 : w.len;
}

size_t metrics_healthz(char *out, size_t cap, const struct metrics_gauges *g)
{
    int n = snprintf(out, cap, "{\"status\":\"ok\",\"peers\":%llu,\"uptime\":%llu}",
                     (unsigned long long)g->peers, (unsigned long long)g->uptime);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}
