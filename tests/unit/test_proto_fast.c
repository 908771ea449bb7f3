/* test_proto_fast: the fast request decoder takes the common shapes, declines
 * everything unusual, gives exactly the cJSON path's result, and is what
 * proto_decode() / proto_decode_relay() actually use. */
#include "unit.h"

#include <math.h>

#include "proto.h"
#include "proto_fast.h"

#define FILL 0x5a /* each proto_req holds this before a decode */

static char scratch[70000];

static const char TOKEN[] = "a44462b8fa5528e61f85914996694570";

/* Decodes s with the fast path into *fast and with cJSON into a local;
 * fails unless the fast path took it and both agree. */
static void expect_fast(const char *s, struct proto_req *fast)
{
    size_t len = strlen(s);
    struct proto_req slow;
    memset(fast, FILL, sizeof *fast);
    memset(&slow, FILL, sizeof slow);
    if (proto_fast_decode(s, len, fast) != 0)
        fail_msg("fast path declined %s", s);
    if (proto_decode_cjson(s, len, scratch, sizeof scratch, &slow) != 0)
        fail_msg("cJSON path refused %s", s);
    if (!proto_req_same(fast, &slow))
        fail_msg("fast and cJSON results differ for %s", s);
}

/* Fails unless the fast path declines buf[0..len) and leaves req alone. */
static void expect_declined(const char *buf, size_t len, const char *what)
{
    struct proto_req req, fill;
    memset(&req, FILL, sizeof req);
    memset(&fill, FILL, sizeof fill);
    if (proto_fast_decode(buf, len, &req) != -1)
        fail_msg("fast path took %s", what);
    if (memcmp(&req, &fill, sizeof req) != 0)
        fail_msg("fast path wrote to req while declining %s", what);
}

#define DECLINED(lit) expect_declined((lit), sizeof(lit) - 1, (lit))

static void test_common_shapes(void **state)
{
    (void)state;
    struct proto_req r;

    expect_fast("{\"action\":\"announce\"}", &r);
    assert_int_equal(r.action, PROTO_ACT_ANNOUNCE);
    for (int k = 0; k < PROTO_K_COUNT; k++)
        assert_int_equal(r.f[k].type, PROTO_T_ABSENT);
    assert_int_equal(r.cand, PROTO_CAND_ABSENT);

    char buf[512];
    snprintf(buf, sizeof buf, "{\"action\":\"pulse\",\"shareId\":\"abc\",\"token\":\"%s\"}", TOKEN);
    expect_fast(buf, &r);
    assert_int_equal(r.action, PROTO_ACT_PULSE);
    assert_string_equal(r.f[PROTO_K_SHAREID].s, "abc");
    assert_int_equal(r.f[PROTO_K_TOKEN].len, 32);
    assert_string_equal(r.f[PROTO_K_TOKEN].s, TOKEN);

    expect_fast("{\"action\":\"push\",\"shareId\":\"x\"}", &r);
    assert_int_equal(r.action, PROTO_ACT_PUSH);
    assert_string_equal(r.f[PROTO_K_SHAREID].s, "x");

    expect_fast("{\"action\":\"alive\"}", &r);
    assert_int_equal(r.action, PROTO_ACT_ALIVE);

    snprintf(buf, sizeof buf,
             "{\"action\":\"announce\",\"shareId\":\"A6iD7k3n\",\"token\":\"%s\",\"ip\":\"1.2.3.4\","
             "\"port\":5000,\"override\":true}",
             TOKEN);
    expect_fast(buf, &r);
    assert_int_equal(r.action, PROTO_ACT_ANNOUNCE);
    assert_string_equal(r.f[PROTO_K_IP].s, "1.2.3.4");
    assert_int_equal(r.f[PROTO_K_PORT].type, PROTO_T_NUMBER);
    assert_true(r.f[PROTO_K_PORT].num == 5000.0);
    assert_int_equal(r.f[PROTO_K_OVERRIDE].type, PROTO_T_BOOL);
    assert_int_equal(r.f[PROTO_K_OVERRIDE].boolval, 1);

    /* Whitespace wherever JSON allows it: all four bytes, everywhere. */
    snprintf(buf, sizeof buf,
             " \t\r\n{ \"action\" :\t\"announce\" ,\n \"shareId\"\r\n:\"A6iD7k3n\", \"token\": \"%s\","
             "\"ip\" : \"1.2.3.4\" , \"port\" :5000 ,\"override\": true \n}\r\n\t ",
             TOKEN);
    expect_fast(buf, &r);
    assert_int_equal(r.action, PROTO_ACT_ANNOUNCE);
    assert_true(r.f[PROTO_K_PORT].num == 5000.0);

    expect_fast("{\"action\":\"probe\",\"shareId\":\"A6iD7k3n\"}", &r);
    assert_int_equal(r.action, PROTO_ACT_PROBE);
    expect_fast("{\"action\":\"announce\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", &r);
    expect_fast("{\"action\":\"pulse\",\"override\":true,\"ip\":\"198.51.100.4\",\"port\":\"40000\"}", &r);
    assert_int_equal(r.f[PROTO_K_PORT].type, PROTO_T_STRING);
    expect_fast("{\"action\":\"pulse\",\"shareId\":true,\"token\":\"t\"}", &r);
    assert_int_equal(r.f[PROTO_K_SHAREID].type, PROTO_T_BOOL);
    expect_fast("{\"shareId\":\"6YLD6sV6\",\"action\":\"push\"}", &r); /* any order */
    assert_int_equal(r.action, PROTO_ACT_PUSH);
    expect_fast("{}", &r);
    assert_int_equal(r.action, PROTO_ACT_NONE);
    expect_fast("{\"multiaddr\":\"/ip4/203.0.113.7/udp/60995/quic\",\"pubkey\":\"q83v+/=\","
                "\"cookie\":\"c\",\"key\":\"k3y\",\"action\":\"announce\"}",
                &r);
    assert_string_equal(r.f[PROTO_K_KEY].s, "k3y");
}

