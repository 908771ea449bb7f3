/* lg_udp: the load generator's UDP side — many simulated peers on a few
 * sockets, preload (announce every peer once) and measured runs of a request
 * mix, closed-loop (bounded in-flight window) or rate-limited (open loop).
 *
 * A million peers without a million sockets: peer p sends from socket
 * p % nsock (bound to 0.0.0.0:port_s) and from source address 127.b1.b2.b3
 * chosen per datagram with IP_PKTINFO; all of 127.0.0.0/8 is local, so the
 * replies to 127.b1.b2.b3:port_s come back to that socket, and IP_PKTINFO on
 * receive says which peer they are for. Each peer has at most one request in
 * flight, so a reply matches its request without any id in the payload.
 *
 * Latency, per request, starts at a clock read just before the sendmmsg that
 * carries it (each batch is stamped as it leaves, not when it was queued;
 * at most `burst` datagrams per call in the open loop). It ends at the
 * kernel's receive stamp of the reply (SO_TIMESTAMPNS, per datagram): the
 * moment the server's send put the reply into the loopback device, i.e.
 * when it reached our socket -- "hist", p50_us... The generator's own delay
 * in reading it is left out there and measured apart: "read_hist" ends at a
 * clock read just after the recvmmsg that returned the reply (one read per
 * receive batch), "read_delay" is the difference. A reply without a kernel
 * stamp (counted in no_stamp) uses the read clock in both.
 *
 * The open loop sends on a fixed schedule (request i at t0 + i / rate),
 * acting once per tick_us (what is due then leaves at once, replies are read
 * then; 0: continuously); "send_lag" says how late each request left. */
#include "lg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LG_UDP_MAX_SOCKS 64
#define LG_UDP_BATCH 64          /* datagrams per sendmmsg / recvmmsg */
#define LG_UDP_MAX_PEERS 4000000 /* 127.1.1.1 .. fits b1 <= 254 with any nsock */
#define LG_UDP_RXCAP 2048        /* bytes kept of one reply (they are small) */
#define LG_UDP_REQCAP 64         /* bytes of one request */
#define LG_UDP_SOCKBUF (4 << 20)
#define LG_UDP_NIL UINT32_MAX

enum lg_kind { LG_ANNOUNCE = 0, LG_PULSE = 1, LG_PUSH = 2, LG_NKINDS = 3 };

