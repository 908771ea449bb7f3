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

size_t addr_format_ip(const struct addr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (!inet_ntop(a->family == AF_INET ? AF_INET : AF_INET6, a->ip, ip, sizeof ip))
        ip[0] = '\0';
    int n = snprintf(buf, cap, "%s", ip);
    return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

size_t addr_format(const struct addr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    int n;
    if (a->family == AF_INET) {
        inet_ntop(AF_INET, a->ip, ip, sizeof ip);
        n = snprintf(buf, cap, "%s:%u", ip, (unsigned)a->port);
    } else if (a->family == AF_INET6) {
        inet_ntop(AF_INET6, a->ip, ip, sizeof ip);
        n = snprintf(buf, cap, "[%s]:%u", ip, (unsigned)a->port);
    } else {
        n = snprintf(buf, cap, "-");
    }
    return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
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