/* Every key the cJSON path reads is read by the fast path too. */
static void test_every_key(void **state)
{
    (void)state;
    static const char *const names[PROTO_K_COUNT] = {
        "shareId", "token", "ip", "port", "override", "multiaddr", "pubkey", "cookie", "key",
    };
    for (int k = 0; k < PROTO_K_COUNT; k++) {
        char buf[128];
        struct proto_req r;
        snprintf(buf, sizeof buf, "{\"action\":\"pulse\",\"%s\":\"v%d\"}", names[k], k);
        expect_fast(buf, &r);
        for (int o = 0; o < PROTO_K_COUNT; o++)
            assert_int_equal(r.f[o].type, o == k ? PROTO_T_STRING : PROTO_T_ABSENT);
    }
}

/* Edge values: each decoded exactly as cJSON does. */
static void test_edges_match_cjson(void **state)
{
    (void)state;
    struct proto_req r;
    char buf[1024];

    /* 256 bytes fit; 257 are flagged too_long and cut to 256. */
    for (int n = 254; n <= 300; n++) {
        snprintf(buf, sizeof buf, "{\"action\":\"push\",\"shareId\":\"%.*s\"}", n,
                 "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"
                 "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"
                 "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"
                 "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ");
        expect_fast(buf, &r);
        assert_int_equal(r.f[PROTO_K_SHAREID].too_long, n > PROTO_STR_MAX);
        assert_int_equal(r.f[PROTO_K_SHAREID].len, n > PROTO_STR_MAX ? PROTO_STR_MAX : n);
    }
    expect_fast("{\"action\":\"pulse\",\"port\":-0}", &r);
    assert_true(r.f[PROTO_K_PORT].num == 0.0 && signbit(r.f[PROTO_K_PORT].num));
    expect_fast("{\"action\":\"pulse\",\"port\":0}", &r);
    assert_false(signbit(r.f[PROTO_K_PORT].num));
    expect_fast("{\"action\":\"pulse\",\"port\":999999999999999}", &r);
    assert_true(r.f[PROTO_K_PORT].num == 999999999999999.0);
    expect_fast("{\"action\":\"pulse\",\"port\":-123456789012345}", &r);
    assert_true(r.f[PROTO_K_PORT].num == -123456789012345.0);
    expect_fast("{\"action\":\"pulse\",\"override\":false,\"ip\":null}", &r);
    assert_int_equal(r.f[PROTO_K_OVERRIDE].boolval, 0);
    assert_int_equal(r.f[PROTO_K_IP].type, PROTO_T_OTHER);
    /* A candidates value that is not a list is bad; cand_addr stays. */
    expect_fast("{\"action\":\"announce\",\"candidates\":\"1.2.3.4:5\"}", &r);
    assert_int_equal(r.cand, PROTO_CAND_BAD);
    expect_fast("{\"action\":\"announce\",\"candidates\":null}", &r);
    assert_int_equal(r.cand, PROTO_CAND_BAD);
    /* Actions: exact, case-sensitive names; a non-string is none. */
    expect_fast("{\"action\":\"\"}", &r);
    assert_int_equal(r.action, PROTO_ACT_UNKNOWN);
    expect_fast("{\"action\":\"Announce\"}", &r);
    assert_int_equal(r.action, PROTO_ACT_UNKNOWN);
    expect_fast("{\"action\":\"announcee\"}", &r);
    assert_int_equal(r.action, PROTO_ACT_UNKNOWN);
    expect_fast("{\"action\":7}", &r);
    assert_int_equal(r.action, PROTO_ACT_NONE);
    expect_fast("{\"action\":true}", &r);
    assert_int_equal(r.action, PROTO_ACT_NONE);
    /* Keys are case-sensitive; unknown ones (even repeated) are ignored. */
    expect_fast("{\"Action\":\"alive\",\"shareid\":\"x\",\"pad\":1,\"pad\":\"2\",\"\":null}", &r);
    assert_int_equal(r.action, PROTO_ACT_NONE);
    assert_int_equal(r.f[PROTO_K_SHAREID].type, PROTO_T_ABSENT);
    /* DEL and every other printable ASCII byte are plain string bytes. */
    expect_fast("{\"action\":\"push\",\"shareId\":\"\x7f !#$%&'()*+,-./:;<=>?@[]^_`{|}~\"}", &r);
    assert_int_equal(r.f[PROTO_K_SHAREID].len, 32);
}

