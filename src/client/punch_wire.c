/* punch_wire: the packets two libpunch peers exchange directly (or through
 * the relay): keys per pairing, sealing/opening, the replay window. Pure.
 *
 * Packet: magic 0xD7 | pairing nonce (16) | counter (u64 BE) | ciphertext+tag.
 * The AEAD is ChaCha20-Poly1305 (IETF) with the 25-byte header as associated
 * data and the counter as nonce. Keys come from crypto_kx between the two
 * peers' X25519 keys (exchanged through the tracker's push/income), hashed
 * with the pairing nonce so every pairing has fresh keys; each direction
 * has its own key, so a counter value is used once per key. A packet whose
 * header does not carry the pairing's nonce is dropped before any crypto:
 * that is how knocks from strangers are ignored. */
#include "punch_int.h"

#include <sodium.h>
#include <string.h>

void punch_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t punch_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void punch_put64(uint8_t *p, uint64_t v)
{
    punch_put32(p, (uint32_t)(v >> 32));
    punch_put32(p + 4, (uint32_t)v);
}

uint64_t punch_get64(const uint8_t *p)
{
    return (uint64_t)punch_get32(p) << 32 | punch_get32(p + 4);
}

void punch_wire_fingerprint(const uint8_t a[32], const uint8_t b[32], char out[PUNCH_FINGERPRINT_LEN + 1])
{
    static const char label[] = "libpunch fingerprint v1";
    static const char hex[] = "0123456789abcdef";
    const uint8_t *lo = a, *hi = b;
    if (memcmp(a, b, 32) > 0) {
        lo = b;
        hi = a;
    }
    uint8_t h[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)label, sizeof label - 1);
    crypto_generichash_update(&st, lo, 32);
    crypto_generichash_update(&st, hi, 32);
    crypto_generichash_final(&st, h, sizeof h);
    size_t n = 0;
    for (size_t i = 0; i < sizeof h; i++) {
        if (i && i % 2 == 0)
            out[n++] = '-';
        out[n++] = hex[h[i] >> 4];
        out[n++] = hex[h[i] & 15];
    }
    out[n] = '\0';
}

/* out = BLAKE2b-256 keyed by k over "libpunch v1" || nonce. */
static void punch_bind_key(uint8_t out[32], const uint8_t k[32], const uint8_t nonce[PUNCH_NONCE_LEN])
{
    static const char label[] = "libpunch v1";
    crypto_generichash_state st;
    crypto_generichash_init(&st, k, 32, 32);
    crypto_generichash_update(&st, (const unsigned char *)label, sizeof label - 1);
    crypto_generichash_update(&st, nonce, PUNCH_NONCE_LEN);
    crypto_generichash_final(&st, out, 32);
}

int punch_wire_keys(struct punch_keys *k, int is_client, const uint8_t my_pk[32],
                    const uint8_t my_sk[32], const uint8_t peer_pk[32],
                    const uint8_t nonce[PUNCH_NONCE_LEN])
{
    uint8_t rx[32], tx[32];
    int rc = is_client ? crypto_kx_client_session_keys(rx, tx, my_pk, my_sk, peer_pk)
                       : crypto_kx_server_session_keys(rx, tx, my_pk, my_sk, peer_pk);
    memset(k, 0, sizeof *k);
    if (rc != 0)
        return -1;
    memcpy(k->nonce, nonce, PUNCH_NONCE_LEN);
    punch_bind_key(k->rx, rx, nonce);
    punch_bind_key(k->tx, tx, nonce);
    sodium_memzero(rx, sizeof rx);
    sodium_memzero(tx, sizeof tx);
    return 0;
}

static void punch_aead_nonce(uint8_t npub[12], uint64_t ctr)
{
    memset(npub, 0, 4);
    punch_put64(npub + 4, ctr);
}

ssize_t punch_wire_seal(struct punch_keys *k, const uint8_t *frame, size_t n, uint8_t *out, size_t cap)
{
    if (n > PUNCH_FRAME_MAX || cap < n + PUNCH_WIRE_OVERHEAD || k->tx_ctr == UINT64_MAX)
        return -1;
    uint64_t ctr = ++k->tx_ctr;
    uint8_t npub[12];
    out[0] = PUNCH_WIRE_MAGIC;
    memcpy(out + 1, k->nonce, PUNCH_NONCE_LEN);
    punch_put64(out + 1 + PUNCH_NONCE_LEN, ctr);
    punch_aead_nonce(npub, ctr);
    unsigned long long clen = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(out + PUNCH_WIRE_HDR, &clen, frame, n, out,
                                              PUNCH_WIRE_HDR, NULL, npub, k->tx);
    return (ssize_t)(PUNCH_WIRE_HDR + clen);
}

/* 1 if counter c is new for the window (does not change it). */
static int punch_window_fresh(const struct punch_keys *k, uint64_t c)
{
    if (c == 0)
        return 0;
    if (c > k->rx_max)
        return 1;
    uint64_t d = k->rx_max - c;
    return d < 64 && !(k->rx_seen & ((uint64_t)1 << d));
}

static void punch_window_mark(struct punch_keys *k, uint64_t c)
{
    if (c > k->rx_max) {
        uint64_t shift = c - k->rx_max;
        k->rx_seen = shift >= 64 ? 0 : k->rx_seen << shift;
        k->rx_seen |= 1;
        k->rx_max = c;
    } else {
        k->rx_seen |= (uint64_t)1 << (k->rx_max - c);
    }
}

ssize_t punch_wire_open(struct punch_keys *k, const uint8_t *pkt, size_t len, uint8_t *frame, size_t cap)
{
    if (len < PUNCH_WIRE_OVERHEAD || len > PUNCH_PACKET_MAX || pkt[0] != PUNCH_WIRE_MAGIC ||
        sodium_memcmp(pkt + 1, k->nonce, PUNCH_NONCE_LEN) != 0)
        return PUNCH_WIRE_NOT_OURS;
    uint64_t ctr = punch_get64(pkt + 1 + PUNCH_NONCE_LEN);
    if (!punch_window_fresh(k, ctr))
        return PUNCH_WIRE_REPLAY;
    size_t clen = len - PUNCH_WIRE_HDR;
    if (cap < clen - PUNCH_WIRE_TAG)
        return PUNCH_WIRE_FORGED;
    uint8_t npub[12];
    punch_aead_nonce(npub, ctr);
    unsigned long long mlen = 0;
    if (crypto_aead_chacha20poly1305_ietf_decrypt(frame, &mlen, NULL, pkt + PUNCH_WIRE_HDR, clen, pkt,
                                                  PUNCH_WIRE_HDR, npub, k->rx) != 0)
        return PUNCH_WIRE_FORGED;
    punch_window_mark(k, ctr);
    return (ssize_t)mlen;
}
