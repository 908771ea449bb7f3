/* net: the socket set-up the UDP and TCP edges share. */
#ifndef PUNCHD_NET_H
#define PUNCHD_NET_H

#include <stdint.h>

#include "addr.h"

/* Creates a non-blocking socket of type (SOCK_DGRAM or SOCK_STREAM) bound to
 * IP literal ip and port: an IPv6 literal binds an IPv6 socket, "::" dual
 * stack; stream sockets get SO_REUSEADDR. With flags NET_REUSEPORT the socket
 * joins the port's SO_REUSEPORT group (the kernel spreads datagrams over the
 * group by source address). Fills *bound with the address actually bound
 * ("::" kept as IPv6) and *family with the socket's family. Returns the fd,
 * or -1 with errno set (EINVAL: ip is not a literal). */
#define NET_REUSEPORT 1
int net_bind(const char *ip, uint16_t port, int type, int flags, struct addr *bound, int *family);

#endif
