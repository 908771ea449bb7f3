/* fuzz_ratelimit: the fixed-size token-bucket table against exact buckets.
 *
 * Input: three bytes choosing the table size, rate and burst, then
 * operations [op][dt][cost]: op's low 5 bits pick one of 32 keys (IPv4-like
 * and IPv6-like), its top bit asks for a notice instead of tokens; dt moves
 * the clock. The table is approximate by design (ratelimit.h): a key that
 * lost its slot comes back with a full bucket. So it may be more lenient
 * than an exact bucket per key, never stricter: whenever it refuses, an exact
 * bucket that paid for everything the table let through refuses too; and a
 * notice is refused only within a second of the last one granted. */
#include <string.h>

#include "fuzz.h"
#include "ratelimit.h"

#define FUZZ_RL_KEYS 32

int fuzz_ratelimit_one(const uint8_t *data, size_t size)
{
    static const size_t slots[4] = { 1, 2, 8, 64 };
    static const double rates[4] = { 0, 1, 10, 65536 };
    fuzz_init();
    fuzz_rand_reset();
    struct fuzz_in in = { data, size };
    size_t nslots = slots[fuzz_u8(&in) & 3];
    uint8_t r = fuzz_u8(&in);
    double rate = rates[r & 3] * (1 + (r >> 2 & 7));
    double burst = (double)(fuzz_u8(&in) % 64) / 4.0; /* < 1 means 1 */
    double eff_burst = burst < 1 ? 1 : burst;
    struct ratelimit *rl = ratelimit_new(nslots, rate, burst);
    FUZZ_CHECK(ratelimit_bytes(rl) > 0);

    double tokens[FUZZ_RL_KEYS];
    uint64_t last[FUZZ_RL_KEYS], notice[FUZZ_RL_KEYS];
    int seen[FUZZ_RL_KEYS] = { 0 };
    uint64_t now = 1000; /* ratelimit reserves notice time 0 for "never" */
    while (in.left > 0) {
        uint8_t op = fuzz_u8(&in);
        now += (uint64_t)fuzz_u8(&in) * 16;
        double cost = (double)fuzz_u8(&in) / 8.0;
        int k = op & (FUZZ_RL_KEYS - 1);
        uint8_t key[9] = { (k & 16) ? 10 : 2, (uint8_t)k, 0xfe };
        size_t keylen = (k & 16) ? 9 : 5;
        if (!seen[k]) {
            seen[k] = 1;
            tokens[k] = eff_burst;
            last[k] = now;
            notice[k] = 0;
        }
        if (op & 0x80) {
            int due = ratelimit_notice_due(rl, key, keylen, now);
            int got = ratelimit_notice(rl, key, keylen, now);
            FUZZ_CHECK(due == got); /* asking does not change the answer */
            if (!got)
                FUZZ_CHECK(notice[k] != 0 && now - notice[k] < 1000);
            else
                notice[k] = now;
            continue;
        }
        int ok = ratelimit_take(rl, key, keylen, cost, now);
        if (rate <= 0) {
            FUZZ_CHECK(ok);
            continue;
        }
        tokens[k] += rate * (double)(now - last[k]) / 1000.0;
        if (tokens[k] > eff_burst)
            tokens[k] = eff_burst;
        last[k] = now;
        if (!ok)
            FUZZ_CHECK(tokens[k] < cost + 1e-6 * (cost + eff_burst));
        else
            tokens[k] -= cost; /* may go below zero where the table was lenient */
    }
    ratelimit_free(rl);
    return 0;
}