static void test_declines(void **state)
{
    (void)state;
    /* Escapes, anywhere. */
    DECLINED("{\"action\":\"push\",\"shareId\":\"a\\\"b\"}");
    DECLINED("{\"action\":\"push\",\"shareId\":\"a\\\\b\"}");
    DECLINED("{\"action\":\"announce\",\"multiaddr\":\"a\\u0000b\"}");
    DECLINED("{\"act\\u0069on\":\"alive\"}");
    DECLINED("{\"action\":\"alive\\n\"}");
    /* Bytes >= 0x80 and control bytes in strings. */
    DECLINED("{\"action\":\"announce\",\"multiaddr\":\"caf\xc3\xa9\"}");
    DECLINED("{\"action\":\"announce\",\"multiaddr\":\"\xff\"}");
    DECLINED("{\"action\":\"announce\",\"multiaddr\":\"a\tb\"}");
    DECLINED("{\"action\":\"announce\",\"caf\xc3\xa9\":1}");
    /* Nesting. */
    DECLINED("{\"action\":\"announce\",\"candidates\":[\"192.168.1.20:60995\"]}");
    DECLINED("{\"action\":\"announce\",\"candidates\":[]}");
    DECLINED("{\"action\":\"alive\",\"pad\":{}}");
    DECLINED("{\"action\":\"push\",\"shareId\":{\"$ne\":null}}");
    DECLINED("[{\"action\":\"announce\"}]");
    /* Duplicates of a key punchd reads (cJSON would keep the first). */
    DECLINED("{\"action\":\"announce\",\"action\":\"push\"}");
    DECLINED("{\"action\":\"push\",\"shareId\":\"a\",\"shareId\":\"b\"}");
    DECLINED("{\"candidates\":null,\"action\":\"alive\",\"candidates\":1}");
    /* Numbers other than small plain integers. */
    DECLINED("{\"action\":\"pulse\",\"port\":5000.0}");
    DECLINED("{\"action\":\"pulse\",\"port\":5e3}");
    DECLINED("{\"action\":\"pulse\",\"port\":5E+3}");
    DECLINED("{\"action\":\"pulse\",\"port\":1000000000000000}");
    DECLINED("{\"action\":\"pulse\",\"port\":9007199254740993}");
    DECLINED("{\"action\":\"pulse\",\"port\":05000}");
    DECLINED("{\"action\":\"pulse\",\"port\":-}");
    DECLINED("{\"action\":\"pulse\",\"port\":+1}");
    DECLINED("{\"action\":\"pulse\",\"port\":0x10}");
    /* relay needs its "data" serialised by cJSON. */
    DECLINED("{\"action\":\"relay\",\"shareId\":\"6YLD6sV6\",\"data\":\"hi\"}");
    /* Not (exactly) one JSON object. */
    DECLINED("\xef\xbb\xbf{\"action\":\"alive\"}"); /* a BOM: cJSON skips it */
    DECLINED("{\"action\":\"alive\",}");
    DECLINED("{,\"action\":\"alive\"}");
    DECLINED("{\"action\":\"alive\"}x");
    DECLINED("{\"action\":\"alive\"}{}");
    DECLINED("{\"action\":\"alive\"}\v");
    DECLINED("\f{\"action\":\"alive\"}");
    DECLINED("{\"action\" \"alive\"}");
    DECLINED("{\"action\":alive}");
    DECLINED("{\"action\":tru}");
    DECLINED("{\"action\":nul}");
    DECLINED("{'action':'alive'}");
    DECLINED("{action:\"alive\"}");
    DECLINED("\"alive\"");
    DECLINED("");
    DECLINED("   ");
    expect_declined("{\"action\":\"alive\"}\0", 19, "a trailing NUL");
    expect_declined("{\"action\":\"al\0ve\"}", 18, "a raw NUL in a string");

    /* Every proper prefix of a request the fast path takes is declined:
     * it never reads past len and never guesses the rest. */
    char full[256];
    int n = snprintf(full, sizeof full,
                     "{ \"action\": \"announce\", \"shareId\": \"A6iD7k3n\", \"port\": -5000, "
                     "\"override\": true, \"ip\": null, \"key\": false }");
    struct proto_req r;
    expect_fast(full, &r);
    for (int cut = 0; cut < n; cut++) {
        char *exact = malloc(cut ? (size_t)cut : 1); /* exact size: ASan catches an over-read */
        assert_non_null(exact);
        memcpy(exact, full, (size_t)cut);
        expect_declined(exact, (size_t)cut, "a prefix");
        free(exact);
    }
}

