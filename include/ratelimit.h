/* ratelimit: token buckets for many keys (source IPs, peers) in one table of
 * fixed size, so memory never grows with the number of senders.
 *
 * Approximate by design: keys are 64-bit SipHash values under a per-table
 * random key, and each key may live in one of two slots. When both are taken
 * by other keys, the slot whose bucket holds more tokens is reused and the new
 * key starts full: a busy key is evicted last, and a collision can only make
 * the limit more lenient for a moment, never wrongly strict. Rates are per
 * second; times are monotonic milliseconds. sodium_init() must have been called. */
#ifndef PUNCHD_RATELIMIT_H
#define PUNCHD_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* One token bucket, for state that has a home of its own (a connection, a
 * peer). Zero-initialised = new: it starts full on first use. */
struct ratelimit_bucket {
    double tokens;
    uint64_t ms;    /* last refill; 0 = never used */
};

/* Tokens in b at now_ms (refilled at rate per second up to burst), not stored. */
double ratelimit_bucket_level(const struct ratelimit_bucket *b, double rate, double burst, uint64_t now_ms);

/* Refills b to now_ms and takes cost tokens. Returns 1 if they were there (or
 * rate is 0: no limit), 0 if not (nothing taken). */
int ratelimit_bucket_take(struct ratelimit_bucket *b, double rate, double burst, double cost,
                          uint64_t now_ms);

struct ratelimit;

/* A table of about `slots` buckets (rounded up to a power of two) refilling at
 * rate per second up to burst. rate 0 turns the limit off. Owned by the caller. */
struct ratelimit *ratelimit_new(size_t slots, double rate, double burst);
void ratelimit_free(struct ratelimit *rl);

/* Takes cost tokens from key's bucket at now_ms. Returns 1 if they were
 * there (or the limit is off), 0 if the key is over its limit (nothing taken). */
int ratelimit_take(struct ratelimit *rl, const void *key, size_t keylen, double cost, uint64_t now_ms);

/* 1 if key's bucket holds cost tokens at now_ms (or the limit is off);
 * nothing is taken. */
int ratelimit_has(struct ratelimit *rl, const void *key, size_t keylen, double cost, uint64_t now_ms);

/* 1 if key may be told it is limited now: at most once per second per key.
 * ratelimit_notice() also records that it was told; ratelimit_notice_due()
 * only asks (to skip work when the answer would be silence anyway). */
int ratelimit_notice(struct ratelimit *rl, const void *key, size_t keylen, uint64_t now_ms);
int ratelimit_notice_due(struct ratelimit *rl, const void *key, size_t keylen, uint64_t now_ms);

/* The key for "per IP": the exact IPv4 address, or the /64 of an IPv6 one.
 * Fills out (9 bytes at most) and returns its length. */
size_t ratelimit_ip_key(const struct addr *a, uint8_t out[9]);

/* Bytes the table takes (for the docs' memory bound). */
size_t ratelimit_bytes(const struct ratelimit *rl);

#endif
