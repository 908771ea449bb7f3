/* test_proto: decoding untrusted datagrams (actions, field types, UTF-8, hostile input) and budgeted reply encoding. */
#include "unit.h"

#include <cjson/cJSON.h>
#include <strings.h>

#include "proto.h"

static char scratch[70000];

static int dec(const char *buf, size_t len, struct proto_req *req)
{
    memset(req, 0xAB, sizeof *req); /* nothing may be left over from before */
    return proto_decode(buf, len, scratch, sizeof scratch, req);
}

/* Decodes a string literal (its length excludes the terminating NUL). */
#define DEC(lit, req) dec((lit), sizeof(lit) - 1, (req))

#define DROP(d) (-1 - (int)(d))

static void expect_drop(const char *buf, size_t len, enum proto_drop want, const char *what)
{
    struct proto_req req;
    int rc = dec(buf, len, &req);
    if (rc != DROP(want))
        fail_msg("%s: rc %d, expected drop %s (%d)", what, rc, proto_drop_name(want), DROP(want));
}

static void expect_ok(const char *buf, size_t len, const char *what)
{
    struct proto_req req;
    int rc = dec(buf, len, &req);
    if (rc != 0)
        fail_msg("%s: rc %d, expected 0", what, rc);
}

/* ---- decoding ---- */

static void test_decode_actions(void **state)
{
    (void)state;
    struct proto_req req;
    assert_int_equal(DEC("{\"action\":\"announce\"}", &req), 0);
    assert_int_equal(req.action, PROTO_ACT_ANNOUNCE);
    assert_int_equal(DEC("{\"action\":\"pulse\"}", &req), 0);
    assert_int_equal(req.action, PROTO_ACT_PULSE);
    assert_int_equal(DEC("{\"action\":\"alive\"}", &req), 0);
    assert_int_equal(req.action, PROTO_ACT_ALIVE);
    assert_int_equal(DEC("{\"action\":\"push\",\"shareId\":\"abcdEF09\"}", &req), 0);
    assert_int_equal(req.action, PROTO_ACT_PUSH);
    assert_int_equal(req.f[PROTO_K_SHAREID].type, PROTO_T_STRING);
    assert_string_equal(req.f[PROTO_K_SHAREID].s, "abcdEF09");
    /* Fields before the action, and unknown fields, are fine. */
    assert_int_equal(DEC("{\"pad\":\"xxxxxxxx\",\"zzz\":[1,{}],\"action\":\"alive\"}", &req), 0);
    assert_int_equal(req.action, PROTO_ACT_ALIVE);
    for (int k = 0; k < PROTO_K_COUNT; k++)
        assert_int_equal(req.f[k].type, PROTO_T_ABSENT);

    assert_string_equal(proto_action_name(PROTO_ACT_ANNOUNCE), "announce");
    assert_string_equal(proto_action_name(PROTO_ACT_PULSE), "pulse");
    assert_string_equal(proto_action_name(PROTO_ACT_ALIVE), "alive");
    assert_string_equal(proto_action_name(PROTO_ACT_PUSH), "push");
    assert_string_equal(proto_action_name(PROTO_ACT_UNKNOWN), "unknown");
    assert_string_equal(proto_action_name((enum proto_action)99), "unknown");
}

static void test_decode_action_none(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{}",
        "{\"action\":1}",
        "{\"action\":null}",
        "{\"action\":true}",
        "{\"action\":false}",
        "{\"action\":[\"announce\"]}",
        "{\"action\":{\"announce\":1}}",
        "{\"Action\":\"announce\"}", /* keys are case-sensitive */
        "{\"actions\":\"announce\"}",
        "{\"shareId\":\"abcdEF09\"}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proto_req req;
        assert_int_equal(dec(cases[i], strlen(cases[i]), &req), 0);
        if (req.action != PROTO_ACT_NONE)
            fail_msg("%s: action %d, expected NONE", cases[i], req.action);
    }
}

static void test_decode_action_unknown(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{\"action\":\"Announce\"}",
        "{\"action\":\"ANNOUNCE\"}",
        "{\"action\":\"\"}",
        "{\"action\":\"announce \"}",
        "{\"action\":\" announce\"}",
        "{\"action\":\"announceReceived\"}",
        "{\"action\":\"announc\"}",
        "{\"action\":\"none\"}",    /* internal names are not wire actions */
        "{\"action\":\"unknown\"}",
        "{\"action\":\"announce\\u0000\"}", /* not silently cut to "announce" */
        "{\"action\":\"\\u0000announce\"}",
        "{\"action\":\"getPeers\"}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proto_req req;
        assert_int_equal(dec(cases[i], strlen(cases[i]), &req), 0);
        if (req.action != PROTO_ACT_UNKNOWN)
            fail_msg("%s: action %d, expected UNKNOWN", cases[i], req.action);
    }
    /* An escaped spelling of a real action is that action. */
    struct proto_req req;
    assert_int_equal(DEC("{\"action\":\"\\u0061nnounce\"}", &req), 0);
    assert_int_equal(req.action, PROTO_ACT_ANNOUNCE);
}

