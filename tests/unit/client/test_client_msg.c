/* test_client_msg: libpunch's tracker messages: requests built (fields,
 * escaping, padding) and replies parsed (every field, bounds, hostile
 * shapes). */
#include "client_unit.h"

#include <cjson/cJSON.h>
#include <netinet/in.h>

/* Parses out[0..n) as JSON (the test fails if it is not an object). */
static cJSON *cu_json(const char *out, int n)
{
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    cJSON *o = cJSON_Parse(out);
    assert_non_null(o);
    assert_true(cJSON_IsObject(o));
    return o;
}

static const char *cu_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_announce_fields(void **state)
{
    (void)state;
    char out[2048];
    struct punch_addr cands[2] = {cu_addr("192.168.1.20:40000"), cu_addr("[2001:db8::5]:40000")};
    struct punch_announce_args a = {0};
    a.key = "k\"ey";
    a.cookie = "c00kie";
    a.pubkey_b64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    a.cand = cands;
    a.ncand = 2;
    int n = punch_msg_announce(out, sizeof out, &a);
    cJSON *o = cu_json(out, n);
    assert_string_equal(cu_str(o, "action"), "announce");
    assert_string_equal(cu_str(o, "key"), "k\"ey"); /* escaped on the wire, intact parsed */
    assert_string_equal(cu_str(o, "cookie"), "c00kie");
    assert_string_equal(cu_str(o, "pubkey"), a.pubkey_b64);
    assert_null(cJSON_GetObjectItem(o, "shareId"));
    assert_null(cJSON_GetObjectItem(o, "token"));
    assert_null(cJSON_GetObjectItem(o, "pad"));
    const cJSON *c = cJSON_GetObjectItem(o, "candidates");
    assert_int_equal(cJSON_GetArraySize(c), 2);
    assert_string_equal(cJSON_GetArrayItem(c, 0)->valuestring, "192.168.1.20:40000");
    assert_string_equal(cJSON_GetArrayItem(c, 1)->valuestring, "[2001:db8::5]:40000");
    cJSON_Delete(o);
}

static void test_announce_reclaim_and_pad(void **state)
{
    (void)state;
    char out[2048];
    struct punch_announce_args a = {0};
    a.share_id = "A6iD7k3n";
    a.token = "a44462b8fa5528e61f85914996694570";
    a.pad_to = 200;
    int n = punch_msg_announce(out, sizeof out, &a);
    assert_int_equal(n, 200); /* exactly the padded size */
    cJSON *o = cu_json(out, n);
    assert_string_equal(cu_str(o, "shareId"), "A6iD7k3n");
    assert_string_equal(cu_str(o, "token"), a.token);
    assert_non_null(cu_str(o, "pad"));
    assert_null(cJSON_GetObjectItem(o, "key"));
    assert_null(cJSON_GetObjectItem(o, "candidates"));
    cJSON_Delete(o);
}

static void test_push_padding(void **state)
{
    (void)state;
    char out[2048];
    int n = punch_msg_push(out, sizeof out, "6YLD6sV6", NULL, PUNCH_PUSH_PAD);
    assert_int_equal(n, PUNCH_PUSH_PAD);
    cJSON *o = cu_json(out, n);
    assert_string_equal(cu_str(o, "action"), "push");
    assert_string_equal(cu_str(o, "shareId"), "6YLD6sV6");
    cJSON_Delete(o);
    /* Without padding: the bare request; a tiny buffer: -1, never a cut JSON. */
    n = punch_msg_push(out, sizeof out, "6YLD6sV6", "K", 0);
    assert_string_equal(out, "{\"action\":\"push\",\"key\":\"K\",\"shareId\":\"6YLD6sV6\"}");
    assert_int_equal(punch_msg_push(out, 40, "6YLD6sV6", NULL, PUNCH_PUSH_PAD), -1);
}

