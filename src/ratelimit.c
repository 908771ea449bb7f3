/* ratelimit: fixed-size table of token buckets (see ratelimit.h). */
#include "ratelimit.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "xmem.h"

struct ratelimit_slot {
    uint64_t h;         /* key hash; 0 = empty */
    uint64_t notice_ms; /* last "you are limited" notice; 0 = never */
    struct ratelimit_bucket b;
};

double ratelimit_bucket_level(const struct ratelimit_bucket *b, double rate, double burst, uint64_t now_ms)
{
    if (b->ms == 0)
        return burst; /* a new bucket starts full */
    double t = b->tokens;
    if (now_ms > b->ms)
        t += rate * (double)(now_ms - b->ms) / 1000.;
    return t > burst ? burst : t;
}

int ratelimit_bucket_take(struct ratelimit_bucket *b, double rate, double burst, double cost,
                          uint64_t now_ms)
{
    if (rate <= 0)
        return 1;
    b->tokens = ratelimit_bucket_level(b, rate, burst, now_ms);
    if (b->ms == 0 || now_ms > b->ms)
        b->ms = now_ms ? now_ms : 1;
    if (b->tokens < cost)
        return 0;
    b->tokens -= cost;
    return 1;
}

struct ratelimit {
    double rate, burst;
    size_t mask;        /* slots - 1 */
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    struct ratelimit_slot *slot;
};

struct ratelimit *ratelimit_new(size_t slots, double rate, double burst)
{
    struct ratelimit *rl = xcalloc(1, sizeof *rl);
    size_t n = 2;
    while (n < slots)
        n <<= 1;
    rl->rate = rate;
    rl->burst = burst < 1 ? 1 : burst;
    rl->mask = n - 1;
    crypto_shorthash_keygen(rl->hkey);
    /* calloc: pages are only resident once a slot is used. */
    rl->slot = xcalloc(n, sizeof *rl->slot);
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    free(rl->slot);
    free(rl);
}

size_t ratelimit_bytes(const struct ratelimit *rl) { return (rl->mask + 1) * sizeof *rl->slot; }

static uint64_t ratelimit_hash(const struct ratelimit *rl, const void *key, size_t keylen)
{
    uint64_t h = hash_key64(rl->hkey, key, keylen);
    return h ? h : 1; /* 0 marks an empty slot */
}

static double ratelimit_level(const struct ratelimit *rl, const struct ratelimit_slot *s, uint64_t now)
{
    return ratelimit_bucket_level(&s->b, rl->rate, rl->burst, now);
}

/* key's slot, claimed (full bucket) if it had none. */
static struct ratelimit_slot *ratelimit_slot(struct ratelimit *rl, const void *key, size_t keylen,
                                             uint64_t now)
{
    uint64_t h = ratelimit_hash(rl, key, keylen);
    size_t i = (size_t)h & rl->mask;
    struct ratelimit_slot *a = &rl->slot[i], *b = &rl->slot[i ^ 1];
    if (a->h == h)
        return a;
    if (b->h == h)
        return b;
    struct ratelimit_slot *v;
    if (a->h == 0)
        v = a;
    else if (b->h == 0)
        v = b;
    else
        v = ratelimit_level(rl, a, now) >= ratelimit_level(rl, b, now) ? a : b;
    v->h = h;
    v->notice_ms = 0;
    v->b = (struct ratelimit_bucket){ 0 }; /* starts full */
    return v;
}

int ratelimit_take(struct ratelimit *rl, const void *key, size_t keylen, double cost, uint64_t now_ms)
{
    if (rl->rate <= 0)
        return 1;
    struct ratelimit_slot *s = ratelimit_slot(rl, key, keylen, now_ms);
    return ratelimit_bucket_take(&s->b, rl->rate, rl->burst, cost, now_ms);
}

int ratelimit_has(struct ratelimit *rl, const void *key, size_t keylen, double cost, uint64_t now_ms)
{
    if (rl->rate <= 0)
        return 1;
    const struct ratelimit_slot *s = ratelimit_slot(rl, key, keylen, now_ms);
    return ratelimit_level(rl, s, now_ms) >= cost;
}

int ratelimit_notice_due(struct ratelimit *rl, const void *key, size_t keylen, uint64_t now_ms)
{
    const struct ratelimit_slot *s = ratelimit_slot(rl, key, keylen, now_ms);
    return s->notice_ms == 0 || now_ms >= s->notice_ms + 1000;
}

int ratelimit_notice(struct ratelimit *rl, const void *key, size_t keylen, uint64_t now_ms)
{
    struct ratelimit_slot *s = ratelimit_slot(rl, key, keylen, now_ms);
    if (s->notice_ms != 0 && now_ms < s->notice_ms + 1000)
        return 0;
    s->notice_ms = now_ms ? now_ms : 1;
    return 1;
}

size_t ratelimit_ip_key(const struct addr *a, uint8_t out[9])
{
    out[0] = a->family;
    if (a->family == AF_INET) {
        memcpy(out + 1, a->ip, 4);
        return 5;
    }
    memcpy(out + 1, a->ip, 8); /* an IPv6 /64: one subscriber */
    return 9;
}