static void test_decode_field_types(void **state)
{
    (void)state;
    struct proto_req req;
    assert_int_equal(DEC("{\"action\":\"pulse\",\"shareId\":\"abc\",\"token\":true,\"ip\":false,"
                         "\"port\":1234,\"override\":null,\"multiaddr\":[1]}",
                         &req),
                     0);
    assert_int_equal(req.action, PROTO_ACT_PULSE);
    assert_int_equal(req.f[PROTO_K_SHAREID].type, PROTO_T_STRING);
    assert_int_equal(req.f[PROTO_K_SHAREID].len, 3);
    assert_string_equal(req.f[PROTO_K_SHAREID].s, "abc");
    assert_int_equal(req.f[PROTO_K_SHAREID].too_long, 0);
    assert_int_equal(req.f[PROTO_K_TOKEN].type, PROTO_T_BOOL);
    assert_int_equal(req.f[PROTO_K_TOKEN].boolval, 1);
    assert_int_equal(req.f[PROTO_K_IP].type, PROTO_T_BOOL);
    assert_int_equal(req.f[PROTO_K_IP].boolval, 0);
    assert_int_equal(req.f[PROTO_K_PORT].type, PROTO_T_NUMBER);
    assert_true(req.f[PROTO_K_PORT].num == 1234.0);
    assert_int_equal(req.f[PROTO_K_OVERRIDE].type, PROTO_T_OTHER);
    assert_int_equal(req.f[PROTO_K_MULTIADDR].type, PROTO_T_OTHER);

    assert_int_equal(DEC("{\"action\":\"pulse\",\"override\":true,\"ip\":\"1.2.3.4\","
                         "\"port\":\"40000\",\"token\":{\"$ne\":null},\"shareId\":-2.5e1,"
                         "\"multiaddr\":\"\"}",
                         &req),
                     0);
    assert_int_equal(req.f[PROTO_K_OVERRIDE].type, PROTO_T_BOOL);
    assert_int_equal(req.f[PROTO_K_OVERRIDE].boolval, 1);
    assert_int_equal(req.f[PROTO_K_IP].type, PROTO_T_STRING);
    assert_string_equal(req.f[PROTO_K_IP].s, "1.2.3.4");
    assert_int_equal(req.f[PROTO_K_PORT].type, PROTO_T_STRING);
    assert_string_equal(req.f[PROTO_K_PORT].s, "40000");
    assert_int_equal(req.f[PROTO_K_PORT].len, 5);
    assert_int_equal(req.f[PROTO_K_TOKEN].type, PROTO_T_OTHER);
    assert_int_equal(req.f[PROTO_K_SHAREID].type, PROTO_T_NUMBER);
    assert_true(req.f[PROTO_K_SHAREID].num == -25.0);
    assert_int_equal(req.f[PROTO_K_MULTIADDR].type, PROTO_T_STRING);
    assert_int_equal(req.f[PROTO_K_MULTIADDR].len, 0);
    assert_string_equal(req.f[PROTO_K_MULTIADDR].s, "");

    /* Escapes are decoded. */
    assert_int_equal(DEC("{\"action\":\"x\",\"ip\":\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\u20ac\\ud83d\\ude00\"}",
                         &req),
                     0);
    assert_int_equal(req.f[PROTO_K_IP].type, PROTO_T_STRING);
    assert_string_equal(req.f[PROTO_K_IP].s, "a\"b\\c/d\n\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_int_equal(req.f[PROTO_K_IP].len, strlen(req.f[PROTO_K_IP].s));
    /* Keys are case-sensitive: "ShareId" is not shareId. */
    assert_int_equal(DEC("{\"action\":\"push\",\"ShareId\":\"abcdEF09\"}", &req), 0);
    assert_int_equal(req.f[PROTO_K_SHAREID].type, PROTO_T_ABSENT);
}

static void test_decode_too_long(void **state)
{
    (void)state;
    static char buf[2048];
    struct proto_req req;
    char val[400];
    for (int i = 0; i < 400; i++)
        val[i] = (char)('a' + i % 26);

    int n = snprintf(buf, sizeof buf, "{\"action\":\"push\",\"shareId\":\"%.*s\"}", PROTO_STR_MAX, val);
    assert_int_equal(dec(buf, (size_t)n, &req), 0);
    assert_int_equal(req.f[PROTO_K_SHAREID].type, PROTO_T_STRING);
    assert_int_equal(req.f[PROTO_K_SHAREID].too_long, 0);
    assert_int_equal(req.f[PROTO_K_SHAREID].len, PROTO_STR_MAX);
    assert_memory_equal(req.f[PROTO_K_SHAREID].s, val, PROTO_STR_MAX);
    assert_int_equal(req.f[PROTO_K_SHAREID].s[PROTO_STR_MAX], '\0');

    n = snprintf(buf, sizeof buf, "{\"action\":\"push\",\"shareId\":\"%.*s\"}", PROTO_STR_MAX + 1, val);
    assert_int_equal(dec(buf, (size_t)n, &req), 0);
    assert_int_equal(req.f[PROTO_K_SHAREID].type, PROTO_T_STRING);
    assert_int_equal(req.f[PROTO_K_SHAREID].too_long, 1);
    assert_int_equal(req.f[PROTO_K_SHAREID].len, PROTO_STR_MAX);
    assert_memory_equal(req.f[PROTO_K_SHAREID].s, val, PROTO_STR_MAX);
    assert_int_equal(req.f[PROTO_K_SHAREID].s[PROTO_STR_MAX], '\0');

    n = snprintf(buf, sizeof buf, "{\"action\":\"pulse\",\"token\":\"%.*s\",\"multiaddr\":\"%.*s\"}",
                 400, val, 300, val);
    assert_int_equal(dec(buf, (size_t)n, &req), 0);
    assert_int_equal(req.f[PROTO_K_TOKEN].too_long, 1);
    assert_int_equal(req.f[PROTO_K_MULTIADDR].too_long, 1);
    assert_int_equal(req.f[PROTO_K_MULTIADDR].len, PROTO_STR_MAX);
    /* A long unknown field is simply ignored. */
    n = snprintf(buf, sizeof buf, "{\"action\":\"alive\",\"pad\":\"%.*s%.*s\"}", 400, val, 400, val);
    assert_int_equal(dec(buf, (size_t)n, &req), 0);
    assert_int_equal(req.action, PROTO_ACT_ALIVE);
}

static void test_decode_nul_escape(void **state)
{
    (void)state;
    struct proto_req req;
    char buf[128];
    const char *src = "{\"action\":\"pulse\",\"token\":\"ab\\u0000cd\"}";
    size_t n = strlen(src);
    memcpy(buf, src, n + 1);
    assert_int_equal(dec(buf, n, &req), 0);
    assert_string_equal(buf, src); /* the caller's buffer is not modified */
    assert_int_equal(req.f[PROTO_K_TOKEN].type, PROTO_T_STRING);
    assert_int_equal(req.f[PROTO_K_TOKEN].len, 7);
    assert_memory_equal(req.f[PROTO_K_TOKEN].s, "ab\xEF\xBF\xBD" "cd", 8); /* incl. the NUL */

    assert_int_equal(DEC("{\"action\":\"x\",\"ip\":\"\\u0000\"}", &req), 0);
    assert_int_equal(req.f[PROTO_K_IP].len, 3);
    assert_memory_equal(req.f[PROTO_K_IP].s, "\xEF\xBF\xBD", 4);

    assert_int_equal(DEC("{\"action\":\"x\",\"ip\":\"\\u0000\\u0000z\"}", &req), 0);
    assert_int_equal(req.f[PROTO_K_IP].len, 7);
    assert_memory_equal(req.f[PROTO_K_IP].s, "\xEF\xBF\xBD\xEF\xBF\xBDz", 8);

    /* An escaped backslash followed by "u0000" is plain text, not an escape. */
    assert_int_equal(DEC("{\"action\":\"x\",\"ip\":\"a\\\\u0000\"}", &req), 0);
    assert_string_equal(req.f[PROTO_K_IP].s, "a\\u0000");
    assert_int_equal(req.f[PROTO_K_IP].len, 7);

    /* Upper-case and other zero-ish escapes. */
    assert_int_equal(DEC("{\"action\":\"x\",\"ip\":\"\\u0001\"}", &req), 0);
    assert_int_equal(req.f[PROTO_K_IP].len, 1);
    assert_int_equal(req.f[PROTO_K_IP].s[0], 1);

    /* A "\u0000" inside a key does not make it match "shareId". */
    assert_int_equal(DEC("{\"action\":\"push\",\"shareId\\u0000\":\"abcdEF09\"}", &req), 0);
    assert_int_equal(req.f[PROTO_K_SHAREID].type, PROTO_T_ABSENT);
    assert_int_equal(req.action, PROTO_ACT_PUSH);

    /* The string is never shorter than what was sent: a \u0000 before the
     * 256-byte limit still counts towards too_long. */
    static char big[1024];
    char fill[300];
    memset(fill, 'q', sizeof fill);
    int m = snprintf(big, sizeof big, "{\"action\":\"x\",\"token\":\"a\\u0000%.*s\"}", 260, fill);
    assert_int_equal(dec(big, (size_t)m, &req), 0);
    assert_int_equal(req.f[PROTO_K_TOKEN].too_long, 1);
    assert_int_equal(req.f[PROTO_K_TOKEN].len, PROTO_STR_MAX);
    assert_memory_equal(req.f[PROTO_K_TOKEN].s, "a\xEF\xBF\xBDqqq", 7);
}

static void test_decode_raw_nul(void **state)
{
    (void)state;
    expect_drop("{\"action\":\"announce\"}\0", 22, PROTO_DROP_NOT_JSON, "trailing NUL");
    expect_drop("{\"action\":\"ann\0ounce\"}", 22, PROTO_DROP_NOT_JSON, "NUL in string");
    expect_drop("\0{\"action\":\"announce\"}", 22, PROTO_DROP_NOT_JSON, "leading NUL");
    expect_drop("{\"action\":\"announce\",\0\"x\":1}", 28, PROTO_DROP_NOT_JSON, "NUL between");
    expect_drop("\0", 1, PROTO_DROP_NOT_JSON, "lone NUL");
    expect_drop("{\"action\":\"announce\"}\0garbage", 29, PROTO_DROP_NOT_JSON, "NUL then garbage");
}

static void test_decode_control_chars_in_strings(void **state)
{
    (void)state;
    expect_drop("{\"action\":\"ann\x01ounce\"}", 22, PROTO_DROP_NOT_JSON, "0x01 in string");
    expect_drop("{\"action\":\"alive\",\"pad\":\"a\tb\"}", 30, PROTO_DROP_NOT_JSON, "raw tab in string");
    expect_drop("{\"action\":\"alive\",\"pad\":\"a\nb\"}", 30, PROTO_DROP_NOT_JSON, "raw LF in string");
    expect_drop("{\"action\":\"alive\",\"pad\":\"a\x1f\"}", 29, PROTO_DROP_NOT_JSON, "0x1f in string");
    expect_drop("{\"action\":\"alive\",\"p\x02\":1}", 25, PROTO_DROP_NOT_JSON, "control char in key");
    /* DEL (0x7f) is not a JSON control character; whitespace between tokens is fine. */
    expect_ok("{\"action\":\"alive\",\"pad\":\"a\x7f\"}", 29, "DEL in string");
    struct proto_req req;
    assert_int_equal(DEC(" {\r\n\t\"action\" :\t\"alive\" ,\n\"pad\": \"\" } ", &req), 0);
    assert_int_equal(req.action, PROTO_ACT_ALIVE);
}

/* RFC 8259 whitespace is space, tab, LF and CR only: other control bytes
 * between tokens or after the object are not JSON ("trailing bytes other than
 * whitespace: dropped"). */
static void test_decode_control_chars_outside_strings(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
    } cases[] = {
        { "{\"action\":\"alive\"}\x01", 19 },
        { "{\"action\":\"alive\"}\x0b", 19 },
        { "{\"action\":\"alive\"}\x0c", 19 },
        { "\x01{\"action\":\"alive\"}", 19 },
        { "{\x1f\"action\":\"alive\"}", 19 },
    };
    char accepted[512] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proto_req req;
        int rc = dec(cases[i].s, cases[i].len, &req);
        if (rc != DROP(PROTO_DROP_NOT_JSON)) {
            char one[64];
            snprintf(one, sizeof one, " case %zu (rc %d);", i, rc);
            strncat(accepted, one, sizeof accepted - strlen(accepted) - 1);
        }
    }
    if (accepted[0])
        fail_msg("control bytes outside strings were not dropped as NOT_JSON:%s", accepted);
}

