/* punch_addr: endpoints for libpunch (parse/format literals, kernel
 * conversions, host resolution, interface candidates) and the ordered list
 * of addresses to knock (see punch_int.h). */
#include "punch_int.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t punch_v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int punch_addr_parse_ip(struct punch_addr *a, const char *s, uint16_t port)
{
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, s, a->ip) == 1) {
        a->family = AF_INET;
    } else if (inet_pton(AF_INET6, s, a->ip) == 1) {
        if (memcmp(a->ip, punch_v4mapped, 12) == 0) {
            memmove(a->ip, a->ip + 12, 4);
            memset(a->ip + 4, 0, 12);
            a->family = AF_INET;
        } else {
            a->family = AF_INET6;
        }
    } else {
        return -1;
    }
    a->port = port;
    return 0;
}

/* Parses a decimal port 1-65535 from s[0..n). */
static int punch_parse_port(const char *s, size_t n, uint16_t *port)
{
    if (n < 1 || n > 5)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* Splits "host:port" / "[v6]:port" into host (NUL-terminated) and port. */
static int punch_split_hostport(const char *s, size_t n, char *host, size_t hostcap, uint16_t *port)
{
    const char *colon;
    size_t hlen;
    const char *h = s;
    if (n > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', n);
        if (!end || end + 1 >= s + n || end[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = NULL;
        for (size_t i = n; i > 0; i--) {
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        }
        if (!colon)
            return -1;
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen))
            return -1; /* a bare IPv6 needs brackets */
    }
    if (hlen == 0 || hlen >= hostcap)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    return punch_parse_port(colon + 1, (size_t)(s + n - (colon + 1)), port);
}

int punch_addr_parse(struct punch_addr *a, const char *s, size_t n)
{
    char host[64];
    uint16_t port;
    if (n > 80 || punch_split_hostport(s, n, host, sizeof host, &port) != 0)
        return -1;
    int bracketed = s[0] == '[';
    if (punch_addr_parse_ip(a, host, port) != 0)
        return -1;
    /* "[v4]:p" is not the tracker's spelling (and "v6:p" cannot split). */
    if (bracketed != (a->family == AF_INET6))
        return -1;
    return 0;
}

size_t punch_addr_format(const struct punch_addr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    int n;
    if (cap == 0)
        return 0;
    if (a->family == AF_INET) {
        inet_ntop(AF_INET, a->ip, ip, sizeof ip);
        n = snprintf(buf, cap, "%s:%u", ip, (unsigned)a->port);
    } else if (a->family == AF_INET6) {
        inet_ntop(AF_INET6, a->ip, ip, sizeof ip);
        n = snprintf(buf, cap, "[%s]:%u", ip, (unsigned)a->port);
    } else {
        n = snprintf(buf, cap, "-");
    }
    if (n < 0)
        n = 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

int punch_addr_equal(const struct punch_addr *a, const struct punch_addr *b)
{
    if (a->family != b->family || a->port != b->port)
        return 0;
    return memcmp(a->ip, b->ip, a->family == AF_INET ? 4 : 16) == 0;
}

int punch_addr_from_sockaddr(struct punch_addr *a, const struct sockaddr *sa, socklen_t len)
{
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        a->family = AF_INET;
        memcpy(a->ip, &s4->sin_addr, 4);
        a->port = ntohs(s4->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        a->port = ntohs(s6->sin6_port);
        if (memcmp(&s6->sin6_addr, punch_v4mapped, 12) == 0) {
            a->family = AF_INET;
            memcpy(a->ip, (const uint8_t *)&s6->sin6_addr + 12, 4);
        } else {
            a->family = AF_INET6;
            memcpy(a->ip, &s6->sin6_addr, 16);
        }
        return 0;
    }
    return -1;
}

socklen_t punch_addr_to_sockaddr(const struct punch_addr *a, struct sockaddr_storage *ss,
                                 int sock_family)
{
    memset(ss, 0, sizeof *ss);
    if (sock_family == AF_INET) {
        if (a->family != AF_INET)
            return 0;
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        memcpy(&s4->sin_addr, a->ip, 4);
        return sizeof *s4;
    }
    if (sock_family == AF_INET6 && a->family) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        if (a->family == AF_INET) {
            memcpy(&s6->sin6_addr, punch_v4mapped, 12);
            memcpy((uint8_t *)&s6->sin6_addr + 12, a->ip, 4);
        } else {
            memcpy(&s6->sin6_addr, a->ip, 16);
        }
        return sizeof *s6;
    }
    return 0;
}

int punch_addr_resolve(struct punch_addr *a, const char *hostport, char *host, size_t hostcap)
{
    uint16_t port;
    size_t n = strlen(hostport);
    if (n > 300 || punch_split_hostport(hostport, n, host, hostcap, &port) != 0)
        return PUNCH_E_INVAL;
    if (punch_addr_parse_ip(a, host, port) == 0)
        return 0;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return PUNCH_E_RESOLVE;
    int rc = PUNCH_E_RESOLVE;
    /* IPv4 first: the usual case for NATs, and what most trackers bind. */
    for (int pass = 0; pass < 2 && rc != 0; pass++) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if ((pass == 0) != (ai->ai_family == AF_INET))
                continue;
            if (punch_addr_from_sockaddr(a, ai->ai_addr, ai->ai_addrlen) == 0) {
                a->port = port;
                rc = 0;
                break;
            }
        }
    }
    freeaddrinfo(res);
    return rc;
}

