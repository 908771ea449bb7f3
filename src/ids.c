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

void ids_random(char out[IDS_LEN])
{
    for (int i = 0; i < IDS_LEN; i++)
        out[i] = ids_alphabet[randombytes_uniform(sizeof ids_alphabet - 1)];
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