/* RFC 8259 numbers: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? — anything
 * else is not JSON, wherever it appears in the object. */
static void test_decode_invalid_numbers(void **state)
{
    (void)state;
    static const char *const bad[] = { "01", "-01", "00", "1.", "-.5", "1.e3", "+1", ".5", "1e",
                                       "-", "0x1", "1e+", "--1", "Infinity", "NaN", "1.5.5" };
    char accepted[512] = "";
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[128];
        struct proto_req req;
        int n = snprintf(buf, sizeof buf, "{\"action\":\"alive\",\"x\":%s}", bad[i]);
        if (dec(buf, (size_t)n, &req) != DROP(PROTO_DROP_NOT_JSON)) {
            strncat(accepted, " ", sizeof accepted - strlen(accepted) - 1);
            strncat(accepted, bad[i], sizeof accepted - strlen(accepted) - 1);
        }
    }
    static const char *const good[] = { "0", "-0", "10", "1.5", "-1.5e-3", "1E+2", "0.0", "2e10" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char buf[128];
        struct proto_req req;
        int n = snprintf(buf, sizeof buf, "{\"action\":\"alive\",\"port\":%s}", good[i]);
        assert_int_equal(dec(buf, (size_t)n, &req), 0);
        assert_int_equal(req.f[PROTO_K_PORT].type, PROTO_T_NUMBER);
    }
    if (accepted[0])
        fail_msg("invalid JSON numbers were accepted:%s", accepted);
}

