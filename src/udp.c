/* udp: the UDP socket at the edge (see udp.h). */
#include "udp.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "net.h"
#include "xmem.h"

#define UDP_BATCH 64          /* datagrams per recvmmsg */
#define UDP_ROUNDS 4          /* recvmmsg calls per wakeup before yielding to the loop */
#define UDP_SENDQ 128         /* replies gathered for one sendmmsg (a push sends two) */
#define UDP_RCVBUF (4 << 20)  /* absorbs bursts; the kernel caps it at rmem_max */
#define UDP_MAX_LOCALS 256    /* index 0 = "unknown": the kernel picks the source */

/* Interned local addresses, shared by the workers of one port (peers store
 * the index, and any worker may send to any peer); guarded by the tracker lock. */
struct udp_locals {
    struct addr a[UDP_MAX_LOCALS];       /* [0] unused */
    unsigned n;
};

struct udp {
    struct ev_loop *loop;
    ev_io io;
    int fd;
    int family;                          /* of the socket: AF_INET or AF_INET6 */
    struct tracker *tracker;
    const struct config *cfg;
    struct addr bound;
    struct udp_locals *locals;           /* owned by the first socket of the port */
    int owns_locals;
    unsigned worker;                     /* index in the port's SO_REUSEPORT group */
    uint8_t last_local;                  /* cache: most requests hit the same one */
    size_t max_datagram;
    int probe;                           /* the NAT-detection probe socket */
    struct udp_stats st;
    /* Receive batch: UDP_BATCH slots of max_datagram + 1 bytes (one more than
     * allowed, to see oversized datagrams). Allocated once: the hot path
     * allocates nothing. */
    char *rbuf;
    struct mmsghdr rmsg[UDP_BATCH];
    struct iovec riov[UDP_BATCH];
    struct sockaddr_storage rfrom[UDP_BATCH];
    struct addr raddr[UDP_BATCH];        /* rfrom as addresses (family 0: unusable) */
    union {
        char b[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } rctl[UDP_BATCH];
    /* Send queue, flushed with one sendmmsg after each receive batch. */
    int batching;                        /* inside a receive batch: queue, don't send */
    unsigned nq;
    char *qbuf;                          /* UDP_SENDQ slots of max_datagram bytes */
    struct mmsghdr qmsg[UDP_SENDQ];
    struct iovec qiov[UDP_SENDQ];
    struct sockaddr_storage qto[UDP_SENDQ];
    union {
        char b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        struct cmsghdr align;
    } qctl[UDP_SENDQ];
};

/* Index of local address a, interning it on first sight; 0 if the table is
 * full (then the kernel chooses the source address). */
static uint8_t udp_local_index(struct udp *u, const struct addr *a)
{
    struct udp_locals *l = u->locals;
    if (u->last_local && addr_equal(&l->a[u->last_local], a))
        return u->last_local;
    for (unsigned i = 1; i < l->n; i++) {
        if (addr_equal(&l->a[i], a)) {
            u->last_local = (uint8_t)i;
            return (uint8_t)i;
        }
    }
    if (l->n >= UDP_MAX_LOCALS)
        return 0;
    l->a[l->n] = *a;
    u->last_local = (uint8_t)l->n;
    return (uint8_t)l->n++;
}

/* The request's destination address from its control messages (port 0). */
static int udp_dst_from_cmsg(struct msghdr *msg, struct addr *dst)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr = pi.ipi_addr };
            return addr_from_sockaddr(dst, (struct sockaddr *)&sin, sizeof sin);
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = pi.ipi6_addr };
            return addr_from_sockaddr(dst, (struct sockaddr *)&sin6, sizeof sin6);
        }
    }
    return -1;
}

/* Sends the queued datagrams with as few sendmmsg calls as the kernel allows. */
static void udp_flush(struct udp *u)
{
    unsigned done = 0;
    while (done < u->nq) {
        int n = sendmmsg(u->fd, u->qmsg + done, u->nq - done, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* This datagram failed (full buffer, unreachable...): drop it, go on. */
            u->st.send_errors++;
            if (log_enabled(LOG_DEBUG))
                log_debug("udp: sendmmsg: %s", strerror(errno));
            done++;
            continue;
        }
        u->st.sent += (unsigned)n;
        done += (unsigned)n;
    }
    u->nq = 0;
}

/* Queues one datagram to `to` from local address index `local` (0: the
 * kernel picks); sent at the end of the current batch, or at once outside one. */
