/* registry: live peers, two hash indexes and the expiry order (see registry.h). */
#include "registry.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "xmem.h"

#define REGISTRY_CHUNK_SHIFT 14 /* 16384 peers (1 MiB) per chunk */
#define REGISTRY_CHUNK (1u << REGISTRY_CHUNK_SHIFT)
#define REGISTRY_MAX_BUCKETS (1u << 23)

struct registry {
    struct peer **chunks;   /* chunks[i >> SHIFT][i & (CHUNK-1)], allocated on demand */
    uint32_t nchunks;
    uint32_t capacity;      /* max_peers */
    uint32_t hiwater;       /* indexes below this have been handed out at least once */
    uint32_t count;         /* live peers */
    uint32_t free_head;     /* recycled indexes, linked through id_next */
    uint32_t *id_buckets;   /* heads of id chains, stored as index + 1 (0 = empty) */
    uint32_t *addr_buckets; /* heads of address chains, index + 1 */
    uint32_t mask;          /* buckets - 1 */
    uint32_t lru_head;      /* oldest (next to expire) */
    uint32_t lru_tail;      /* most recently seen */
    uint64_t ttl_ms;
    unsigned char hkey[crypto_shorthash_KEYBYTES];
};

struct registry *registry_new(uint32_t max_peers, uint64_t ttl_ms)
{
    struct registry *r = xcalloc(1, sizeof *r);
    uint32_t buckets = 1024;
    while (buckets < max_peers && buckets < REGISTRY_MAX_BUCKETS)
        buckets <<= 1;
    r->capacity = max_peers;
    r->nchunks = (uint32_t)(((uint64_t)max_peers + REGISTRY_CHUNK - 1) >> REGISTRY_CHUNK_SHIFT);
    r->chunks = xcalloc(r->nchunks, sizeof *r->chunks);
    r->mask = buckets - 1;
    /* Large callocs come from fresh zeroed mmap pages: resident only once touched. */
    r->id_buckets = xcalloc(buckets, sizeof(uint32_t));
    r->addr_buckets = xcalloc(buckets, sizeof(uint32_t));
    r->free_head = REGISTRY_NIL;
    r->lru_head = r->lru_tail = REGISTRY_NIL;
    r->ttl_ms = ttl_ms;
    crypto_shorthash_keygen(r->hkey);
    return r;
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    for (uint32_t c = 0; c < r->nchunks; c++) {
        if (!r->chunks[c])
            continue;
        for (uint32_t j = 0; j < REGISTRY_CHUNK; j++)
            free(r->chunks[c][j].extra);
        free(r->chunks[c]);
    }
    free(r->chunks);
    free(r->id_buckets);
    free(r->addr_buckets);
    free(r);
}

uint32_t registry_count(const struct registry *r) { return r->count; }
uint32_t registry_capacity(const struct registry *r) { return r->capacity; }

struct peer *registry_peer(const struct registry *r, uint32_t i)
{
    return &r->chunks[i >> REGISTRY_CHUNK_SHIFT][i & (REGISTRY_CHUNK - 1)];
}

static uint32_t registry_hash(const struct registry *r, const void *key, size_t len)
{
    return (uint32_t)hash_key64(r->hkey, key, len) & r->mask;
}

/* The bytes of an address that identify it (no padding, no stale tail). */
static size_t registry_addr_key(const struct addr *a, unsigned char key[19])
{
    key[0] = a->family;
    key[1] = (unsigned char)(a->port >> 8);
    key[2] = (unsigned char)a->port;
    size_t iplen = a->family == AF_INET ? 4 : 16;
    memcpy(key + 3, a->ip, iplen);
    return 3 + iplen;
}

static uint32_t registry_addr_bucket(const struct registry *r, const struct addr *a)
{
    unsigned char key[19];
    size_t n = registry_addr_key(a, key);
    return registry_hash(r, key, n);
}

uint32_t registry_find_id(const struct registry *r, const char *id, size_t len)
{
    if (len != IDS_LEN)
        return REGISTRY_NIL;
    for (uint32_t i = r->id_buckets[registry_hash(r, id, IDS_LEN)] - 1; i != REGISTRY_NIL;) {
        const struct peer *p = registry_peer(r, i);
        if (memcmp(p->id, id, IDS_LEN) == 0)
            return i;
        i = p->id_next;
    }
    return REGISTRY_NIL;
}

uint32_t registry_find_addr(const struct registry *r, const struct addr *a)
{
    if (a->family == 0)
        return REGISTRY_NIL;
    for (uint32_t i = r->addr_buckets[registry_addr_bucket(r, a)] - 1; i != REGISTRY_NIL;) {
        const struct peer *p = registry_peer(r, i);
        if (addr_equal(&p->addr, a))
            return i;
        i = p->addr_next;
    }
    return REGISTRY_NIL;
}

