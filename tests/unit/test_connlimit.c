/* test_connlimit: the exact count of open TCP connections per IP behind
 * max_connections_per_ip — the cap, a close freeing a slot, ports and the
 * IPv6 /64, the fixed capacity, and a long random churn checked against a
 * reference count (the table deletes by backward shift, so a wrong move
 * would lose or resurrect a count). */
#include "unit.h"

#include "addr.h"
#include "connlimit.h"

static struct addr ip(const char *s, uint16_t port)
{
    struct addr a;
    if (addr_parse_ip(&a, s, port) != 0)
        fail_msg("bad test address %s", s);
    return a;
}

static void test_cap_then_refused_close_frees(void **state)
{
    (void)state;
    struct connlimit *cl = connlimit_new(100);
    struct addr a = ip("192.0.2.1", 40000);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(connlimit_count(cl, &a), i);
        assert_int_equal(connlimit_add(cl, &a, 3), 1);
    }
    assert_int_equal(connlimit_add(cl, &a, 3), 0);
    assert_int_equal(connlimit_add(cl, &a, 3), 0);
    assert_int_equal(connlimit_count(cl, &a), 3); /* refusals count nothing */
    connlimit_del(cl, &a);
    assert_int_equal(connlimit_count(cl, &a), 2);
    assert_int_equal(connlimit_add(cl, &a, 3), 1);
    assert_int_equal(connlimit_add(cl, &a, 3), 0);
    for (int i = 0; i < 3; i++)
        connlimit_del(cl, &a);
    assert_int_equal(connlimit_count(cl, &a), 0);
    /* A del with nothing counted is harmless. */
    connlimit_del(cl, &a);
    assert_int_equal(connlimit_count(cl, &a), 0);
    assert_int_equal(connlimit_add(cl, &a, 1), 1);
    assert_int_equal(connlimit_add(cl, &a, 1), 0);
    connlimit_free(cl);
}

static void test_per_ip_not_per_port(void **state)
{
    (void)state;
    struct connlimit *cl = connlimit_new(100);
    struct addr a1 = ip("192.0.2.1", 1), a2 = ip("192.0.2.1", 2), b = ip("192.0.2.2", 1);
    assert_int_equal(connlimit_add(cl, &a1, 2), 1);
    assert_int_equal(connlimit_add(cl, &a2, 2), 1);
    assert_int_equal(connlimit_add(cl, &a1, 2), 0); /* ports share their IP's cap */
    assert_int_equal(connlimit_add(cl, &b, 2), 1);  /* the next IP has its own */
    assert_int_equal(connlimit_add(cl, &b, 2), 1);
    assert_int_equal(connlimit_count(cl, &a2), 2);
    assert_int_equal(connlimit_count(cl, &b), 2);
    connlimit_free(cl);
}

static void test_ipv6_slash64_grouped(void **state)
{
    (void)state;
    struct connlimit *cl = connlimit_new(100);
    struct addr x = ip("2001:db8:5:6::1", 1), y = ip("2001:db8:5:6:aaaa:bbbb:cccc:dddd", 1);
    struct addr z = ip("2001:db8:5:7::1", 1);
    assert_int_equal(connlimit_add(cl, &x, 2), 1);
    assert_int_equal(connlimit_add(cl, &y, 2), 1);
    assert_int_equal(connlimit_add(cl, &x, 2), 0);
    assert_int_equal(connlimit_add(cl, &y, 2), 0);
    assert_int_equal(connlimit_count(cl, &y), 2);
    assert_int_equal(connlimit_add(cl, &z, 2), 1);
    connlimit_del(cl, &y); /* any address of the /64 frees the /64's slot */
    assert_int_equal(connlimit_add(cl, &x, 2), 1);
    connlimit_free(cl);
}

static void test_zero_max_is_unlimited(void **state)
{
    (void)state;
    struct connlimit *cl = connlimit_new(10);
    struct addr a = ip("192.0.2.9", 1);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(connlimit_add(cl, &a, 0), 1);
    assert_int_equal(connlimit_count(cl, &a), 100000);
    connlimit_free(cl);
}

