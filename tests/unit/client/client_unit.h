/* client_unit.h: includes and helpers shared by libpunch's cmocka unit tests
 * (tests/unit/client/). */
#ifndef PUNCH_CLIENT_UNIT_H
#define PUNCH_CLIENT_UNIT_H

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

#include "punch_int.h"

static inline void cu_sodium_init(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        exit(1);
    }
}

/* A deterministic PRNG (xorshift64*): failures reproduce. */
static inline uint64_t cu_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ULL;
}

static inline uint32_t cu_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)((cu_rand(s) >> 32) % n);
}

/* An endpoint literal, parsed (fails the test if it does not parse). */
static inline struct punch_addr cu_addr(const char *s)
{
    struct punch_addr a;
    assert_int_equal(punch_addr_parse(&a, s, strlen(s)), 0);
    return a;
}

#endif
