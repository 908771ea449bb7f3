/* ids: shareIds and session tokens (see ids.h). */
#include "ids.h"

#include <sodium.h>
#include <string.h>

static const char ids_alphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void ids_key_random(struct ids_key *key) { randombytes_buf(key->k, sizeof key->k); }

int ids_key_from_hex(struct ids_key *key, const char *hex)
{
    size_t binlen = 0;
    const char *end = NULL;
    if (strlen(hex) != 2 * IDS_KEYLEN)
        return -1;
    if (sodium_hex2bin(key->k, sizeof key->k, hex, 2 * IDS_KEYLEN, NULL, &binlen, &end) != 0 ||
        binlen != IDS_KEYLEN || end != hex + 2 * IDS_KEYLEN)
        return -1;
    return 0;
}

#define IDS_POOL 512

static _Thread_local unsigned char ids_pool[IDS_POOL];
static _Thread_local size_t ids_pool_used = IDS_POOL; /* all used: refill first */

void ids_random_bytes(void *out, size_t n)
{
    unsigned char *o = out;
    while (n > 0) {
        if (ids_pool_used == IDS_POOL) {
            randombytes_buf(ids_pool, IDS_POOL);
            ids_pool_used = 0;
        }
        size_t k = IDS_POOL - ids_pool_used < n ? IDS_POOL - ids_pool_used : n;
        memcpy(o, ids_pool + ids_pool_used, k);
        /* Handed out once only: wipe what was taken. */
        sodium_memzero(ids_pool + ids_pool_used, k);
        ids_pool_used += k;
        o += k;
        n -= k;
    }
}

void ids_random(char out[IDS_LEN])
{
    /* Uniform over the 62 characters: bytes >= 248 (= 4 x 62) are redrawn. */
    enum { ALPHA = sizeof ids_alphabet - 1, LIMIT = 256 / ALPHA * ALPHA };
    int i = 0;
    while (i < IDS_LEN) {
        unsigned char b[IDS_LEN];
        ids_random_bytes(b, sizeof b);
        for (size_t j = 0; j < sizeof b && i < IDS_LEN; j++)
            if (b[j] < LIMIT)
                out[i++] = ids_alphabet[b[j] % ALPHA];
    }
}

int ids_valid(const char *s, size_t len)
{
    if (len != IDS_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return 1;
}

static void ids_mac(const struct ids_key *key, const char id[IDS_LEN],
                    unsigned char mac[crypto_auth_BYTES])
{
    crypto_auth(mac, (const unsigned char *)id, IDS_LEN, key->k);
}

void ids_token(const struct ids_key *key, const char id[IDS_LEN], char out[IDS_TOKEN_HEXLEN + 1])
{
    unsigned char mac[crypto_auth_BYTES];
    ids_mac(key, id, mac);
    sodium_bin2hex(out, IDS_TOKEN_HEXLEN + 1, mac, IDS_TOKEN_HEXLEN / 2);
}

int ids_token_verify(const struct ids_key *key, const char id[IDS_LEN], const char *tok, size_t len)
{
    unsigned char want[crypto_auth_BYTES];
    unsigned char got[IDS_TOKEN_HEXLEN / 2];
    size_t binlen = 0;
    const char *end = NULL;
    if (len != IDS_TOKEN_HEXLEN)
        return -1;
    if (sodium_hex2bin(got, sizeof got, tok, len, NULL, &binlen, &end) != 0 ||
        binlen != sizeof got || end != tok + len)
        return -1;
    ids_mac(key, id, want);
    return sodium_memcmp(want, got, sizeof got) == 0 ? 0 : -1;
}
