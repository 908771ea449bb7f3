/* test_client_addr: libpunch's endpoints (parse, format, sockaddr), the
 * order in which a peer's addresses are knocked, and the pure parts of the
 * WebSocket client (accept key, 101 head check). */
#include "client_unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static void test_parse_format(void **state)
{
    (void)state;
    const char *ok[] = {"1.2.3.4:5", "255.255.255.255:65535", "[2001:db8::1]:443", "[::1]:1"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct punch_addr a = cu_addr(ok[i]);
        char buf[PUNCH_ADDR_STRLEN];
        punch_addr_format(&a, buf, sizeof buf);
        assert_string_equal(buf, ok[i]);
    }
    const char *bad[] = {"1.2.3.4", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:1x",
                         "host:80", "2001:db8::1:443", "[1.2.3.4]:5", "[2001:db8::1]443", "",
                         ":80", "[]:80", "1.2.3.4:123456", "1.2.3.4: 80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct punch_addr a;
        assert_int_equal(punch_addr_parse(&a, bad[i], strlen(bad[i])), -1);
    }
    /* A length, not a NUL, bounds the parse. */
    struct punch_addr a;
    assert_int_equal(punch_addr_parse(&a, "1.2.3.4:56789", 9), 0);
    assert_int_equal(a.port, 5);
    /* v4-mapped IPv6 is the same IPv4 endpoint. */
    assert_int_equal(punch_addr_parse_ip(&a, "::ffff:192.0.2.1", 7), 0);
    struct punch_addr b = cu_addr("192.0.2.1:7");
    assert_true(punch_addr_equal(&a, &b));
}

static void test_sockaddr_roundtrip(void **state)
{
    (void)state;
    struct punch_addr a = cu_addr("192.0.2.1:4000"), back;
    struct sockaddr_storage ss;
    socklen_t sl = punch_addr_to_sockaddr(&a, &ss, AF_INET);
    assert_int_equal(sl, sizeof(struct sockaddr_in));
    assert_int_equal(punch_addr_from_sockaddr(&back, (struct sockaddr *)&ss, sl), 0);
    assert_true(punch_addr_equal(&a, &back));
    /* On an IPv6 socket an IPv4 destination is v4-mapped, and comes back as IPv4. */
    sl = punch_addr_to_sockaddr(&a, &ss, AF_INET6);
    assert_int_equal(sl, sizeof(struct sockaddr_in6));
    assert_int_equal(punch_addr_from_sockaddr(&back, (struct sockaddr *)&ss, sl), 0);
    assert_true(punch_addr_equal(&a, &back));
    /* IPv6 cannot go out of an IPv4 socket. */
    struct punch_addr v6 = cu_addr("[2001:db8::1]:1");
    assert_int_equal(punch_addr_to_sockaddr(&v6, &ss, AF_INET), 0);
}

