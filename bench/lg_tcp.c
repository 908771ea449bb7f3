/* lg_tcp: the load generator's TCP side — many connections, upgraded to
 * WebSocket (punchd) or left raw (the bare TCP echo), then a measured run in
 * which some of them keep exactly one message in flight each while the rest
 * stay idle.
 *
 * Both targets get the same bytes: a masked client text frame carrying a
 * pulse or an announce. punchd answers with a server frame (parsed here); the
 * echo sends the same bytes back (complete when as many bytes have come back).
 * Connections come from distinct source addresses 127.2.x.y so that neither
 * ephemeral ports nor any per-address limit shape the result. */
#include "lg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define LG_TCP_MAX_CONNS 60000
#define LG_TCP_RXCAP 2048       /* replies are small; a larger frame is an error here */
#define LG_TCP_EVENTS 256

enum lg_tcp_state { LG_CONNECTING, LG_HANDSHAKE, LG_ANNOUNCING, LG_READY, LG_DEAD };

struct lg_conn {
    int fd;
    uint8_t state;     /* enum lg_tcp_state */
    uint8_t ws;        /* 1: WebSocket frames come back; 0: raw echo */
    uint8_t busy;      /* a message is in flight */
    uint8_t active;    /* part of the current run */
    uint16_t rlen;
    uint16_t want;     /* echo: bytes still expected for the message in flight */
    uint64_t sent_ns;
    char rbuf[LG_TCP_RXCAP];
};

static struct {
    int ep;
    struct lg_conn **c;
    uint32_t n;
    uint64_t replies, errors, closed;
    struct lg_hist hist;
    int record;
} lg_t = { .ep = -1 };

/* Masked client frames (the mask is fixed: the server only has to unmask). */
static char lg_frame_pulse[64], lg_frame_announce[64];
static size_t lg_frame_pulse_len, lg_frame_announce_len;

static size_t lg_tcp_frame(char *out, const char *text)
{
    static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    size_t n = strlen(text);
    out[0] = (char)0x81;           /* FIN, text */
    out[1] = (char)(0x80 | n);     /* masked, n < 126 */
    memcpy(out + 2, mask, 4);
    for (size_t i = 0; i < n; i++)
        out[6 + i] = (char)(text[i] ^ mask[i & 3]);
    return n + 6;
}

static void lg_tcp_frames_init(void)
{
    if (lg_frame_pulse_len)
        return;
    lg_frame_pulse_len = lg_tcp_frame(lg_frame_pulse, "{\"action\":\"pulse\"}");
    lg_frame_announce_len = lg_tcp_frame(lg_frame_announce, "{\"action\":\"announce\"}");
}

