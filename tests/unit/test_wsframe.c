/* test_wsframe: frame headers found in a byte stream however it is split. */
#include "unit.h"

#include <string.h>

#include "wsframe.h"

struct seen {
    struct wsframe_info f[8];
    int n;
    int refuse_at;  /* 1-based header number to refuse, 0 = none */
};

static int record(const struct wsframe_info *f, void *user)
{
    struct seen *s = user;
    if (s->n < 8)
        s->f[s->n] = *f;
    s->n++;
    return s->n == s->refuse_at ? 1009 : 0;
}

/* A masked frame header + payload into out; returns its size. */
static size_t frame(uint8_t *out, uint8_t b0, uint64_t len, size_t payload_present)
{
    size_t n = 0;
    out[n++] = b0;
    if (len < 126) {
        out[n++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    memcpy(out + n, "\x01\x02\x03\x04", 4);
    n += 4;
    memset(out + n, 'x', payload_present);
    return n + payload_present;
}

static void test_headers_across_any_split(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t n = 0;
    n += frame(buf + n, 0x01, 5, 5);          /* text, not fin */
    n += frame(buf + n, 0x89, 3, 3);          /* ping inside the message */
    n += frame(buf + n, 0x80, 300, 300);      /* continuation, fin, 16-bit length */
    n += frame(buf + n, 0x81, 70000, 10);     /* text, 64-bit length, payload cut */
    for (size_t cut = 0; cut <= n; cut++) {
        struct wsframe_scan sc;
        struct seen s = { .n = 0 };
        wsframe_init(&sc);
        assert_int_equal(wsframe_scan(&sc, buf, cut, record, &s), 0);
        assert_int_equal(wsframe_scan(&sc, buf + cut, n - cut, record, &s), 0);
        assert_int_equal(s.n, 4);
        assert_int_equal(s.f[0].opcode, 1);
        assert_false(s.f[0].fin);
        assert_int_equal(s.f[0].msg_len, 5);
        assert_int_equal(s.f[1].opcode, 9);
        assert_int_equal(s.f[1].payload_len, 3);
        assert_int_equal(s.f[1].msg_len, 5);     /* control frames are not part of it */
        assert_int_equal(s.f[2].opcode, 0);
        assert_int_equal(s.f[2].msg_len, 305);
        assert_int_equal(s.f[3].payload_len, 70000);
        assert_int_equal(s.f[3].msg_len, 70000);  /* a new message restarts the sum */
        assert_true(s.f[3].masked);
        assert_int_equal(sc.skip, 70000 - 10);
    }
}

static void test_refusal_reports_bytes_before_the_header(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t first = frame(buf, 0x81, 10, 10);
    size_t n = first + frame(buf + first, 0x82, 1, 1);
    struct wsframe_scan sc;
    struct seen s = { .n = 0, .refuse_at = 2 };
    wsframe_init(&sc);
    assert_int_equal(wsframe_scan(&sc, buf, n, record, &s), 1009);
    assert_int_equal(sc.stop, first);
    /* The refused header began in an earlier read: nothing of this one to keep. */
    wsframe_init(&sc);
    s = (struct seen){ .n = 0, .refuse_at = 2 };
    assert_int_equal(wsframe_scan(&sc, buf, first + 1, record, &s), 0);
    assert_int_equal(wsframe_scan(&sc, buf + first + 1, n - first - 1, record, &s), 1009);
    assert_int_equal(sc.stop, 0);
}

static void test_huge_lengths_saturate(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = frame(buf, 0x01, 1ULL << 63, 0);
    n += frame(buf + n, 0x00, 1ULL << 63, 0);
    struct wsframe_scan sc;
    struct seen s = { .n = 0 };
    wsframe_init(&sc);
    /* The second header sits inside the first's declared payload: skipped. */
    assert_int_equal(wsframe_scan(&sc, buf, n, record, &s), 0);
    assert_int_equal(s.n, 1);
    /* Two headers read in order, each declaring 2^63 (hostile: RFC 6455 wants the top bit clear): the sum saturates. */
    wsframe_init(&sc);
    s.n = 0;
    size_t h = frame(buf, 0x01, 1ULL << 63, 0);
    wsframe_scan(&sc, buf, h, record, &s);
    sc.skip = 0; /* as if the payload had passed */
    h = frame(buf, 0x00, 1ULL << 63, 0);
    wsframe_scan(&sc, buf, h, record, &s);
    assert_int_equal(s.n, 2);
    assert_true(s.f[1].msg_len == UINT64_MAX);
}

/* The boundary is only between whole messages: never inside a header, a
 * payload, or a fragmented message (even across a ping in its middle). */
static void test_boundary_only_between_messages(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t done[2], n = 0;                    /* where a whole message ends */
    n += frame(buf + n, 0x01, 5, 5);          /* text, not fin */
    n += frame(buf + n, 0x89, 3, 3);          /* ping inside the message */
    n += frame(buf + n, 0x80, 300, 300);      /* continuation, fin: message done */
    done[0] = n;
    n += frame(buf + n, 0x81, 0, 0);          /* an empty text message */
    done[1] = n;
    struct wsframe_scan sc;
    struct seen s = { .n = 0 };
    wsframe_init(&sc);
    assert_true(wsframe_at_boundary(&sc));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(wsframe_scan(&sc, buf + i, 1, record, &s), 0);
        int want = i + 1 == done[0] || i + 1 == done[1];
        if (wsframe_at_boundary(&sc) != want)
            fail_msg("after byte %zu: boundary %d, want %d", i + 1, !want, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_across_any_split),
        cmocka_unit_test(test_refusal_reports_bytes_before_the_header),
        cmocka_unit_test(test_huge_lengths_saturate),
        cmocka_unit_test(test_boundary_only_between_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
