/* test_registry: the peer registry — both indexes, capacity, expiry order, re-indexing, and a randomized model check. */
#include "unit.h"

#include <netinet/in.h>

#include "addr.h"
#include "ids.h"
#include "registry.h"

static struct addr v4(uint32_t n, uint16_t port)
{
    struct addr a;
    memset(&a, 0, sizeof a);
    a.family = AF_INET;
    a.port = port;
    a.ip[0] = (uint8_t)(n >> 24);
    a.ip[1] = (uint8_t)(n >> 16);
    a.ip[2] = (uint8_t)(n >> 8);
    a.ip[3] = (uint8_t)n;
    return a;
}

static struct addr v6(uint32_t n, uint16_t port)
{
    struct addr a;
    memset(&a, 0, sizeof a);
    a.family = AF_INET6;
    a.port = port;
    a.ip[0] = 0x20;
    a.ip[1] = 0x01;
    a.ip[2] = 0x0d;
    a.ip[3] = 0xb8;
    a.ip[12] = (uint8_t)(n >> 24);
    a.ip[13] = (uint8_t)(n >> 16);
    a.ip[14] = (uint8_t)(n >> 8);
    a.ip[15] = (uint8_t)n;
    return a;
}

/* A distinct valid id per n: 8 base62 digits. */
static void id_of(uint64_t n, char id[IDS_LEN])
{
    static const char al[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (int i = IDS_LEN - 1; i >= 0; i--) {
        id[i] = al[n % 62];
        n /= 62;
    }
}

static void assert_peer(struct registry *r, uint32_t i, const char *id, const struct addr *a,
                        uint8_t local, uint64_t seen)
{
    const struct peer *p = registry_peer(r, i);
    assert_memory_equal(p->id, id, IDS_LEN);
    assert_true(addr_equal(&p->addr, a));
    assert_int_equal(p->local, local);
    assert_int_equal(p->last_seen, seen);
    assert_true(p->in_use);
    assert_int_equal(registry_find_id(r, id, IDS_LEN), i);
    assert_int_equal(registry_find_addr(r, a), i);
}

static void test_add_find(void **state)
{
    (void)state;
    struct registry *r = registry_new(16, 1000);
    assert_int_equal(registry_count(r), 0);
    assert_int_equal(registry_capacity(r), 16);
    struct addr a = v4(0x0a000001, 1000), b = v4(0x0a000001, 1001), c = v6(1, 1000);
    assert_int_equal(registry_find_id(r, "AAAAAAAA", 8), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &a), REGISTRY_NIL);

    uint32_t ia = registry_add(r, "AAAAAAAA", &a, 1, 100);
    uint32_t ib = registry_add(r, "AAAAAAAB", &b, 2, 200);
    uint32_t ic = registry_add(r, "zzzzzzzz", &c, 3, 300);
    assert_int_not_equal(ia, REGISTRY_NIL);
    assert_int_not_equal(ib, REGISTRY_NIL);
    assert_int_not_equal(ic, REGISTRY_NIL);
    assert_int_not_equal(ia, ib);
    assert_int_not_equal(ib, ic);
    assert_int_not_equal(ia, ic);
    assert_int_equal(registry_count(r), 3);
    assert_peer(r, ia, "AAAAAAAA", &a, 1, 100);
    assert_peer(r, ib, "AAAAAAAB", &b, 2, 200);
    assert_peer(r, ic, "zzzzzzzz", &c, 3, 300);
    assert_null(registry_peer(r, ia)->extra);

    /* Near misses are not found. */
    assert_int_equal(registry_find_id(r, "AAAAAAAC", 8), REGISTRY_NIL);
    assert_int_equal(registry_find_id(r, "aAAAAAAA", 8), REGISTRY_NIL);
    struct addr d = v4(0x0a000001, 1002), e = v6(1, 1001), f = v4(0x0a000002, 1000);
    assert_int_equal(registry_find_addr(r, &d), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &e), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &f), REGISTRY_NIL);
    /* IPv4 10.0.0.1 vs IPv6 whose first 4 bytes are 10.0.0.1. */
    struct addr g;
    memset(&g, 0, sizeof g);
    g.family = AF_INET6;
    g.port = 1000;
    memcpy(g.ip, a.ip, 4);
    assert_int_equal(registry_find_addr(r, &g), REGISTRY_NIL);
    struct addr none;
    memset(&none, 0, sizeof none);
    assert_int_equal(registry_find_addr(r, &none), REGISTRY_NIL);
    registry_free(r);
}