static void lg_tcp_kill(struct lg_conn *c)
{
    if (c->state == LG_DEAD)
        return;
    epoll_ctl(lg_t.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = LG_DEAD;
    c->busy = 0;
    lg_t.closed++;
}

/* Writes all of buf (tiny: fits the socket buffer); 0, or -1 and the
 * connection is dead. */
static int lg_tcp_write(struct lg_conn *c, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            lg_tcp_kill(c);
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

/* Sends one message of the mix (weights announce, pulse) on c. */
static int lg_tcp_send_msg(struct lg_conn *c, int announce)
{
    const char *f = announce ? lg_frame_announce : lg_frame_pulse;
    size_t n = announce ? lg_frame_announce_len : lg_frame_pulse_len;
    c->sent_ns = lg_now_ns();
    c->busy = 1;
    c->want = c->ws ? 0 : (uint16_t)n;
    return lg_tcp_write(c, f, n);
}

/* One complete reply arrived on c. */
static void lg_tcp_done(struct lg_conn *c, uint64_t now)
{
    if (!c->busy)
        return;
    c->busy = 0;
    lg_t.replies++;
    if (lg_t.record)
        lg_hist_add(&lg_t.hist, now - c->sent_ns);
}

/* Consumes complete server frames from c->rbuf. Returns -1 on a protocol error. */
static int lg_tcp_frames(struct lg_conn *c, uint64_t now)
{
    size_t off = 0;
    while (c->rlen - off >= 2) {
        const unsigned char *h = (const unsigned char *)c->rbuf + off;
        uint64_t len = h[1] & 0x7f;
        size_t hdr = 2;
        if (h[1] & 0x80)
            return -1;  /* a server never masks */
        if (len == 126) {
            if (c->rlen - off < 4)
                break;
            len = ((uint64_t)h[2] << 8) | h[3];
            hdr = 4;
        } else if (len == 127) {
            return -1;  /* no reply of ours is that large */
        }
        if (hdr + len > LG_TCP_RXCAP)
            return -1;
        if (c->rlen - off < hdr + len)
            break;
        unsigned op = h[0] & 0x0f;
        if (op == 0x1) {
            static const char err[] = "{\"action\":\"error\"";
            if (len >= sizeof err - 1 && memcmp(h + hdr, err, sizeof err - 1) == 0)
                lg_t.errors++;
            if (c->state == LG_ANNOUNCING)
                c->state = LG_READY;
            else
                lg_tcp_done(c, now);
        } else if (op == 0x9) {
            /* ping: answer with a pong carrying the same payload, masked */
            char pong[6 + 125];
            static const unsigned char mask[4] = { 1, 2, 3, 4 };
            if (len > 125)
                return -1;
            pong[0] = (char)0x8a;
            pong[1] = (char)(0x80 | len);
            memcpy(pong + 2, mask, 4);
            for (size_t i = 0; i < len; i++)
                pong[6 + i] = (char)(h[hdr + i] ^ mask[i & 3]);
            if (lg_tcp_write(c, pong, 6 + len) != 0)
                return -1;
        } else if (op == 0x8) {
            return -1;  /* the server closes */
        }
        off += hdr + len;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen = (uint16_t)(c->rlen - off);
    return 0;
}

/* The upgrade answer: waits for the whole head, requires 101. */
static int lg_tcp_handshake(struct lg_conn *c, int announce)
{
    char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (!end)
        return c->rlen >= LG_TCP_RXCAP ? -1 : 0;
    if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.1 101", 12) != 0)
        return -1;
    size_t head = (size_t)(end + 4 - c->rbuf);
    memmove(c->rbuf, c->rbuf + head, c->rlen - head);
    c->rlen = (uint16_t)(c->rlen - head);
    if (announce) {
        c->state = LG_ANNOUNCING;
        return lg_tcp_write(c, lg_frame_announce, lg_frame_announce_len);
    }
    c->state = LG_READY;
    return 0;
}

static void lg_tcp_on_readable(struct lg_conn *c, int announce, uint64_t now)
{
    for (;;) {
        if (c->rlen >= LG_TCP_RXCAP) {
            lg_tcp_kill(c);
            return;
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, LG_TCP_RXCAP - c->rlen, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            lg_tcp_kill(c);
            return;
        }
        c->rlen = (uint16_t)(c->rlen + n);
        int rc = 0;
        if (c->state == LG_HANDSHAKE) {
            rc = lg_tcp_handshake(c, announce);
            if (rc == 0 && c->state != LG_HANDSHAKE && c->rlen)
                rc = lg_tcp_frames(c, now);
        } else if (c->ws) {
            rc = lg_tcp_frames(c, now);
        } else {
            /* raw echo: the reply is complete once `want` bytes are back */
            if (c->busy && c->rlen >= c->want) {
                c->rlen = (uint16_t)(c->rlen - c->want);
                lg_tcp_done(c, now);
            }
            if (!c->busy)
                c->rlen = 0;  /* stray bytes: nothing else is expected */
        }
        if (rc != 0) {
            lg_tcp_kill(c);
            return;
        }
        if ((size_t)n < LG_TCP_RXCAP / 2)
            return;  /* read everything there was */
    }
}

/* Connect finished (writable): send the upgrade, or be ready. */
static void lg_tcp_on_connected(struct lg_conn *c, const char *hostport)
{
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
        lg_tcp_kill(c);
        return;
    }
    if (!c->ws) {
        c->state = LG_READY;
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     hostport);
    c->state = LG_HANDSHAKE;
    lg_tcp_write(c, req, (size_t)n);
}

int lg_tcp_open(const struct lg_args *a)
{
    struct sockaddr_in target;
    const char *hostport = lg_arg_str(a, "target", "");
    if (lg_parse_target(hostport, &target) != 0) {
        lg_reply_error("tcp_open", "target=127.x.y.z:port");
        return -1;
    }
    long n = lg_arg_long(a, "n", 100);
    int ws = (int)lg_arg_long(a, "ws", 1), announce = (int)lg_arg_long(a, "announce", 1);
    long parallel = lg_arg_long(a, "parallel", 128);
    double max_secs = lg_arg_double(a, "max_secs", 60);
    if (n < 1 || lg_t.n + (uint64_t)n > LG_TCP_MAX_CONNS || parallel < 1) {
        lg_reply_error("tcp_open", "n must be 1..60000 in all, parallel >= 1");
        return -1;
    }
    if (!ws)
        announce = 0;
    long nofile = lg_raise_nofile();
    if (nofile > 0 && (long)lg_t.n + n + 64 > nofile) {
        lg_reply_error("tcp_open", "RLIMIT_NOFILE hard limit too low for that many connections");
        return -1;
    }
    lg_tcp_frames_init();
    if (lg_t.ep < 0)
        lg_t.ep = epoll_create1(EPOLL_CLOEXEC);
    struct lg_conn **grown = realloc(lg_t.c, (lg_t.n + (size_t)n) * sizeof *grown);
    if (lg_t.ep < 0 || !grown) {
        lg_reply_error("tcp_open", "epoll or memory");
        return -1;
    }
    lg_t.c = grown;
    uint32_t first = lg_t.n, next = first, end = first + (uint32_t)n;
    uint32_t pending = 0, ready = 0, failed = 0;
    uint64_t t0 = lg_now_ns(), deadline = t0 + (uint64_t)(max_secs * 1e9);
    struct epoll_event evs[LG_TCP_EVENTS];
    lg_t.record = 0;
    while ((next < end || pending > 0) && lg_now_ns() < deadline) {
        while (next < end && pending < (uint32_t)parallel) {
            struct lg_conn *c = calloc(1, sizeof *c);
            if (!c)
                break;
            lg_t.c[next] = c;
            c->ws = (uint8_t)ws;
            c->state = LG_CONNECTING;
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            uint32_t k = next;
            next++;
            lg_t.n = next;
            if (c->fd < 0) {
                c->state = LG_DEAD;
                failed++;
                continue;
            }
            int on = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
            setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
            struct sockaddr_in src = { .sin_family = AF_INET };
            src.sin_addr.s_addr = htonl((127u << 24) | (2u << 16) | ((1 + k / 250) << 8) |
                                        (1 + k % 250));
            struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.u32 = k };
            if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0 ||
                (connect(c->fd, (struct sockaddr *)&target, sizeof target) != 0 &&
                 errno != EINPROGRESS) ||
                epoll_ctl(lg_t.ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
                close(c->fd);
                c->fd = -1;
                c->state = LG_DEAD;
                failed++;
                continue;
            }
            pending++;
        }
        int ne = epoll_wait(lg_t.ep, evs, LG_TCP_EVENTS, 10);
        uint64_t now = lg_now_ns();
        for (int i = 0; i < ne; i++) {
            uint32_t k = evs[i].data.u32;
            struct lg_conn *c = lg_t.c[k];
            uint8_t before = c->state;
            if (before == LG_DEAD)
                continue;
            if (before == LG_CONNECTING && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                lg_tcp_on_connected(c, hostport);
                if (c->state != LG_DEAD) {
                    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = k };
                    epoll_ctl(lg_t.ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            } else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                lg_tcp_on_readable(c, announce, now);
            }
            if (k >= first && before != LG_READY && before != LG_DEAD) {
                if (c->state == LG_READY) {
                    ready++;
                    pending--;
                } else if (c->state == LG_DEAD) {
                    failed++;
                    pending--;
                }
            }
        }
    }
    /* Whatever did not finish in time counts as failed and is closed. */
    for (uint32_t k = first; k < lg_t.n; k++) {
        struct lg_conn *c = lg_t.c[k];
        if (c->state != LG_READY && c->state != LG_DEAD) {
            lg_tcp_kill(c);
            failed++;
        }
    }
    uint32_t total_ready = 0;
    for (uint32_t k = 0; k < lg_t.n; k++)
        total_ready += lg_t.c[k]->state == LG_READY;
    double secs = (double)(lg_now_ns() - t0) / 1e9;
    printf("{\"cmd\":\"tcp_open\",\"target\":\"%s\",\"ws\":%d,\"opened\":%u,\"failed\":%u,"
           "\"ready_total\":%u,\"secs\":%.3f,\"nofile\":%ld}\n",
           hostport, ws, ready, failed, total_ready, secs, nofile);
    fflush(stdout);
    return 0;
}

int lg_tcp_run(const struct lg_args *a)
{
    long active = lg_arg_long(a, "active", 100);
    double secs = lg_arg_double(a, "secs", 5), warmup = lg_arg_double(a, "warmup", 0.5);
    pid_t pid = (pid_t)lg_arg_long(a, "pid", 0);
    unsigned w_announce = 10, w_pulse = 90;
    const char *ms = lg_arg_str(a, "mix", NULL);
    if (ms && sscanf(ms, "%u,%u", &w_announce, &w_pulse) != 2) {
        lg_reply_error("tcp_run", "mix=announce,pulse weights");
        return -1;
    }
    if (active < 1 || secs <= 0 || secs > 600 || warmup < 0 || warmup > 60 ||
        w_announce + w_pulse == 0) {
        lg_reply_error("tcp_run", "active >= 1, secs 0..600, warmup 0..60, mix weights > 0");
        return -1;
    }
    /* The first `active` ready connections carry the load; the rest stay idle. */
    uint32_t nact = 0;
    for (uint32_t k = 0; k < lg_t.n; k++) {
        struct lg_conn *c = lg_t.c[k];
        c->active = 0;
        if (c->state == LG_READY && nact < (uint32_t)active) {
            c->active = 1;
            nact++;
        }
    }
    if (nact == 0) {
        lg_reply_error("tcp_run", "no ready connection (run tcp_open first)");
        return -1;
    }
    uint64_t rng = 12345;
    uint64_t closed0 = lg_t.closed;
    lg_t.replies = lg_t.errors = 0;
    lg_t.record = 0;
    lg_hist_reset(&lg_t.hist);
    uint64_t t0 = lg_now_ns();
    uint64_t t_meas = t0 + (uint64_t)(warmup * 1e9), t_end = t_meas + (uint64_t)(secs * 1e9);
    double cpu0 = pid > 0 ? lg_proc_cpu_s(pid) : -1, self0 = lg_self_cpu_s();
    uint64_t sent = 0;
    for (uint32_t k = 0; k < lg_t.n; k++) {
        struct lg_conn *c = lg_t.c[k];
        if (c->active && c->state == LG_READY) {
            lg_tcp_send_msg(c, lg_rand(&rng) % (w_announce + w_pulse) < w_announce);
            sent++;
        }
    }
    struct epoll_event evs[LG_TCP_EVENTS];
    uint64_t t_stop;
    for (;;) {
        uint64_t now = lg_now_ns();
        if (!lg_t.record && now >= t_meas) {
            lg_t.record = 1;
            lg_t.replies = lg_t.errors = 0;
            sent = 0;
            lg_hist_reset(&lg_t.hist);
            cpu0 = pid > 0 ? lg_proc_cpu_s(pid) : -1;
            self0 = lg_self_cpu_s();
            t0 = now;
        }
        if (now >= t_end) {
            lg_t.record = 0;
            t_stop = now;
            break;
        }
        int ne = epoll_wait(lg_t.ep, evs, LG_TCP_EVENTS, 5);
        now = lg_now_ns();
        for (int i = 0; i < ne; i++) {
            struct lg_conn *c = lg_t.c[evs[i].data.u32];
            if (c->state == LG_DEAD)
                continue;
            lg_tcp_on_readable(c, 0, now);
            if (c->active && c->state == LG_READY && !c->busy) {
                lg_tcp_send_msg(c, lg_rand(&rng) % (w_announce + w_pulse) < w_announce);
                sent++;
            }
        }
    }
    double cpu1 = pid > 0 ? lg_proc_cpu_s(pid) : -1, self1 = lg_self_cpu_s();
    long rss = pid > 0 ? lg_proc_rss_kib(pid) : -1;
    double meas = (double)(t_stop - t0) / 1e9;
    uint64_t replies = lg_t.replies, errors = lg_t.errors;
    /* Drain the messages still in flight so the connections are idle again. */
    uint64_t drain_end = lg_now_ns() + 300000000u;
    for (;;) {
        uint32_t busy = 0;
        for (uint32_t k = 0; k < lg_t.n; k++)
            busy += lg_t.c[k]->busy;
        if (!busy || lg_now_ns() >= drain_end)
            break;
        int ne = epoll_wait(lg_t.ep, evs, LG_TCP_EVENTS, 5);
        uint64_t now = lg_now_ns();
        for (int i = 0; i < ne; i++) {
            struct lg_conn *c = lg_t.c[evs[i].data.u32];
            if (c->state != LG_DEAD)
                lg_tcp_on_readable(c, 0, now);
        }
    }
    uint32_t alive = 0;
    for (uint32_t k = 0; k < lg_t.n; k++)
        alive += lg_t.c[k]->state == LG_READY;
    double cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    printf("{\"cmd\":\"tcp_run\",\"label\":\"%s\",\"active\":%u,\"idle\":%u,\"secs\":%.3f,"
           "\"sent\":%llu,\"replies\":%llu,\"rps\":%.0f,\"errors\":%llu,\"closed\":%llu,"
           "\"cpu_s\":%.3f,\"lg_cpu_s\":%.3f,\"rss_kib\":%ld,",
           lg_arg_str(a, "label", ""), nact, alive > nact ? alive - nact : 0, meas,
           (unsigned long long)sent, (unsigned long long)replies,
           meas > 0 ? (double)replies / meas : 0.0, (unsigned long long)errors,
           (unsigned long long)(lg_t.closed - closed0), cpu, self1 - self0, rss);
    lg_hist_json(&lg_t.hist, stdout);
    printf("}\n");
    fflush(stdout);
    return 0;
}

int lg_tcp_close(const struct lg_args *a)
{
    (void)a;
    uint32_t n = 0;
    for (uint32_t k = 0; k < lg_t.n; k++) {
        struct lg_conn *c = lg_t.c[k];
        if (c->state != LG_DEAD) {
            lg_tcp_kill(c);
            n++;
        }
        free(c);
    }
    free(lg_t.c);
    lg_t.c = NULL;
    lg_t.n = 0;
    lg_t.closed = 0;
    printf("{\"cmd\":\"tcp_close\",\"closed\":%u}\n", n);
    fflush(stdout);
    return 0;
}
