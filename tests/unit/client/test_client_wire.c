/* test_client_wire: libpunch's peer packets: per-pairing keys, sealing and
 * opening, knock authentication (the pairing nonce, then the AEAD), the
 * replay window and counters that never repeat. */
#include "client_unit.h"

struct cu_pair {
    uint8_t cpk[32], csk[32], spk[32], ssk[32];
    uint8_t nonce[PUNCH_NONCE_LEN];
    struct punch_keys c, s;   /* the pusher's and the target's view */
};

static void cu_pair_init(struct cu_pair *p)
{
    crypto_kx_keypair(p->cpk, p->csk);
    crypto_kx_keypair(p->spk, p->ssk);
    randombytes_buf(p->nonce, sizeof p->nonce);
    assert_int_equal(punch_wire_keys(&p->c, 1, p->cpk, p->csk, p->spk, p->nonce), 0);
    assert_int_equal(punch_wire_keys(&p->s, 0, p->spk, p->ssk, p->cpk, p->nonce), 0);
}

static void test_keys_match_per_direction(void **state)
{
    (void)state;
    struct cu_pair p;
    cu_pair_init(&p);
    assert_memory_equal(p.c.tx, p.s.rx, 32);
    assert_memory_equal(p.c.rx, p.s.tx, 32);
    assert_memory_not_equal(p.c.tx, p.c.rx, 32);
    /* Another pairing of the same two keys: other keys (the nonce is bound in). */
    struct punch_keys c2;
    uint8_t n2[PUNCH_NONCE_LEN];
    memcpy(n2, p.nonce, sizeof n2);
    n2[0] ^= 1;
    assert_int_equal(punch_wire_keys(&c2, 1, p.cpk, p.csk, p.spk, n2), 0);
    assert_memory_not_equal(c2.tx, p.c.tx, 32);
    assert_memory_not_equal(c2.rx, p.c.rx, 32);
}

static void test_seal_open_roundtrip(void **state)
{
    (void)state;
    struct cu_pair p;
    cu_pair_init(&p);
    uint8_t frame[PUNCH_FRAME_MAX], pkt[PUNCH_PACKET_MAX], out[PUNCH_PACKET_MAX];
    for (size_t n = 1; n <= PUNCH_FRAME_MAX; n += 97) {
        randombytes_buf(frame, n);
        ssize_t len = punch_wire_seal(&p.c, frame, n, pkt, sizeof pkt);
        assert_int_equal(len, (ssize_t)(n + PUNCH_WIRE_OVERHEAD));
        assert_int_equal(pkt[0], PUNCH_WIRE_MAGIC);
        assert_memory_equal(pkt + 1, p.nonce, PUNCH_NONCE_LEN);
        ssize_t m = punch_wire_open(&p.s, pkt, (size_t)len, out, sizeof out);
        assert_int_equal(m, (ssize_t)n);
        assert_memory_equal(out, frame, n);
    }
    /* and the other way */
    memcpy(frame, "\x01\x00\x00\x00\x00\x07", 6);
    ssize_t len = punch_wire_seal(&p.s, frame, 6, pkt, sizeof pkt);
    assert_int_equal(punch_wire_open(&p.c, pkt, (size_t)len, out, sizeof out), 6);
    /* A frame over the maximum, or no room: refused. */
    assert_int_equal(punch_wire_seal(&p.c, frame, PUNCH_FRAME_MAX + 1, pkt, sizeof pkt), -1);
    assert_int_equal(punch_wire_seal(&p.c, frame, 6, pkt, 6 + PUNCH_WIRE_OVERHEAD - 1), -1);
}

