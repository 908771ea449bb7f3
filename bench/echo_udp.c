/* echo_udp: the benchmark's ceiling — a minimal UDP echo server that batches
 * with recvmmsg/sendmmsg, one thread, no parsing. What punchd is compared
 * against: the most a single core can answer tiny datagrams here.
 *
 *   echo_udp [--bind 127.0.0.1] [--port 0] [--max-seconds 1200]
 *
 * Prints "echo_udp listening on udp 127.0.0.1:PORT" on stderr once bound,
 * stops on SIGINT/SIGTERM, or by itself after --max-seconds, and then prints
 * "echo_udp stopped: N datagrams" on stderr. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ECHO_BATCH 64
#define ECHO_CAP 2048       /* bytes of one datagram; benchmark requests are tiny */
#define ECHO_SOCKBUF (4 << 20)

static volatile sig_atomic_t echo_stop;

static void echo_on_signal(int sig)
{
    (void)sig;
    echo_stop = 1;
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
        fprintf(stderr, "usage: echo_udp [--bind IP] [--port N] [--max-seconds N]\n");
        return 2;
    }
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, bind_ip, &sin.sin_addr) != 1) {
        fprintf(stderr, "echo_udp: bad --bind %s\n", bind_ip);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int buf = ECHO_SOCKBUF;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        perror("echo_udp: bind");
        return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    socklen_t sl = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &sl);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = echo_on_signal;  /* no SA_RESTART: poll returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    if (max_seconds > 0)
        alarm((unsigned)max_seconds);

    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof ip);
    fprintf(stderr, "echo_udp listening on udp %s:%u\n", ip, ntohs(sin.sin_port));

    static char data[ECHO_BATCH][ECHO_CAP];
    struct mmsghdr msg[ECHO_BATCH];
    struct iovec iov[ECHO_BATCH];
    struct sockaddr_in from[ECHO_BATCH];
    unsigned long long total = 0;
    while (!echo_stop) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        for (int i = 0; i < ECHO_BATCH; i++) {
            iov[i].iov_base = data[i];
            iov[i].iov_len = ECHO_CAP;
            memset(&msg[i].msg_hdr, 0, sizeof msg[i].msg_hdr);
            msg[i].msg_hdr.msg_name = &from[i];
            msg[i].msg_hdr.msg_namelen = sizeof from[i];
            msg[i].msg_hdr.msg_iov = &iov[i];
            msg[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, msg, ECHO_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            continue;
        /* Each datagram goes back to its sender with the bytes it brought. */
        for (int i = 0; i < n; i++)
            iov[i].iov_len = msg[i].msg_len;
        int off = 0;
        while (off < n) {
            int m = sendmmsg(fd, msg + off, (unsigned)(n - off), 0);
            if (m < 0) {
                if (errno == EINTR)
                    continue;
                off++;  /* that destination failed: skip it */
                continue;
            }
            off += m;
        }
        total += (unsigned long long)n;
    }
    fprintf(stderr, "echo_udp stopped: %llu datagrams\n", total);
    close(fd);
    return 0;
}
