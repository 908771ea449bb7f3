/* test_addr: addr parsing (v4, v6, v4-mapped), formatting, sockaddr round trips, equality. */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"

static void test_parse_v4(void **state)
{
    (void)state;
    struct addr a;
    const uint8_t want[16] = { 192, 0, 2, 33 };
    assert_int_equal(addr_parse_ip(&a, "192.0.2.33", 4242), 0);
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.port, 4242);
    assert_memory_equal(a.ip, want, 16); /* the tail stays zero */

    assert_int_equal(addr_parse_ip(&a, "255.255.255.255", 65535), 0);
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.port, 65535);
    assert_int_equal(a.ip[0], 255);
    assert_int_equal(a.ip[3], 255);
    assert_int_equal(a.ip[4], 0);

    assert_int_equal(addr_parse_ip(&a, "0.0.0.0", 0), 0);
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.port, 0);
}

static void test_parse_v6(void **state)
{
    (void)state;
    struct addr a;
    uint8_t want[16] = { 0x20, 0x01, 0x0d, 0xb8 };
    want[15] = 1;
    assert_int_equal(addr_parse_ip(&a, "2001:db8::1", 443), 0);
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(a.port, 443);
    assert_memory_equal(a.ip, want, 16);

    const uint8_t loop6[16] = { [15] = 1 };
    assert_int_equal(addr_parse_ip(&a, "::1", 7), 0);
    assert_int_equal(a.family, AF_INET6);
    assert_memory_equal(a.ip, loop6, 16);

    const uint8_t zero[16] = { 0 };
    assert_int_equal(addr_parse_ip(&a, "::", 7), 0);
    assert_int_equal(a.family, AF_INET6);
    assert_memory_equal(a.ip, zero, 16);

    /* Upper-case hex and a full form are fine too. */
    assert_int_equal(addr_parse_ip(&a, "2001:0DB8:0000:0000:0000:0000:0000:0001", 443), 0);
    assert_int_equal(a.family, AF_INET6);
    assert_memory_equal(a.ip, want, 16);
}

static void test_parse_v4_mapped(void **state)
{
    (void)state;
    struct addr a, b;
    const uint8_t want[16] = { 10, 1, 2, 3 };
    assert_int_equal(addr_parse_ip(&a, "::ffff:10.1.2.3", 5000), 0);
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.port, 5000);
    assert_memory_equal(a.ip, want, 16); /* moved to the front, tail zeroed */

    assert_int_equal(addr_parse_ip(&b, "10.1.2.3", 5000), 0);
    assert_true(addr_equal(&a, &b));

    /* The hex spelling of the same mapped address. */
    assert_int_equal(addr_parse_ip(&a, "::FFFF:a01:203", 5000), 0);
    assert_int_equal(a.family, AF_INET);
    assert_memory_equal(a.ip, want, 16);

    /* Look-alikes that are not v4-mapped stay IPv6. */
    assert_int_equal(addr_parse_ip(&a, "::10.1.2.3", 5000), 0); /* v4-compatible */
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(addr_parse_ip(&a, "64:ff9b::10.1.2.3", 5000), 0); /* NAT64 */
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(addr_parse_ip(&a, "::fffe:10.1.2.3", 5000), 0);
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(addr_parse_ip(&a, "1::ffff:10.1.2.3", 5000), 0);
    assert_int_equal(a.family, AF_INET6);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "localhost",
        "example.com",
        "ip6-localhost",
        "garbage",
        "1.2.3.4:80",
        "[::1]",
        "[::1]:80",
        "::1:80:",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.2.3.-4",
        " 1.2.3.4",
        "1.2.3.4 ",
        "1.2.3.4\n",
        "0x7f.0.0.1",
        "fe80::1%eth0",
        "::1%lo",
        ":::",
        "1:2:3:4:5:6:7:8:9",
        "2001:db8::g",
        "12345::",
        "1.2.3.4/24",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct addr a;
        if (addr_parse_ip(&a, bad[i], 80) != -1)
            fail_msg("addr_parse_ip accepted \"%s\"", bad[i]);
    }
}