static void test_find_id_lengths(void **state)
{
    (void)state;
    struct registry *r = registry_new(4, 1000);
    struct addr a = v4(1, 1);
    uint32_t i = registry_add(r, "abcdEFGH", &a, 0, 0);
    assert_int_equal(registry_find_id(r, "abcdEFGH", 8), i);
    assert_int_equal(registry_find_id(r, "abcdEFGHx", 9), REGISTRY_NIL);
    assert_int_equal(registry_find_id(r, "abcdEFG", 7), REGISTRY_NIL);
    assert_int_equal(registry_find_id(r, "abcdEFGH", 7), REGISTRY_NIL);
    assert_int_equal(registry_find_id(r, "", 0), REGISTRY_NIL);
    assert_int_equal(registry_find_id(r, "abcdEFGHabcdEFGH", 16), REGISTRY_NIL);
    /* Any bytes may be asked for. */
    assert_int_equal(registry_find_id(r, "\0\xff\x80\x01\n\"\\x", 8), REGISTRY_NIL);
    registry_free(r);
}

static void test_capacity_full(void **state)
{
    (void)state;
    struct registry *r = registry_new(3, 1000);
    assert_int_equal(registry_capacity(r), 3);
    struct addr a[5];
    char id[5][IDS_LEN];
    uint32_t idx[5];
    for (int k = 0; k < 5; k++) {
        a[k] = v4(100 + (uint32_t)k, 5000);
        id_of((uint64_t)k + 77, id[k]);
    }
    for (int k = 0; k < 3; k++) {
        idx[k] = registry_add(r, id[k], &a[k], 0, 10);
        assert_int_not_equal(idx[k], REGISTRY_NIL);
        assert_true(idx[k] < 3);
    }
    assert_int_equal(registry_count(r), 3);
    assert_int_equal(registry_add(r, id[3], &a[3], 0, 10), REGISTRY_NIL);
    assert_int_equal(registry_count(r), 3);
    assert_int_equal(registry_find_id(r, id[3], 8), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &a[3]), REGISTRY_NIL);
    /* The refused add left the others intact. */
    for (int k = 0; k < 3; k++)
        assert_peer(r, idx[k], id[k], &a[k], 0, 10);

    registry_remove(r, idx[1]);
    idx[3] = registry_add(r, id[3], &a[3], 0, 20);
    assert_int_equal(idx[3], idx[1]); /* the freed index is reused */
    assert_int_equal(registry_add(r, id[4], &a[4], 0, 20), REGISTRY_NIL);
    registry_free(r);
}