static void test_counters_never_repeat(void **state)
{
    (void)state;
    struct cu_pair p;
    cu_pair_init(&p);
    uint8_t frame[8] = {4, 0, 0, 0, 0, 0, 0, 0}, pkt[PUNCH_PACKET_MAX];
    uint64_t last = 0;
    for (int i = 0; i < 1000; i++) {
        ssize_t len = punch_wire_seal(&p.c, frame, sizeof frame, pkt, sizeof pkt);
        assert_true(len > 0);
        uint64_t ctr = punch_get64(pkt + 1 + PUNCH_NONCE_LEN);
        assert_true(ctr > last); /* strictly increasing: an AEAD nonce is used once */
        last = ctr;
    }
    /* The same plaintext twice gives two different packets. */
    uint8_t a[PUNCH_PACKET_MAX], b[PUNCH_PACKET_MAX];
    ssize_t la = punch_wire_seal(&p.c, frame, sizeof frame, a, sizeof a);
    ssize_t lb = punch_wire_seal(&p.c, frame, sizeof frame, b, sizeof b);
    assert_int_equal(la, lb);
    assert_memory_not_equal(a, b, (size_t)la);
    /* A counter at its end stops sealing rather than wrap. */
    p.c.tx_ctr = UINT64_MAX;
    assert_int_equal(punch_wire_seal(&p.c, frame, sizeof frame, a, sizeof a), -1);
}

/* A knock from a stranger: no or a wrong pairing nonce -> ignored before crypto. */
static void test_wrong_nonce_is_not_ours(void **state)
{
    (void)state;
    struct cu_pair p, other;
    cu_pair_init(&p);
    cu_pair_init(&other);
    uint8_t knock[6] = {PUNCH_F_KNOCK, PUNCH_PATH_DIRECT, 0, 0, 0, 1};
    uint8_t pkt[PUNCH_PACKET_MAX], out[PUNCH_PACKET_MAX];
    /* sealed in another pairing (another nonce, other keys) */
    ssize_t len = punch_wire_seal(&other.c, knock, sizeof knock, pkt, sizeof pkt);
    assert_int_equal(punch_wire_open(&p.s, pkt, (size_t)len, out, sizeof out), PUNCH_WIRE_NOT_OURS);
    /* the sobani app's JSON knock, garbage, and short packets */
    const char *json = "{\"action\":\"knock\"}";
    assert_int_equal(punch_wire_open(&p.s, (const uint8_t *)json, strlen(json), out, sizeof out),
                     PUNCH_WIRE_NOT_OURS);
    uint64_t seed = 7;
    for (int i = 0; i < 2000; i++) {
        size_t n = cu_below(&seed, 200);
        for (size_t j = 0; j < n; j++)
            pkt[j] = (uint8_t)cu_rand(&seed);
        if (n > 0 && i % 2)
            pkt[0] = PUNCH_WIRE_MAGIC;
        assert_int_equal(punch_wire_open(&p.s, pkt, n, out, sizeof out), PUNCH_WIRE_NOT_OURS);
    }
    assert_int_equal(p.s.rx_max, 0); /* nothing moved the window */
}

/* Someone who knows the nonce (e.g. saw it on the wire) but not the keys:
 * any change is detected by the AEAD. */
static void test_forgery_with_right_nonce(void **state)
{
    (void)state;
    struct cu_pair p;
    cu_pair_init(&p);
    uint8_t knock[6] = {PUNCH_F_KNOCK, PUNCH_PATH_DIRECT, 0, 0, 0, 1};
    uint8_t pkt[PUNCH_PACKET_MAX], bad[PUNCH_PACKET_MAX], out[PUNCH_PACKET_MAX];
    ssize_t len = punch_wire_seal(&p.c, knock, sizeof knock, pkt, sizeof pkt);
    for (ssize_t i = 1 + PUNCH_NONCE_LEN; i < len; i++) {
        memcpy(bad, pkt, (size_t)len);
        bad[i] ^= 0x40;
        ssize_t r = punch_wire_open(&p.s, bad, (size_t)len, out, sizeof out);
        /* Flipping the counter may land on an unused value (forged) or 0 (never valid). */
        assert_true(r == PUNCH_WIRE_FORGED || r == PUNCH_WIRE_REPLAY);
    }
    /* a made-up packet: the right header, a random body */
    memcpy(bad, pkt, PUNCH_WIRE_HDR);
    randombytes_buf(bad + PUNCH_WIRE_HDR, 40);
    assert_int_equal(punch_wire_open(&p.s, bad, PUNCH_WIRE_HDR + 40, out, sizeof out), PUNCH_WIRE_FORGED);
    /* the right keys of the wrong direction: our own packet reflected back */
    assert_int_equal(punch_wire_open(&p.c, pkt, (size_t)len, out, sizeof out), PUNCH_WIRE_FORGED);
    /* truncated */
    assert_int_equal(punch_wire_open(&p.s, pkt, (size_t)len - 1, out, sizeof out), PUNCH_WIRE_FORGED);
    assert_int_equal(p.s.rx_max, 0);
    /* and the genuine one still opens afterwards */
    assert_int_equal(punch_wire_open(&p.s, pkt, (size_t)len, out, sizeof out), 6);
}