/* One socket's pending batch of datagrams to send. */
struct lg_udp_txbatch {
    unsigned n;
    struct mmsghdr msg[LG_UDP_BATCH];
    struct iovec iov[LG_UDP_BATCH];
    union {
        char b[CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } ctrl[LG_UDP_BATCH];
    char req[LG_UDP_BATCH][LG_UDP_REQCAP];
    uint32_t peer[LG_UDP_BATCH];
    uint64_t due[LG_UDP_BATCH];  /* open loop: when the schedule wanted it sent; 0: closed loop */
};

/* The simulated peers and their sockets; one instance per process. */
struct lg_udp {
    int nsock;
    int fd[LG_UDP_MAX_SOCKS];
    int ep;                 /* epoll over fd[] */
    int next_sock;          /* the socket the next requests leave from (rotates) */
    uint32_t npeers;        /* address space: peers 0..npeers-1 */
    uint32_t loaded;        /* peers [0, loaded) were announced (preload) */
    char (*sid)[8];         /* shareId per peer; sid[p][0] == 0: none */
    uint64_t *sent_ns;      /* send time of the request in flight */
    uint32_t *slot;         /* index in inflight[], LG_UDP_NIL = none in flight */
    uint8_t *kind;          /* enum lg_kind in flight */
    uint32_t *inflight;     /* peers with a request in flight */
    uint32_t ninflight;
    uint32_t inflight_cap;
    struct sockaddr_in target;
    uint64_t rng;
    struct lg_udp_txbatch *tx;  /* [nsock] */
    int record;                 /* measuring: fill the histograms below */
    struct lg_hist hist;        /* send -> the kernel's receive stamp of the reply */
    struct lg_hist read;        /* send -> reply read (clock per recvmmsg batch) */
    struct lg_hist read_delay;  /* that stamp -> reply read: the generator's own delay */
    struct lg_hist send_lag;    /* open loop: actual send - scheduled send */
    /* counters of the current phase */
    uint64_t sent, replies, errors, incomes, late, lost, other;
    uint64_t sent_kind[LG_NKINDS], replies_kind[LG_NKINDS];
    uint64_t tx_calls, tx_dgrams, tx_call_ns, rx_calls, rx_dgrams, no_stamp;
};

static struct lg_udp *lg_u;

/* ---- peers and addresses ---- */

static in_addr_t lg_udp_peer_ip(uint32_t p)
{
    uint32_t j = p / (uint32_t)lg_u->nsock;
    uint32_t b1 = 1 + j / (254u * 254u), b2 = 1 + (j / 254u) % 254u, b3 = 1 + j % 254u;
    return htonl((127u << 24) | (b1 << 16) | (b2 << 8) | b3);
}

/* The peer a reply to ip on socket s is for, LG_UDP_NIL if none. */
static uint32_t lg_udp_peer_of(int s, in_addr_t ip)
{
    uint32_t h = ntohl(ip);
    uint32_t b1 = (h >> 16) & 255u, b2 = (h >> 8) & 255u, b3 = h & 255u;
    if ((h >> 24) != 127 || b1 < 1 || b2 < 1 || b2 > 254 || b3 < 1 || b3 > 254)
        return LG_UDP_NIL;
    uint64_t j = (uint64_t)(b1 - 1) * 254u * 254u + (uint64_t)(b2 - 1) * 254u + (b3 - 1);
    uint64_t p = j * (uint64_t)lg_u->nsock + (uint64_t)s;
    return p < lg_u->npeers ? (uint32_t)p : LG_UDP_NIL;
}

static void lg_udp_inflight_add(uint32_t p, enum lg_kind k, uint64_t now)
{
    lg_u->slot[p] = lg_u->ninflight;
    lg_u->inflight[lg_u->ninflight++] = p;
    lg_u->sent_ns[p] = now;
    lg_u->kind[p] = (uint8_t)k;
}

static void lg_udp_inflight_del(uint32_t p)
{
    uint32_t i = lg_u->slot[p];
    uint32_t last = lg_u->inflight[--lg_u->ninflight];
    lg_u->inflight[i] = last;
    lg_u->slot[last] = i;
    lg_u->slot[p] = LG_UDP_NIL;
}

static void lg_udp_counters_reset(void)
{
    struct lg_udp *u = lg_u;
    u->sent = u->replies = u->errors = u->incomes = u->late = u->lost = u->other = 0;
    memset(u->sent_kind, 0, sizeof u->sent_kind);
    memset(u->replies_kind, 0, sizeof u->replies_kind);
    u->tx_calls = u->tx_dgrams = u->tx_call_ns = u->rx_calls = u->rx_dgrams = u->no_stamp = 0;
    lg_hist_reset(&u->hist);
    lg_hist_reset(&u->read);
    lg_hist_reset(&u->read_delay);
    lg_hist_reset(&u->send_lag);
}

/* ---- sending ---- */

/* Sends socket s's batch. Each request's latency starts at a clock read just
 * before the sendmmsg that carries it (re-read on every retry). */
static void lg_udp_flush(int s)
{
    struct lg_udp *u = lg_u;
    struct lg_udp_txbatch *b = &u->tx[s];
    unsigned off = 0;
    while (off < b->n) {
        uint64_t t = lg_now_ns();
        for (unsigned i = off; i < b->n; i++)
            u->sent_ns[b->peer[i]] = t;
        int n = sendmmsg(u->fd[s], b->msg + off, b->n - off, 0);
        u->tx_calls++;
        u->tx_call_ns += lg_now_ns() - t;
        if (n > 0) {
            u->tx_dgrams += (unsigned)n;
            if (u->record)
                for (unsigned i = off; i < off + (unsigned)n; i++)
                    if (b->due[i])
                        lg_hist_add(&u->send_lag, t > b->due[i] ? t - b->due[i] : 0);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* full socket buffer: wait until it drains rather than drop */
                struct pollfd pfd = { .fd = lg_u->fd[s], .events = POLLOUT };
                poll(&pfd, 1, 10);
                continue;
            }
            /* e.g. ECONNREFUSED from an earlier ICMP: skip that datagram */
            off++;
            continue;
        }
        off += (unsigned)n;
    }
    b->n = 0;
}

static void lg_udp_flush_all(void)
{
    for (int s = 0; s < lg_u->nsock; s++)
        if (lg_u->tx[s].n)
            lg_udp_flush(s);
}

/* Queues request kind k from peer p (not in flight) and marks it in flight;
 * due: when the open loop's schedule wants it sent (0: closed loop). */