static void test_remove_and_reuse(void **state)
{
    (void)state;
    struct registry *r = registry_new(8, 1000);
    struct addr a = v4(1, 1), b = v4(2, 2), c = v4(3, 3);
    uint32_t ia = registry_add(r, "AAAAAAAA", &a, 1, 1);
    uint32_t ib = registry_add(r, "BBBBBBBB", &b, 2, 2);
    uint32_t ic = registry_add(r, "CCCCCCCC", &c, 3, 3);
    registry_set_override(r, ib, &c); /* extra allocated: must be freed on remove */
    registry_set_multiaddr(r, ib, "/ip4/1.2.3.4", 12);

    registry_remove(r, ib);
    assert_int_equal(registry_count(r), 2);
    assert_int_equal(registry_find_id(r, "BBBBBBBB", 8), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &b), REGISTRY_NIL);
    assert_peer(r, ia, "AAAAAAAA", &a, 1, 1);
    assert_peer(r, ic, "CCCCCCCC", &c, 3, 3);

    /* Same id and address can come back, at the reused index, with no stale extra. */
    uint32_t ib2 = registry_add(r, "BBBBBBBB", &b, 4, 10);
    assert_int_equal(ib2, ib);
    assert_peer(r, ib2, "BBBBBBBB", &b, 4, 10);
    assert_null(registry_peer(r, ib2)->extra);

    /* Remove everything; the registry is empty and usable. */
    registry_remove(r, ia);
    registry_remove(r, ib2);
    registry_remove(r, ic);
    assert_int_equal(registry_count(r), 0);
    uint64_t dl;
    assert_int_equal(registry_next_deadline(r, &dl), -1);
    assert_int_equal(registry_find_id(r, "AAAAAAAA", 8), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &c), REGISTRY_NIL);
    uint32_t id2 = registry_add(r, "CCCCCCCC", &a, 0, 50);
    assert_peer(r, id2, "CCCCCCCC", &a, 0, 50);
    assert_int_equal(registry_next_deadline(r, &dl), 0);
    assert_int_equal(dl, 1050);
    registry_free(r);
}

struct seen {
    int n;
    uint32_t idx[64];
    char id[64][IDS_LEN];
};

static void record_cb(void *ctx, uint32_t i, const struct peer *p)
{
    struct seen *s = ctx;
    assert_true(s->n < 64);
    s->idx[s->n] = i;
    memcpy(s->id[s->n], p->id, IDS_LEN);
    s->n++;
}

static void test_touch_reorders_expiry(void **state)
{
    (void)state;
    struct registry *r = registry_new(8, 5000);
    struct addr a = v4(1, 1), b = v4(2, 2), c = v4(3, 3);
    uint32_t ia = registry_add(r, "AAAAAAAA", &a, 0, 0);
    uint32_t ib = registry_add(r, "BBBBBBBB", &b, 0, 10);
    uint32_t ic = registry_add(r, "CCCCCCCC", &c, 0, 20);
    uint64_t dl = 0;
    assert_int_equal(registry_next_deadline(r, &dl), 0);
    assert_int_equal(dl, 5000);

    registry_touch(r, ia, 30);
    assert_int_equal(registry_peer(r, ia)->last_seen, 30);
    assert_int_equal(registry_next_deadline(r, &dl), 0);
    assert_int_equal(dl, 5010); /* B is now the oldest */

    struct seen s = { 0 };
    assert_int_equal(registry_expire(r, 5009, 100, record_cb, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(registry_expire(r, 5020, 100, record_cb, &s), 2);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.idx[0], ib);
    assert_memory_equal(s.id[0], "BBBBBBBB", 8);
    assert_int_equal(s.idx[1], ic);
    assert_memory_equal(s.id[1], "CCCCCCCC", 8);
    assert_int_equal(registry_count(r), 1);
    assert_int_equal(registry_find_id(r, "BBBBBBBB", 8), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &c), REGISTRY_NIL);
    assert_int_equal(registry_find_id(r, "AAAAAAAA", 8), ia);
    assert_int_equal(registry_next_deadline(r, &dl), 0);
    assert_int_equal(dl, 5030);

    /* Touching the only (tail) peer. */
    registry_touch(r, ia, 6000);
    assert_int_equal(registry_peer(r, ia)->last_seen, 6000);
    assert_int_equal(registry_next_deadline(r, &dl), 0);
    assert_int_equal(dl, 11000);
    registry_free(r);
}