static void test_replay_window(void **state)
{
    (void)state;
    struct cu_pair p;
    cu_pair_init(&p);
    enum { N = 100 };
    static uint8_t pkts[N][PUNCH_PACKET_MAX];
    ssize_t lens[N];
    uint8_t f[6] = {PUNCH_F_KNOCK, 1, 0, 0, 0, 0}, out[PUNCH_PACKET_MAX];
    for (int i = 0; i < N; i++)
        lens[i] = punch_wire_seal(&p.c, f, sizeof f, pkts[i], sizeof pkts[i]);
    /* In order, each once. */
    assert_int_equal(punch_wire_open(&p.s, pkts[0], (size_t)lens[0], out, sizeof out), 6);
    assert_int_equal(punch_wire_open(&p.s, pkts[0], (size_t)lens[0], out, sizeof out), PUNCH_WIRE_REPLAY);
    /* Out of order within 64: accepted once each. */
    assert_int_equal(punch_wire_open(&p.s, pkts[50], (size_t)lens[50], out, sizeof out), 6);
    assert_int_equal(punch_wire_open(&p.s, pkts[10], (size_t)lens[10], out, sizeof out), 6);
    assert_int_equal(punch_wire_open(&p.s, pkts[10], (size_t)lens[10], out, sizeof out), PUNCH_WIRE_REPLAY);
    assert_int_equal(punch_wire_open(&p.s, pkts[50], (size_t)lens[50], out, sizeof out), PUNCH_WIRE_REPLAY);
    /* Jump ahead: older than the window is refused even if never seen. */
    assert_int_equal(punch_wire_open(&p.s, pkts[99], (size_t)lens[99], out, sizeof out), 6);
    assert_int_equal(punch_wire_open(&p.s, pkts[20], (size_t)lens[20], out, sizeof out), PUNCH_WIRE_REPLAY);
    assert_int_equal(punch_wire_open(&p.s, pkts[40], (size_t)lens[40], out, sizeof out), 6);
    assert_int_equal(punch_wire_open(&p.s, pkts[40], (size_t)lens[40], out, sizeof out), PUNCH_WIRE_REPLAY);
}

static void test_fingerprint(void **state)
{
    (void)state;
    uint8_t a[32], b[32], c[32], sk[32];
    crypto_kx_keypair(a, sk);
    crypto_kx_keypair(b, sk);
    memcpy(c, b, 32);
    c[31] ^= 1;
    char ab[PUNCH_FINGERPRINT_LEN + 1], ba[PUNCH_FINGERPRINT_LEN + 1], ac[PUNCH_FINGERPRINT_LEN + 1];
    punch_wire_fingerprint(a, b, ab);
    punch_wire_fingerprint(b, a, ba);
    punch_wire_fingerprint(a, c, ac);
    assert_string_equal(ab, ba);          /* both sides compute the same */
    assert_string_not_equal(ab, ac);      /* one bit of a key changes it */
    assert_int_equal(strlen(ab), PUNCH_FINGERPRINT_LEN);
    for (int i = 0; i < PUNCH_FINGERPRINT_LEN; i++) {
        if (i % 5 == 4)
            assert_int_equal(ab[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", ab[i]));
    }
}

static void test_be_helpers(void **state)
{
    (void)state;
    uint8_t b[8];
    punch_put32(b, 0x01020304u);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[3], 4);
    assert_int_equal(punch_get32(b), 0x01020304u);
    punch_put64(b, 0x0102030405060708ull);
    assert_int_equal(b[7], 8);
    assert_true(punch_get64(b) == 0x0102030405060708ull);
}

int main(void)
{
    cu_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_match_per_direction),
        cmocka_unit_test(test_seal_open_roundtrip),
        cmocka_unit_test(test_counters_never_repeat),
        cmocka_unit_test(test_wrong_nonce_is_not_ours),
        cmocka_unit_test(test_forgery_with_right_nonce),
        cmocka_unit_test(test_replay_window),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_be_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
