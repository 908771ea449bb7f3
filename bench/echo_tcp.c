/* echo_tcp: the WebSocket benchmark's yardstick — a minimal TCP echo server
 * on epoll, one thread: every byte read goes straight back. punchd's
 * WebSocket messages/s are compared with this measured the same way.
 *
 *   echo_tcp [--bind 127.0.0.1] [--port 0] [--max-seconds 1200]
 *
 * Prints "echo_tcp listening on tcp 127.0.0.1:PORT" on stderr once bound,
 * stops on SIGINT/SIGTERM or by itself after --max-seconds. Raises its
 * open-file limit to the hard limit (thousands of idle connections). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ECHO_EVENTS 256
#define ECHO_CHUNK 16384

/* Bytes a client did not take yet (rare: messages are tiny). */
struct echo_conn {
    int fd;
    char *pend;       /* owned; NULL when nothing is pending */
    size_t pend_len;
};

static volatile sig_atomic_t echo_stop;

static void echo_on_signal(int sig)
{
    (void)sig;
    echo_stop = 1;
}

static void echo_close(int ep, struct echo_conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pend);
    free(c);
}

/* Sends buf[0..len) after anything pending; keeps what the socket does not
 * take. 0, or -1 when the connection is gone. */
static int echo_send(int ep, struct echo_conn *c, const char *buf, size_t len)
{
    if (c->pend) {
        char *grown = realloc(c->pend, c->pend_len + len);
        if (!grown)
            return -1;
        memcpy(grown + c->pend_len, buf, len);
        c->pend = grown;
        c->pend_len += len;
        return 0;  /* EPOLLOUT is already armed */
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    if (off < len) {
        c->pend = malloc(len - off);
        if (!c->pend)
            return -1;
        memcpy(c->pend, buf + off, len - off);
        c->pend_len = len - off;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    return 0;
}

static int echo_flush(int ep, struct echo_conn *c)
{
    char *p = c->pend;
    size_t len = c->pend_len;
    c->pend = NULL;
    c->pend_len = 0;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    int rc = echo_send(ep, c, p, len);
    free(p);
    return rc;
}

int main(int argc, char **argv)
{
    const char *bind_ip = "127.0.0.1";
    long port = 0, max_seconds = 1200;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--bind") == 0)
            bind_ip = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--max-seconds") == 0)
            max_seconds = strtol(argv[i + 1], NULL, 10);
    }
    if (argc % 2 == 0 || port < 0 || port > 65535) {
        fprintf(stderr, "usage: echo_tcp [--bind IP] [--port N] [--max-seconds N]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, bind_ip, &sin.sin_addr) != 1) {
        fprintf(stderr, "echo_tcp: bad --bind %s\n", bind_ip);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(lfd, 4096) != 0) {
        perror("echo_tcp: bind/listen");
        return 1;
    }
    socklen_t sl = sizeof sin;
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) != 0) {
        perror("echo_tcp: epoll");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = echo_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (max_seconds > 0)
        alarm((unsigned)max_seconds);

    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof ip);
    fprintf(stderr, "echo_tcp listening on tcp %s:%u\n", ip, ntohs(sin.sin_port));

    static char buf[ECHO_CHUNK];
    struct epoll_event evs[ECHO_EVENTS];
    unsigned long conns = 0;
    while (!echo_stop) {
        int n = epoll_wait(ep, evs, ECHO_EVENTS, 200);
        for (int i = 0; i < n; i++) {
            struct echo_conn *c = evs[i].data.ptr;
            if (!c) {
                /* accept everything waiting; out of descriptors: try later */
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
                    struct echo_conn *nc = calloc(1, sizeof *nc);
                    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = nc };
                    if (!nc || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
                        free(nc);
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    conns++;
                }
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && c->pend && echo_flush(ep, c) != 0) {
                echo_close(ep, c);
                continue;
            }
            if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            ssize_t r = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                continue;
            if (r <= 0 || echo_send(ep, c, buf, (size_t)r) != 0)
                echo_close(ep, c);
        }
    }
    fprintf(stderr, "echo_tcp stopped: %lu connections accepted\n", conns);
    return 0;
}