static void lg_udp_queue(uint32_t p, enum lg_kind k, uint32_t push_target, uint64_t now,
                         uint64_t due)
{
    int s = (int)(p % (uint32_t)lg_u->nsock);
    struct lg_udp_txbatch *b = &lg_u->tx[s];
    if (b->n == LG_UDP_BATCH)
        lg_udp_flush(s);
    unsigned i = b->n++;
    /* Fixed requests are static; a push copies its template and the target's id
     * (no formatting per datagram: the generator must stay cheaper than the echo). */
    static const char announce[] = "{\"action\":\"announce\"}";
    static const char pulse[] = "{\"action\":\"pulse\"}";
    static const char push[] = "{\"action\":\"push\",\"shareId\":\"00000000\"}";
    if (k == LG_ANNOUNCE) {
        b->iov[i].iov_base = (void *)announce;
        b->iov[i].iov_len = sizeof announce - 1;
    } else if (k == LG_PULSE) {
        b->iov[i].iov_base = (void *)pulse;
        b->iov[i].iov_len = sizeof pulse - 1;
    } else {
        const char *t = lg_u->sid[push_target];
        memcpy(b->req[i], push, sizeof push);
        if (t[0])
            memcpy(b->req[i] + sizeof push - 1 - 10, t, 8);  /* before the closing "} */
        b->iov[i].iov_base = b->req[i];
        b->iov[i].iov_len = sizeof push - 1;
    }
    memset(&b->ctrl[i], 0, sizeof b->ctrl[i]);
    struct msghdr *m = &b->msg[i].msg_hdr;
    memset(m, 0, sizeof *m);
    m->msg_name = &lg_u->target;
    m->msg_namelen = sizeof lg_u->target;
    m->msg_iov = &b->iov[i];
    m->msg_iovlen = 1;
    m->msg_control = b->ctrl[i].b;
    m->msg_controllen = CMSG_SPACE(sizeof(struct in_pktinfo));
    struct cmsghdr *c = CMSG_FIRSTHDR(m);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    pi.ipi_spec_dst.s_addr = lg_udp_peer_ip(p); /* the source address of this datagram */
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    b->peer[i] = p;
    b->due[i] = due;
    lg_udp_inflight_add(p, k, now);
    lg_u->sent++;
    lg_u->sent_kind[k]++;
}

/* ---- receiving ---- */

/* The action name of a reply ("{\"action\":\"NAME\"..."), or len 0. */
static size_t lg_udp_action(const char *buf, size_t n, const char **name)
{
    static const char pre[] = "{\"action\":\"";
    if (n < sizeof pre || memcmp(buf, pre, sizeof pre - 1) != 0)
        return 0;
    const char *s = buf + sizeof pre - 1;
    const char *e = memchr(s, '"', n - (sizeof pre - 1));
    if (!e)
        return 0;
    *name = s;
    return (size_t)(e - s);
}

/* Copies the shareId of an announce reply into sid; 0, or -1 if none. */
static int lg_udp_share_id(const char *buf, size_t n, char sid[8])
{
    static const char key[] = "\"shareId\":\"";
    const char *end = buf + n;
    for (const char *p = buf; p + sizeof key - 1 + 8 < end; p++) {
        if (memcmp(p, key, sizeof key - 1) == 0) {
            memcpy(sid, p + sizeof key - 1, 8);
            return 0;
        }
    }
    return -1;
}

/* Receive buffers, shared by all sockets (one batch at a time). */
static struct {
    struct mmsghdr msg[LG_UDP_BATCH];
    struct iovec iov[LG_UDP_BATCH];
    struct sockaddr_in from[LG_UDP_BATCH];
    union {
        char b[CMSG_SPACE(sizeof(struct in_pktinfo)) + 64];
        struct cmsghdr align;
    } ctrl[LG_UDP_BATCH];
    char buf[LG_UDP_BATCH][LG_UDP_RXCAP];
} lg_rx;

/* Drains socket s (one batch). record: count latencies into the histogram;
 * preload: take shareIds from the replies. Returns datagrams read. */
static int lg_udp_recv(int s, int record, int preload)
{
    for (int i = 0; i < LG_UDP_BATCH; i++) {
        lg_rx.iov[i].iov_base = lg_rx.buf[i];
        lg_rx.iov[i].iov_len = LG_UDP_RXCAP;
        struct msghdr *m = &lg_rx.msg[i].msg_hdr;
        m->msg_name = &lg_rx.from[i];
        m->msg_namelen = sizeof lg_rx.from[i];
        m->msg_iov = &lg_rx.iov[i];
        m->msg_iovlen = 1;
        m->msg_control = lg_rx.ctrl[i].b;
        m->msg_controllen = sizeof lg_rx.ctrl[i].b;
        m->msg_flags = 0;
    }
    int n = recvmmsg(lg_u->fd[s], lg_rx.msg, LG_UDP_BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0)
        return 0;
    /* One clock read per receive batch, right after it returned; the kernel's
     * per-datagram stamps are real time: converted with the offset of now. */
    uint64_t now = lg_now_ns();
    int64_t real_off = lg_real_minus_mono_ns();
    lg_u->rx_calls++;
    lg_u->rx_dgrams += (unsigned)n;
    for (int i = 0; i < n; i++) {
        struct msghdr *m = &lg_rx.msg[i].msg_hdr;
        size_t len = lg_rx.msg[i].msg_len;
        in_addr_t dst = 0;
        int64_t kstamp = 0;  /* the kernel's receive time, our clock; 0: none */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo pi;
                memcpy(&pi, CMSG_DATA(c), sizeof pi);
                dst = pi.ipi_addr.s_addr;
            } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof ts);
                kstamp = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - real_off;
            }
        }
        const char *name = NULL;
        size_t nl = lg_udp_action(lg_rx.buf[i], len, &name);
        if (nl == 6 && memcmp(name, "income", 6) == 0) {
            lg_u->incomes++;  /* the push target's notification, not a reply */
            continue;
        }
        uint32_t p = lg_udp_peer_of(s, dst);
        if (p == LG_UDP_NIL) {
            lg_u->other++;
            continue;
        }
        if (lg_u->slot[p] == LG_UDP_NIL) {
            lg_u->late++;  /* its request already timed out */
            continue;
        }
        int is_error = nl == 5 && memcmp(name, "error", 5) == 0;
        if (is_error)
            lg_u->errors++;
        if (preload && !is_error && lg_udp_share_id(lg_rx.buf[i], len, lg_u->sid[p]) != 0)
            lg_u->errors++;
        if (record) {
            uint64_t sent = lg_u->sent_ns[p];
            lg_hist_add(&lg_u->read, now - sent);
            if (kstamp > 0) {
                uint64_t k = (uint64_t)kstamp;
                /* clamped: the two clocks of the offset are read ~30 ns apart */
                lg_hist_add(&lg_u->hist, k > sent ? k - sent : 0);
                lg_hist_add(&lg_u->read_delay, now > k ? now - k : 0);
            } else {
                lg_u->no_stamp++;
                lg_hist_add(&lg_u->hist, now - sent);
                lg_hist_add(&lg_u->read_delay, 0);
            }
        }
        lg_u->replies++;
        lg_u->replies_kind[lg_u->kind[p]]++;
        lg_udp_inflight_del(p);
    }
    return n;
}

