/* hash: the keyed 64-bit hash the in-memory tables share (registry indexes,
 * rate-limit and connection tables): SipHash-2-4 (libsodium's
 * crypto_shorthash) under a per-table random key, so crafted ids or addresses
 * cannot pile into one bucket. */
#ifndef PUNCHD_HASH_H
#define PUNCHD_HASH_H

#include <sodium.h>
#include <stdint.h>
#include <string.h>

/* in[0..len) hashed under key (crypto_shorthash_KEYBYTES bytes). */
static inline uint64_t hash_key64(const unsigned char *key, const void *in, size_t len)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t v;
    crypto_shorthash(h, in, len, key);
    memcpy(&v, h, sizeof v);
    return v;
}

#endif