static void test_probe_pulse_relay(void **state)
{
    (void)state;
    char out[8192];
    int n = punch_msg_probe(out, sizeof out, "A6iD7k3n", "a44462b8fa5528e61f85914996694570", NULL);
    cJSON *o = cu_json(out, n);
    assert_string_equal(cu_str(o, "action"), "probe");
    assert_string_equal(cu_str(o, "shareId"), "A6iD7k3n");
    assert_string_equal(cu_str(o, "token"), "a44462b8fa5528e61f85914996694570");
    cJSON_Delete(o);

    n = punch_msg_pulse(out, sizeof out, NULL);
    assert_string_equal(out, "{\"action\":\"pulse\"}");

    n = punch_msg_relay(out, sizeof out, "6YLD6sV6", "AAEC", 4, NULL);
    assert_string_equal(out, "{\"action\":\"relay\",\"shareId\":\"6YLD6sV6\",\"data\":{\"p\":\"AAEC\"}}");
    char big[PUNCH_RELAY_MAX + 2];
    memset(big, 'A', sizeof big);
    assert_int_equal(punch_msg_relay(out, sizeof out, "6YLD6sV6", big, sizeof big, NULL), -1);
}

static void test_parse_announce_received(void **state)
{
    (void)state;
    struct punch_msg m;
    const char *s = "{\"action\":\"announceReceived\",\"data\":{\"shareId\":\"A6iD7k3n\","
                    "\"addr\":\"203.0.113.7:60995\",\"token\":\"a44462b8fa5528e61f85914996694570\","
                    "\"ttl\":300,\"nat\":\"unknown\",\"probe\":\"198.18.0.2:3000\","
                    "\"transports\":[\"udp\"]}}";
    assert_int_equal(punch_msg_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.action, PUNCH_MSG_ANNOUNCED);
    assert_string_equal(m.share_id, "A6iD7k3n");
    assert_string_equal(m.token, "a44462b8fa5528e61f85914996694570");
    assert_int_equal(m.ttl, 300);
    assert_true(m.has_addr);
    assert_true(punch_addr_equal(&m.addr, &(struct punch_addr){0}) == 0);
    struct punch_addr want = cu_addr("198.18.0.2:3000");
    assert_true(m.has_probe);
    assert_true(punch_addr_equal(&m.probe, &want));
    assert_true(m.has_nat);
    assert_int_equal(m.nat, PUNCH_NAT_UNKNOWN);

    /* The sobani app's vocabulary, and a bare reply. */
    s = "{\"action\":\"announced\",\"data\":{\"shareId\":\"2267989c\"}}";
    assert_int_equal(punch_msg_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.action, PUNCH_MSG_ANNOUNCED);
    assert_string_equal(m.share_id, "2267989c");
    assert_string_equal(m.token, "");
    assert_false(m.has_probe);
    assert_false(m.has_nat);
}

static const char *const cu_pk_b64 = "3q2+796tvu/erb7v3q2+796tvu/erb7v3q2+796tvu8=";

static void test_parse_push_received_full(void **state)
{
    (void)state;
    struct punch_msg m;
    char s[2048];
    snprintf(s, sizeof s,
             "{\"action\":\"pushReceived\",\"data\":{\"peeraddr\":\"198.51.100.9:56745\","
             "\"peerShareId\":\"6YLD6sV6\",\"transports\":[\"udp\",\"ws\"],\"nat\":\"sequential\","
             "\"candidates\":[\"10.0.0.2:5000\",\"bogus\",\"[fe80::1]:5000\",7,\"10.0.0.3:5000\"],"
             "\"predicted\":[\"198.51.100.9:40002\",\"198.51.100.9:40003\"],"
             "\"pubkey\":\"%s\",\"nonce\":\"00112233445566778899aabbccddeeff\"}}",
             cu_pk_b64);
    assert_int_equal(punch_msg_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.action, PUNCH_MSG_PUSHED);
    assert_string_equal(m.peer_id, "6YLD6sV6");
    assert_int_equal(m.peer_udp, 1);
    assert_true(m.has_peeraddr);
    struct punch_addr pa = cu_addr("198.51.100.9:56745");
    assert_true(punch_addr_equal(&m.peeraddr, &pa));
    assert_int_equal(m.nat, PUNCH_NAT_SEQUENTIAL);
    assert_int_equal(m.ncand, 3); /* "bogus" and 7 skipped; link-local is still an address */
    struct punch_addr c2 = cu_addr("10.0.0.3:5000");
    assert_true(punch_addr_equal(&m.cand[2], &c2));
    assert_int_equal(m.npred, 2);
    assert_true(m.has_pubkey);
    static const uint8_t deadbeef[4] = {0xde, 0xad, 0xbe, 0xef};
    for (int i = 0; i < PUNCH_PK_LEN; i++)
        assert_int_equal(m.pubkey[i], deadbeef[i % 4]);
    assert_true(m.has_nonce);
    assert_int_equal(m.nonce[0], 0x00);
    assert_int_equal(m.nonce[15], 0xff);
}