/* proto_decode() and proto_decode_relay() really take the fast path: the
 * cJSON path copies the datagram into scratch first, the fast path never
 * touches it. */
static void test_decode_uses_fast_path(void **state)
{
    (void)state;
    static const char *const fast[] = {
        "{\"action\":\"announce\"}",
        "{\"action\":\"pulse\",\"shareId\":\"abc\",\"token\":\"a44462b8fa5528e61f85914996694570\"}",
        "{\"action\":\"push\",\"shareId\":\"x\"}",
        "{\"action\":\"alive\"}",
        "{\"action\":\"announce\",\"ip\":\"1.2.3.4\",\"port\":5000,\"override\":true}",
    };
    static const char *const slow[] = {
        "{\"action\":\"push\",\"shareId\":\"a\\u0062\"}",
        "{\"action\":\"announce\",\"candidates\":[\"192.168.1.20:60995\"]}",
        "{\"action\":\"relay\",\"shareId\":\"x\",\"data\":{\"sdp\":\"v=0\"}}",
    };
    char small[512], payload[256];
    struct proto_req a, b;
    for (size_t i = 0; i < sizeof fast / sizeof fast[0]; i++) {
        size_t len = strlen(fast[i]);
        memset(small, 'S', sizeof small);
        memset(&a, FILL, sizeof a);
        memset(&b, FILL, sizeof b);
        assert_int_equal(proto_decode(fast[i], len, small, len + 1, &a), 0);
        for (size_t k = 0; k < sizeof small; k++)
            assert_int_equal(small[k], 'S');
        assert_int_equal(proto_decode_cjson(fast[i], len, scratch, sizeof scratch, &b), 0);
        assert_true(proto_req_same(&a, &b));
        memset(&a, FILL, sizeof a);
        assert_int_equal(proto_decode_relay(fast[i], len, small, len + 1, &a, payload, sizeof payload, 128), 0);
        assert_int_equal(small[0], 'S');
        assert_true(proto_req_same(&a, &b));
        /* The scratch check still comes first: one byte short is too large. */
        assert_int_equal(proto_decode(fast[i], len, small, len, &a), -1 - PROTO_DROP_TOO_LARGE);
    }
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++) {
        size_t len = strlen(slow[i]);
        memset(small, 'S', sizeof small);
        memset(&a, FILL, sizeof a);
        memset(&b, FILL, sizeof b);
        assert_int_equal(proto_decode_relay(slow[i], len, small, len + 1, &a, payload, sizeof payload, 128), 0);
        assert_int_not_equal(small[0], 'S'); /* went through cJSON */
        assert_int_equal(proto_decode_cjson(slow[i], len, scratch, sizeof scratch, &b), 0);
        assert_int_equal(a.action, b.action);
    }
    /* The relay payload still comes out (cJSON path). */
    const char *relay = "{\"action\":\"relay\",\"shareId\":\"x\",\"data\":{\"sdp\":\"v=0\"}}";
    assert_int_equal(proto_decode_relay(relay, strlen(relay), small, sizeof small, &a, payload,
                                        sizeof payload, 128),
                     0);
    assert_int_equal(a.has_data, 1);
    assert_string_equal(payload, "{\"sdp\":\"v=0\"}");
}