/* Reads every socket that has replies waiting (epoll, level-triggered), up to
 * ms milliseconds for the first one. Returns datagrams read. */
static int lg_udp_recv_ready(int record, int preload, int ms)
{
    struct epoll_event ev[LG_UDP_MAX_SOCKS];
    int ne = epoll_wait(lg_u->ep, ev, lg_u->nsock, ms);
    int total = 0;
    for (int i = 0; i < ne; i++) {
        int s = (int)ev[i].data.u32, n;
        while ((n = lg_udp_recv(s, record, preload)) == LG_UDP_BATCH)
            total += n;
        total += n;
    }
    return total;
}

static int lg_udp_recv_all(int record, int preload)
{
    return lg_udp_recv_ready(record, preload, 0);
}

/* Waits up to ms for replies and reads them. */
static void lg_udp_wait(int ms)
{
    lg_udp_recv_ready(0, 0, ms);
}

/* Requests older than timeout_ns are given up: collected into expired (if
 * not NULL, up to cap) and counted as lost. Returns how many. */
static uint32_t lg_udp_expire(uint64_t now, uint64_t timeout_ns, uint32_t *expired, uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < lg_u->ninflight;) {
        uint32_t p = lg_u->inflight[i];
        /* sent_ns may be later than now: batches are stamped as they leave */
        if (now > lg_u->sent_ns[p] && now - lg_u->sent_ns[p] > timeout_ns) {
            lg_udp_inflight_del(p);  /* moves the last entry to i: do not advance */
            if (expired && n < cap)
                expired[n] = p;
            n++;
            lg_u->lost++;
        } else {
            i++;
        }
    }
    return n;
}

/* ---- commands ---- */

int lg_udp_setup(const struct lg_args *a)
{
    long nsock = lg_arg_long(a, "sockets", 16);
    long npeers = lg_arg_long(a, "peers", 1000000);
    if (nsock < 1 || nsock > LG_UDP_MAX_SOCKS || npeers < 2 || npeers > LG_UDP_MAX_PEERS) {
        lg_reply_error("udp_setup", "sockets must be 1..64 and peers 2..4000000");
        return -1;
    }
    lg_udp_free();
    struct lg_udp *u = calloc(1, sizeof *u);
    if (!u) {
        lg_reply_error("udp_setup", "out of memory");
        return -1;
    }
    lg_u = u;
    u->ep = -1;
    for (int s = 0; s < LG_UDP_MAX_SOCKS; s++)
        u->fd[s] = -1;
    u->nsock = (int)nsock;
    u->npeers = (uint32_t)npeers;
    u->rng = (uint64_t)lg_arg_long(a, "seed", 42) * 2654435761u + 1;
    u->sid = calloc(u->npeers, sizeof *u->sid);
    u->sent_ns = calloc(u->npeers, sizeof *u->sent_ns);
    u->slot = malloc(u->npeers * sizeof *u->slot);
    u->kind = calloc(u->npeers, 1);
    u->inflight_cap = 65536;
    u->inflight = malloc(u->inflight_cap * sizeof *u->inflight);
    u->tx = calloc((size_t)nsock, sizeof *u->tx);
    if (!u->sid || !u->sent_ns || !u->slot || !u->kind || !u->inflight || !u->tx) {
        lg_udp_free();
        lg_reply_error("udp_setup", "out of memory");
        return -1;
    }
    memset(u->slot, 0xff, u->npeers * sizeof *u->slot);
    u->ep = epoll_create1(EPOLL_CLOEXEC);
    if (u->ep < 0) {
        lg_udp_free();
        lg_reply_error("udp_setup", "epoll_create1 failed");
        return -1;
    }
    for (int s = 0; s < u->nsock; s++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int on = 1, buf = LG_UDP_SOCKBUF;
        struct sockaddr_in any = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
        if (fd < 0 || setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0 ||
            bind(fd, (struct sockaddr *)&any, sizeof any) != 0) {
            if (fd >= 0)
                close(fd);
            lg_udp_free();
            lg_reply_error("udp_setup", "cannot create or bind a UDP socket");
            return -1;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
        u->fd[s] = fd;
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)s };
        if (epoll_ctl(u->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            lg_udp_free();
            lg_reply_error("udp_setup", "epoll_ctl failed");
            return -1;
        }
    }
    printf("{\"cmd\":\"udp_setup\",\"sockets\":%d,\"peers\":%u}\n", u->nsock, u->npeers);
    fflush(stdout);
    return 0;
}

