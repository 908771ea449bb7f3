/* punch: command-line peer on top of libpunch.
 *
 *   punch --tracker HOST:PORT [options] listen
 *   punch --tracker HOST:PORT [options] connect SHAREID
 *
 * Registers with the tracker, connects to one peer (punching, else the
 * relay), then copies stdin to the peer and the peer's bytes to stdout over
 * libpunch's encrypted stream. Status lines go to stderr, each starting
 * "punch: " (shareId, nat, connected path=... rtt_ms=... peer=..., error ...).
 * Exit: 0 once both sides closed their stdin and said bye; 1 on an error
 * (including the --timeout for registering and connecting); 2 on a usage
 * error. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "punch.h"

#define PUNCH_CLI_LINGER_MIN 100
#define PUNCH_CLI_LINGER_MAX 1000

static void usage(FILE *f)
{
    fprintf(f,
            "usage: punch --tracker HOST:PORT [--ws] [--relay] [--probe HOST:PORT] [--key K]\n"
            "             [--timeout SECONDS] [--bind IP] listen\n"
            "       punch --tracker HOST:PORT [...] connect SHAREID\n"
            "\n"
            "  --tracker HOST:PORT  the punchd tracker (UDP; WebSocket on the same port number)\n"
            "  --ws                 reach the tracker over WebSocket only (UDP to it is blocked)\n"
            "  --relay              skip punching: use the tracker's relay\n"
            "  --probe HOST:PORT    where to probe the NAT (default: what the tracker says)\n"
            "  --key K              the tracker's access key\n"
            "  --timeout SECONDS    limit for registering and connecting (default 30; 0 = none)\n"
            "  --bind IP            local address of the UDP socket\n"
            "  --ws-port PORT       the tracker's TCP port when it differs from the UDP one\n"
            "  --lost SECONDS       a connected peer silent this long is lost (default 15)\n"
            "\n"
            "stdin goes to the peer, the peer's data to stdout; status lines on stderr.\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "punch: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    return 2;
}

/* Parses a non-negative decimal number (seconds, fractions allowed). */
static int parse_seconds(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || *end || end == s || !(v >= 0) || v > 86400 * 365)
        return -1;
    *out = v;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A closed stdin/stdout/stderr would hand its number to the first socket
 * (and the socket would be read as stdin): hold them open on /dev/null. */
static void hold_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (n >= 0 && n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
}