static void udp_send(void *ctx, const struct addr *to, uint8_t local, const char *buf, size_t len)
{
    struct udp *u = ctx;
    if (len > u->max_datagram) {
        u->st.send_errors++;
        return;
    }
    if (u->nq == UDP_SENDQ)
        udp_flush(u);
    unsigned i = u->nq;
    socklen_t sl = addr_to_sockaddr(to, &u->qto[i], u->family);
    if (sl == 0) {
        u->st.send_errors++;
        return;
    }
    char *slot = u->qbuf + (size_t)i * u->max_datagram;
    memcpy(slot, buf, len);
    u->qiov[i] = (struct iovec){ .iov_base = slot, .iov_len = len };
    struct msghdr *msg = &u->qmsg[i].msg_hdr;
    *msg = (struct msghdr){ .msg_name = &u->qto[i], .msg_namelen = sl, .msg_iov = &u->qiov[i],
                            .msg_iovlen = 1 };
    if (local != 0 && local < u->locals->n) {
        const struct addr *src = &u->locals->a[local];
        memset(&u->qctl[i], 0, sizeof u->qctl[i]);
        msg->msg_control = u->qctl[i].b;
        struct cmsghdr *c;
        if (u->family == AF_INET) {
            struct in_pktinfo pi = { 0 };
            memcpy(&pi.ipi_spec_dst, src->ip, 4);
            msg->msg_controllen = CMSG_SPACE(sizeof pi);
            c = CMSG_FIRSTHDR(msg);
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof pi);
            memcpy(CMSG_DATA(c), &pi, sizeof pi);
        } else {
            struct in6_pktinfo pi = { 0 };
            struct sockaddr_storage sss;
            addr_to_sockaddr(src, &sss, AF_INET6); /* IPv4 becomes v4-mapped */
            pi.ipi6_addr = ((struct sockaddr_in6 *)&sss)->sin6_addr;
            msg->msg_controllen = CMSG_SPACE(sizeof pi);
            c = CMSG_FIRSTHDR(msg);
            c->cmsg_level = IPPROTO_IPV6;
            c->cmsg_type = IPV6_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof pi);
            memcpy(CMSG_DATA(c), &pi, sizeof pi);
        }
    }
    u->nq++;
    if (!u->batching)
        udp_flush(u);
}

/* Hands datagram k of the receive batch (n bytes) to the tracker. */
static void udp_handle(struct udp *u, unsigned k, uint64_t now)
{
    struct msghdr *msg = &u->rmsg[k].msg_hdr;
    size_t n = u->rmsg[k].msg_len;
    const char *buf = u->rbuf + (size_t)k * (u->max_datagram + 1);
    u->st.received++;
    struct tracker_src src = { .transport = TRACKER_UDP, .addr = u->raddr[k] };
    if (src.addr.family == 0)
        return;
    if (n > u->max_datagram || (msg->msg_flags & MSG_TRUNC)) {
        tracker_count_drop(u->tracker, PROTO_DROP_TOO_LARGE);
        if (log_enabled(LOG_DEBUG)) {
            char a[ADDR_STRLEN];
            addr_format(&src.addr, a, sizeof a);
            log_debug("udp: dropped %zu-byte datagram from %s (max_datagram %zu)", n, a,
                      u->max_datagram);
        }
        return;
    }
    struct addr dst;
    src.local = udp_dst_from_cmsg(msg, &dst) == 0 ? udp_local_index(u, &dst) : 0;
    if (src.local)
        src.local_addr = &u->locals->a[src.local];
    int rc;
    if (u->probe) {
        src.transport = TRACKER_PROBE;
        rc = tracker_on_probe(u->tracker, buf, n, &src, now);
    } else {
        rc = tracker_on_datagram(u->tracker, buf, n, &src, now);
    }
    if (rc < 0 && log_enabled(LOG_DEBUG)) {
        char a[ADDR_STRLEN];
        addr_format(&src.addr, a, sizeof a);
        log_debug("udp: dropped %zu-byte datagram from %s: %s", n, a,
                  proto_drop_name((enum proto_drop)(-1 - rc)));
    }
}

/* Reads up to UDP_ROUNDS batches with recvmmsg; the replies to a batch leave
 * together in one sendmmsg. Bounded, so one busy socket cannot starve the
 * loop's other work (expiry, WebSocket). */
static void udp_on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct udp *u = w->data;
    for (int round = 0; round < UDP_ROUNDS; round++) {
        for (unsigned k = 0; k < UDP_BATCH; k++) {
            u->riov[k] = (struct iovec){ .iov_base = u->rbuf + (size_t)k * (u->max_datagram + 1),
                                         .iov_len = u->max_datagram + 1 };
            u->rmsg[k].msg_hdr = (struct msghdr){ .msg_name = &u->rfrom[k],
                                                  .msg_namelen = sizeof u->rfrom[k],
                                                  .msg_iov = &u->riov[k], .msg_iovlen = 1,
                                                  .msg_control = u->rctl[k].b,
                                                  .msg_controllen = sizeof u->rctl[k].b };
        }
        int n = recvmmsg(u->fd, u->rmsg, UDP_BATCH, MSG_TRUNC | MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_debug("udp: recvmmsg: %s", strerror(errno)); /* e.g. ICMP errors */
            return;
        }
        uint64_t now = clock_mono_ms();
        for (int k = 0; k < n; k++)
            if (addr_from_sockaddr(&u->raddr[k], (struct sockaddr *)&u->rfrom[k],
                                   u->rmsg[k].msg_hdr.msg_namelen) != 0)
                u->raddr[k].family = 0;
        /* One lock per batch; the replies leave after it is released. */
        if (u->probe) {
            tracker_lock(u->tracker);
        } else {
            tracker_lock_with(u->tracker, udp_send, u);
            tracker_count_worker(u->tracker, u->worker, (uint64_t)n);
            /* Most requests look their sender up: start those memory loads
             * for the whole batch at once (bench/tracker_micro.c: -16%). */
            registry_prefetch_addrs(tracker_registry(u->tracker), u->raddr, (size_t)n);
        }
        u->batching = 1;
        for (int k = 0; k < n; k++)
            udp_handle(u, (unsigned)k, now);
        u->batching = 0;
        tracker_unlock(u->tracker);
        udp_flush(u);
        if (n < UDP_BATCH)
            return; /* drained */
    }
}

