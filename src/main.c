/* main: punchd's entry point — configuration, the event loop, the UDP edge,
 * expiry and clean shutdown on SIGINT/SIGTERM. */
#include <ev.h>
#include <signal.h>
#include <sodium.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>

#include "addr.h"
#include "config.h"
#include "expire.h"
#include "health.h"
#include "log.h"
#include "tracker.h"
#include "udp.h"
#include "ws.h"
#include "version.h"
#include "worker.h"

#define EXIT_CONFIG 2 /* documented: a configuration error */

static const char *const main_compat_names[] = { "readme", "sobani-app" };

/* Every TCP connection is a descriptor: raise the soft limit to fit
 * max_connections, and say so when the hard limit does not allow it. */
static void main_raise_nofile(long max_connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_connections + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rlim_t hard = rl.rlim_max;
    rl.rlim_cur = want < hard ? want : hard;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        log_warn("open-file limit %llu is below max_connections %ld + 64: raise it (ulimit -n / LimitNOFILE)",
                 (unsigned long long)rl.rlim_cur, max_connections);
}

#define MAIN_DRAIN_SECONDS 2.0 /* for WebSocket clients to take their close 1001 */

struct main_stop {
    ev_signal sigint, sigterm;
    ev_timer poll;             /* while draining: are the connections gone? */
    struct ws_server *ws;
    double deadline;
};

static void main_on_drain(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct main_stop *st = w->data;
    if (ws_open(st->ws) == 0 || ev_now(loop) >= st->deadline)
        ev_break(loop, EVBREAK_ALL);
}

/* First signal: close every WebSocket with 1001, wait briefly for the closes
 * to go out, then stop. A second signal stops at once. */
static void main_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct main_stop *st = w->data;
    const char *name = w->signum == SIGINT ? "SIGINT" : "SIGTERM";
    if (ev_is_active(&st->poll)) {
        log_info("received %s again, stopping now", name);
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    unsigned open = ws_shutdown(st->ws);
    log_info("received %s, stopping (%u connections closing)", name, open);
    if (open == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    st->deadline = ev_now(loop) + MAIN_DRAIN_SECONDS;
    ev_timer_start(loop, &st->poll);
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512];

    if (sodium_init() < 0) {
        fprintf(stderr, "punchd: libsodium failed to initialise\n");
        return 1;
    }
    switch (config_from_args(&cfg, argc, argv, err, sizeof err)) {
    case CONFIG_CLI_HELP:
        config_usage(stdout);
        return 0;
    case CONFIG_CLI_VERSION:
        printf("punchd %s\n", PUNCHD_VERSION);
        return 0;
    case CONFIG_CLI_HEALTH:
        return health_check(&cfg, 3000);
    case CONFIG_CLI_RUN:
        break;
    default:
        fprintf(stderr, "punchd: config error: %s\n", err);
        return EXIT_CONFIG;
    }
    log_set_level((enum log_level)cfg.log_level);
    signal(SIGPIPE, SIG_IGN);

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        log_error("cannot initialise the event loop");
        return 1;
    }
    struct tracker *tracker = tracker_new(&cfg);
    main_raise_nofile(cfg.max_connections);
    /* TCP takes the UDP socket's port number. With port 0 the kernel picks a
     * free UDP port whose TCP twin may be taken: then pick again. */
    struct udp *udp = NULL;
    struct ws_server *ws = NULL;
    for (int attempt = 0; attempt < 32 && !ws; attempt++) {
        udp = udp_new(loop, &cfg, tracker, err, sizeof err);
        if (!udp)
            break;
        ws = ws_new(loop, &cfg, tracker, udp_bound(udp)->port, err, sizeof err);
        if (!ws) {
            udp_free(udp);
            udp = NULL;
            if (cfg.port != 0 || cfg.ws_port != 0)
                break;
        }
    }
    if (!ws) {
        log_error("%s", err);
        tracker_free(tracker);
        return 1;
    }
    struct udp *probe = NULL;
    if (cfg.probe_port || cfg.probe_bind[0]) {
        probe = udp_new_probe(loop, &cfg, tracker, udp_bound(udp)->port, err, sizeof err);
        if (!probe) {
            log_error("%s", err);
            ws_free(ws);
            udp_free(udp);
            tracker_free(tracker);
            return 1;
        }
    }
    struct workers *workers = workers_start(&cfg, udp, err, sizeof err);
    if (!workers) {
        log_error("%s", err);
        udp_free(probe);
        ws_free(ws);
        udp_free(udp);
        tracker_free(tracker);
        return 1;
    }
    struct expire expire;
    expire_start(&expire, loop, tracker);
    struct main_stop stop = { .ws = ws };
    ev_signal_init(&stop.sigint, main_on_signal, SIGINT);
    ev_signal_init(&stop.sigterm, main_on_signal, SIGTERM);
    stop.sigint.data = stop.sigterm.data = &stop;
    ev_timer_init(&stop.poll, main_on_drain, 0.02, 0.02);
    stop.poll.data = &stop;
    ev_signal_start(loop, &stop.sigint);
    ev_signal_start(loop, &stop.sigterm);

    char bound[ADDR_STRLEN], tcp[ADDR_STRLEN];
    addr_format(udp_bound(udp), bound, sizeof bound);
    addr_format(ws_bound(ws), tcp, sizeof tcp);
    log_info("punchd %s listening on udp %s and tcp %s (peer_ttl %lds, max_peers %ld, "
             "max_datagram %ld, max_connections %ld, compat %s, workers %ld)",
             PUNCHD_VERSION, bound, tcp, cfg.peer_ttl, cfg.max_peers, cfg.max_datagram,
             cfg.max_connections, main_compat_names[cfg.compat], cfg.workers);
    if (probe) {
        char pb[ADDR_STRLEN];
        addr_format(udp_bound(probe), pb, sizeof pb);
        log_info("NAT probes on udp %s", pb);
    }
    if (!cfg.token_key_set)
        log_info("token_key is empty: tokens are valid for this process only");

    ev_run(loop, 0);
    /* Cleanup is short and bounded: a late signal must not turn exit 0 into a kill. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);

    /* The workers go first: they may still post to WebSocket connections. */
    workers_stop(workers);
    const struct stats *st = tracker_stats(tracker);
    log_info("stopped: %u live peers, %llu announced, %llu pushes, %llu expired",
             registry_count(tracker_registry(tracker)), (unsigned long long)st->announced,
             (unsigned long long)st->pushes, (unsigned long long)st->expired);
    ev_signal_stop(loop, &stop.sigint);
    ev_signal_stop(loop, &stop.sigterm);
    ev_timer_stop(loop, &stop.poll);
    expire_stop(&expire);
    ws_free(ws);
    udp_free(probe);
    udp_free(udp);
    tracker_free(tracker);
    ev_loop_destroy(loop);
    return 0;
}
