/* loadgen: punchd's benchmark load generator (loopback only).
 *
 * Reads one command per line on stdin and answers each with one JSON line on
 * stdout, keeping its sockets and preloaded peers between commands:
 *
 *   udp_setup   sockets=16 peers=1000000 [seed=42]
 *   udp_preload target=127.0.0.1:P [upto=N] [window=256] [max_secs=120]
 *   udp_run     target=127.0.0.1:P [mix=10,80,10] [secs=5] [warmup=0.5]
 *               [window=256] [rate=0] [pid=SERVER_PID] [label=NAME]
 *   tcp_open    target=127.0.0.1:P n=N [ws=1] [announce=1] [parallel=128]
 *   tcp_run     [active=1000] [secs=5] [warmup=0.5] [mix=10,90] [pid=PID] [label=NAME]
 *   tcp_close
 *   quit
 *
 * It stops by itself: on quit, at the end of stdin, or when --max-seconds
 * (default 1200) have passed since it started (SIGALRM), whatever the driver
 * does. Exit status 0, or 1 if a command failed. */
#include "lg.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long max_seconds = 1200;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc) {
            max_seconds = strtol(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: loadgen [--max-seconds N] < commands\n");
            return 2;
        }
    }
    /* The default action of SIGALRM ends the process: a safety net against a
     * driver that never sends quit. */
    if (max_seconds > 0)
        alarm((unsigned)max_seconds);
    signal(SIGPIPE, SIG_IGN);

    char line[4096];
    int failed = 0;
    struct lg_args a;
    while (fgets(line, sizeof line, stdin)) {
        char *cmd = lg_args_parse(line, &a);
        if (!cmd)
            continue;
        int rc;
        if (strcmp(cmd, "quit") == 0)
            break;
        else if (strcmp(cmd, "udp_setup") == 0)
            rc = lg_udp_setup(&a);
        else if (strcmp(cmd, "udp_preload") == 0)
            rc = lg_udp_preload(&a);
        else if (strcmp(cmd, "udp_run") == 0)
            rc = lg_udp_run(&a);
        else if (strcmp(cmd, "tcp_open") == 0)
            rc = lg_tcp_open(&a);
        else if (strcmp(cmd, "tcp_run") == 0)
            rc = lg_tcp_run(&a);
        else if (strcmp(cmd, "tcp_close") == 0)
            rc = lg_tcp_close(&a);
        else {
            lg_reply_error("unknown", "unknown command");
            rc = -1;
        }
        if (rc != 0)
            failed = 1;
    }
    lg_udp_free();  /* TCP connections close with the process */
    return failed;
}