static void test_expire_boundary_and_budget(void **state)
{
    (void)state;
    struct registry *r = registry_new(64, 1000);
    char ids[20][IDS_LEN];
    uint32_t idx[20];
    for (int k = 0; k < 20; k++) {
        struct addr a = v4(500 + (uint32_t)k, 9);
        id_of((uint64_t)k * 1000003u, ids[k]);
        /* Peers 0..9 seen at 500, 10..19 at 500 + k. */
        idx[k] = registry_add(r, ids[k], &a, 0, k < 10 ? 500 : 500 + (uint64_t)k);
    }
    /* Not one millisecond early. */
    assert_int_equal(registry_expire(r, 1499, 100, NULL, NULL), 0);
    assert_int_equal(registry_count(r), 20);

    /* At exactly last_seen + ttl, in insertion order, at most budget at a time. */
    struct seen s = { 0 };
    assert_int_equal(registry_expire(r, 1500, 3, record_cb, &s), 3);
    assert_int_equal(registry_count(r), 17);
    assert_int_equal(registry_expire(r, 1500, 0, record_cb, &s), 0);
    assert_int_equal(registry_expire(r, 1500, 4, record_cb, &s), 4);
    assert_int_equal(registry_expire(r, 1500, 100, record_cb, &s), 3);
    assert_int_equal(s.n, 10);
    for (int k = 0; k < 10; k++) {
        assert_int_equal(s.idx[k], idx[k]);
        assert_memory_equal(s.id[k], ids[k], IDS_LEN);
        assert_int_equal(registry_find_id(r, ids[k], IDS_LEN), REGISTRY_NIL);
    }
    for (int k = 10; k < 20; k++)
        assert_int_equal(registry_find_id(r, ids[k], IDS_LEN), idx[k]);

    /* 1500 + 12: peers 10, 11, 12 are due (seen at 510, 511, 512). */
    uint64_t dl;
    assert_int_equal(registry_next_deadline(r, &dl), 0);
    assert_int_equal(dl, 1510);
    s.n = 0;
    assert_int_equal(registry_expire(r, 1512, 100, record_cb, &s), 3);
    assert_int_equal(s.idx[0], idx[10]);
    assert_int_equal(s.idx[2], idx[12]);
    assert_int_equal(registry_count(r), 7);
    /* Everything at once, then nothing. */
    assert_int_equal(registry_expire(r, UINT64_MAX / 2, 1000, NULL, NULL), 7);
    assert_int_equal(registry_count(r), 0);
    assert_int_equal(registry_expire(r, UINT64_MAX / 2, 1000, NULL, NULL), 0);
    assert_int_equal(registry_next_deadline(r, &dl), -1);
    registry_free(r);
}

static void test_set_addr_reindexes(void **state)
{
    (void)state;
    struct registry *r = registry_new(8, 1000);
    struct addr a = v4(1, 1), b = v4(2, 2), n1 = v6(9, 9), n2 = v4(1, 2);
    uint32_t ia = registry_add(r, "AAAAAAAA", &a, 1, 1);
    uint32_t ib = registry_add(r, "BBBBBBBB", &b, 2, 2);

    registry_set_addr(r, ia, &n1, 7, 0);
    assert_int_equal(registry_find_addr(r, &a), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &n1), ia);
    assert_int_equal(registry_peer(r, ia)->local, 7);
    assert_true(addr_equal(&registry_peer(r, ia)->addr, &n1));
    assert_int_equal(registry_find_id(r, "AAAAAAAA", 8), ia); /* id untouched */
    assert_int_equal(registry_find_addr(r, &b), ib);

    registry_set_addr(r, ia, &n2, 8, 0);
    assert_int_equal(registry_find_addr(r, &n1), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &n2), ia);
    assert_int_equal(registry_count(r), 2);

    /* The old address is free for someone else. */
    uint32_t ic = registry_add(r, "CCCCCCCC", &a, 0, 3);
    assert_int_equal(registry_find_addr(r, &a), ic);
    /* Removal after a move unlinks the new address. */
    registry_remove(r, ia);
    assert_int_equal(registry_find_addr(r, &n2), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &a), ic);
    assert_int_equal(registry_find_addr(r, &b), ib);
    registry_free(r);
}

