/* test_ratelimit: the fixed-table token buckets behind every abuse limit —
 * burst, refill over a fake clock, cost in bytes, 0 = off, the once-per-second
 * notice, the per-IP key (exact IPv4, IPv6 /64), and the memory bound: a
 * million distinct keys neither grow the table nor free a hot key, and the
 * approximate table is never stricter than exact per-key buckets. */
#include "unit.h"

#include <math.h>

#include "addr.h"
#include "ratelimit.h"

#define T0 7000000u /* any start: the clock is monotonic, not wall time */

static struct addr ip(const char *s, uint16_t port)
{
    struct addr a;
    if (addr_parse_ip(&a, s, port) != 0)
        fail_msg("bad test address %s", s);
    return a;
}

/* Takes one token for string key k at now. */
static int take(struct ratelimit *rl, const char *k, uint64_t now)
{
    return ratelimit_take(rl, k, strlen(k), 1, now);
}

/* How many single tokens k gets at now before the first refusal (at most cap). */
static int drain(struct ratelimit *rl, const char *k, uint64_t now, int cap)
{
    int n = 0;
    while (n < cap && take(rl, k, now))
        n++;
    return n;
}

static void test_burst_then_refused(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(1024, 10, 25);
    assert_int_equal(drain(rl, "a", T0, 1000), 25);
    /* Refused stays refused at the same instant, and costs nothing. */
    for (int i = 0; i < 100; i++)
        assert_int_equal(take(rl, "a", T0), 0);
    /* Another key has its own bucket. */
    assert_int_equal(drain(rl, "b", T0, 1000), 25);
    ratelimit_free(rl);
}

static void test_refill_over_time(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(1024, 10, 25); /* one token per 100 ms */
    assert_int_equal(drain(rl, "a", T0, 1000), 25);
    assert_int_equal(take(rl, "a", T0 + 99), 0);
    assert_int_equal(take(rl, "a", T0 + 100), 1);
    assert_int_equal(take(rl, "a", T0 + 100), 0);
    /* Fractions accumulate: 50 ms + 50 ms make one token. */
    assert_int_equal(take(rl, "a", T0 + 150), 0);
    assert_int_equal(take(rl, "a", T0 + 200), 1);
    /* 1 s refills rate tokens, no more. */
    assert_int_equal(drain(rl, "a", T0 + 1200, 1000), 10);
    /* A long pause refills up to burst, never beyond. */
    assert_int_equal(drain(rl, "a", T0 + 1200 + 3600000, 1000), 25);
    /* A clock that seems to step back neither refills nor breaks anything. */
    assert_int_equal(take(rl, "a", T0), 0);
    ratelimit_free(rl);
}

static void test_cost_in_bytes(void **state)
{
    (void)state;
    /* As for response bytes: rate 1000 B/s, burst 2000 B. */
    struct ratelimit *rl = ratelimit_new(64, 1000, 2000);
    assert_int_equal(ratelimit_take(rl, "x", 1, 1500, T0), 1);
    assert_int_equal(ratelimit_take(rl, "x", 1, 501, T0), 0);  /* 500 left: refused whole */
    assert_int_equal(ratelimit_take(rl, "x", 1, 500, T0), 1);  /* ... and nothing was taken */
    assert_int_equal(ratelimit_take(rl, "x", 1, 1, T0), 0);
    assert_int_equal(ratelimit_take(rl, "x", 1, 300, T0 + 300), 1);
    /* More than the burst never passes, however long one waits. */
    assert_int_equal(ratelimit_take(rl, "x", 1, 2001, T0 + 86400000), 0);
    assert_int_equal(ratelimit_take(rl, "x", 1, 2000, T0 + 86400000), 1);
    ratelimit_free(rl);
}

static void test_zero_rate_is_off(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(16, 0, 1);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(ratelimit_take(rl, "k", 1, 1e9, T0), 1);
    ratelimit_free(rl);
}