void registry_prefetch_addrs(const struct registry *r, const struct addr *a, size_t n)
{
    enum { BATCH = 64 };
    const uint32_t *b[BATCH];
    for (size_t base = 0; base < n; base += BATCH) {
        size_t m = n - base < BATCH ? n - base : BATCH;
        /* Each stage reads only what the previous one asked for; the bucket
         * is hashed once. */
        for (size_t k = 0; k < m; k++) {
            b[k] = a[base + k].family ? &r->addr_buckets[registry_addr_bucket(r, &a[base + k])] : NULL;
            if (b[k])
                __builtin_prefetch(b[k]);
        }
        for (size_t k = 0; k < m; k++)
            if (b[k] && *b[k])
                __builtin_prefetch(registry_peer(r, *b[k] - 1));
        for (size_t k = 0; k < m; k++) {
            if (!b[k] || !*b[k])
                continue;
            /* A touch moves the peer to the tail: it writes both neighbours. */
            const struct peer *p = registry_peer(r, *b[k] - 1);
            if (p->lru_prev != REGISTRY_NIL)
                __builtin_prefetch(registry_peer(r, p->lru_prev), 1);
            if (p->lru_next != REGISTRY_NIL)
                __builtin_prefetch(registry_peer(r, p->lru_next), 1);
        }
    }
}

/* Unlinks i from the chain whose head (index + 1) is *head, following the
 * links at offset link_off inside struct peer. */
static void registry_chain_unlink(struct registry *r, uint32_t *head, uint32_t i, size_t link_off)
{
    uint32_t *link_of_i = (uint32_t *)((char *)registry_peer(r, i) + link_off);
    if (*head == i + 1) {
        *head = *link_of_i + 1; /* NIL + 1 wraps to 0 = empty */
        return;
    }
    for (uint32_t j = *head - 1; j != REGISTRY_NIL;) {
        uint32_t *link = (uint32_t *)((char *)registry_peer(r, j) + link_off);
        if (*link == i) {
            *link = *link_of_i;
            return;
        }
        j = *link;
    }
}

static void registry_id_link(struct registry *r, uint32_t i)
{
    struct peer *p = registry_peer(r, i);
    uint32_t b = registry_hash(r, p->id, IDS_LEN);
    p->id_next = r->id_buckets[b] - 1;
    r->id_buckets[b] = i + 1;
}

static void registry_id_unlink(struct registry *r, uint32_t i)
{
    struct peer *p = registry_peer(r, i);
    registry_chain_unlink(r, &r->id_buckets[registry_hash(r, p->id, IDS_LEN)], i,
                          offsetof(struct peer, id_next));
}

static void registry_addr_link(struct registry *r, uint32_t i)
{
    struct peer *p = registry_peer(r, i);
    uint32_t b = registry_addr_bucket(r, &p->addr);
    p->addr_next = r->addr_buckets[b] - 1;
    r->addr_buckets[b] = i + 1;
}

static void registry_addr_unlink(struct registry *r, uint32_t i)
{
    struct peer *p = registry_peer(r, i);
    registry_chain_unlink(r, &r->addr_buckets[registry_addr_bucket(r, &p->addr)], i,
                          offsetof(struct peer, addr_next));
}

static void registry_lru_unlink(struct registry *r, uint32_t i)
{
    struct peer *p = registry_peer(r, i);
    if (p->lru_prev != REGISTRY_NIL)
        registry_peer(r, p->lru_prev)->lru_next = p->lru_next;
    else
        r->lru_head = p->lru_next;
    if (p->lru_next != REGISTRY_NIL)
        registry_peer(r, p->lru_next)->lru_prev = p->lru_prev;
    else
        r->lru_tail = p->lru_prev;
    p->lru_prev = p->lru_next = REGISTRY_NIL;
}

static void registry_lru_append(struct registry *r, uint32_t i)
{
    struct peer *p = registry_peer(r, i);
    p->lru_prev = r->lru_tail;
    p->lru_next = REGISTRY_NIL;
    if (r->lru_tail != REGISTRY_NIL)
        registry_peer(r, r->lru_tail)->lru_next = i;
    else
        r->lru_head = i;
    r->lru_tail = i;
}