static void test_set_id_reindexes(void **state)
{
    (void)state;
    struct registry *r = registry_new(8, 1000);
    struct addr a = v4(1, 1), b = v4(2, 2);
    uint32_t ia = registry_add(r, "AAAAAAAA", &a, 1, 1);
    uint32_t ib = registry_add(r, "BBBBBBBB", &b, 2, 2);
    registry_set_id(r, ia, "NEWid123");
    assert_int_equal(registry_find_id(r, "AAAAAAAA", 8), REGISTRY_NIL);
    assert_int_equal(registry_find_id(r, "NEWid123", 8), ia);
    assert_memory_equal(registry_peer(r, ia)->id, "NEWid123", 8);
    assert_int_equal(registry_find_addr(r, &a), ia);
    assert_int_equal(registry_find_id(r, "BBBBBBBB", 8), ib);
    /* The old id can be given to a new peer. */
    struct addr c = v4(3, 3);
    uint32_t ic = registry_add(r, "AAAAAAAA", &c, 0, 3);
    assert_int_equal(registry_find_id(r, "AAAAAAAA", 8), ic);
    registry_remove(r, ia);
    assert_int_equal(registry_find_id(r, "NEWid123", 8), REGISTRY_NIL);
    assert_int_equal(registry_find_id(r, "AAAAAAAA", 8), ic);
    registry_free(r);
}

static void test_override_and_multiaddr(void **state)
{
    (void)state;
    struct registry *r = registry_new(8, 1000);
    struct addr a = v4(1, 1), o = v4(0x09090909, 1234);
    uint32_t i = registry_add(r, "AAAAAAAA", &a, 0, 0);
    assert_null(registry_peer(r, i)->extra);

    registry_set_override(r, i, &o);
    const struct peer *p = registry_peer(r, i);
    assert_non_null(p->extra);
    assert_true(addr_equal(&p->extra->override, &o));
    assert_int_equal(p->extra->multiaddr_len, 0);
    /* The override is not an index: the peer is still keyed by its own address. */
    assert_int_equal(registry_find_addr(r, &o), REGISTRY_NIL);
    assert_int_equal(registry_find_addr(r, &a), i);
    assert_true(addr_equal(&p->addr, &a));

    registry_set_override(r, i, NULL);
    assert_int_equal(registry_peer(r, i)->extra->override.family, 0);

    registry_set_multiaddr(r, i, "/ip4/1.2.3.4/udp/5", 18);
    p = registry_peer(r, i);
    assert_int_equal(p->extra->multiaddr_len, 18);
    assert_string_equal(p->extra->multiaddr, "/ip4/1.2.3.4/udp/5");
    registry_set_multiaddr(r, i, "/x", 2);
    assert_int_equal(p->extra->multiaddr_len, 2);
    assert_string_equal(p->extra->multiaddr, "/x");

    char big[400];
    memset(big, 'm', sizeof big);
    registry_set_multiaddr(r, i, big, sizeof big);
    assert_int_equal(p->extra->multiaddr_len, REGISTRY_MULTIADDR_MAX);
    assert_int_equal(strlen(p->extra->multiaddr), REGISTRY_MULTIADDR_MAX);

    /* A clear on a peer without extra allocates nothing. */
    struct addr b = v4(2, 2);
    uint32_t j = registry_add(r, "BBBBBBBB", &b, 0, 0);
    registry_set_override(r, j, NULL);
    assert_null(registry_peer(r, j)->extra);
    registry_set_multiaddr(r, j, "/y", 2);
    assert_non_null(registry_peer(r, j)->extra);
    assert_int_equal(registry_peer(r, j)->extra->override.family, 0);
    registry_free(r); /* frees both extras (ASan checks for leaks) */
}