static void test_decode_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        const char *what;
    } bad[] = {
        { "\xc0\x80", "overlong NUL C0 80" },
        { "\xc1\xbf", "overlong C1 BF" },
        { "\xe0\x80\x80", "overlong 3-byte" },
        { "\xe0\x9f\xbf", "overlong 3-byte U+07FF" },
        { "\xf0\x80\x80\x80", "overlong 4-byte" },
        { "\xf0\x8f\xbf\xbf", "overlong 4-byte U+FFFF" },
        { "\xed\xa0\x80", "surrogate U+D800" },
        { "\xed\xbf\xbf", "surrogate U+DFFF" },
        { "\xed\xa0\xbd\xed\xb8\x80", "surrogate pair in CESU-8" },
        { "\xf4\x90\x80\x80", "U+110000" },
        { "\xf5\x80\x80\x80", "F5 lead" },
        { "\xf8\x88\x80\x80\x80", "5-byte form" },
        { "\xfe", "FE" },
        { "\xff", "FF" },
        { "\x80", "lone continuation" },
        { "a\xbf", "stray continuation" },
        { "\xe2\x82", "truncated 3-byte" },
        { "\xf0\x9f\x98", "truncated 4-byte" },
        { "\xc3", "truncated 2-byte" },
        { "\xc3\x28", "bad continuation" },
        { "\xe2\x28\xa1", "bad 2nd byte of 3" },
        { "\xe2\x82\x28", "bad 3rd byte of 3" },
        { "\xf0\x9f\x28\x80", "bad 3rd byte of 4" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[128];
        int n = snprintf(buf, sizeof buf, "{\"action\":\"alive\",\"pad\":\"%s\"}", bad[i].bytes);
        expect_drop(buf, (size_t)n, PROTO_DROP_INVALID_UTF8, bad[i].what);
        /* Also outside a string and at the very end of the datagram. */
        n = snprintf(buf, sizeof buf, "{\"action\":\"alive\"}%s", bad[i].bytes);
        expect_drop(buf, (size_t)n, PROTO_DROP_INVALID_UTF8, bad[i].what);
    }
    static const char *const good[] = {
        "\xc2\x80",         /* U+0080 */
        "\xc2\xa9",         /* © */
        "\xdf\xbf",         /* U+07FF */
        "\xe0\xa0\x80",     /* U+0800 */
        "\xe2\x82\xac",     /* € */
        "\xed\x9f\xbf",     /* U+D7FF */
        "\xee\x80\x80",     /* U+E000 */
        "\xef\xbf\xbd",     /* U+FFFD */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf0\x90\x80\x80", /* U+10000 */
        "\xf0\x9f\x98\x80", /* 😀 */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF */
        "h\xc3\xa9llo w\xc3\xb6rld \xe4\xb8\xad\xe6\x96\x87",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char buf[128];
        struct proto_req req;
        int n = snprintf(buf, sizeof buf, "{\"action\":\"alive\",\"ip\":\"%s\"}", good[i]);
        assert_int_equal(dec(buf, (size_t)n, &req), 0);
        assert_int_equal(req.action, PROTO_ACT_ALIVE);
        assert_int_equal(req.f[PROTO_K_IP].type, PROTO_T_STRING);
        assert_string_equal(req.f[PROTO_K_IP].s, good[i]);
    }
}