static void test_resolve_literals(void **state)
{
    (void)state;
    struct punch_addr a;
    char host[64];
    assert_int_equal(punch_addr_resolve(&a, "127.0.0.1:3000", host, sizeof host), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(a.port, 3000);
    assert_int_equal(punch_addr_resolve(&a, "[::1]:3000", host, sizeof host), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(punch_addr_resolve(&a, "localhost:3000", host, sizeof host), 0);
    assert_int_equal(punch_addr_resolve(&a, "127.0.0.1", host, sizeof host), PUNCH_E_INVAL);
    assert_int_equal(punch_addr_resolve(&a, "127.0.0.1:0", host, sizeof host), PUNCH_E_INVAL);
}

static void test_local_only(void **state)
{
    (void)state;
    const char *local[] = {"127.0.0.1:1", "0.0.0.0:1", "169.254.1.1:1", "224.0.0.1:1", "[::1]:1",
                           "[::]:1", "[fe80::1]:1", "[ff02::1]:1"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
        struct punch_addr a = cu_addr(local[i]);
        assert_true(punch_addr_is_local_only(&a));
    }
    const char *global[] = {"10.0.0.1:1", "198.18.0.1:1", "[2001:db8::1]:1"};
    for (size_t i = 0; i < sizeof global / sizeof global[0]; i++) {
        struct punch_addr a = cu_addr(global[i]);
        assert_false(punch_addr_is_local_only(&a));
    }
}

static void test_candidates_of_a_bound_socket(void **state)
{
    (void)state;
    struct punch_addr out[PUNCH_MAX_CANDIDATES];
    struct punch_addr b = cu_addr("198.18.1.2:4000");
    assert_int_equal(punch_addr_candidates(&b, out, PUNCH_MAX_CANDIDATES), 1);
    assert_true(punch_addr_equal(&out[0], &b));
    b = cu_addr("127.0.0.1:4000"); /* loopback is never a candidate */
    assert_int_equal(punch_addr_candidates(&b, out, PUNCH_MAX_CANDIDATES), 0);
    /* Wildcard: the host's interfaces, each with the port, none local-only. */
    assert_int_equal(punch_addr_parse_ip(&b, "0.0.0.0", 4000), 0);
    int n = punch_addr_candidates(&b, out, PUNCH_MAX_CANDIDATES);
    assert_true(n >= 0 && n <= PUNCH_MAX_CANDIDATES);
    for (int i = 0; i < n; i++) {
        assert_int_equal(out[i].port, 4000);
        assert_int_equal(out[i].family, AF_INET);
        assert_false(punch_addr_is_local_only(&out[i]));
    }
}

static void test_target_order(void **state)
{
    (void)state;
    struct punch_target t[PUNCH_MAX_TARGETS];
    struct punch_addr peer = cu_addr("198.51.100.9:40000");
    struct punch_addr cands[3] = {cu_addr("10.0.0.2:5000"), cu_addr("198.51.100.9:40000"),
                                  cu_addr("[2001:db8::2]:5000")};
    struct punch_addr pred[2] = {cu_addr("198.51.100.9:40002"), cu_addr("198.51.100.9:40003")};
    int n = punch_targets_build(t, PUNCH_MAX_TARGETS, AF_INET, 0, &peer, cands, 3, pred, 2);
    /* predicted first (a sequential NAT's k-th new mapping meets the other's
     * k-th), then peeraddr, then candidates; the duplicate and the other
     * family are left out. */
    assert_int_equal(n, 4);
    assert_true(punch_addr_equal(&t[0].addr, &pred[0]));
    assert_int_equal(t[0].kind, PUNCH_PATH_PREDICTED);
    assert_true(punch_addr_equal(&t[1].addr, &pred[1]));
    assert_int_equal(t[1].kind, PUNCH_PATH_PREDICTED);
    assert_true(punch_addr_equal(&t[2].addr, &peer));
    assert_int_equal(t[2].kind, PUNCH_PATH_DIRECT);
    assert_true(punch_addr_equal(&t[3].addr, &cands[0]));
    assert_int_equal(t[3].kind, PUNCH_PATH_DIRECT);
    /* No prediction: peeraddr first. */
    n = punch_targets_build(t, PUNCH_MAX_TARGETS, AF_INET, 0, &peer, cands, 1, NULL, 0);
    assert_int_equal(n, 2);
    assert_true(punch_addr_equal(&t[0].addr, &peer));
    /* No peeraddr (a WebSocket-only peer): its candidates only. */
    n = punch_targets_build(t, PUNCH_MAX_TARGETS, AF_INET, 0, NULL, cands, 1, NULL, 0);
    assert_int_equal(n, 1);
    assert_true(punch_addr_equal(&t[0].addr, &cands[0]));
    /* The cap holds. */
    n = punch_targets_build(t, 2, AF_INET, 0, &peer, cands, 3, pred, 2);
    assert_int_equal(n, 2);
}

static void test_target_loopback_rule(void **state)
{
    (void)state;
    struct punch_target t[PUNCH_MAX_TARGETS];
    struct punch_addr peer = cu_addr("127.0.0.1:40000");
    struct punch_addr cands[3] = {cu_addr("127.0.0.1:5000"), cu_addr("0.0.0.0:5000"), cu_addr("224.1.1.1:5")};
    /* A tracker elsewhere never makes us knock our own host's loopback. */
    assert_int_equal(punch_targets_build(t, PUNCH_MAX_TARGETS, AF_INET, 0, &peer, cands, 3, NULL, 0), 0);
    /* A loopback tracker (tests, one machine): loopback is fine; the rest never. */
    assert_int_equal(punch_targets_build(t, PUNCH_MAX_TARGETS, AF_INET, 1, &peer, cands, 3, NULL, 0), 2);
    /* port 0 is not an endpoint */
    struct punch_addr zero = cu_addr("10.0.0.1:1");
    zero.port = 0;
    assert_int_equal(punch_targets_build(t, PUNCH_MAX_TARGETS, AF_INET, 0, &zero, NULL, 0, NULL, 0), 0);
}

static void test_ws_accept_vector(void **state)
{
    (void)state;
    char out[29];
    punch_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out); /* RFC 6455 section 1.3 */
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_ws_head_check(void **state)
{
    (void)state;
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    char why[128];
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
    long n = punch_ws_check_head(ok, strlen(ok), key, why, sizeof why);
    assert_int_equal(n, (long)(strlen(ok) - 4)); /* the frame after the head is not consumed */
    /* incomplete: wait for more */
    assert_int_equal(punch_ws_check_head(ok, 40, key, why, sizeof why), 0);
    /* header names and tokens are case-insensitive; Connection is a list */
    const char *ok2 = "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
                      "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert_true(punch_ws_check_head(ok2, strlen(ok2), key, why, sizeof why) > 0);
    const char *refused[] = {
        "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "garbage garbage\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        why[0] = '\0';
        assert_int_equal(punch_ws_check_head(refused[i], strlen(refused[i]), key, why, sizeof why), -1);
        assert_true(why[0] != '\0');
    }
}

int main(void)
{
    cu_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_format),
        cmocka_unit_test(test_sockaddr_roundtrip),
        cmocka_unit_test(test_resolve_literals),
        cmocka_unit_test(test_local_only),
        cmocka_unit_test(test_candidates_of_a_bound_socket),
        cmocka_unit_test(test_target_order),
        cmocka_unit_test(test_target_loopback_rule),
        cmocka_unit_test(test_ws_accept_vector),
        cmocka_unit_test(test_ws_head_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