/* Fill to a load factor of about one (so bucket chains of several peers occur
 * in both indexes), then remove in random order, checking every remaining
 * peer after each removal; twice, so recycled indexes are chained again. */
static void test_chains_random_removal(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct registry *r = registry_new(N, 1000);
    static char ids[N][IDS_LEN];
    static struct addr addrs[N];
    static uint32_t idx[N];
    static int order[N];
    static int live[N];
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < N; k++) {
            id_of((uint64_t)k + (uint64_t)round * N, ids[k]);
            /* One IP, consecutive ports: keys differing in one byte. */
            addrs[k] = round ? v6(7, (uint16_t)(k + 1)) : v4(0x0a0a0a0a, (uint16_t)(k + 1));
            idx[k] = registry_add(r, ids[k], &addrs[k], (uint8_t)k, (uint64_t)k);
            assert_int_not_equal(idx[k], REGISTRY_NIL);
            live[k] = 1;
            order[k] = k;
        }
        assert_int_equal(registry_count(r), N);
        struct addr extra = v4(1, 1);
        assert_int_equal(registry_add(r, "extraXXX", &extra, 0, 0), REGISTRY_NIL);
        for (int k = N - 1; k > 0; k--) {
            int j = (int)unit_below(&seed, (uint32_t)k + 1);
            int tmp = order[k];
            order[k] = order[j];
            order[j] = tmp;
        }
        for (int step = 0; step < N; step++) {
            int victim = order[step];
            registry_remove(r, idx[victim]);
            live[victim] = 0;
            assert_int_equal(registry_count(r), (uint32_t)(N - step - 1));
            for (int k = 0; k < N; k++) {
                uint32_t want = live[k] ? idx[k] : REGISTRY_NIL;
                if (registry_find_id(r, ids[k], IDS_LEN) != want ||
                    registry_find_addr(r, &addrs[k]) != want)
                    fail_msg("round %d step %d: peer %d found wrongly (live %d)", round, step, k,
                             live[k]);
            }
        }
    }
    registry_free(r);
}

/* ---- randomized check against a reference model ---- */

#define M_CAP 256
#define M_IDS 1024
#define M_ADDRS 768
#define M_TTL 4000

struct model_peer {
    int live;
    int id;       /* index into the id pool */
    int addr;     /* index into the address pool */
    uint8_t local;
    uint64_t last_seen;
    uint64_t seq; /* expiry order: smaller = sooner */
};

struct model {
    struct model_peer p[M_CAP]; /* by registry index */
    int id_owner[M_IDS];        /* registry index or -1 */
    int addr_owner[M_ADDRS];
    char ids[M_IDS][IDS_LEN];
    struct addr addrs[M_ADDRS];
    uint32_t livelist[M_CAP];
    int nlive;
    uint64_t seq;
};

static void model_unlive(struct model *m, uint32_t i)
{
    m->id_owner[m->p[i].id] = -1;
    m->addr_owner[m->p[i].addr] = -1;
    m->p[i].live = 0;
    for (int k = 0; k < m->nlive; k++) {
        if (m->livelist[k] == i) {
            m->livelist[k] = m->livelist[--m->nlive];
            return;
        }
    }
    fail_msg("model: index %u not in live list", i);
}

static int model_free_id(struct model *m, uint64_t *seed)
{
    for (;;) {
        int k = (int)unit_below(seed, M_IDS);
        if (m->id_owner[k] < 0)
            return k;
    }
}

static int model_free_addr(struct model *m, uint64_t *seed)
{
    for (;;) {
        int k = (int)unit_below(seed, M_ADDRS);
        if (m->addr_owner[k] < 0)
            return k;
    }
}

/* The live peer next to expire in the model, or -1. */
static int model_head(const struct model *m)
{
    int best = -1;
    for (int k = 0; k < m->nlive; k++) {
        uint32_t i = m->livelist[k];
        if (best < 0 || m->p[i].seq < m->p[best].seq)
            best = (int)i;
    }
    return best;
}