static void test_parse_income_ws_peer(void **state)
{
    (void)state;
    struct punch_msg m;
    /* A WebSocket-only peer: its peeraddr is a TCP address, not to be knocked. */
    const char *s = "{\"action\":\"income\",\"data\":{\"peeraddr\":\"198.51.100.9:443\",\"peerShareId\":"
                    "\"6YLD6sV6\",\"transports\":[\"ws\"],\"addrTransport\":\"ws\","
                    "\"candidates\":[\"10.0.0.2:5000\"],\"nonce\":\"00112233445566778899aabbccddeeff\"}}";
    assert_int_equal(punch_msg_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.action, PUNCH_MSG_INCOME);
    assert_int_equal(m.peer_udp, 0);
    assert_false(m.has_peeraddr);
    assert_int_equal(m.ncand, 1);
    assert_false(m.has_pubkey);
    /* pushReceived for the same peer says it only through transports. */
    s = "{\"action\":\"pushReceived\",\"data\":{\"peeraddr\":\"198.51.100.9:443\",\"peerShareId\":"
        "\"6YLD6sV6\",\"transports\":[\"ws\"]}}";
    assert_int_equal(punch_msg_parse(s, strlen(s), &m), 0);
    assert_false(m.has_peeraddr);
    /* An old tracker says nothing: the address is UDP. */
    s = "{\"action\":\"pushed\",\"data\":{\"peeraddr\":\"198.51.100.9:443\",\"peerShareId\":\"6YLD6sV6\"}}";
    assert_int_equal(punch_msg_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.action, PUNCH_MSG_PUSHED);
    assert_true(m.has_peeraddr);
    assert_int_equal(m.peer_udp, -1);
}

static void test_parse_bounds(void **state)
{
    (void)state;
    struct punch_msg m;
    char s[8192];
    /* More than 8 candidates: cut at 8. */
    strcpy(s, "{\"action\":\"income\",\"data\":{\"peerShareId\":\"6YLD6sV6\",\"candidates\":[");
    for (int i = 0; i < 20; i++)
        sprintf(s + strlen(s), "%s\"10.0.0.%d:5000\"", i ? "," : "", i + 1);
    strcat(s, "]}}");
    assert_int_equal(punch_msg_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.ncand, PUNCH_MAX_CANDIDATES);
    /* Wrong sizes and shapes are absent, not truncated. */
    const char *bad = "{\"action\":\"income\",\"data\":{\"peerShareId\":\"6YLD6sV6x\","
                      "\"nonce\":\"0011\",\"pubkey\":\"AAAA\",\"peeraddr\":\"1.2.3.4\","
                      "\"candidates\":\"10.0.0.1:1\"}}";
    assert_int_equal(punch_msg_parse(bad, strlen(bad), &m), 0);
    assert_string_equal(m.peer_id, "");
    assert_false(m.has_nonce);
    assert_false(m.has_pubkey);
    assert_false(m.has_peeraddr);
    assert_int_equal(m.ncand, 0);
    bad = "{\"action\":\"income\",\"data\":{\"nonce\":\"zz112233445566778899aabbccddeeff\","
          "\"peerShareId\":\"6YLD$sV6\"}}";
    assert_int_equal(punch_msg_parse(bad, strlen(bad), &m), 0);
    assert_false(m.has_nonce);
    assert_string_equal(m.peer_id, "");
    /* A huge cookie is dropped; a normal one kept. */
    memset(s, 0, sizeof s);
    strcpy(s, "{\"action\":\"error\",\"data\":{\"code\":\"retry\",\"cookie\":\"");
    memset(s + strlen(s), 'c', 300);
    strcat(s, "\"}}");
    assert_int_equal(punch_msg_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.action, PUNCH_MSG_ERROR);
    assert_string_equal(m.code, "retry");
    assert_string_equal(m.cookie, "");
    const char *ok = "{\"action\":\"error\",\"data\":{\"code\":\"retry\",\"cookie\":\"Zm9v.YmFy\"}}";
    assert_int_equal(punch_msg_parse(ok, strlen(ok), &m), 0);
    assert_string_equal(m.cookie, "Zm9v.YmFy");
}