static void test_utf8_valid_table(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        int valid;
    } t[] = {
        { "", 0, 1 },
        { "plain ascii", 11, 1 },
        { "\x7f", 1, 1 },
        { "\0", 1, 1 }, /* NUL is valid UTF-8 (JSON rejects it elsewhere) */
        { "\xc2\x80", 2, 1 },
        { "\xdf\xbf", 2, 1 },
        { "\xe0\xa0\x80", 3, 1 },
        { "\xed\x9f\xbf", 3, 1 },
        { "\xee\x80\x80", 3, 1 },
        { "\xef\xbf\xbf", 3, 1 },
        { "\xf0\x90\x80\x80", 4, 1 },
        { "\xf4\x8f\xbf\xbf", 4, 1 },
        { "a\xc3\xa9z", 4, 1 },
        { "\x80", 1, 0 },
        { "\xbf", 1, 0 },
        { "\xc0\x80", 2, 0 },
        { "\xc0\xaf", 2, 0 },
        { "\xc1\xbf", 2, 0 },
        { "\xc2", 1, 0 },
        { "\xc2\x7f", 2, 0 },
        { "\xc2\xc0", 2, 0 },
        { "\xe0\x80\x80", 3, 0 },
        { "\xe0\x9f\xbf", 3, 0 },
        { "\xed\xa0\x80", 3, 0 },
        { "\xed\xaf\xbf", 3, 0 },
        { "\xed\xb0\x80", 3, 0 },
        { "\xed\xbf\xbf", 3, 0 },
        { "\xe2\x82", 2, 0 },
        { "\xe2", 1, 0 },
        { "\xf0\x80\x80\x80", 4, 0 },
        { "\xf0\x8f\xbf\xbf", 4, 0 },
        { "\xf4\x90\x80\x80", 4, 0 },
        { "\xf5\x80\x80\x80", 4, 0 },
        { "\xf7\xbf\xbf\xbf", 4, 0 },
        { "\xf0\x9f\x98", 3, 0 },
        { "\xf8\x88\x80\x80\x80", 5, 0 },
        { "\xfc\x84\x80\x80\x80\x80", 6, 0 },
        { "\xfe", 1, 0 },
        { "\xff", 1, 0 },
        { "ok\xe2\x82\xac\xe2\x82", 7, 0 }, /* valid, then truncated at the end */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int got = proto_utf8_valid((const unsigned char *)t[i].s, t[i].len);
        if (got != t[i].valid)
            fail_msg("case %zu: proto_utf8_valid = %d, expected %d", i, got, t[i].valid);
    }
    /* A length shorter than the buffer cuts a sequence: invalid. */
    assert_int_equal(proto_utf8_valid((const unsigned char *)"\xe2\x82\xac", 2), 0);
    assert_int_equal(proto_utf8_valid((const unsigned char *)"\xe2\x82\xac", 3), 1);
    /* Exhaustive over 2-byte sequences: exactly C2..DF followed by 80..BF. */
    for (int a = 0x80; a < 0x100; a++) {
        for (int b = 0; b < 0x100; b++) {
            unsigned char s[2] = { (unsigned char)a, (unsigned char)b };
            int want = a >= 0xc2 && a <= 0xdf && b >= 0x80 && b <= 0xbf;
            if (proto_utf8_valid(s, 2) != want)
                fail_msg("%02x %02x: expected %d", a, b, want);
        }
    }
    /* Every code point round trip through a hand-made encoder (no surrogates). */
    for (uint32_t cp = 0x80; cp <= 0x10ffff; cp += (cp < 0x11000 ? 1 : 97)) {
        unsigned char s[4];
        size_t n;
        if (cp < 0x800) {
            s[0] = (unsigned char)(0xc0 | (cp >> 6));
            s[1] = (unsigned char)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            s[0] = (unsigned char)(0xe0 | (cp >> 12));
            s[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
            s[2] = (unsigned char)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            s[0] = (unsigned char)(0xf0 | (cp >> 18));
            s[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
            s[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
            s[3] = (unsigned char)(0x80 | (cp & 0x3f));
            n = 4;
        }
        int want = !(cp >= 0xd800 && cp <= 0xdfff);
        if (proto_utf8_valid(s, n) != want)
            fail_msg("U+%04X: expected %d", cp, want);
    }
}

static void test_decode_trailing(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"action\":\"alive\"}x",
        "{\"action\":\"alive\"}{}",
        "{\"action\":\"alive\"}{\"action\":\"alive\"}",
        "{\"action\":\"alive\"}}",
        "{\"action\":\"alive\"} 1",
        "{\"action\":\"alive\"}\"",
        "{\"action\":\"alive\"},",
        "{\"action\":\"alive\"}\n\nnull",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_drop(bad[i], strlen(bad[i]), PROTO_DROP_NOT_JSON, bad[i]);
    static const char *const ok[] = {
        "{\"action\":\"alive\"} ",
        "{\"action\":\"alive\"}\n",
        "{\"action\":\"alive\"}\r\n",
        "{\"action\":\"alive\"} \t \r\n ",
        "  \n{\"action\":\"alive\"}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct proto_req req;
        assert_int_equal(dec(ok[i], strlen(ok[i]), &req), 0);
        assert_int_equal(req.action, PROTO_ACT_ALIVE);
    }
}

static void test_decode_not_object(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "[]", "[{\"action\":\"announce\"}]", "\"announce\"", "1", "-0.5", "null", "true", "false",
        " [ ] ",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_drop(cases[i], strlen(cases[i]), PROTO_DROP_NOT_OBJECT, cases[i]);
}

static void test_decode_not_json(void **state)
{
    (void)state;
    expect_drop("", 0, PROTO_DROP_NOT_JSON, "empty");
    expect_drop("{\"action\":\"alive\"}", 0, PROTO_DROP_NOT_JSON, "zero length");
    static const char *const cases[] = {
        " ",
        "\r\n",
        "{",
        "}",
        "{\"action\":\"alive\"",
        "{\"action\":\"alive",
        "{\"action\":}",
        "{\"action\"}",
        "{action:\"alive\"}",
        "{'action':'alive'}",
        "{\"action\":\"alive\",}",
        "{\"action\":\"alive\"",
        "{\"action\":\"\\x41\"}",
        "{\"action\":\"\\u12\"}",
        "{\"action\":\"\\u12G4\"}",
        "{\"action\":\"\\",
        "{\"action\":\"\\u",
        "{\"action\":\"\\u000",
        "{\"action\":\"a\"\"b\"}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "GET / HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_drop(cases[i], strlen(cases[i]), PROTO_DROP_NOT_JSON, cases[i]);
}

static void test_decode_deep_nesting(void **state)
{
    (void)state;
    enum { DEPTH = 2000 };
    static char buf[8 * DEPTH + 64];
    struct proto_req req;
    memset(buf, '[', DEPTH);
    expect_drop(buf, DEPTH, PROTO_DROP_NOT_JSON, "2000 [");

    /* Balanced but deeper than any parser should follow: dropped, not crashed. */
    memset(buf + DEPTH, ']', DEPTH);
    int rc = dec(buf, 2 * DEPTH, &req);
    assert_true(rc == DROP(PROTO_DROP_NOT_JSON) || rc == DROP(PROTO_DROP_NOT_OBJECT));

    /* 2000 nested objects inside a request. */
    size_t n = (size_t)snprintf(buf, sizeof buf, "{\"action\":\"alive\",\"x\":");
    for (int i = 0; i < DEPTH; i++) {
        memcpy(buf + n, "{\"a\":", 5);
        n += 5;
    }
    buf[n++] = '1';
    memset(buf + n, '}', DEPTH + 1);
    n += DEPTH + 1;
    expect_drop(buf, n, PROTO_DROP_NOT_JSON, "2000 nested objects");

    /* Moderate nesting in an ignored field is fine. */
    n = (size_t)snprintf(buf, sizeof buf, "{\"action\":\"alive\",\"x\":");
    memset(buf + n, '[', 100);
    memset(buf + n + 100, ']', 100);
    n += 200;
    buf[n++] = '}';
    assert_int_equal(dec(buf, n, &req), 0);
    assert_int_equal(req.action, PROTO_ACT_ALIVE);
}

static void test_decode_scratch_too_small(void **state)
{
    (void)state;
    const char *s = "{\"action\":\"alive\"}";
    size_t n = strlen(s);
    char small[64];
    struct proto_req req;
    assert_int_equal(proto_decode(s, n, small, n, &req), DROP(PROTO_DROP_TOO_LARGE));
    assert_int_equal(proto_decode(s, n, small, n + 1, &req), 0);
    assert_int_equal(req.action, PROTO_ACT_ALIVE);
}

static void test_drop_names(void **state)
{
    (void)state;
    for (int i = 0; i < PROTO_DROP_COUNT; i++) {
        const char *a = proto_drop_name((enum proto_drop)i);
        assert_non_null(a);
        assert_true(strlen(a) > 0);
        assert_string_not_equal(a, "unknown");
        for (int j = 0; j < i; j++)
            assert_string_not_equal(a, proto_drop_name((enum proto_drop)j));
    }
    assert_string_equal(proto_drop_name(PROTO_DROP_TOO_LARGE), "too_large");
    assert_string_equal(proto_drop_name(PROTO_DROP_INVALID_UTF8), "invalid_utf8");
    assert_string_equal(proto_drop_name((enum proto_drop)PROTO_DROP_COUNT), "unknown");
}

/* Random bytes and random mutations of valid requests: no crash, and a
 * string field never contains a NUL and never exceeds PROTO_STR_MAX. */
static void test_decode_fuzz_smoke(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        "{\"action\":\"pulse\",\"override\":true,\"ip\":\"1.2.3.4\",\"port\":\"80\",\"token\":\"ab\"}",
        "{\"action\":\"push\",\"shareId\":\"abcdEF09\",\"multiaddr\":\"/ip4/\\u0000/x\"}",
        "{\"action\":\"announce\",\"pad\":\"\\u00e9\\ud83d\\ude00\"}",
    };
    uint64_t seed = 12345;
    char buf[256];
    for (int iter = 0; iter < 200000; iter++) {
        const char *s = seeds[iter % 3];
        size_t n = strlen(s);
        memcpy(buf, s, n);
        int muts = 1 + (int)unit_below(&seed, 4);
        for (int k = 0; k < muts; k++) {
            uint32_t pos = unit_below(&seed, (uint32_t)n);
            switch (unit_below(&seed, 4)) {
            case 0:
                buf[pos] = (char)unit_below(&seed, 256);
                break;
            case 1:
                n = pos; /* truncate */
                break;
            case 2:
                buf[pos] = "{}[]\"\\:,u0"[unit_below(&seed, 10)];
                break;
            default:
                if (n < sizeof buf)
                    buf[n++] = (char)unit_below(&seed, 128);
                break;
            }
            if (n == 0)
                break;
        }
        struct proto_req req;
        int rc = dec(buf, n, &req);
        assert_true(rc <= 0 && rc >= DROP(PROTO_DROP_COUNT - 1));
        if (rc != 0)
            continue;
        assert_true(req.action >= PROTO_ACT_NONE && req.action < PROTO_ACT_COUNT);
        for (int k = 0; k < PROTO_K_COUNT; k++) {
            const struct proto_field *f = &req.f[k];
            assert_true(f->type <= PROTO_T_OTHER);
            if (f->type == PROTO_T_STRING) {
                assert_true(f->len <= PROTO_STR_MAX);
                assert_int_equal(strlen(f->s), f->len);
            }
        }
    }
}

/* ---- encoding ---- */

static void test_encode_exact(void **state)
{
    (void)state;
    struct proto_reply r;
    char out[512];
    proto_reply_init(&r, "announceReceived", 1);
    proto_reply_str(&r, "shareId", "AbCd1234", PROTO_KEEP);
    proto_reply_str(&r, "addr", "1.2.3.4:5", PROTO_PRIO_ADDR);
    proto_reply_str(&r, "token", "0123456789abcdef0123456789abcdef", PROTO_PRIO_TOKEN);
    proto_reply_add(&r, "ttl", "300", 3, PROTO_RAW, PROTO_PRIO_TTL);
    const char *want = "{\"action\":\"announceReceived\",\"data\":{\"shareId\":\"AbCd1234\","
                       "\"addr\":\"1.2.3.4:5\",\"token\":\"0123456789abcdef0123456789abcdef\","
                       "\"ttl\":300}}";
    ssize_t n = proto_encode(&r, out, sizeof out, sizeof out);
    assert_int_equal(n, (ssize_t)strlen(want));
    assert_memory_equal(out, want, (size_t)n);
    /* Exactly the length is enough; one byte less drops the ttl. */
    n = proto_encode(&r, out, sizeof out, strlen(want));
    assert_int_equal(n, (ssize_t)strlen(want));
    n = proto_encode(&r, out, sizeof out, strlen(want) - 1);
    assert_int_equal(n, (ssize_t)strlen(want) - 10);
    assert_memory_equal(out, want, (size_t)n - 2);
    assert_memory_equal(out + n - 2, "}}", 2);

    proto_reply_init(&r, "alived", 0);
    n = proto_encode(&r, out, sizeof out, sizeof out);
    assert_int_equal(n, 19);
    assert_memory_equal(out, "{\"action\":\"alived\"}", 19);

    proto_reply_init(&r, "x", 1);
    n = proto_encode(&r, out, sizeof out, sizeof out);
    assert_int_equal(n, 24);
    assert_memory_equal(out, "{\"action\":\"x\",\"data\":{}}", 24);

    proto_reply_init(&r, "pulseReceived", 1);
    proto_reply_str(&r, "status", "0", PROTO_KEEP);
    proto_reply_str(&r, "overriden", "false", PROTO_KEEP);
    want = "{\"action\":\"pulseReceived\",\"data\":{\"status\":\"0\",\"overriden\":\"false\"}}";
    n = proto_encode(&r, out, sizeof out, sizeof out);
    assert_int_equal(n, (ssize_t)strlen(want));
    assert_memory_equal(out, want, (size_t)n);
    /* Only fields that are never dropped: one byte short of them is -1. */
    assert_int_equal(proto_encode(&r, out, sizeof out, strlen(want) - 1), -1);
    assert_int_equal(proto_encode(&r, out, sizeof out, 0), -1);
}

static void test_encode_escaping(void **state)
{
    (void)state;
    struct proto_reply r;
    char out[512];
    const char val[] = "q\"b\\s/\x01\x1f\n\t\r\x7f\xc3\xa9\0z";
    size_t vlen = sizeof val - 1; /* includes the embedded NUL */
    proto_reply_init(&r, "error", 1);
    proto_reply_add(&r, "message", val, vlen, PROTO_STR, PROTO_PRIO_MESSAGE);
    ssize_t n = proto_encode(&r, out, sizeof out, sizeof out);
    assert_true(n > 0);
    out[n] = '\0';
    const char *want = "{\"action\":\"error\",\"data\":{\"message\":\"q\\\"b\\\\s/\\u0001\\u001f"
                       "\\u000a\\u0009\\u000d\x7f\xc3\xa9\\u0000z\"}}";
    if (strlen(want) != (size_t)n || strcasecmp(out, want) != 0)
        fail_msg("escaped output:\n  got  %s\n  want %s", out, want);
    /* No raw control character is left in the output. */
    for (ssize_t i = 0; i < n; i++)
        assert_true((unsigned char)out[i] >= 0x20);
    /* And it is JSON that decodes back to the same bytes (up to the NUL). */
    cJSON *j = cJSON_ParseWithLength(out, (size_t)n);
    assert_non_null(j);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"),
                                                      "message");
    assert_true(cJSON_IsString(m));
    assert_string_equal(m->valuestring, "q\"b\\s/\x01\x1f\n\t\r\x7f\xc3\xa9");
    cJSON_Delete(j);

    /* Every control byte becomes \u00XX. */
    for (int c = 0; c < 0x20; c++) {
        char one = (char)c, expect[64];
        proto_reply_init(&r, "a", 1);
        proto_reply_add(&r, "k", &one, 1, PROTO_STR, PROTO_KEEP);
        n = proto_encode(&r, out, sizeof out, sizeof out);
        assert_true(n > 0);
        out[n] = '\0';
        snprintf(expect, sizeof expect, "{\"action\":\"a\",\"data\":{\"k\":\"\\u%04x\"}}", c);
        if (strcasecmp(out, expect) != 0)
            fail_msg("byte 0x%02x: got %s", c, out);
    }
    /* A RAW value is written as is; the action is escaped like any string. */
    proto_reply_init(&r, "a\"b", 1);
    proto_reply_add(&r, "n", "{\"x\":[1]}", 9, PROTO_RAW, PROTO_KEEP);
    n = proto_encode(&r, out, sizeof out, sizeof out);
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "{\"action\":\"a\\\"b\",\"data\":{\"n\":{\"x\":[1]}}}");
}

