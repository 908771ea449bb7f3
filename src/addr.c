/* addr: a compact, comparable IP endpoint (see addr.h). */
#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t addr_v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int addr_from_sockaddr(struct addr *a, const struct sockaddr *sa, socklen_t len)
{
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        a->family = AF_INET;
        a->port = ntohs(s4->sin_port);
        memcpy(a->ip, &s4->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        a->port = ntohs(s6->sin6_port);
        if (memcmp(&s6->sin6_addr, addr_v4mapped_prefix, 12) == 0) {
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

socklen_t addr_to_sockaddr(const struct addr *a, struct sockaddr_storage *ss, int sock_family)
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
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(a->port);
    if (a->family == AF_INET) {
        memcpy(&s6->sin6_addr, addr_v4mapped_prefix, 12);
        memcpy((uint8_t *)&s6->sin6_addr + 12, a->ip, 4);
    } else {
        memcpy(&s6->sin6_addr, a->ip, 16);
    }
    return sizeof *s6;
}

int addr_parse_ip(struct addr *a, const char *s, uint16_t port)
{
    memset(a, 0, sizeof *a);
    a->port = port;
    if (inet_pton(AF_INET, s, a->ip) == 1) {
        a->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, a->ip) == 1) {
        a->family = AF_INET6;
        if (memcmp(a->ip, addr_v4mapped_prefix, 12) == 0) {
            memmove(a->ip, a->ip + 12, 4);
            memset(a->ip + 4, 0, 12);
            a->family = AF_INET;
        }
        return 0;
    }
    memset(a, 0, sizeof *a);
    return -1;
}

int addr_parse_endpoint(struct addr *a, const char *s, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    size_t colon = len;
    while (colon > 0 && s[colon - 1] != ':')
        colon--;
    if (colon == 0 || colon == len || len - colon > 5)
        return -1;
    long port = 0;
    for (size_t i = colon; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        port = port * 10 + (s[i] - '0');
    }
    if (port < 1 || port > 65535)
        return -1;
    size_t start = 0, end = colon - 1; /* the host, without the ':' */
    if (end >= 2 && s[0] == '[' && s[end - 1] == ']') {
        start = 1;
        end--;
    } else if (memchr(s, ':', end)) {
        return -1; /* IPv6 needs brackets: "[v6]:port" */
    }
    if (end - start == 0 || end - start >= sizeof ip)
        return -1;
    memcpy(ip, s + start, end - start);
    ip[end - start] = '\0';
    if (start == 1 && !strchr(ip, ':'))
        return -1; /* "[1.2.3.4]:5" is not a form we print */
    return addr_parse_ip(a, ip, (uint16_t)port);
}

/* Clears the bits of ip past the first `bits`. */
static void addr_mask(uint8_t ip[16], unsigned bits, unsigned total)
{
    for (unsigned i = 0; i < total / 8; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
        ip[i] &= (uint8_t)(0xff00u >> keep);
    }
}

int addr_parse_cidr(struct addr_cidr *c, const char *s)
{
    char ip[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof ip)
        return -1;
    memcpy(ip, s, n);
    ip[n] = '\0';
    memset(c, 0, sizeof *c);
    if (addr_parse_ip(&c->net, ip, 0) != 0)
        return -1;
    unsigned total = c->net.family == AF_INET ? 32 : 128;
    long bits = total;
    if (slash) {
        const char *b = slash + 1;
        if (!*b || strlen(b) > 3)
            return -1;
        bits = 0;
        for (; *b; b++) {
            if (*b < '0' || *b > '9')
                return -1;
            bits = bits * 10 + (*b - '0');
        }
        if (bits > (long)total)
            return -1;
    }
    c->bits = (uint8_t)bits;
    addr_mask(c->net.ip, c->bits, total);
    return 0;
}

int addr_in_cidr(const struct addr *a, const struct addr_cidr *c)
{
    if (a->family != c->net.family)
        return 0;
    uint8_t ip[16];
    memcpy(ip, a->ip, sizeof ip);
    addr_mask(ip, c->bits, a->family == AF_INET ? 32 : 128);
    return memcmp(ip, c->net.ip, sizeof ip) == 0;
}

/* Formatting is on every reply's path (addresses go into most of them):
 * digits by hand, not snprintf, which was a tenth of a request's CPU. */
static char *addr_put_u(char *p, unsigned v)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* The IP's text at t (INET6_ADDRSTRLEN bytes); returns its length. Anything
 * but AF_INET is printed as IPv6. */
static size_t addr_ip_text(const struct addr *a, char *t)
{
    if (a->family == AF_INET) {
        char *p = t;
        for (int i = 0; i < 4; i++) {
            p = addr_put_u(p, a->ip[i]);
            if (i < 3)
                *p++ = '.';
        }
        *p = '\0';
        return (size_t)(p - t);
    }
    if (!inet_ntop(AF_INET6, a->ip, t, INET6_ADDRSTRLEN))
        t[0] = '\0';
    return strlen(t);
}

/* s[0..n) into buf, cut like snprintf: at most cap - 1 bytes and a NUL. */
static size_t addr_out(char *buf, size_t cap, const char *s, size_t n)
{
    if (cap == 0)
        return 0;
    if (n > cap - 1)
        n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return n;
}

size_t addr_format_ip(const struct addr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    return addr_out(buf, cap, ip, addr_ip_text(a, ip));
}

size_t addr_format(const struct addr *a, char *buf, size_t cap)
{
    char t[INET6_ADDRSTRLEN + 16];
    char *p = t;
    if (a->family == AF_INET) {
        p += addr_ip_text(a, p);
    } else if (a->family == AF_INET6) {
        *p++ = '[';
        p += addr_ip_text(a, p);
        *p++ = ']';
    } else {
        return addr_out(buf, cap, "-", 1);
    }
    *p++ = ':';
    p = addr_put_u(p, a->port);
    return addr_out(buf, cap, t, (size_t)(p - t));
}

int addr_equal(const struct addr *a, const struct addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == AF_INET ? 4 : 16) == 0;
}

int addr_is_any(const struct addr *a)
{
    static const uint8_t zero[16];
    return memcmp(a->ip, zero, a->family == AF_INET ? 4 : 16) == 0;
}