int main(int argc, char **argv)
{
    hold_std_fds();
    struct punch_config cfg;
    punch_config_init(&cfg);
    cfg.accept_income = 0;
    double timeout_s = 30;
    const char *mode = NULL, *peer = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[32];
        if (strncmp(a, "--", 2) == 0) {
            const char *eq = strchr(a, '=');
            size_t nl = eq ? (size_t)(eq - a) : strlen(a);
            if (nl >= sizeof name)
                return usage_error("unknown option %s", a);
            memcpy(name, a, nl);
            name[nl] = '\0';
            if (eq)
                val = eq + 1;
        } else {
            if (!mode) {
                mode = a;
            } else if (!peer) {
                peer = a;
            } else {
                return usage_error("unexpected argument %s", a);
            }
            continue;
        }
        int takes = strcmp(name, "--tracker") == 0 || strcmp(name, "--probe") == 0 ||
                    strcmp(name, "--key") == 0 || strcmp(name, "--timeout") == 0 ||
                    strcmp(name, "--bind") == 0 || strcmp(name, "--ws-port") == 0 ||
                    strcmp(name, "--lost") == 0;
        if (takes && !val) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value", name);
            val = argv[++i];
        } else if (!takes && val) {
            return usage_error("%s takes no value", name);
        }
        if (strcmp(name, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(name, "--tracker") == 0) {
            cfg.tracker = val;
        } else if (strcmp(name, "--probe") == 0) {
            cfg.probe = val;
        } else if (strcmp(name, "--key") == 0) {
            cfg.key = val;
        } else if (strcmp(name, "--bind") == 0) {
            cfg.bind_ip = val;
        } else if (strcmp(name, "--timeout") == 0) {
            if (parse_seconds(val, &timeout_s) != 0)
                return usage_error("--timeout must be a number of seconds, not %s", val);
        } else if (strcmp(name, "--lost") == 0) {
            double lost_s;
            if (parse_seconds(val, &lost_s) != 0 || lost_s < 0.3 || lost_s > 3600)
                return usage_error("--lost must be 0.3 to 3600 seconds, not %s", val);
            cfg.lost_ms = (uint32_t)(lost_s * 1000);
        } else if (strcmp(name, "--ws-port") == 0) {
            char *end = NULL;
            long v = strtol(val, &end, 10);
            if (!end || *end || v < 1 || v > 65535)
                return usage_error("--ws-port must be a port 1-65535, not %s", val);
            cfg.ws_port = (uint16_t)v;
        } else if (strcmp(name, "--ws") == 0) {
            cfg.ws_only = 1;
        } else if (strcmp(name, "--relay") == 0) {
            cfg.relay_only = 1;
        } else {
            return usage_error("unknown option %s", name);
        }
    }
    if (!cfg.tracker)
        return usage_error("%s", "--tracker HOST:PORT is required");
    if (!mode)
        return usage_error("%s", "say listen or connect SHAREID");
    if (strcmp(mode, "listen") == 0) {
        if (peer)
            return usage_error("listen takes no argument (got %s)", peer);
        cfg.accept_income = 1;
    } else if (strcmp(mode, "connect") == 0) {
        if (!peer)
            return usage_error("%s", "connect needs a SHAREID");
    } else {
        return usage_error("unknown command %s (listen or connect)", mode);
    }

    signal(SIGPIPE, SIG_IGN);
    uint64_t now = punch_now_ms();
    struct punch *p = NULL;
    char err[256] = "";
    int rc = punch_new(&cfg, now, &p, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "punch: error %s\n", err);
        return rc == PUNCH_E_INVAL ? 2 : 1;
    }
    if (peer && punch_connect(p, peer) != 0) {
        punch_free(p);
        return usage_error("not a shareId: %s", peer);
    }

    uint64_t deadline = timeout_s > 0 ? now + (uint64_t)(timeout_s * 1000) : 0;
    int connected = 0, stdin_eof = 0, status = -1;
    uint64_t linger_until = 0;
    uint8_t buf[PUNCH_MSG_MAX];

    while (status < 0) {
        now = punch_now_ms();
        if (punch_poll(p, now) != 0) {
            fprintf(stderr, "punch: error socket: %s\n", strerror(errno));
            status = 1;
            break;
        }
        struct punch_event ev;
        while (status < 0 && punch_next_event(p, &ev)) {
            switch (ev.type) {
            case PUNCH_EV_REGISTERED:
                fprintf(stderr, "punch: shareId %s\npunch: nat %s\n", ev.share_id, punch_nat_name(ev.nat));
                break;
            case PUNCH_EV_CONNECTED:
                connected = 1;
                fprintf(stderr, "punch: connected path=%s rtt_ms=%.2f peer=%s\n", punch_path_name(ev.path),
                        ev.rtt_ms, ev.peer_addr);
                /* Read it to the peer's user: equal on both sides = nobody in the middle. */
                char fp[PUNCH_FINGERPRINT_LEN + 1];
                if (punch_fingerprint(p, fp) == 0)
                    fprintf(stderr, "punch: fingerprint %s\n", fp);
                break;
            case PUNCH_EV_DATA:
                if (write_all(1, ev.data, ev.len) != 0) {
                    fprintf(stderr, "punch: error stdout: %s\n", strerror(errno));
                    status = 1;
                }
                break;
            case PUNCH_EV_ERROR:
                if (ev.fatal) {
                    fprintf(stderr, "punch: error %s\n", ev.text);
                    status = 1;
                }
                break;
            default:
                break;
            }
        }
        if (status >= 0)
            break;
        if (!connected && deadline && now >= deadline) {
            fprintf(stderr, "punch: error timeout\n");
            status = 1;
            break;
        }
        if (stdin_eof && punch_finished(p)) {
            /* Both byes are through. Stay a moment to re-acknowledge the
             * peer's bye should our acknowledgement have been lost. */
            if (!linger_until) {
                double l = 3 * punch_rtt_ms(p);
                if (l < PUNCH_CLI_LINGER_MIN)
                    l = PUNCH_CLI_LINGER_MIN;
                if (l > PUNCH_CLI_LINGER_MAX)
                    l = PUNCH_CLI_LINGER_MAX;
                linger_until = now + (uint64_t)l;
            }
            if (now >= linger_until) {
                status = 0;
                break;
            }
        }

        struct pollfd pfd[PUNCH_MAX_FDS + 1];
        struct punch_pollfd lfd[PUNCH_MAX_FDS];
        int n = punch_fds(p, lfd, PUNCH_MAX_FDS);
        for (int i = 0; i < n; i++) {
            pfd[i].fd = lfd[i].fd;
            pfd[i].events = lfd[i].events;
            pfd[i].revents = 0;
        }
        int in_idx = -1;
        if (connected && !stdin_eof && punch_send_room(p) > 0) {
            in_idx = n;
            pfd[n].fd = 0;
            pfd[n].events = POLLIN;
            pfd[n].revents = 0;
            n++;
        }
        int wait = punch_timeout_ms(p, now);
        if (!connected && deadline) {
            uint64_t left = deadline > now ? deadline - now : 0;
            if ((uint64_t)wait > left)
                wait = (int)left;
        }
        if (linger_until) {
            uint64_t left = linger_until > now ? linger_until - now : 0;
            if ((uint64_t)wait > left)
                wait = (int)left;
        }
        if (poll(pfd, (nfds_t)n, wait) < 0 && errno != EINTR) {
            fprintf(stderr, "punch: error poll: %s\n", strerror(errno));
            status = 1;
            break;
        }
        if (in_idx >= 0 && (pfd[in_idx].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
            ssize_t r = read(0, buf, sizeof buf);
            if (r > 0) {
                punch_send(p, buf, (size_t)r); /* room was checked before polling */
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                stdin_eof = 1;
                punch_close(p);
            }
        }
    }
    punch_free(p);
    return status;
}