/* One field per priority, added in scrambled order, with KEEP fields between. */
struct prio_field {
    const char *key;
    const char *val;
    int prio;
};

static const struct prio_field prio_fields[] = {
    { "message", "a human message", PROTO_PRIO_MESSAGE },
    { "shareId", "AbCd1234", PROTO_KEEP },
    { "addr", "203.0.113.5:40000", PROTO_PRIO_ADDR },
    { "transports", "udp,ws", PROTO_PRIO_TRANSPORTS },
    { "ttl", "300", PROTO_PRIO_TTL },
    { "candidates", "c1 c2 c3", PROTO_PRIO_CANDIDATES },
    { "code", "full", PROTO_KEEP },
    { "nat", "cone", PROTO_PRIO_NAT },
    { "token", "0123456789abcdef0123456789abcdef", PROTO_PRIO_TOKEN },
    { "predicted", "40002", PROTO_PRIO_PREDICTED },
    { "multiaddr", "/ip4/203.0.113.5/udp/40000", PROTO_PRIO_MULTIADDR },
    { "nonce", "00112233445566778899aabbccddeeff", PROTO_PRIO_NONCE },
    { "pubkey", "k3yk3yk3y=", PROTO_PRIO_PUBKEY },
};
#define N_PRIO_FIELDS (sizeof prio_fields / sizeof prio_fields[0])