uint32_t registry_add(struct registry *r, const char id[IDS_LEN], const struct addr *a,
                      uint8_t local, uint64_t now)
{
    uint32_t i;
    if (r->count >= r->capacity)
        return REGISTRY_NIL;
    if (r->free_head != REGISTRY_NIL) {
        i = r->free_head;
        r->free_head = registry_peer(r, i)->id_next;
    } else {
        i = r->hiwater++;
        uint32_t c = i >> REGISTRY_CHUNK_SHIFT;
        if (!r->chunks[c])
            r->chunks[c] = xcalloc(REGISTRY_CHUNK, sizeof(struct peer));
    }
    struct peer *p = registry_peer(r, i);
    memset(p, 0, sizeof *p);
    memcpy(p->id, id, IDS_LEN);
    p->addr = *a;
    p->local = local;
    p->in_use = 1;
    p->last_seen = now;
    registry_id_link(r, i);
    if (a->family) {
        registry_addr_link(r, i);
        registry_lru_append(r, i);
    } else {
        p->lru_prev = p->lru_next = REGISTRY_NIL;
    }
    r->count++;
    return i;
}

void registry_touch(struct registry *r, uint32_t i, uint64_t now)
{
    struct peer *p = registry_peer(r, i);
    /* Clock steps backwards are impossible (monotonic), but keep order safe anyway. */
    if (now > p->last_seen)
        p->last_seen = now;
    if (p->addr.family && r->lru_tail != i) {
        registry_lru_unlink(r, i);
        registry_lru_append(r, i);
    }
}

void registry_set_addr(struct registry *r, uint32_t i, const struct addr *a, uint8_t local,
                       uint64_t now)
{
    struct peer *p = registry_peer(r, i);
    int had = p->addr.family != 0;
    if (had)
        registry_addr_unlink(r, i);
    p->addr = *a;
    p->local = local;
    if (a->family)
        registry_addr_link(r, i);
    if (had && !a->family) {
        registry_lru_unlink(r, i);
    } else if (!had && a->family) {
        p->last_seen = now;
        registry_lru_append(r, i);
    }
}

void registry_set_id(struct registry *r, uint32_t i, const char id[IDS_LEN])
{
    registry_id_unlink(r, i);
    memcpy(registry_peer(r, i)->id, id, IDS_LEN);
    registry_id_link(r, i);
}

static struct peer_extra *registry_extra(struct peer *p)
{
    if (!p->extra)
        p->extra = xcalloc(1, sizeof *p->extra);
    return p->extra;
}

struct peer_extra *registry_extra_of(struct registry *r, uint32_t i)
{
    return registry_extra(registry_peer(r, i));
}

void registry_set_override(struct registry *r, uint32_t i, const struct addr *a)
{
    struct peer *p = registry_peer(r, i);
    if (a)
        registry_extra(p)->override = *a;
    else if (p->extra)
        memset(&p->extra->override, 0, sizeof p->extra->override);
}

void registry_set_multiaddr(struct registry *r, uint32_t i, const char *s, size_t len)
{
    struct peer *p = registry_peer(r, i);
    if (len > REGISTRY_MULTIADDR_MAX)
        len = REGISTRY_MULTIADDR_MAX;
    struct peer_extra *e = registry_extra(p);
    memcpy(e->multiaddr, s, len);
    e->multiaddr[len] = '\0';
    e->multiaddr_len = (uint16_t)len;
}

void registry_set_ws(struct registry *r, uint32_t i, void *conn, const struct addr *a)
{
    struct peer *p = registry_peer(r, i);
    if (conn) {
        struct peer_extra *e = registry_extra(p);
        e->ws_conn = conn;
        e->ws_addr = *a;
        p->flags |= PEER_WS;
    } else {
        if (p->extra) {
            p->extra->ws_conn = NULL;
            memset(&p->extra->ws_addr, 0, sizeof p->extra->ws_addr);
        }
        p->flags &= (uint8_t)~PEER_WS;
    }
}

void registry_remove(struct registry *r, uint32_t i)
{
    struct peer *p = registry_peer(r, i);
    registry_id_unlink(r, i);
    if (p->addr.family) {
        registry_addr_unlink(r, i);
        registry_lru_unlink(r, i);
    }
    free(p->extra);
    memset(p, 0, sizeof *p);
    p->id_next = r->free_head;
    r->free_head = i;
    r->count--;
}

int registry_next_deadline(const struct registry *r, uint64_t *deadline)
{
    if (r->lru_head == REGISTRY_NIL)
        return -1;
    *deadline = registry_peer(r, r->lru_head)->last_seen + r->ttl_ms;
    return 0;
}

size_t registry_expire(struct registry *r, uint64_t now, size_t budget,
                       void (*cb)(void *ctx, uint32_t i, const struct peer *p), void *ctx)
{
    size_t n = 0;
    while (n < budget && r->lru_head != REGISTRY_NIL) {
        uint32_t i = r->lru_head;
        const struct peer *p = registry_peer(r, i);
        if (now < p->last_seen + r->ttl_ms)
            break;
        if (cb)
            cb(ctx, i, p);
        if (p->flags & PEER_WS) {
            static const struct addr none;
            registry_set_addr(r, i, &none, 0, now);
        } else {
            registry_remove(r, i);
        }
        n++;
    }
    return n;
}