void lg_udp_free(void)
{
    struct lg_udp *u = lg_u;
    if (!u)
        return;
    for (int s = 0; s < u->nsock; s++)
        if (u->fd[s] >= 0)
            close(u->fd[s]);
    if (u->ep >= 0)
        close(u->ep);
    free(u->sid);
    free(u->sent_ns);
    free(u->slot);
    free(u->kind);
    free(u->inflight);
    free(u->tx);
    free(u);
    lg_u = NULL;
}

/* Flushes pending replies left from an earlier phase and forgets what is in flight. */
static void lg_udp_settle(void)
{
    lg_udp_recv_all(0, 0);
    while (lg_u->ninflight)
        lg_udp_inflight_del(lg_u->inflight[lg_u->ninflight - 1]);
}

int lg_udp_preload(const struct lg_args *a)
{
    struct lg_udp *u = lg_u;
    if (!u || lg_parse_target(lg_arg_str(a, "target", ""), &u->target) != 0) {
        lg_reply_error("udp_preload", "needs udp_setup and target=127.x.y.z:port");
        return -1;
    }
    long upto = lg_arg_long(a, "upto", (long)u->npeers);
    long window = lg_arg_long(a, "window", 256);
    double max_secs = lg_arg_double(a, "max_secs", 120);
    if (upto < (long)u->loaded || upto > (long)u->npeers || window < 1 ||
        window > (long)u->inflight_cap) {
        lg_reply_error("udp_preload", "upto must be loaded..peers, window 1..65536");
        return -1;
    }
    lg_udp_settle();
    lg_udp_counters_reset();
    uint64_t t0 = lg_now_ns(), deadline = t0 + (uint64_t)(max_secs * 1e9);
    uint64_t last_scan = t0, timeout = 1000000000u; /* 1 s, then resend */
    uint32_t next = u->loaded, retries = 0, nresend = 0;
    uint32_t *resend = malloc(u->inflight_cap * sizeof *resend);
    if (!resend) {
        lg_reply_error("udp_preload", "out of memory");
        return -1;
    }
    for (;;) {
        uint64_t now = lg_now_ns();
        if (now > deadline)
            break;
        lg_udp_recv_all(0, 1);
        while (u->ninflight < (uint32_t)window && nresend > 0) {
            lg_udp_queue(resend[--nresend], LG_ANNOUNCE, 0, now, 0);
            retries++;
        }
        while (u->ninflight < (uint32_t)window && next < (uint32_t)upto)
            lg_udp_queue(next++, LG_ANNOUNCE, 0, now, 0);
        lg_udp_flush_all();
        if (next >= (uint32_t)upto && u->ninflight == 0 && nresend == 0)
            break;
        if (now - last_scan > 50000000u) {
            last_scan = now;
            /* window <= inflight_cap, so every expired request fits resend[] */
            if (nresend == 0)
                nresend = lg_udp_expire(now, timeout, resend, u->inflight_cap);
        }
        if (u->ninflight >= (uint32_t)window || next >= (uint32_t)upto)
            lg_udp_recv_ready(0, 1, 1);
    }
    free(resend);
    double secs = (double)(lg_now_ns() - t0) / 1e9;
    uint32_t have = 0;
    for (uint32_t p = u->loaded; p < next; p++)
        have += u->sid[p][0] != 0;
    int complete = next >= (uint32_t)upto && u->ninflight == 0 && nresend == 0;
    if (complete)
        u->loaded = (uint32_t)upto;
    printf("{\"cmd\":\"udp_preload\",\"complete\":%s,\"loaded\":%u,\"announced\":%u,"
           "\"errors\":%llu,\"retries\":%u,\"secs\":%.3f,\"rps\":%.0f}\n",
           complete ? "true" : "false", u->loaded, have, (unsigned long long)u->errors, retries,
           secs, secs > 0 ? (double)have / secs : 0.0);
    fflush(stdout);
    return 0;
}

/* Picks a random peer of socket s (below range) without a request in
 * flight; LG_UDP_NIL after a few misses. */
