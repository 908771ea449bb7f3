/* net: shared socket set-up (see net.h). */
#include "net.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int net_bind(const char *ip, uint16_t port, int type, int flags, struct addr *bound, int *family)
{
    struct addr ba;
    if (addr_parse_ip(&ba, ip, port) != 0) {
        errno = EINVAL;
        return -1;
    }
    /* An IPv6 literal (even "::ffff:a.b.c.d") binds an IPv6 socket. */
    int fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
    int dual = fam == AF_INET6 && ba.family == AF_INET6 && addr_is_any(&ba);
    int fd = socket(fam, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1, v6only = !dual;
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if ((flags & NET_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (fam == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    struct sockaddr_storage ss;
    socklen_t sl = addr_to_sockaddr(&ba, &ss, fam);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    addr_from_sockaddr(bound, (struct sockaddr *)&ss, sl);
    if (dual)
        bound->family = AF_INET6; /* keep "::" printable as such */
    *family = fam;
    return fd;
}