static int udp_fail(char *err, size_t errcap, const char *what, const char *bind_s, long port)
{
    snprintf(err, errcap, "udp: %s %s port %ld: %s", what, bind_s, port, strerror(errno));
    return -1;
}

/* Opens one socket. first: the port's first socket, whose locals table a
 * worker shares (NULL: this one is the first, or the probe socket). */
static struct udp *udp_open(struct ev_loop *loop, const struct config *cfg, struct tracker *t,
                            const char *bind_s, long port, int probe, struct udp *first,
                            unsigned worker, char *err, size_t errcap)
{
    struct addr bound;
    int family;
    int flags = !probe && cfg->workers > 1 ? NET_REUSEPORT : 0;
    if (flags && !first && port != 0) {
        /* SO_REUSEPORT would also join a group another process of this user
         * holds on the port (a second punchd left running): the traffic would
         * be split between them. A plain bind first says whether it is free. */
        int probe_fd = net_bind(bind_s, (uint16_t)port, SOCK_DGRAM, 0, &bound, &family);
        if (probe_fd < 0) {
            udp_fail(err, errcap, "cannot bind", bind_s, port);
            return NULL;
        }
        close(probe_fd);
    }
    int fd = net_bind(bind_s, (uint16_t)port, SOCK_DGRAM, flags, &bound, &family);
    if (fd < 0) {
        udp_fail(err, errcap, probe ? "cannot bind the probe socket on" : "cannot bind", bind_s, port);
        return NULL;
    }
    int on = 1, rcvbuf = UDP_RCVBUF;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    /* A dual-stack socket may report IPv4 destinations either way: ask for both. */
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);

    struct udp *u = xcalloc(1, sizeof *u);
    u->loop = loop;
    u->fd = fd;
    u->family = family;
    u->tracker = t;
    u->cfg = cfg;
    u->worker = worker;
    if (first) {
        u->locals = first->locals;
    } else {
        u->locals = xcalloc(1, sizeof *u->locals);
        u->locals->n = 1;
        u->owns_locals = 1;
    }
    u->max_datagram = (size_t)cfg->max_datagram;
    u->bound = bound;
    u->probe = probe;
    u->rbuf = xmalloc(UDP_BATCH * (u->max_datagram + 1));
    u->qbuf = xmalloc(UDP_SENDQ * u->max_datagram);
    if (probe)
        tracker_set_probe(t, &bound, udp_send, u);
    else if (!first)
        tracker_set_sink(t, udp_send, u);
    ev_io_init(&u->io, udp_on_readable, fd, EV_READ);
    u->io.data = u;
    ev_io_start(loop, &u->io);
    return u;
}

struct udp *udp_new(struct ev_loop *loop, const struct config *cfg, struct tracker *t, char *err,
                    size_t errcap)
{
    return udp_open(loop, cfg, t, cfg->bind, cfg->port, 0, NULL, 0, err, errcap);
}

struct udp *udp_new_worker(struct ev_loop *loop, struct udp *first, unsigned worker, char *err,
                           size_t errcap)
{
    return udp_open(loop, first->cfg, first->tracker, first->cfg->bind, first->bound.port, 0, first,
                    worker, err, errcap);
}

struct udp *udp_new_probe(struct ev_loop *loop, const struct config *cfg, struct tracker *t,
                          unsigned udp_port, char *err, size_t errcap)
{
    const char *bind_s = cfg->probe_bind[0] ? cfg->probe_bind : cfg->bind;
    long port = cfg->probe_port ? cfg->probe_port : (long)udp_port;
    return udp_open(loop, cfg, t, bind_s, port, 1, NULL, 0, err, errcap);
}

void udp_free(struct udp *u)
{
    if (!u)
        return;
    ev_io_stop(u->loop, &u->io);
    close(u->fd);
    free(u->rbuf);
    free(u->qbuf);
    if (u->owns_locals)
        free(u->locals);
    free(u);
}

const struct addr *udp_bound(const struct udp *u) { return &u->bound; }
const struct udp_stats *udp_stats(const struct udp *u) { return &u->st; }