/* The expected encoding when every optional field with prio <= max is kept. */
static size_t expected_at(int max, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "{\"action\":\"announceReceived\",\"data\":{");
    int first = 1;
    for (size_t i = 0; i < N_PRIO_FIELDS; i++) {
        if (prio_fields[i].prio != PROTO_KEEP && prio_fields[i].prio > max)
            continue;
        n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\":\"%s\"", first ? "" : ",",
                              prio_fields[i].key, prio_fields[i].val);
        first = 0;
    }
    n += (size_t)snprintf(buf + n, cap - n, "}}");
    return n;
}

static void test_encode_drop_order(void **state)
{
    (void)state;
    struct proto_reply r;
    proto_reply_init(&r, "announceReceived", 1);
    for (size_t i = 0; i < N_PRIO_FIELDS; i++)
        proto_reply_str(&r, prio_fields[i].key, prio_fields[i].val, (enum proto_prio)prio_fields[i].prio);

    /* The order is message, transports, multiaddr, pubkey, candidates, predicted, nat,
     * nonce, ttl, token, addr. */
    static const char *const drop_order[] = { "message", "transports", "multiaddr", "pubkey",
                                              "candidates", "predicted", "nat", "nonce",
                                              "ttl", "token", "addr" };
    size_t len_at[PROTO_PRIO_COUNT];
    char exp[PROTO_PRIO_COUNT][512];
    for (int k = 0; k < PROTO_PRIO_COUNT; k++)
        len_at[k] = expected_at(k, exp[k], sizeof exp[k]);
    size_t full = len_at[PROTO_PRIO_COUNT - 1];

    char out[1024];
    int levels_seen[PROTO_PRIO_COUNT + 1] = { 0 };
    for (size_t budget = 0; budget <= full + 8; budget++) {
        int want = -1;
        for (int k = PROTO_PRIO_COUNT - 1; k >= 0; k--) {
            if (len_at[k] <= budget) {
                want = k;
                break;
            }
        }
        memset(out, '#', sizeof out);
        ssize_t n = proto_encode(&r, out, sizeof out, budget);
        if (want < 0) {
            if (n != -1)
                fail_msg("budget %zu: got %zd bytes, expected -1 (KEEP fields alone need %zu)", budget,
                         n, len_at[0]);
            levels_seen[PROTO_PRIO_COUNT]++;
            continue;
        }
        levels_seen[want]++;
        if (n != (ssize_t)len_at[want] || memcmp(out, exp[want], len_at[want]) != 0)
            fail_msg("budget %zu: got \"%.*s\", expected \"%s\"", budget, n > 0 ? (int)n : 0, out,
                     exp[want]);
        assert_true((size_t)n <= budget);
        assert_int_equal(out[budget], '#'); /* nothing written past the budget */

        /* Field by field: the KEEP ones always, the optional ones exactly while
         * they are not yet due to be dropped. */
        cJSON *j = cJSON_ParseWithLength(out, (size_t)n);
        assert_non_null(j);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
        assert_true(cJSON_IsObject(data));
        assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(data, "shareId")));
        assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(data, "code")));
        int dropped = PROTO_PRIO_COUNT - 1 - want; /* how many optional fields are gone */
        for (int d = 0; d < (int)(sizeof drop_order / sizeof drop_order[0]); d++) {
            int present = cJSON_HasObjectItem(data, drop_order[d]);
            if (present != (d >= dropped))
                fail_msg("budget %zu: field %s present=%d, expected %d", budget, drop_order[d],
                         present, d >= dropped);
        }
        cJSON_Delete(j);
    }
    /* Every level, including "nothing fits", was reached. */
    for (int k = 0; k <= PROTO_PRIO_COUNT; k++)
        assert_true(levels_seen[k] > 0);
}