/* Random requests of the fast shapes: every one taken, every one equal to
 * cJSON's result. */
static void test_random_shapes(void **state)
{
    (void)state;
    static const char *const keys[] = { "shareId", "token", "ip", "port", "override", "multiaddr",
                                        "pubkey", "cookie", "key", "action", "candidates", "pad" };
    static const char *const ws[] = { "", " ", "\t", "\r\n", "\n  " };
    uint64_t seed = 0x70726f746f66ULL;
    for (int iter = 0; iter < 20000; iter++) {
        char buf[4096];
        size_t n = 0;
        int used[12] = { 0 };
#define PUT(...) n += (size_t)snprintf(buf + n, sizeof buf - n, __VA_ARGS__)
        PUT("%s{%s", ws[unit_below(&seed, 5)], ws[unit_below(&seed, 5)]);
        int members = (int)unit_below(&seed, 8);
        for (int m = 0; m < members; m++) {
            int k = (int)unit_below(&seed, 12);
            if (k < 11 && used[k])
                k = 11;
            used[k] = 1;
            PUT("%s\"%s\"%s:%s", m ? "," : "", keys[k], ws[unit_below(&seed, 5)], ws[unit_below(&seed, 5)]);
            switch (unit_below(&seed, 6)) {
            case 0: PUT("true"); break;
            case 1: PUT("null"); break;
            case 2: PUT("%s%u", unit_below(&seed, 2) ? "-" : "", unit_below(&seed, 100000)); break;
            case 3:
                PUT("\"%s\"", (const char *[]){ "announce", "pulse", "alive", "push", "probe", "x" }[unit_below(&seed, 6)]);
                break;
            default: {
                uint32_t len = unit_below(&seed, 300);
                PUT("\"");
                for (uint32_t i = 0; i < len; i++) {
                    char c = (char)(0x20 + unit_below(&seed, 96));
                    PUT("%c", c == '"' || c == '\\' ? '_' : c);
                }
                PUT("\"");
            }
            }
            PUT("%s", ws[unit_below(&seed, 5)]);
        }
        PUT("}%s", ws[unit_below(&seed, 5)]);
#undef PUT
        assert_true(n < sizeof buf);
        struct proto_req r;
        expect_fast(buf, &r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_shapes),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_edges_match_cjson),
        cmocka_unit_test(test_declines),
        cmocka_unit_test(test_decode_uses_fast_path),
        cmocka_unit_test(test_random_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