static uint32_t lg_udp_pick(uint32_t range, int s)
{
    uint32_t per = (range + (uint32_t)lg_u->nsock - 1 - (uint32_t)s) / (uint32_t)lg_u->nsock;
    if (per == 0)
        return LG_UDP_NIL;
    for (int tries = 0; tries < 8; tries++) {
        uint32_t p = (uint32_t)(lg_rand(&lg_u->rng) % per) * (uint32_t)lg_u->nsock + (uint32_t)s;
        if (lg_u->slot[p] == LG_UDP_NIL)
            return p;
    }
    return LG_UDP_NIL;
}

/* Queues up to n requests of the mix, all from the next socket in turn, so
 * that they leave in one sendmmsg; its index goes to *sock. due0/step_ns:
 * the open loop's schedule (request j of these is due at due0 + j * step_ns;
 * due0 0: closed loop). Returns how many were queued. */
static unsigned lg_udp_issue(uint32_t range, const unsigned mix[LG_NKINDS], unsigned n,
                             uint64_t now, uint64_t due0, double step_ns, int *sock)
{
    int s = lg_u->next_sock;
    lg_u->next_sock = (s + 1) % lg_u->nsock;
    *sock = s;
    if (n > LG_UDP_BATCH - lg_u->tx[s].n)
        n = LG_UDP_BATCH - lg_u->tx[s].n;
    unsigned total = mix[0] + mix[1] + mix[2], done = 0;
    for (; done < n; done++) {
        uint32_t p = lg_udp_pick(range, s);
        if (p == LG_UDP_NIL)
            break;
        unsigned r = (unsigned)(lg_rand(&lg_u->rng) % total);
        enum lg_kind k = r < mix[0] ? LG_ANNOUNCE : r < mix[0] + mix[1] ? LG_PULSE : LG_PUSH;
        uint32_t target = 0;
        if (k == LG_PUSH) {
            target = (uint32_t)(lg_rand(&lg_u->rng) % range);
            if (target == p)
                target = (target + 1) % range;
        }
        lg_udp_queue(p, k, target, now, due0 ? due0 + (uint64_t)((double)done * step_ns) : 0);
    }
    return done;
}

/* Sleeps until replies arrive or ns have passed (epoll_pwait2: ns precision,
 * with the 1 ns timer slack set in lg_udp_run), then reads them. */
static void lg_udp_wait_ns(int record, uint64_t ns)
{
    struct epoll_event ev[LG_UDP_MAX_SOCKS];
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
                           .tv_nsec = (long)(ns % 1000000000u) };
    int ne = epoll_pwait2(lg_u->ep, ev, lg_u->nsock, &ts, NULL);
    for (int i = 0; i < ne; i++) {
        int s = (int)ev[i].data.u32;
        while (lg_udp_recv(s, record, 0) == LG_UDP_BATCH)
            ;
    }
}

