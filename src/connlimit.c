/* connlimit: connections per IP, linear probing with backward-shift
 * deletion, so no tombstones pile up under churn (see connlimit.h). */
#include "connlimit.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "hash.h"
#include "xmem.h"

struct connlimit_entry {
    uint8_t key[9];
    uint8_t keylen;     /* 0 = empty */
    uint32_t count;
};

struct connlimit {
    size_t mask, used;
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    struct connlimit_entry *e;
};

struct connlimit *connlimit_new(size_t entries)
{
    struct connlimit *cl = xcalloc(1, sizeof *cl);
    size_t n = 16;
    while (n < 2 * entries) /* at most half full: probes stay short */
        n <<= 1;
    cl->mask = n - 1;
    crypto_shorthash_keygen(cl->hkey);
    cl->e = xcalloc(n, sizeof *cl->e);
    return cl;
}

void connlimit_free(struct connlimit *cl)
{
    if (!cl)
        return;
    free(cl->e);
    free(cl);
}

static size_t connlimit_home(const struct connlimit *cl, const uint8_t *k, size_t kl)
{
    return (size_t)hash_key64(cl->hkey, k, kl) & cl->mask;
}

/* Index of a's entry, or of the empty slot where it would go. */
static size_t connlimit_find(const struct connlimit *cl, const uint8_t *k, size_t kl)
{
    size_t i = connlimit_home(cl, k, kl);
    while (cl->e[i].keylen && (cl->e[i].keylen != kl || memcmp(cl->e[i].key, k, kl) != 0))
        i = (i + 1) & cl->mask;
    return i;
}

int connlimit_add(struct connlimit *cl, const struct addr *a, unsigned max)
{
    uint8_t k[9];
    size_t kl = ratelimit_ip_key(a, k);
    size_t i = connlimit_find(cl, k, kl);
    struct connlimit_entry *e = &cl->e[i];
    if (e->keylen) {
        if (max && e->count >= max)
            return 0;
        e->count++;
        return 1;
    }
    if (cl->used + 1 > (cl->mask + 1) / 2)
        return 0; /* more distinct IPs than connections allowed: refuse */
    memcpy(e->key, k, kl);
    e->keylen = (uint8_t)kl;
    e->count = 1;
    cl->used++;
    return 1;
}

void connlimit_del(struct connlimit *cl, const struct addr *a)
{
    uint8_t k[9];
    size_t kl = ratelimit_ip_key(a, k);
    size_t i = connlimit_find(cl, k, kl);
    if (!cl->e[i].keylen || --cl->e[i].count > 0)
        return;
    /* Backward-shift: pull later entries of the probe run into the hole. */
    cl->e[i].keylen = 0;
    cl->used--;
    size_t j = i;
    for (;;) {
        j = (j + 1) & cl->mask;
        if (!cl->e[j].keylen)
            break;
        size_t home = connlimit_home(cl, cl->e[j].key, cl->e[j].keylen);
        /* Move e[j] into the hole at i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            cl->e[i] = cl->e[j];
            cl->e[j].keylen = 0;
            i = j;
        }
    }
}

unsigned connlimit_count(const struct connlimit *cl, const struct addr *a)
{
    uint8_t k[9];
    size_t kl = ratelimit_ip_key(a, k);
    size_t i = connlimit_find(cl, k, kl);
    return cl->e[i].keylen ? cl->e[i].count : 0;
}
