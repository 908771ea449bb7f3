/* test_http: request parsing, routing and the WebSocket accept key. */
#include "unit.h"

#include <string.h>

#include "http.h"

static enum http_route route_of(const char *req)
{
    struct http_reader r;
    size_t used;
    http_reader_init(&r);
    assert_int_equal(http_reader_feed(&r, req, strlen(req), &used), HTTP_FEED_DONE);
    return http_route(&r.head);
}

static void test_accept_key_rfc6455_example(void **state)
{
    (void)state;
    char out[HTTP_ACCEPT_LEN + 1];
    http_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_key_validity(void **state)
{
    (void)state;
    assert_true(http_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
    assert_false(http_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ="));   /* 23 chars */
    assert_false(http_ws_key_valid("dGhlIHNhbXBsZSBub25jZSE="));  /* 17 bytes */
    assert_false(http_ws_key_valid("dGhlIHNhbXBsZSBub25j!Q=="));  /* not base64 */
    assert_false(http_ws_key_valid(""));
}

#define UPGRADE_HEADERS "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" \
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

static void test_routes(void **state)
{
    (void)state;
    assert_int_equal(route_of("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP_ROUTE_HEALTHZ);
    assert_int_equal(route_of("GET /healthz?x=1 HTTP/1.1\r\n\r\n"), HTTP_ROUTE_HEALTHZ);
    assert_int_equal(route_of("GET /metrics HTTP/1.1\r\n\r\n"), HTTP_ROUTE_METRICS);
    assert_int_equal(route_of("GET /nope HTTP/1.1\r\n\r\n"), HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route_of("GET / HTTP/1.1\r\n\r\n"), HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route_of("HEAD /healthz HTTP/1.1\r\n\r\n"), HTTP_ROUTE_BAD_METHOD);
    assert_int_equal(route_of("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
                     HTTP_ROUTE_BAD_METHOD);
    assert_int_equal(route_of("GET /?a=b HTTP/1.1\r\n" UPGRADE_HEADERS "Sec-WebSocket-Version: 13\r\n\r\n"),
                     HTTP_ROUTE_UPGRADE);
    assert_int_equal(route_of("GET / HTTP/1.1\r\n" UPGRADE_HEADERS "Sec-WebSocket-Version: 8\r\n\r\n"),
                     HTTP_ROUTE_BAD_VERSION);
    assert_int_equal(route_of("GET / HTTP/1.1\r\n" UPGRADE_HEADERS "\r\n"), HTTP_ROUTE_BAD_UPGRADE);
    assert_int_equal(route_of("GET /other HTTP/1.1\r\n" UPGRADE_HEADERS "Sec-WebSocket-Version: 13\r\n\r\n"),
                     HTTP_ROUTE_NOT_FOUND);
    /* Not HTTP/1.x: 505, whatever the path, method or upgrade. */
    assert_int_equal(route_of("GET / HTTP/9.9\r\n\r\n"), HTTP_ROUTE_BAD_HTTP);
    assert_int_equal(route_of("GET /healthz HTTP/2.0\r\n\r\n"), HTTP_ROUTE_BAD_HTTP);
    assert_int_equal(route_of("POST / HTTP/0.9\r\nContent-Length: 0\r\n\r\n"), HTTP_ROUTE_BAD_HTTP);
    assert_int_equal(route_of("GET / HTTP/1.0\r\n\r\n"), HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route_of("GET /healthz HTTP/1.0\r\n\r\n"), HTTP_ROUTE_HEALTHZ);
}

static void test_pipelined_requests_stop_at_each(void **state)
{
    (void)state;
    const char *two = "GET /healthz HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n";
    struct http_reader r;
    size_t used;
    http_reader_init(&r);
    assert_int_equal(http_reader_feed(&r, two, strlen(two), &used), HTTP_FEED_DONE);
    assert_string_equal(r.head.path, "/healthz");
    assert_true(used < strlen(two));
    http_reader_next(&r);
    size_t used2;
    assert_int_equal(http_reader_feed(&r, two + used, strlen(two) - used, &used2), HTTP_FEED_DONE);
    assert_string_equal(r.head.path, "/metrics");
    assert_int_equal(used + used2, strlen(two));
}

static void test_malformed_and_oversized(void **state)
{
    (void)state;
    struct http_reader r;
    size_t used;
    http_reader_init(&r);
    assert_int_equal(http_reader_feed(&r, "BLAH BLAH\r\n\r\n", 13, &used), HTTP_FEED_ERROR);
    static char big[HTTP_HEAD_MAX + 200];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    http_reader_init(&r);
    /* In small pieces too: the limit holds however the head arrives. */
    enum http_feed f = HTTP_FEED_AGAIN;
    for (size_t off = 0; off < sizeof big && f == HTTP_FEED_AGAIN; off += 100)
        f = http_reader_feed(&r, big + off, 100, &used);
    assert_int_equal(f, HTTP_FEED_ERROR);
}

/* Feeds req split at every position; returns the result of the last feed. */
static enum http_feed feed_split(const char *req, size_t at)
{
    struct http_reader r;
    size_t used, len = strlen(req);
    http_reader_init(&r);
    enum http_feed f = http_reader_feed(&r, req, at, &used);
    if (f != HTTP_FEED_AGAIN)
        return f;
    return http_reader_feed(&r, req + at, len - at, &used);
}

static void test_upgrade_split_anywhere(void **state)
{
    (void)state;
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n" UPGRADE_HEADERS "Sec-WebSocket-Version: 13\r\n\r\n";
    for (size_t at = 1; at < strlen(req); at++) {
        struct http_reader r;
        size_t used;
        http_reader_init(&r);
        assert_int_equal(http_reader_feed(&r, req, at, &used), HTTP_FEED_AGAIN);
        assert_int_equal(http_reader_feed(&r, req + at, strlen(req) - at, &used), HTTP_FEED_DONE);
        if (http_route(&r.head) != HTTP_ROUTE_UPGRADE)
            fail_msg("split at %zu: not an upgrade", at);
    }
}

static void test_version_token_checked(void **state)
{
    (void)state;
    const char *good = "\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *bad = "GET /healthz HTTX/1.1\r\nHost: x\r\n\r\n";
    for (size_t at = 1; at < strlen(good); at++)
        assert_int_equal(feed_split(good, at), HTTP_FEED_DONE);
    for (size_t at = 1; at < strlen(bad); at++)
        assert_int_equal(feed_split(bad, at), HTTP_FEED_ERROR);
}

/* A control byte in a header value (a NUL above all) is a malformed head,
 * wherever TCP splits it: a fuzz finding, where a NUL cut the collected key
 * differently for each split. A tab stays legal. */
static void test_control_bytes_in_values(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: \0dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
    const size_t len = sizeof req - 1;
    for (size_t at = 1; at < len; at++) {
        struct http_reader r;
        size_t used;
        http_reader_init(&r);
        enum http_feed f = http_reader_feed(&r, req, at, &used);
        if (f == HTTP_FEED_AGAIN)
            f = http_reader_feed(&r, req + at, len - at, &used);
        if (f != HTTP_FEED_ERROR)
            fail_msg("split at %zu: a NUL in a value was accepted", at);
    }
    const char *bell = "GET /healthz HTTP/1.1\r\nX-A: a\ab\r\n\r\n";
    const char *del = "GET /healthz HTTP/1.1\r\nX-A: a\x7f\r\n\r\n";
    const char *tab = "GET /healthz HTTP/1.1\r\nX-A: a\tb\r\n\r\n";
    for (size_t at = 1; at < strlen(bell); at++)
        assert_int_equal(feed_split(bell, at), HTTP_FEED_ERROR);
    assert_int_equal(feed_split(del, 5), HTTP_FEED_ERROR);
    assert_int_equal(feed_split(tab, 5), HTTP_FEED_DONE);
}

int main(void)
{
    unit_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key_rfc6455_example),
        cmocka_unit_test(test_key_validity),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_pipelined_requests_stop_at_each),
        cmocka_unit_test(test_malformed_and_oversized),
        cmocka_unit_test(test_version_token_checked),
        cmocka_unit_test(test_upgrade_split_anywhere),
        cmocka_unit_test(test_control_bytes_in_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