static void test_notice_once_per_second(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(64, 0, 1);
    assert_int_equal(ratelimit_notice_due(rl, "a", 1, T0), 1);
    assert_int_equal(ratelimit_notice_due(rl, "a", 1, T0), 1); /* asking records nothing */
    assert_int_equal(ratelimit_notice(rl, "a", 1, T0), 1);
    assert_int_equal(ratelimit_notice_due(rl, "a", 1, T0 + 1), 0);
    for (uint64_t ms = 0; ms < 1000; ms += 7)
        assert_int_equal(ratelimit_notice(rl, "a", 1, T0 + ms), 0);
    assert_int_equal(ratelimit_notice(rl, "a", 1, T0 + 999), 0);
    /* Another key is told on its own schedule. */
    assert_int_equal(ratelimit_notice(rl, "b", 1, T0 + 500), 1);
    assert_int_equal(ratelimit_notice_due(rl, "a", 1, T0 + 1000), 1);
    assert_int_equal(ratelimit_notice(rl, "a", 1, T0 + 1000), 1);
    assert_int_equal(ratelimit_notice(rl, "a", 1, T0 + 1999), 0);
    assert_int_equal(ratelimit_notice(rl, "b", 1, T0 + 1499), 0);
    assert_int_equal(ratelimit_notice(rl, "b", 1, T0 + 1500), 1);
    /* Over 10 s of one attempt per ms: exactly one notice a second. */
    int told = 0;
    for (uint64_t ms = 0; ms < 10000; ms++)
        told += ratelimit_notice(rl, "c", 1, T0 + 5000 + ms);
    assert_int_equal(told, 10);
    ratelimit_free(rl);
}

static void test_ip_key_ipv4_exact(void **state)
{
    (void)state;
    uint8_t a[9], b[9], c[9];
    struct addr x = ip("198.51.100.7", 1000), y = ip("198.51.100.7", 65000), z = ip("198.51.100.8", 1000);
    size_t la = ratelimit_ip_key(&x, a), lb = ratelimit_ip_key(&y, b), lc = ratelimit_ip_key(&z, c);
    assert_int_equal(la, 5);
    /* The port is not part of it: one IP, one bucket, whatever its ports. */
    assert_int_equal(lb, la);
    assert_memory_equal(a, b, la);
    /* The neighbouring address is someone else. */
    assert_int_equal(lc, la);
    assert_memory_not_equal(a, c, la);
}

static void test_ip_key_ipv6_slash64(void **state)
{
    (void)state;
    uint8_t a[9], b[9], c[9], d[9];
    struct addr x = ip("2001:db8:1:2::1", 1), y = ip("2001:db8:1:2:ffff:ffff:ffff:fffe", 2);
    struct addr z = ip("2001:db8:1:3::1", 1);
    struct addr v4 = ip("32.1.13.184", 1); /* 2001:0db8 read as IPv4 bytes */
    size_t la = ratelimit_ip_key(&x, a), lb = ratelimit_ip_key(&y, b);
    size_t lc = ratelimit_ip_key(&z, c), ld = ratelimit_ip_key(&v4, d);
    assert_int_equal(la, 9);
    assert_int_equal(lb, 9);
    assert_memory_equal(a, b, 9);      /* one /64: one subscriber */
    assert_int_equal(lc, 9);
    assert_memory_not_equal(a, c, 9);  /* the next /64 is another */
    /* An IPv4 key never equals an IPv6 one with the same leading bytes. */
    assert_true(ld != la || memcmp(a, d, ld) != 0);
}

static void test_ipv6_slash64_shares_a_bucket(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(1024, 1, 10);
    struct addr x = ip("2001:db8:aa:bb::1", 5000), y = ip("2001:db8:aa:bb:1234:5678:9abc:def0", 6000);
    struct addr z = ip("2001:db8:aa:bc::1", 5000);
    uint8_t k[9];
    int n = 0;
    /* Alternating between two addresses of one /64 draws from one bucket. */
    for (int i = 0; i < 40; i++) {
        const struct addr *a = i % 2 ? &y : &x;
        n += ratelimit_take(rl, k, ratelimit_ip_key(a, k), 1, T0);
    }
    assert_int_equal(n, 10);
    assert_int_equal(ratelimit_take(rl, k, ratelimit_ip_key(&x, k), 1, T0), 0);
    assert_int_equal(ratelimit_take(rl, k, ratelimit_ip_key(&y, k), 1, T0), 0);
    /* The next /64 is untouched. */
    n = 0;
    for (int i = 0; i < 40; i++)
        n += ratelimit_take(rl, k, ratelimit_ip_key(&z, k), 1, T0);
    assert_int_equal(n, 10);
    ratelimit_free(rl);
}

/* Issue 5: limiter memory is bounded — a million distinct senders neither
 * grow the table nor push an abusive (hot) key out of its limit. */