static void test_parse_not_objects(void **state)
{
    (void)state;
    struct punch_msg m;
    const char *cases[] = {"", "[]", "{", "{\"action\":1}", "{\"a\":1} x", "null", "\"x\"",
                           "{\"action\":\"income\"}garbage"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(punch_msg_parse(cases[i], strlen(cases[i]), &m), -1);
    /* An unknown action is a message, just not one we act on. */
    const char *u = "{\"action\":\"wat\",\"data\":{\"shareId\":\"A6iD7k3n\"}}";
    assert_int_equal(punch_msg_parse(u, strlen(u), &m), 0);
    assert_int_equal(m.action, PUNCH_MSG_OTHER);
    /* An embedded NUL ends the text early: not one object. */
    const char nul[] = "{\"action\":\"pulseReceived\"}\0{}";
    assert_int_equal(punch_msg_parse(nul, sizeof nul - 1, &m), -1);
    /* Deep nesting and a too-long message are refused, not crashed on. */
    char *deep = malloc(70000);
    size_t n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"action\":\"x\",\"d\":", 17);
    n += 17;
    while (n < 69000)
        deep[n++] = '[';
    assert_int_equal(punch_msg_parse(deep, n, &m), -1);
    free(deep);
}

static void test_parse_relayed(void **state)
{
    (void)state;
    struct punch_msg m;
    const char *s = "{\"action\":\"relayed\",\"data\":{\"peerShareId\":\"A6iD7k3n\",\"payload\":{\"p\":\"AAEC\"}}}";
    assert_int_equal(punch_msg_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.action, PUNCH_MSG_RELAYED);
    assert_string_equal(m.peer_id, "A6iD7k3n");
    assert_int_equal(m.relay_len, 4);
    assert_string_equal(m.relay, "AAEC");
    /* Someone else's payload shape: nothing to decode. */
    s = "{\"action\":\"relayed\",\"data\":{\"peerShareId\":\"A6iD7k3n\",\"payload\":{\"sdp\":\"v=0\"}}}";
    assert_int_equal(punch_msg_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.relay_len, 0);
}

/* Mutations of real messages (flipped, cut, repeated bytes): parse or
 * refuse, never crash or overrun (this runs under ASan with make SAN=1), and
 * whatever is kept stays within its bounds. */