struct expire_check {
    struct model *m;
    int n;
};

static void model_expire_cb(void *ctx, uint32_t i, const struct peer *p)
{
    struct expire_check *ec = ctx;
    struct model *m = ec->m;
    int want = model_head(m);
    if (want < 0 || (uint32_t)want != i)
        fail_msg("expired index %u, model expected %d", i, want);
    assert_memory_equal(p->id, m->ids[m->p[i].id], IDS_LEN);
    model_unlive(m, i);
    ec->n++;
}

static void model_check_all(struct registry *r, const struct model *m)
{
    assert_int_equal(registry_count(r), (uint32_t)m->nlive);
    for (int k = 0; k < M_IDS; k++) {
        uint32_t want = m->id_owner[k] < 0 ? REGISTRY_NIL : (uint32_t)m->id_owner[k];
        if (registry_find_id(r, m->ids[k], IDS_LEN) != want)
            fail_msg("id %d: find_id disagrees with the model", k);
    }
    for (int k = 0; k < M_ADDRS; k++) {
        uint32_t want = m->addr_owner[k] < 0 ? REGISTRY_NIL : (uint32_t)m->addr_owner[k];
        if (registry_find_addr(r, &m->addrs[k]) != want)
            fail_msg("addr %d: find_addr disagrees with the model", k);
    }
    for (int k = 0; k < m->nlive; k++) {
        uint32_t i = m->livelist[k];
        const struct peer *p = registry_peer(r, i);
        assert_memory_equal(p->id, m->ids[m->p[i].id], IDS_LEN);
        assert_true(addr_equal(&p->addr, &m->addrs[m->p[i].addr]));
        assert_int_equal(p->local, m->p[i].local);
        assert_int_equal(p->last_seen, m->p[i].last_seen);
    }
    uint64_t dl;
    int head = model_head(m);
    if (head < 0) {
        assert_int_equal(registry_next_deadline(r, &dl), -1);
    } else {
        assert_int_equal(registry_next_deadline(r, &dl), 0);
        assert_int_equal(dl, m->p[head].last_seen + M_TTL);
    }
}