int punch_addr_is_local_only(const struct punch_addr *a)
{
    static const uint8_t zero[16];
    if (a->family == AF_INET) {
        return a->ip[0] == 127 || a->ip[0] == 0 || (a->ip[0] == 169 && a->ip[1] == 254) ||
               a->ip[0] >= 224;
    }
    if (a->family == AF_INET6) {
        if (memcmp(a->ip, zero, 16) == 0)
            return 1;
        if (memcmp(a->ip, zero, 15) == 0 && a->ip[15] == 1)
            return 1;
        if (a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0x80)
            return 1;
        return a->ip[0] == 0xff;
    }
    return 1;
}

static int punch_addr_in(const struct punch_addr *list, int n, const struct punch_addr *a)
{
    for (int i = 0; i < n; i++)
        if (punch_addr_equal(&list[i], a))
            return 1;
    return 0;
}

int punch_addr_candidates(const struct punch_addr *bound, struct punch_addr *out, int max)
{
    static const uint8_t zero[16];
    int n = 0;
    if (max <= 0 || !bound->family)
        return 0;
    if (memcmp(bound->ip, zero, 16) != 0) {
        /* Bound to one IP: it is the only one the socket receives on. */
        if (!punch_addr_is_local_only(bound))
            out[n++] = *bound;
        return n;
    }
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return 0;
    for (struct ifaddrs *i = ifs; i && n < max; i = i->ifa_next) {
        if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
            continue;
        int fam = i->ifa_addr->sa_family;
        if (fam != AF_INET && fam != AF_INET6)
            continue;
        struct punch_addr a;
        socklen_t len = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (punch_addr_from_sockaddr(&a, i->ifa_addr, len) != 0 || a.family != bound->family)
            continue;
        a.port = bound->port;
        if (punch_addr_is_local_only(&a) || punch_addr_in(out, n, &a))
            continue;
        out[n++] = a;
    }
    freeifaddrs(ifs);
    return n;
}

/* Appends a to out unless it is unusable or already listed. */
static void punch_target_add(struct punch_target *out, int *n, int max, int family, int allow_loopback,
                             const struct punch_addr *a, enum punch_path kind)
{
    if (*n >= max || !a->family || a->port == 0)
        return;
    if (family && a->family != family)
        return;
    if (punch_addr_is_local_only(a)) {
        int loop = (a->family == AF_INET && a->ip[0] == 127) ||
                   (a->family == AF_INET6 && a->ip[15] == 1 && a->ip[0] == 0);
        if (!(allow_loopback && loop))
            return;
    }
    for (int i = 0; i < *n; i++)
        if (punch_addr_equal(&out[i].addr, a))
            return;
    out[*n].addr = *a;
    out[*n].kind = kind;
    (*n)++;
}

int punch_targets_build(struct punch_target *out, int max, int family, int allow_loopback,
                        const struct punch_addr *peeraddr, const struct punch_addr *cands,
                        int ncands, const struct punch_addr *pred, int npred)
{
    int n = 0;
    for (int i = 0; i < npred; i++)
        punch_target_add(out, &n, max, family, allow_loopback, &pred[i], PUNCH_PATH_PREDICTED);
    if (peeraddr)
        punch_target_add(out, &n, max, family, allow_loopback, peeraddr, PUNCH_PATH_DIRECT);
    for (int i = 0; i < ncands; i++)
        punch_target_add(out, &n, max, family, allow_loopback, &cands[i], PUNCH_PATH_DIRECT);
    return n;
}
