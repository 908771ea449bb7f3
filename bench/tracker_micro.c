/* tracker_micro: CPU cost of the protocol logic alone, per request, against a
 * large registry — no sockets, no kernel. The user-space half of what
 * `make bench` measures end to end, and steady where a shared machine makes
 * throughput noisy (thread CPU time, best of several rounds).
 *
 *   tracker_micro [peers] [requests-per-kind]    (defaults 1000000, 1000000)
 *
 * Builds a tracker (rate limits off, no retry cookies), preloads `peers`
 * peers by announce from distinct IPv4 sources, then times the load
 * generator's request shapes: a bare announce and pulse from known peers,
 * and a push to a random live peer, in batches of 64 as udp.c reads them,
 * plain and with the batch's lookups prefetched (registry_prefetch_addrs, as
 * udp.c does). Prints ns per request for each and the 10/80/10 mix the
 * benchmark uses. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "registry.h"
#include "tracker.h"

static char tm_last[2048];
static size_t tm_last_len;
static unsigned long long tm_sent;

static void tm_sink(void *ctx, const struct addr *to, uint8_t local, const char *buf, size_t len)
{
    (void)ctx;
    (void)to;
    (void)local;
    if (len < sizeof tm_last) {
        memcpy(tm_last, buf, len);
        tm_last_len = len;
    }
    tm_sent++;
}

static double tm_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void tm_addr(struct addr *a, uint32_t i)
{
    memset(a, 0, sizeof *a);
    a->family = AF_INET;
    a->ip[0] = 10;
    a->ip[1] = (uint8_t)(i >> 16);
    a->ip[2] = (uint8_t)(i >> 8);
    a->ip[3] = (uint8_t)i;
    a->port = (uint16_t)(40000 + (i >> 24));
}

static uint64_t tm_rng = 88172645463325252ull;
static uint32_t tm_rand(uint32_t n)
{
    tm_rng ^= tm_rng << 13;
    tm_rng ^= tm_rng >> 7;
    tm_rng ^= tm_rng << 17;
    return (uint32_t)(tm_rng % n);
}

enum { TM_ANNOUNCE, TM_PULSE, TM_PUSH, TM_KINDS };
static const char *const tm_names[TM_KINDS] = { "announce", "pulse", "push" };

int main(int argc, char **argv)
{
    uint32_t peers = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000u;
    uint32_t reqs = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1000000u;
    if (peers == 0 || reqs == 0 || sodium_init() < 0)
        return 2;
    struct config cfg;
    config_defaults(&cfg);
    cfg.max_peers = (long)peers + 16;
    cfg.rate_requests_per_sec = 0;
    cfg.rate_income_per_sec = 0;
    cfg.rate_response_bytes_per_sec = 0;
    cfg.retry_threshold = 1;
    struct tracker *t = tracker_new(&cfg);
    tracker_set_sink(t, tm_sink, NULL);

    char (*ids)[16] = calloc(peers, sizeof *ids);
    if (!ids)
        return 1;
    static const char announce[] = "{\"action\":\"announce\"}";
    static const char pulse[] = "{\"action\":\"pulse\"}";
    uint64_t now = 1000;
    struct tracker_src src = { .transport = TRACKER_UDP };
    for (uint32_t i = 0; i < peers; i++) {
        tm_addr(&src.addr, i);
        tm_last_len = 0;
        tracker_on_datagram(t, announce, sizeof announce - 1, &src, now);
        const char *p = tm_last_len ? strstr(tm_last, "\"shareId\":\"") : NULL;
        if (!p) {
            fprintf(stderr, "tracker_micro: announce %u got no shareId: %.*s\n", i, (int)tm_last_len,
                    tm_last);
            return 1;
        }
        p += 11;
        size_t n = strcspn(p, "\"");
        memcpy(ids[i], p, n < 15 ? n : 15);
    }

    /* In batches of 64 as udp.c reads them; with pf, the batch's address
     * lookups are prefetched first, as udp.c does. */
    double best[2][TM_KINDS];
    for (int pf = 0; pf < 2; pf++)
        for (int k = 0; k < TM_KINDS; k++)
            best[pf][k] = 1e30;
    enum { BATCH = 64 };
    struct addr batch[BATCH];
    char push[BATCH][64];
    size_t push_len[BATCH];
    const struct registry *reg = tracker_registry(t);
    for (int round = 0; round < 3; round++) {
        for (int pf = 0; pf < 2; pf++) {
            for (int k = 0; k < TM_KINDS; k++) {
                double spent = 0;
                for (uint32_t r = 0; r < reqs; r += BATCH) {
                    for (int j = 0; j < BATCH; j++) {
                        tm_addr(&batch[j], tm_rand(peers));
                        if (k == TM_PUSH)
                            push_len[j] = (size_t)snprintf(push[j], sizeof push[j],
                                                           "{\"action\":\"push\",\"shareId\":\"%s\"}",
                                                           ids[tm_rand(peers)]);
                    }
                    double t0 = tm_cpu_ns();
                    if (pf)
                        registry_prefetch_addrs(reg, batch, BATCH);
                    for (int j = 0; j < BATCH; j++) {
                        src.addr = batch[j];
                        if (k == TM_ANNOUNCE)
                            tracker_on_datagram(t, announce, sizeof announce - 1, &src, now);
                        else if (k == TM_PULSE)
                            tracker_on_datagram(t, pulse, sizeof pulse - 1, &src, now);
                        else
                            tracker_on_datagram(t, push[j], push_len[j], &src, now);
                    }
                    spent += tm_cpu_ns() - t0;
                }
                double ns = spent / (double)((reqs + BATCH - 1) / BATCH * BATCH);
                if (ns < best[pf][k])
                    best[pf][k] = ns;
            }
        }
    }
    const struct stats *st = tracker_stats(t);
    printf("tracker_micro: %u peers, %u requests per kind, best of 3 rounds (thread CPU time)\n", peers,
           reqs);
    printf("  %-9s %9s %9s\n", "ns/req", "plain", "prefetch");
    for (int k = 0; k < TM_KINDS; k++)
        printf("  %-9s %9.0f %9.0f\n", tm_names[k], best[0][k], best[1][k]);
    for (int pf = 0; pf < 2; pf++)
        printf("  mix (10%% announce, 80%% pulse, 10%% push)%s: %.0f ns/request\n", pf ? ", prefetch" : "",
               0.1 * best[pf][TM_ANNOUNCE] + 0.8 * best[pf][TM_PULSE] + 0.1 * best[pf][TM_PUSH]);
    printf("  (%llu datagrams sent, %llu pushes, %u live peers)\n", tm_sent,
           (unsigned long long)st->pushes, registry_count(tracker_registry(t)));
    tracker_free(t);
    free(ids);
    return 0;
}