static void test_model_stress(void **state)
{
    (void)state;
    static struct model m;
    memset(&m, 0, sizeof m);
    uint64_t seed = 0x2545F4914F6CDD1DULL;
    for (int k = 0; k < M_IDS; k++) {
        m.id_owner[k] = -1;
        id_of((uint64_t)k * 7919u + 13u, m.ids[k]);
    }
    for (int k = 0; k < M_ADDRS; k++) {
        m.addr_owner[k] = -1;
        m.addrs[k] = k % 3 ? v4(0xc0a80000u + (uint32_t)(k % 97), (uint16_t)(1000 + k))
                           : v6((uint32_t)(k % 13), (uint16_t)(2000 + k));
    }
    struct registry *r = registry_new(M_CAP, M_TTL);
    uint64_t now = 1000;
    unsigned long n_add = 0, n_full = 0, n_expired = 0, n_remove = 0;
    for (long op = 0; op < 200000; op++) {
        if (unit_below(&seed, 2))
            now += unit_below(&seed, 21);
        uint32_t roll = unit_below(&seed, 100);
        if (roll < 35) { /* add */
            int id = model_free_id(&m, &seed), ad = model_free_addr(&m, &seed);
            uint8_t local = (uint8_t)unit_below(&seed, 256);
            uint32_t i = registry_add(r, m.ids[id], &m.addrs[ad], local, now);
            if (m.nlive == M_CAP) {
                assert_int_equal(i, REGISTRY_NIL);
                n_full++;
            } else {
                assert_true(i < M_CAP);
                assert_false(m.p[i].live);
                m.p[i] = (struct model_peer){ 1, id, ad, local, now, ++m.seq };
                m.id_owner[id] = (int)i;
                m.addr_owner[ad] = (int)i;
                m.livelist[m.nlive++] = i;
                n_add++;
            }
        } else if (m.nlive == 0) {
            continue;
        } else if (roll < 55) { /* remove */
            uint32_t i = m.livelist[unit_below(&seed, (uint32_t)m.nlive)];
            registry_remove(r, i);
            model_unlive(&m, i);
            n_remove++;
        } else if (roll < 80) { /* touch */
            uint32_t i = m.livelist[unit_below(&seed, (uint32_t)m.nlive)];
            registry_touch(r, i, now);
            m.p[i].last_seen = now;
            m.p[i].seq = ++m.seq;
        } else if (roll < 86) { /* move to a free address */
            uint32_t i = m.livelist[unit_below(&seed, (uint32_t)m.nlive)];
            int ad = model_free_addr(&m, &seed);
            uint8_t local = (uint8_t)unit_below(&seed, 256);
            registry_set_addr(r, i, &m.addrs[ad], local, now);
            m.addr_owner[m.p[i].addr] = -1;
            m.addr_owner[ad] = (int)i;
            m.p[i].addr = ad;
            m.p[i].local = local;
        } else if (roll < 92) { /* new id */
            uint32_t i = m.livelist[unit_below(&seed, (uint32_t)m.nlive)];
            int id = model_free_id(&m, &seed);
            registry_set_id(r, i, m.ids[id]);
            m.id_owner[m.p[i].id] = -1;
            m.id_owner[id] = (int)i;
            m.p[i].id = id;
        } else { /* expire with a small budget */
            size_t budget = unit_below(&seed, 9);
            struct expire_check ec = { &m, 0 };
            size_t got = registry_expire(r, now, budget, model_expire_cb, &ec);
            assert_int_equal(got, (size_t)ec.n);
            assert_true(got <= budget);
            n_expired += got;
            if (got < budget) { /* nothing due is left */
                int head = model_head(&m);
                assert_true(head < 0 || m.p[head].last_seen + M_TTL > now);
            }
        }
        /* Spot checks after every operation. */
        for (int k = 0; k < 4; k++) {
            int id = (int)unit_below(&seed, M_IDS), ad = (int)unit_below(&seed, M_ADDRS);
            uint32_t want_id = m.id_owner[id] < 0 ? REGISTRY_NIL : (uint32_t)m.id_owner[id];
            uint32_t want_ad = m.addr_owner[ad] < 0 ? REGISTRY_NIL : (uint32_t)m.addr_owner[ad];
            if (registry_find_id(r, m.ids[id], IDS_LEN) != want_id)
                fail_msg("op %ld: find_id(%d) disagrees with the model", op, id);
            if (registry_find_addr(r, &m.addrs[ad]) != want_ad)
                fail_msg("op %ld: find_addr(%d) disagrees with the model", op, ad);
        }
        if (op % 1000 == 999)
            model_check_all(r, &m);
    }
    model_check_all(r, &m);
    /* Every kind of operation actually happened, including a full registry. */
    assert_true(n_add > 1000);
    assert_true(n_remove > 1000);
    assert_true(n_expired > 100);
    assert_true(n_full > 10);
    registry_free(r);
}

int main(void)
{
    unit_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find),
        cmocka_unit_test(test_find_id_lengths),
        cmocka_unit_test(test_capacity_full),
        cmocka_unit_test(test_remove_and_reuse),
        cmocka_unit_test(test_touch_reorders_expiry),
        cmocka_unit_test(test_expire_boundary_and_budget),
        cmocka_unit_test(test_set_addr_reindexes),
        cmocka_unit_test(test_set_id_reindexes),
        cmocka_unit_test(test_override_and_multiaddr),
        cmocka_unit_test(test_chains_random_removal),
        cmocka_unit_test(test_model_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
