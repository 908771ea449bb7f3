/* unit.h: includes and small helpers shared by punchd's cmocka unit tests. */
#ifndef PUNCHD_UNIT_H
#define PUNCHD_UNIT_H

/* cmocka needs these before <cmocka.h>. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sodium_init() or give up: every module drawing ids or keys needs it. */
static inline void unit_sodium_init(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        exit(1);
    }
}

/* A small deterministic PRNG (xorshift64*) so failures are reproducible. */
static inline uint64_t unit_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ULL;
}

/* Uniform-enough integer in [0, n) for tests (n > 0). */
static inline uint32_t unit_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)((unit_rand(s) >> 32) % n);
}

#endif