int lg_udp_run(const struct lg_args *a)
{
    struct lg_udp *u = lg_u;
    if (!u || lg_parse_target(lg_arg_str(a, "target", ""), &u->target) != 0) {
        lg_reply_error("udp_run", "needs udp_setup and target=127.x.y.z:port");
        return -1;
    }
    unsigned mix[LG_NKINDS] = { 10, 80, 10 };
    const char *ms = lg_arg_str(a, "mix", NULL);
    if (ms && sscanf(ms, "%u,%u,%u", &mix[0], &mix[1], &mix[2]) != 3) {
        lg_reply_error("udp_run", "mix=announce,pulse,push weights");
        return -1;
    }
    if (mix[0] + mix[1] + mix[2] == 0 || mix[0] + mix[1] + mix[2] > 1000000) {
        lg_reply_error("udp_run", "mix weights must sum to 1..1000000");
        return -1;
    }
    double secs = lg_arg_double(a, "secs", 5), warmup = lg_arg_double(a, "warmup", 0.5);
    double rate = lg_arg_double(a, "rate", 0);
    long window = lg_arg_long(a, "window", 256);
    long burst = lg_arg_long(a, "burst", 8);
    double tick_us = lg_arg_double(a, "tick_us", 50);
    const char *wait = lg_arg_str(a, "wait", "sleep");
    int sleep_wait = strcmp(wait, "sleep") == 0;
    pid_t pid = (pid_t)lg_arg_long(a, "pid", 0);
    const char *label = lg_arg_str(a, "label", "");
    if (secs <= 0 || secs > 600 || warmup < 0 || warmup > 60 || rate < 0 || window < 1 ||
        window > (long)u->inflight_cap || burst < 1 || burst > LG_UDP_BATCH || tick_us < 0 ||
        tick_us > 100000 ||
        (!sleep_wait && strcmp(wait, "spin") != 0)) {
        lg_reply_error("udp_run", "secs 0..600, warmup 0..60, rate >= 0, window 1..65536, "
                                  "burst 1..64, tick_us 0..100000, wait spin|sleep");
        return -1;
    }
    if (sleep_wait)
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  /* wake on time, not up to 50 us late */
    uint32_t range = u->loaded >= 2 ? u->loaded : u->npeers;
    lg_udp_settle();
    lg_udp_counters_reset();

    uint64_t t0 = lg_now_ns();
    uint64_t t_meas = t0 + (uint64_t)(warmup * 1e9), t_end = t_meas + (uint64_t)(secs * 1e9);
    uint64_t last_scan = t0, timeout = 1000000000u;
    int measuring = warmup == 0;
    u->record = measuring;
    double cpu0 = pid > 0 ? lg_proc_cpu_s(pid) : -1, self0 = lg_self_cpu_s();
    double wait0 = pid > 0 ? lg_proc_run_delay_s(pid) : -1, swait0 = lg_proc_run_delay_s(0);
    double mbusy0, msteal0;
    lg_machine_cpu_s(&mbusy0, &msteal0);
    double step = rate > 0 ? 1e9 / rate : 0;  /* ns between scheduled sends */
    uint64_t issued = 0, skipped = 0;
    /* The generator's own hiccups: gaps between two turns of this loop beyond
     * the intended sleep (not scheduled, preempted, a slow call). */
    uint64_t prev_turn = 0, planned_wake = 0, stall_max = 0, stalls_1ms = 0;
    for (;;) {
        uint64_t now = lg_now_ns();
        if (measuring && prev_turn) {
            uint64_t from = planned_wake > prev_turn ? planned_wake : prev_turn;
            uint64_t gap = now > from ? now - from : 0;
            if (gap > stall_max)
                stall_max = gap;
            stalls_1ms += gap > 1000000u;
        }
        prev_turn = now;
        planned_wake = 0;
        if (!measuring && now >= t_meas) {
            measuring = 1;
            lg_udp_counters_reset();
            u->record = 1;
            cpu0 = pid > 0 ? lg_proc_cpu_s(pid) : -1;
            self0 = lg_self_cpu_s();
            wait0 = pid > 0 ? lg_proc_run_delay_s(pid) : -1;
            swait0 = lg_proc_run_delay_s(0);
            lg_machine_cpu_s(&mbusy0, &msteal0);
            issued = skipped = 0;
            stall_max = stalls_1ms = 0;
            t0 = now;  /* the rate schedule restarts with the measured window */
        }
        if (now >= t_end)
            break;
        int got = lg_udp_recv_all(measuring, 0);
        if (rate > 0) {
            /* Open loop: request i is due at t0 + i * step, whatever the replies.
             * What is due leaves at once, at most `burst` per sendmmsg (each
             * batch stamped as it leaves); late ones still go (the offered
             * rate is kept) and send_lag shows how late. */
            now = lg_now_ns();
            uint64_t due = (uint64_t)((double)(now - t0) / step) + 1;
            while (issued < due) {
                uint64_t room = u->ninflight < (uint32_t)window ? (uint32_t)window - u->ninflight : 0;
                uint64_t want = due - issued < room ? due - issued : room;
                if (want > (uint64_t)burst)
                    want = (uint64_t)burst;
                int s = 0;
                unsigned got_n = want ? lg_udp_issue(range, mix, (unsigned)want, now,
                                                     t0 + (uint64_t)((double)issued * step), step, &s)
                                      : 0;
                if (got_n == 0) {
                    skipped += due - issued;  /* the server fell behind: not sent */
                    issued = due;
                    break;
                }
                lg_udp_flush(s);
                issued += got_n;
            }
            if (tick_us > 0) {
                /* Act once per tick: what arrived meanwhile waits in the
                 * sockets (its kernel stamp keeps the exact arrival time). */
                uint64_t tk = (uint64_t)(tick_us * 1000.0);
                uint64_t next = t0 + ((lg_now_ns() - t0) / tk + 1) * tk;
                uint64_t next_due = t0 + (uint64_t)((double)issued * step);
                if (next < next_due)
                    next = next_due;  /* low rates: sleep until the next send */
                if (next > t_end)
                    next = t_end;
                planned_wake = next;
                if (sleep_wait) {
                    struct timespec ts = { .tv_sec = (time_t)(next / 1000000000u),
                                           .tv_nsec = (long)(next % 1000000000u) };
                    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                        ;
                } else {
                    while (lg_now_ns() < next)
                        ;
                }
            } else if (sleep_wait) {
                /* sleep until the next send is due, or a reply comes */
                uint64_t next = t0 + (uint64_t)((double)issued * step);
                now = lg_now_ns();
                if (next > t_end)
                    next = t_end;
                if (next > now + 2000) {
                    planned_wake = next;  /* (a reply may end the wait sooner) */
                    lg_udp_wait_ns(measuring, next - now);
                }
            }
        } else {
            for (int tries = 0; u->ninflight < (uint32_t)window && tries < lg_u->nsock; tries++) {
                unsigned room = (uint32_t)window - u->ninflight;
                int s;
                lg_udp_issue(range, mix, room < LG_UDP_BATCH ? room : LG_UDP_BATCH, now, 0, 0, &s);
            }
            lg_udp_flush_all();
            if (!got && u->ninflight >= (uint32_t)window) {
                planned_wake = lg_now_ns() + 1000000u;  /* waiting for the server, not stalled */
                lg_udp_recv_ready(measuring, 0, 1);
            }
        }
        if (now - last_scan > 20000000u) {
            last_scan = now;
            lg_udp_expire(now, timeout, NULL, 0);
        }
    }
    u->record = 0;
    uint64_t t_stop = lg_now_ns();
    double cpu1 = pid > 0 ? lg_proc_cpu_s(pid) : -1, self1 = lg_self_cpu_s();
    double wait1 = pid > 0 ? lg_proc_run_delay_s(pid) : -1, swait1 = lg_proc_run_delay_s(0);
    double mbusy1, msteal1;
    lg_machine_cpu_s(&mbusy1, &msteal1);
    long rss = pid > 0 ? lg_proc_rss_kib(pid) : -1;
    double meas = (double)(t_stop - t0) / 1e9;
    /* The measured window ends here; drain what is still in flight, uncounted. */
    uint64_t replies = u->replies, sent = u->sent, errors = u->errors, incomes = u->incomes;
    uint64_t lost = u->lost, late = u->late;
    uint64_t tx_calls = u->tx_calls, tx_dgrams = u->tx_dgrams, tx_call_ns = u->tx_call_ns;
    uint64_t rx_calls = u->rx_calls, rx_dgrams = u->rx_dgrams, no_stamp = u->no_stamp;
    uint64_t drain_end = lg_now_ns() + 300000000u;
    while (u->ninflight && lg_now_ns() < drain_end) {
        if (!lg_udp_recv_all(0, 0))
            lg_udp_wait(1);
    }
    uint64_t unanswered = u->ninflight;
    lg_udp_settle();

    double cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    printf("{\"cmd\":\"udp_run\",\"label\":\"%s\",\"target\":\"%s\",\"peers\":%u,"
           "\"mix\":[%u,%u,%u],\"window\":%ld,\"rate\":%.0f,\"secs\":%.3f,"
           "\"sent\":%llu,\"replies\":%llu,\"rps\":%.0f,\"errors\":%llu,\"incomes\":%llu,"
           "\"lost\":%llu,\"late\":%llu,\"unanswered_at_end\":%llu,\"skipped\":%llu,"
           "\"sent_announce\":%llu,\"sent_pulse\":%llu,\"sent_push\":%llu,"
           "\"cpu_s\":%.3f,\"lg_cpu_s\":%.3f,\"rss_kib\":%ld,"
           "\"server_run_delay_s\":%.4f,\"lg_run_delay_s\":%.4f,"
           "\"burst\":%ld,\"tick_us\":%.1f,\"wait\":\"%s\","
           "\"tx_batch_mean\":%.2f,\"tx_call_us\":%.2f,\"rx_batch_mean\":%.2f,\"no_stamp\":%llu,"
           "\"machine_busy_s\":%.2f,\"steal_s\":%.3f,"
           "\"lg_stall_max_us\":%.1f,\"lg_stalls_1ms\":%llu,",
           label, lg_arg_str(a, "target", ""), range, mix[0], mix[1], mix[2], window, rate, meas,
           (unsigned long long)sent, (unsigned long long)replies,
           meas > 0 ? (double)replies / meas : 0.0, (unsigned long long)errors,
           (unsigned long long)incomes, (unsigned long long)lost, (unsigned long long)late,
           (unsigned long long)unanswered, (unsigned long long)skipped,
           (unsigned long long)u->sent_kind[LG_ANNOUNCE], (unsigned long long)u->sent_kind[LG_PULSE],
           (unsigned long long)u->sent_kind[LG_PUSH], cpu, self1 - self0, rss,
           wait0 >= 0 && wait1 >= 0 ? wait1 - wait0 : -1.0,
           swait0 >= 0 && swait1 >= 0 ? swait1 - swait0 : -1.0, burst, tick_us,
           sleep_wait ? "sleep" : "spin",
           tx_calls ? (double)tx_dgrams / (double)tx_calls : 0.0,
           tx_calls ? (double)tx_call_ns / 1000.0 / (double)tx_calls : 0.0,
           rx_calls ? (double)rx_dgrams / (double)rx_calls : 0.0, (unsigned long long)no_stamp,
           mbusy0 >= 0 && mbusy1 >= 0 ? mbusy1 - mbusy0 : -1.0,
           msteal0 >= 0 && msteal1 >= 0 ? msteal1 - msteal0 : -1.0, (double)stall_max / 1000.0,
           (unsigned long long)stalls_1ms);
    lg_hist_json(&u->hist, stdout);
    fputc(',', stdout);
    lg_hist_json_as(&u->read, "read_", 1, stdout);
    fputc(',', stdout);
    lg_hist_json_as(&u->read_delay, "read_delay_", 0, stdout);
    fputc(',', stdout);
    lg_hist_json_as(&u->send_lag, "send_lag_", 0, stdout);
    printf("}\n");
    fflush(stdout);
    return 0;
}
