/* fuzz_connlimit: the per-IP connection counter against an exact model.
 *
 * Input: one byte sizing the table (entries 1-32), then operations [op]
 * [max]: op's low 6 bits pick one of 64 addresses (IPv4 ones, and IPv6 ones
 * that share a /64 in groups of four, which must count as one IP), its top
 * bit closes a connection of that IP instead of opening one. connlimit
 * promises exact counts (connlimit.h) through linear probing with
 * backward-shift deletion; after every operation every address's count must
 * equal the model's, and an open is refused exactly when the IP is at max or
 * a new IP would fill the table past half. */
#include <string.h>
#include <sys/socket.h>

#include "connlimit.h"
#include "fuzz.h"

#define FUZZ_CL_ADDRS 64

/* The model's key for address i: which IP (v6: which /64) it counts under. */
static int fuzz_cl_group(int i) { return i < 32 ? i : 32 + (i - 32) / 4; }

static void fuzz_cl_addr(struct addr *a, int i)
{
    if (i < 32) {
        fuzz_addr(a, 0, (unsigned)i, (uint16_t)(1000 + i));
        a->ip[2] = (uint8_t)(i * 37); /* spread over more than the last byte */
        return;
    }
    fuzz_addr(a, 1, (unsigned)i, (uint16_t)(2000 + i));
    a->ip[7] = (uint8_t)((i - 32) / 4); /* the /64 */
    a->ip[15] = (uint8_t)i;             /* host bits differ within it */
}

int fuzz_connlimit_one(const uint8_t *data, size_t size)
{
    fuzz_init();
    fuzz_rand_reset();
    struct fuzz_in in = { data, size };
    size_t entries = (size_t)(fuzz_u8(&in) % 32) + 1;
    size_t n = 16;
    while (n < 2 * entries)
        n <<= 1;
    struct connlimit *cl = connlimit_new(entries);
    unsigned count[FUZZ_CL_ADDRS] = { 0 }; /* by group */
    size_t used = 0;                        /* groups with a count */
    struct addr a;
    while (in.left > 0) {
        uint8_t op = fuzz_u8(&in);
        unsigned max = fuzz_u8(&in) % 6; /* 0 = no per-IP cap */
        int i = op & (FUZZ_CL_ADDRS - 1), g = fuzz_cl_group(i);
        fuzz_cl_addr(&a, i);
        if (op & 0x80) {
            if (count[g] == 0)
                continue; /* only an open that was counted is ever closed */
            connlimit_del(cl, &a);
            if (--count[g] == 0)
                used--;
        } else {
            int want = count[g] > 0 ? (max == 0 || count[g] < max) : used + 1 <= n / 2;
            int got = connlimit_add(cl, &a, max);
            FUZZ_CHECK(got == want);
            if (got && count[g]++ == 0)
                used++;
        }
        for (int k = 0; k < FUZZ_CL_ADDRS; k++) {
            fuzz_cl_addr(&a, k);
            FUZZ_CHECK(connlimit_count(cl, &a) == count[fuzz_cl_group(k)]);
        }
    }
    connlimit_free(cl);
    return 0;
}
