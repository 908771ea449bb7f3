/* health: `punchd --health` (see health.h). */
#include "health.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "clock.h"

/* Waits for fd to be ready for events; 1 ready, 0 on timeout or error. */
static int health_wait(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = clock_mono_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, (int)(deadline - now));
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return 0;
    }
}

int health_check(const struct config *cfg, int timeout_ms)
{
    long port = cfg->ws_port ? cfg->ws_port : cfg->port;
    struct addr a;
    if (addr_parse_ip(&a, cfg->bind, (uint16_t)port) != 0 || port == 0) {
        fprintf(stderr, "punchd --health: no fixed TCP port to check (bind %s, port %ld)\n", cfg->bind,
                port);
        return 1;
    }
    if (addr_is_any(&a)) {
        /* A wildcard listener answers on loopback of its own family. */
        addr_parse_ip(&a, a.family == AF_INET6 ? "::1" : "127.0.0.1", (uint16_t)port);
    }
    char where[ADDR_STRLEN];
    addr_format(&a, where, sizeof where);
    uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
    struct sockaddr_storage ss;
    socklen_t sl = addr_to_sockaddr(&a, &ss, a.family == AF_INET6 ? AF_INET6 : AF_INET);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "punchd --health: socket: %s\n", strerror(errno));
        return 1;
    }
    const char *why = NULL;
    char buf[512];
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
        why = strerror(errno);
    } else if (!health_wait(fd, POLLOUT, deadline)) {
        why = "connect timed out";
    } else {
        int soerr = 0;
        socklen_t el = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el);
        static const char req[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if (soerr != 0)
            why = strerror(soerr);
        else if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1))
            why = "cannot send the request";
        /* The status line is all we need. */
        while (!why && got < 12 && health_wait(fd, POLLIN, deadline)) {
            ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    close(fd);
    buf[got] = '\0';
    if (!why && (got < 12 || strncmp(buf, "HTTP/1.1 200", 12) != 0))
        why = got ? "unexpected answer" : "no answer";
    if (why) {
        fprintf(stderr, "punchd --health: %s: %s\n", where, why);
        return 1;
    }
    printf("punchd --health: %s: ok\n", where);
    return 0;
}
