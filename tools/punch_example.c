/* punch_example: the smallest game-loop embedding of libpunch (the one
 * docs/libpunch.md walks through). A fixed 16 ms "frame": poll libpunch,
 * drain its events, send a "tick N" line four times a second once
 * connected, and say bye after eight.
 *
 *   punch_example HOST:PORT            wait for a peer (prints our shareId)
 *   punch_example HOST:PORT SHAREID    connect to that peer
 *
 * Messages from the peer are printed as they come. Exit 0 after both byes,
 * 1 on an error. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "punch.h"

static void frame_sleep(void)
{
    struct timespec ts = {0, 16 * 1000 * 1000}; /* a 60 Hz game frame */
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: punch_example HOST:PORT [SHAREID]\n");
        return 2;
    }
    struct punch_config cfg;
    punch_config_init(&cfg);
    cfg.tracker = argv[1];
    cfg.accept_income = argc == 2; /* no SHAREID: take the first peer that pushes */

    char err[256];
    struct punch *p;
    if (punch_new(&cfg, punch_now_ms(), &p, err, sizeof err) != 0) {
        fprintf(stderr, "example: %s\n", err);
        return 1;
    }
    if (argc == 3 && punch_connect(p, argv[2]) != 0) {
        fprintf(stderr, "example: not a shareId: %s\n", argv[2]);
        punch_free(p);
        return 2;
    }

    int connected = 0, ticks = 0, status = -1;
    uint64_t next_tick = 0;
    while (status < 0) {
        uint64_t now = punch_now_ms();
        punch_poll(p, now); /* all the network work of this frame, never blocks */

        struct punch_event ev;
        while (punch_next_event(p, &ev)) {
            switch (ev.type) {
            case PUNCH_EV_REGISTERED:
                printf("registered: shareId %s (NAT %s)\n", ev.share_id, punch_nat_name(ev.nat));
                break;
            case PUNCH_EV_CONNECTED:
                printf("connected to %s via %s (%s), rtt %.1f ms\n", ev.share_id, punch_path_name(ev.path),
                       ev.peer_addr, ev.rtt_ms);
                connected = 1;
                next_tick = now;
                break;
            case PUNCH_EV_DATA:
                printf("peer: %.*s", (int)ev.len, (const char *)ev.data);
                break;
            case PUNCH_EV_PEER_CLOSED:
                printf("peer said bye\n");
                break;
            case PUNCH_EV_ERROR:
                fprintf(stderr, "example: %s\n", ev.text);
                if (ev.fatal)
                    status = 1;
                break;
            default:
                break;
            }
        }
        fflush(stdout);

        if (connected && ticks < 8 && now >= next_tick && punch_send_room(p) > 0) {
            char msg[32];
            int n = snprintf(msg, sizeof msg, "tick %d\n", ++ticks);
            punch_send(p, msg, (size_t)n);
            next_tick = now + 250;
            if (ticks == 8)
                punch_close(p); /* bye, after the ticks */
        }
        if (status < 0 && punch_finished(p))
            status = 0;
        if (status < 0)
            frame_sleep(); /* the rest of the game's frame */
    }
    punch_free(p);
    return status;
}
