/* net: the socket set-up the UDP and TCP edges share. */
#ifndef PUNCHD_NET_H
#define PUNCHD_NET_H

#include <stdint.h>

#include "addr.h"

/* Creates a non-blocking socket of type (SOCK_DGRAM or SOCK_STREAM) bound to
 * IP literal ip and port: an IPv6 literal binds an IPv6 socket, "::" dual
 * stack; stream sockets get SO_REUSEADDR. Fills *bound with the address
 * actually bound ("::" kept as IPv6) and *family with the socket's family.
 * Returns the fd, or -1 with errno set (EINVAL: ip is not a literal). */
int net_bind(const char *ip, uint16_t port, int type, struct addr *bound, int *family);

#endif