/* The table has a fixed size: once it holds as many distinct IPs as it has
 * room for, a new IP is refused (never an allocation); existing IPs go on. */
static void test_capacity_fixed(void **state)
{
    (void)state;
    struct connlimit *cl = connlimit_new(100);
    char s[32];
    unsigned added = 0;
    for (unsigned i = 0; i < 100000; i++) {
        snprintf(s, sizeof s, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        struct addr a = ip(s, 1);
        if (!connlimit_add(cl, &a, 5))
            break;
        added++;
    }
    assert_true(added >= 100);    /* at least what it was sized for */
    assert_true(added < 100000);  /* and bounded */
    struct addr first = ip("10.0.0.0", 1), fresh = ip("172.16.0.1", 1);
    assert_int_equal(connlimit_add(cl, &fresh, 5), 0);
    assert_int_equal(connlimit_add(cl, &first, 5), 1); /* a known IP still counts up */
    /* Freeing one IP's last connection makes room for a new IP. */
    struct addr second = ip("10.0.0.1", 1);
    connlimit_del(cl, &second);
    assert_int_equal(connlimit_count(cl, &second), 0);
    assert_int_equal(connlimit_add(cl, &fresh, 5), 1);
    assert_int_equal(connlimit_count(cl, &fresh), 1);
    assert_int_equal(connlimit_count(cl, &first), 2);
    connlimit_free(cl);
}

/* Random opens and closes over a small, crowded table (long probe runs,
 * wrap-around), checked against a plain array of counts after every step. */
#define CHURN_IPS 40

static void test_churn_matches_reference(void **state)
{
    (void)state;
    struct connlimit *cl = connlimit_new(20); /* 64 slots, at most 32 IPs at once */
    unsigned ref[CHURN_IPS] = { 0 };
    unsigned distinct = 0;
    struct addr ips[CHURN_IPS];
    char s[64];
    for (unsigned i = 0; i < CHURN_IPS; i++) {
        if (i % 2)
            snprintf(s, sizeof s, "2001:db8:%x::1", i);
        else
            snprintf(s, sizeof s, "198.18.0.%u", i);
        ips[i] = ip(s, (uint16_t)(1000 + i));
    }
    uint64_t seed = 12345;
    const unsigned max = 4;
    for (int step = 0; step < 200000; step++) {
        unsigned i = unit_below(&seed, CHURN_IPS);
        if (unit_below(&seed, 2)) {
            int want = ref[i] < max && (ref[i] > 0 || distinct < 32);
            int got = connlimit_add(cl, &ips[i], max);
            if (got != want)
                fail_msg("step %d: add for ip %u (count %u, %u distinct) returned %d", step, i, ref[i],
                         distinct, got);
            if (got) {
                distinct += ref[i] == 0;
                ref[i]++;
            }
        } else if (ref[i] > 0) {
            connlimit_del(cl, &ips[i]);
            ref[i]--;
            distinct -= ref[i] == 0;
        }
        if (step % 16 == 0)
            for (unsigned j = 0; j < CHURN_IPS; j++)
                if (connlimit_count(cl, &ips[j]) != ref[j])
                    fail_msg("step %d: ip %u counted %u, expected %u", step, j,
                             connlimit_count(cl, &ips[j]), ref[j]);
    }
    connlimit_free(cl);
}

int main(void)
{
    unit_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_then_refused_close_frees),
        cmocka_unit_test(test_per_ip_not_per_port),
        cmocka_unit_test(test_ipv6_slash64_grouped),
        cmocka_unit_test(test_zero_max_is_unlimited),
        cmocka_unit_test(test_capacity_fixed),
        cmocka_unit_test(test_churn_matches_reference),
    };
    return cmocka_run_group_tests_name("connlimit", tests, NULL, NULL);
}
