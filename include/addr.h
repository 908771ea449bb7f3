/* addr: a compact, comparable IP endpoint (IPv4 or IPv6 + port).
 *
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, what a dual-stack socket
 * reports for IPv4 clients) are always normalised to plain IPv4, so one client
 * has one identity whatever socket saw it. */
#ifndef PUNCHD_ADDR_H
#define PUNCHD_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest formatted endpoint: "[" 45-char IPv6 "]:" 5-digit port, plus NUL. */
#define ADDR_STRLEN 56

struct addr {
    uint8_t family; /* AF_INET or AF_INET6; 0 = none */
    uint8_t unused;
    uint16_t port;  /* host byte order */
    uint8_t ip[16]; /* IPv4 in the first 4 bytes, rest zero */
};

/* Fills a from a kernel sockaddr; returns 0, or -1 for an unsupported family. */
int addr_from_sockaddr(struct addr *a, const struct sockaddr *sa, socklen_t len);

/* Writes a into ss for a socket of family sock_family (AF_INET6 sockets get
 * IPv4 as v4-mapped). Returns the sockaddr length, or 0 if it cannot be
 * expressed (IPv6 destination on an IPv4 socket). */
socklen_t addr_to_sockaddr(const struct addr *a, struct sockaddr_storage *ss, int sock_family);

/* Parses an IP literal (no port, no brackets, no hostnames) with the given
 * port. Returns 0, or -1 if s is not an IPv4/IPv6 literal. */
int addr_parse_ip(struct addr *a, const char *s, uint16_t port);

/* Parses an endpoint "a.b.c.d:port" or "[v6]:port" (port 1-65535, no
 * hostnames) from s[0..len). Returns 0, or -1 if it is not one. */
int addr_parse_endpoint(struct addr *a, const char *s, size_t len);

/* Formats "a.b.c.d:port" or "[v6]:port" into buf (cap >= ADDR_STRLEN is
 * always enough). Returns the length written, excluding the NUL. */
size_t addr_format(const struct addr *a, char *buf, size_t cap);

/* Formats the IP only ("a.b.c.d" or "v6", no brackets). */
size_t addr_format_ip(const struct addr *a, char *buf, size_t cap);

/* A network: address and prefix length (port ignored). */
struct addr_cidr {
    struct addr net;  /* host bits cleared */
    uint8_t bits;     /* 0-32 for IPv4, 0-128 for IPv6 */
};

/* Parses "ip/bits" or a bare "ip" (a single host) from s. Returns 0, or -1. */
int addr_parse_cidr(struct addr_cidr *c, const char *s);

/* 1 if a's IP lies inside c (same family), else 0. */
int addr_in_cidr(const struct addr *a, const struct addr_cidr *c);

/* 1 if a and b are the same endpoint (family, ip, port), else 0. */
int addr_equal(const struct addr *a, const struct addr *b);

/* 1 for the IPv4 or IPv6 "any" address. */
int addr_is_any(const struct addr *a);

#endif