static void test_parse_mutations(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        "{\"action\":\"pushReceived\",\"data\":{\"peeraddr\":\"198.51.100.9:56745\",\"peerShareId\":"
        "\"6YLD6sV6\",\"transports\":[\"udp\",\"ws\"],\"nat\":\"sequential\",\"candidates\":"
        "[\"10.0.0.2:5000\",\"[2001:db8::1]:7\"],\"predicted\":[\"198.51.100.9:40002\"],\"pubkey\":"
        "\"3q2+796tvu/erb7v3q2+796tvu/erb7v3q2+796tvu8=\",\"nonce\":\"00112233445566778899aabbccddeeff\"}}",
        "{\"action\":\"announceReceived\",\"data\":{\"shareId\":\"A6iD7k3n\",\"addr\":\"203.0.113.7:60995\","
        "\"token\":\"a44462b8fa5528e61f85914996694570\",\"ttl\":300,\"probe\":\"198.18.0.2:3000\"}}",
        "{\"action\":\"relayed\",\"data\":{\"peerShareId\":\"A6iD7k3n\",\"payload\":{\"p\":\"AAEC\"}}}",
        "{\"action\":\"error\",\"data\":{\"code\":\"retry\",\"cookie\":\"Zm9vYmFy\"}}",
    };
    static const char tokens[] = "{}[]\",:\\0123456789.e-+ tfnul\x80\xff";
    uint64_t seed = 0x1234;
    char buf[1024];
    struct punch_msg m;
    int parsed = 0;
    for (int round = 0; round < 20000; round++) {
        const char *src = seeds[round % 4];
        size_t n = strlen(src);
        memcpy(buf, src, n);
        int edits = 1 + (int)cu_below(&seed, 4);
        for (int e = 0; e < edits; e++) {
            size_t at = cu_below(&seed, (uint32_t)n);
            uint32_t kind = cu_below(&seed, 10);
            if (kind < 6) {
                buf[at] = tokens[cu_below(&seed, sizeof tokens - 1)];
            } else if (kind == 6) {
                n = at + 1; /* cut */
            } else {
                if (n + 8 < sizeof buf) { /* repeat a slice */
                    memmove(buf + at + 8, buf + at, n - at);
                    n += 8;
                }
            }
        }
        if (punch_msg_parse(buf, n, &m) != 0)
            continue;
        parsed++;
        assert_true(m.ncand >= 0 && m.ncand <= PUNCH_MAX_CANDIDATES);
        assert_true(m.npred >= 0 && m.npred <= PUNCH_MAX_PREDICTED);
        assert_true(strlen(m.share_id) == 0 || strlen(m.share_id) == PUNCH_ID_LEN);
        assert_true(strlen(m.peer_id) == 0 || strlen(m.peer_id) == PUNCH_ID_LEN);
        assert_true(m.relay_len <= PUNCH_RELAY_MAX && strlen(m.relay) == m.relay_len);
        assert_true(strlen(m.cookie) <= PUNCH_COOKIE_MAX);
    }
    printf("# %d of 20000 mutants parsed\n", parsed);
    assert_true(parsed > 3000); /* the mutants do reach the field code */
}

static void test_nat_names(void **state)
{
    (void)state;
    assert_int_equal(punch_nat_parse("eim"), PUNCH_NAT_EIM);
    assert_int_equal(punch_nat_parse("sequential"), PUNCH_NAT_SEQUENTIAL);
    assert_int_equal(punch_nat_parse("random"), PUNCH_NAT_RANDOM);
    assert_int_equal(punch_nat_parse("Cone"), PUNCH_NAT_UNKNOWN);
    assert_int_equal(punch_nat_parse(NULL), PUNCH_NAT_UNKNOWN);
    assert_string_equal(punch_nat_name(PUNCH_NAT_SEQUENTIAL), "sequential");
    assert_string_equal(punch_path_name(PUNCH_PATH_PREDICTED), "predicted");
    assert_string_equal(punch_path_name(PUNCH_PATH_RELAY), "relay");
}

int main(void)
{
    cu_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_announce_fields),
        cmocka_unit_test(test_announce_reclaim_and_pad),
        cmocka_unit_test(test_push_padding),
        cmocka_unit_test(test_probe_pulse_relay),
        cmocka_unit_test(test_parse_announce_received),
        cmocka_unit_test(test_parse_push_received_full),
        cmocka_unit_test(test_parse_income_ws_peer),
        cmocka_unit_test(test_parse_bounds),
        cmocka_unit_test(test_parse_not_objects),
        cmocka_unit_test(test_parse_relayed),
        cmocka_unit_test(test_parse_mutations),
        cmocka_unit_test(test_nat_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