static void test_million_keys_bounded_memory_hot_key_stays_limited(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(32768, 1, 5);
    size_t bytes = ratelimit_bytes(rl);
    assert_true(bytes > 0);
    assert_true(bytes <= 32768 * 64); /* a fixed, documented-size table */
    uint8_t hot[9];
    struct addr h = ip("203.0.113.66", 1);
    size_t hl = ratelimit_ip_key(&h, hot);
    int n = 0;
    while (ratelimit_take(rl, hot, hl, 1, T0))
        n++;
    assert_int_equal(n, 5);
    uint64_t now = T0;
    unsigned hot_refused = 0, hot_tries = 0, new_admitted = 0;
    for (uint32_t i = 0; i < 1000000; i++) {
        /* A distinct IPv4 address per sender (10.0.0.0/8 and beyond). */
        struct addr a;
        memset(&a, 0, sizeof a);
        a.family = AF_INET;
        uint32_t v = 0x0a000000u + i;
        a.ip[0] = (uint8_t)(v >> 24);
        a.ip[1] = (uint8_t)(v >> 16);
        a.ip[2] = (uint8_t)(v >> 8);
        a.ip[3] = (uint8_t)v;
        uint8_t k[9];
        /* Approximate, but never wrongly strict: a newcomer has its burst. */
        new_admitted += (unsigned)ratelimit_take(rl, k, ratelimit_ip_key(&a, k), 1, now);
        if (i % 97 == 0) {
            hot_tries++;
            hot_refused += !ratelimit_take(rl, hot, hl, 1, now);
        }
        if (i % 1000 == 999)
            now++; /* 1 s over the whole run: at most one token refills */
    }
    assert_int_equal(new_admitted, 1000000);
    assert_int_equal(ratelimit_bytes(rl), bytes);
    /* The hot key was refused every time: less than one token refilled
     * before the clock reached T0 + 1000, and no newcomer evicted it. */
    assert_true(hot_tries > 10000);
    assert_int_equal(hot_refused, hot_tries);
    /* It refills like any key as time passes: one token at 1 s, then none. */
    assert_int_equal(now, T0 + 1000);
    assert_int_equal(ratelimit_take(rl, hot, hl, 1, now), 1);
    assert_int_equal(ratelimit_take(rl, hot, hl, 1, now), 0);
    ratelimit_free(rl);
}

/* The approximate table against exact per-key buckets (a reference model)
 * on a crowded little table: it admits at least whatever exact buckets admit,
 * and a key on its own is limited exactly. */
#define REF_KEYS 64

struct ref_bucket {
    double tokens;
    uint64_t ms;
    int used;
};

static void test_never_stricter_than_exact(void **state)
{
    (void)state;
    const double rate = 3, burst = 6;
    struct ratelimit *rl = ratelimit_new(8, rate, burst); /* 8 slots, 64 keys: constant eviction */
    struct ref_bucket ref[REF_KEYS];
    memset(ref, 0, sizeof ref);
    uint64_t seed = 0x9e3779b97f4a7c15ULL, now = T0;
    unsigned exact_yes = 0, approx_yes = 0;
    for (int step = 0; step < 200000; step++) {
        now += unit_below(&seed, 40);
        uint32_t key = unit_below(&seed, REF_KEYS);
        struct ref_bucket *b = &ref[key];
        if (!b->used) {
            b->used = 1;
            b->tokens = burst;
            b->ms = now;
        }
        b->tokens = fmin(burst, b->tokens + rate * (double)(now - b->ms) / 1000.);
        b->ms = now;
        int exact = b->tokens >= 1;
        if (exact)
            b->tokens -= 1;
        int approx = ratelimit_take(rl, &key, sizeof key, 1, now);
        if (exact && !approx)
            fail_msg("step %d: key %u refused by the table but within its exact bucket", step, key);
        exact_yes += (unsigned)exact;
        approx_yes += (unsigned)approx;
    }
    assert_true(approx_yes >= exact_yes);
    ratelimit_free(rl);

    /* Alone in a big table, a key's limit is exact: burst + rate x time. */
    rl = ratelimit_new(4096, 4, burst);
    int got = 0;
    for (uint64_t ms = 0; ms <= 10000; ms += 250) /* one token per 250 ms, exactly */
        got += drain(rl, "alone", T0 + ms, 1000);
    assert_int_equal(got, (int)burst + 4 * 10);
    ratelimit_free(rl);
}

int main(void)
{
    unit_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_refill_over_time),
        cmocka_unit_test(test_cost_in_bytes),
        cmocka_unit_test(test_zero_rate_is_off),
        cmocka_unit_test(test_notice_once_per_second),
        cmocka_unit_test(test_ip_key_ipv4_exact),
        cmocka_unit_test(test_ip_key_ipv6_slash64),
        cmocka_unit_test(test_ipv6_slash64_shares_a_bucket),
        cmocka_unit_test(test_million_keys_bounded_memory_hot_key_stays_limited),
        cmocka_unit_test(test_never_stricter_than_exact),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