static void check_format(const char *ip, uint16_t port, const char *want)
{
    struct addr a;
    char buf[ADDR_STRLEN];
    assert_int_equal(addr_parse_ip(&a, ip, port), 0);
    size_t n = addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_format(void **state)
{
    (void)state;
    check_format("192.0.2.33", 4242, "192.0.2.33:4242");
    check_format("1.2.3.4", 0, "1.2.3.4:0");
    check_format("255.255.255.255", 65535, "255.255.255.255:65535");
    check_format("2001:db8::1", 443, "[2001:db8::1]:443");
    check_format("::", 3000, "[::]:3000");
    check_format("::1", 1, "[::1]:1");
    check_format("::ffff:10.1.2.3", 5, "10.1.2.3:5"); /* mapped prints as plain IPv4 */
    /* The longest IPv6 text still fits ADDR_STRLEN. */
    check_format("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
                 "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void test_format_ip_and_truncation(void **state)
{
    (void)state;
    struct addr a;
    char buf[ADDR_STRLEN];
    assert_int_equal(addr_parse_ip(&a, "2001:db8::7", 9), 0);
    assert_int_equal(addr_format_ip(&a, buf, sizeof buf), strlen("2001:db8::7"));
    assert_string_equal(buf, "2001:db8::7"); /* no brackets, no port */
    assert_int_equal(addr_parse_ip(&a, "10.0.0.1", 9), 0);
    assert_int_equal(addr_format_ip(&a, buf, sizeof buf), 8);
    assert_string_equal(buf, "10.0.0.1");

    /* A short buffer is NUL-terminated and the returned length matches it. */
    char small[6];
    memset(small, 'X', sizeof small);
    size_t n = addr_format(&a, small, sizeof small);
    assert_true(n < sizeof small);
    assert_int_equal(small[n], '\0');
    assert_int_equal(n, strlen(small));
    assert_memory_equal(small, "10.0.", 5);
}

static void test_sockaddr_v4_roundtrip(void **state)
{
    (void)state;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(40000);
    assert_int_equal(inet_pton(AF_INET, "198.51.100.7", &sin.sin_addr), 1);

    struct addr a, want;
    assert_int_equal(addr_from_sockaddr(&a, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(addr_parse_ip(&want, "198.51.100.7", 40000), 0);
    assert_true(addr_equal(&a, &want));
    assert_int_equal(a.port, 40000);

    struct sockaddr_storage ss;
    socklen_t len = addr_to_sockaddr(&a, &ss, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *out = (const struct sockaddr_in *)&ss;
    assert_int_equal(out->sin_family, AF_INET);
    assert_int_equal(out->sin_port, htons(40000));
    assert_memory_equal(&out->sin_addr, &sin.sin_addr, 4);
}

static void test_sockaddr_v6_roundtrip(void **state)
{
    (void)state;
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(9);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::5", &sin6.sin6_addr), 1);

    struct addr a, want;
    assert_int_equal(addr_from_sockaddr(&a, (struct sockaddr *)&sin6, sizeof sin6), 0);
    assert_int_equal(addr_parse_ip(&want, "2001:db8::5", 9), 0);
    assert_int_equal(a.family, AF_INET6);
    assert_true(addr_equal(&a, &want));

    struct sockaddr_storage ss;
    socklen_t len = addr_to_sockaddr(&a, &ss, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    const struct sockaddr_in6 *out = (const struct sockaddr_in6 *)&ss;
    assert_int_equal(out->sin6_family, AF_INET6);
    assert_int_equal(out->sin6_port, htons(9));
    assert_memory_equal(&out->sin6_addr, &sin6.sin6_addr, 16);

    /* An IPv6 destination cannot be expressed on an IPv4 socket. */
    assert_int_equal(addr_to_sockaddr(&a, &ss, AF_INET), 0);
}

static void test_sockaddr_v4_mapped(void **state)
{
    (void)state;
    /* What a dual-stack socket reports for an IPv4 client. */
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(5353);
    assert_int_equal(inet_pton(AF_INET6, "::ffff:203.0.113.9", &sin6.sin6_addr), 1);

    struct addr a, want;
    assert_int_equal(addr_from_sockaddr(&a, (struct sockaddr *)&sin6, sizeof sin6), 0);
    assert_int_equal(addr_parse_ip(&want, "203.0.113.9", 5353), 0);
    assert_int_equal(a.family, AF_INET);
    assert_true(addr_equal(&a, &want));
    const uint8_t ip[16] = { 203, 0, 113, 9 };
    assert_memory_equal(a.ip, ip, 16);

    /* Back onto the AF_INET6 socket: v4-mapped again. */
    struct sockaddr_storage ss;
    assert_int_equal(addr_to_sockaddr(&a, &ss, AF_INET6), sizeof(struct sockaddr_in6));
    const struct sockaddr_in6 *out = (const struct sockaddr_in6 *)&ss;
    assert_int_equal(out->sin6_family, AF_INET6);
    assert_int_equal(out->sin6_port, htons(5353));
    assert_true(IN6_IS_ADDR_V4MAPPED(&out->sin6_addr));
    assert_memory_equal(&out->sin6_addr, &sin6.sin6_addr, 16);

    /* And onto an AF_INET socket: plain. */
    assert_int_equal(addr_to_sockaddr(&a, &ss, AF_INET), sizeof(struct sockaddr_in));
    const struct sockaddr_in *o4 = (const struct sockaddr_in *)&ss;
    assert_int_equal(o4->sin_family, AF_INET);
    assert_memory_equal(&o4->sin_addr, ip, 4);
}

static void test_sockaddr_rejects(void **state)
{
    (void)state;
    struct addr a;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    assert_int_equal(addr_from_sockaddr(&a, (struct sockaddr *)&sun, sizeof sun), -1);

    /* A length too short for the family is refused. */
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    assert_int_equal(addr_from_sockaddr(&a, (struct sockaddr *)&sin, sizeof sin - 1), -1);
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    assert_int_equal(addr_from_sockaddr(&a, (struct sockaddr *)&sin6, sizeof(struct sockaddr_in)), -1);
}

/* Real sockets: an IPv4 client talking to a dual-stack socket is seen as plain
 * IPv4, and a reply addressed with addr_to_sockaddr(AF_INET6) reaches it. */
static void test_sockaddr_dual_stack_socket(void **state)
{
    (void)state;
    int s6 = socket(AF_INET6, SOCK_DGRAM, 0);
    if (s6 < 0)
        skip();
    int off = 0;
    struct sockaddr_in6 b6;
    memset(&b6, 0, sizeof b6);
    b6.sin6_family = AF_INET6;
    b6.sin6_addr = in6addr_any;
    if (setsockopt(s6, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0 ||
        bind(s6, (struct sockaddr *)&b6, sizeof b6) != 0) {
        close(s6);
        skip();
    }
    socklen_t bl = sizeof b6;
    assert_int_equal(getsockname(s6, (struct sockaddr *)&b6, &bl), 0);

    int s4 = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(s4 >= 0);
    struct sockaddr_in b4;
    memset(&b4, 0, sizeof b4);
    b4.sin_family = AF_INET;
    b4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s4, (struct sockaddr *)&b4, sizeof b4), 0);
    bl = sizeof b4;
    assert_int_equal(getsockname(s4, (struct sockaddr *)&b4, &bl), 0);
    struct timeval tv = { 2, 0 };
    assert_int_equal(setsockopt(s4, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    assert_int_equal(setsockopt(s6, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);

    /* v4 client -> 127.0.0.1:<dual-stack port>, addressed through addr. */
    struct addr server, client, seen;
    struct sockaddr_storage ss;
    assert_int_equal(addr_parse_ip(&server, "127.0.0.1", ntohs(b6.sin6_port)), 0);
    socklen_t sl = addr_to_sockaddr(&server, &ss, AF_INET);
    assert_true(sl > 0);
    assert_int_equal(sendto(s4, "ping", 4, 0, (struct sockaddr *)&ss, sl), 4);

    char buf[16];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(s6, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    assert_int_equal(n, 4);
    assert_int_equal(from.ss_family, AF_INET6); /* the kernel reports ::ffff:127.0.0.1 */
    assert_int_equal(addr_from_sockaddr(&seen, (struct sockaddr *)&from, fl), 0);
    assert_int_equal(addr_parse_ip(&client, "127.0.0.1", ntohs(b4.sin_port)), 0);
    assert_int_equal(seen.family, AF_INET);
    assert_true(addr_equal(&seen, &client));

    /* Reply from the dual-stack socket to the plain IPv4 address. */
    sl = addr_to_sockaddr(&seen, &ss, AF_INET6);
    assert_int_equal(sl, sizeof(struct sockaddr_in6));
    assert_int_equal(sendto(s6, "pong", 4, 0, (struct sockaddr *)&ss, sl), 4);
    n = recv(s4, buf, sizeof buf, 0);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "pong", 4);
    close(s4);
    close(s6);
}

static void test_equal(void **state)
{
    (void)state;
    struct addr a, b;
    assert_int_equal(addr_parse_ip(&a, "10.0.0.1", 1000), 0);
    assert_int_equal(addr_parse_ip(&b, "10.0.0.1", 1000), 0);
    assert_true(addr_equal(&a, &b));
    assert_true(addr_equal(&b, &a));

    assert_int_equal(addr_parse_ip(&b, "10.0.0.1", 1001), 0);
    assert_false(addr_equal(&a, &b)); /* port */
    assert_int_equal(addr_parse_ip(&b, "10.0.0.2", 1000), 0);
    assert_false(addr_equal(&a, &b)); /* ip */
    assert_int_equal(addr_parse_ip(&b, "::ffff:10.0.0.1", 1000), 0);
    assert_true(addr_equal(&a, &b)); /* mapped = plain */

    /* IPv4 10.0.0.1 vs an IPv6 address whose first bytes are the same. */
    assert_int_equal(addr_parse_ip(&b, "a00:1::", 1000), 0);
    assert_int_equal(memcmp(a.ip, b.ip, 4), 0);
    assert_false(addr_equal(&a, &b)); /* family */

    struct addr c, d;
    assert_int_equal(addr_parse_ip(&c, "2001:db8::1", 5), 0);
    assert_int_equal(addr_parse_ip(&d, "2001:db8::1", 5), 0);
    assert_true(addr_equal(&c, &d));
    assert_int_equal(addr_parse_ip(&d, "2001:db8::2", 5), 0);
    assert_false(addr_equal(&c, &d)); /* last byte of 16 */
    assert_int_equal(addr_parse_ip(&d, "2001:db8::1", 6), 0);
    assert_false(addr_equal(&c, &d));
}

static void test_is_any(void **state)
{
    (void)state;
    struct addr a;
    assert_int_equal(addr_parse_ip(&a, "0.0.0.0", 1), 0);
    assert_true(addr_is_any(&a));
    assert_int_equal(addr_parse_ip(&a, "::", 1), 0);
    assert_true(addr_is_any(&a));
    assert_int_equal(addr_parse_ip(&a, "127.0.0.1", 1), 0);
    assert_false(addr_is_any(&a));
    assert_int_equal(addr_parse_ip(&a, "::1", 1), 0);
    assert_false(addr_is_any(&a));
    assert_int_equal(addr_parse_ip(&a, "0.0.0.1", 1), 0);
    assert_false(addr_is_any(&a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_v4),
        cmocka_unit_test(test_parse_v6),
        cmocka_unit_test(test_parse_v4_mapped),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_ip_and_truncation),
        cmocka_unit_test(test_sockaddr_v4_roundtrip),
        cmocka_unit_test(test_sockaddr_v6_roundtrip),
        cmocka_unit_test(test_sockaddr_v4_mapped),
        cmocka_unit_test(test_sockaddr_rejects),
        cmocka_unit_test(test_sockaddr_dual_stack_socket),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_is_any),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