static void test_encode_never_exceeds_budget(void **state)
{
    (void)state;
    struct proto_reply r;
    proto_reply_init(&r, "pushReceived", 1);
    proto_reply_str(&r, "peeraddr", "[2001:db8::1]:40000", PROTO_KEEP);
    proto_reply_str(&r, "peerShareId", "AbCd1234", PROTO_KEEP);
    proto_reply_str(&r, "multiaddr", "/ip6/2001:db8::1/udp/40000/quic \"x\"\x01", PROTO_PRIO_MULTIADDR);
    proto_reply_str(&r, "message", "hello\nworld", PROTO_PRIO_MESSAGE);
    char full[512];
    ssize_t fl = proto_encode(&r, full, sizeof full, sizeof full);
    assert_true(fl > 0);
    ssize_t min_ok = -1;
    for (size_t budget = 0; budget <= (size_t)fl + 4; budget++) {
        char out[600];
        memset(out, '#', sizeof out);
        ssize_t n = proto_encode(&r, out, sizeof out, budget);
        assert_true(n == -1 || (n >= 0 && (size_t)n <= budget));
        assert_int_equal(out[budget], '#'); /* nothing written past the budget */
        if (n >= 0) {
            if (min_ok < 0)
                min_ok = (ssize_t)budget;
            cJSON *j = cJSON_ParseWithLength(out, (size_t)n);
            assert_non_null(j);
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "data");
            assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "peeraddr")));
            assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "peerShareId")));
            cJSON_Delete(j);
        } else {
            assert_true(min_ok < 0); /* once it fits, a larger budget fits too */
        }
    }
    assert_true(min_ok > 0);

    /* budget > cap is clamped to cap: nothing is written past the buffer. */
    char small[80];
    memset(small, '#', sizeof small);
    ssize_t n = proto_encode(&r, small, 60, 100000);
    assert_true(n == -1 || n <= 60);
    for (size_t i = 60; i < sizeof small; i++)
        assert_int_equal(small[i], '#');
    n = proto_encode(&r, small, 0, 100000);
    assert_int_equal(n, -1);
}

static void test_encode_max_fields(void **state)
{
    (void)state;
    struct proto_reply r;
    static char keys[PROTO_MAX_FIELDS + 4][16];
    proto_reply_init(&r, "a", 1);
    for (int i = 0; i < PROTO_MAX_FIELDS + 4; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        proto_reply_str(&r, keys[i], "v", PROTO_KEEP);
    }
    assert_int_equal(r.n, PROTO_MAX_FIELDS);
    char out[1024];
    ssize_t n = proto_encode(&r, out, sizeof out, sizeof out);
    assert_true(n > 0);
    cJSON *j = cJSON_ParseWithLength(out, (size_t)n);
    assert_non_null(j);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "data");
    assert_int_equal(cJSON_GetArraySize(d), PROTO_MAX_FIELDS);
    assert_false(cJSON_HasObjectItem(d, "k16"));
    assert_true(cJSON_HasObjectItem(d, "k15"));
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_actions),
        cmocka_unit_test(test_decode_action_none),
        cmocka_unit_test(test_decode_action_unknown),
        cmocka_unit_test(test_decode_field_types),
        cmocka_unit_test(test_decode_too_long),
        cmocka_unit_test(test_decode_nul_escape),
        cmocka_unit_test(test_decode_raw_nul),
        cmocka_unit_test(test_decode_control_chars_in_strings),
        cmocka_unit_test(test_decode_control_chars_outside_strings),
        cmocka_unit_test(test_decode_invalid_numbers),
        cmocka_unit_test(test_decode_invalid_utf8),
        cmocka_unit_test(test_utf8_valid_table),
        cmocka_unit_test(test_decode_trailing),
        cmocka_unit_test(test_decode_not_object),
        cmocka_unit_test(test_decode_not_json),
        cmocka_unit_test(test_decode_deep_nesting),
        cmocka_unit_test(test_decode_scratch_too_small),
        cmocka_unit_test(test_drop_names),
        cmocka_unit_test(test_decode_fuzz_smoke),
        cmocka_unit_test(test_encode_exact),
        cmocka_unit_test(test_encode_escaping),
        cmocka_unit_test(test_encode_drop_order),
        cmocka_unit_test(test_encode_never_exceeds_budget),
        cmocka_unit_test(test_encode_max_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
