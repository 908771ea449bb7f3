/* ids: shareIds and the session tokens that prove ownership of one.
 *
 * A shareId is 8 characters of [0-9A-Za-z] drawn uniformly with libsodium
 * (62^8 = 2^47.6 possibilities), never derived from an address. A token is
 * HMAC-SHA512-256(token_key, shareId) truncated to 128 bits and printed as 32
 * lowercase hex characters, so nothing per peer is stored and, with a fixed
 * key, tokens survive a restart. sodium_init() must have been called. */
#ifndef PUNCHD_IDS_H
#define PUNCHD_IDS_H

#include <stddef.h>

#define IDS_LEN 8          /* characters in a shareId (no NUL) */
#define IDS_TOKEN_HEXLEN 32 /* characters in a token (no NUL) */
#define IDS_KEYLEN 32      /* bytes of token key */

struct ids_key {
    unsigned char k[IDS_KEYLEN];
};

/* Fills key with random bytes (the per-process default). */
void ids_key_random(struct ids_key *key);

/* Parses 64 hex characters into key. Returns 0, or -1 if hex is not exactly
 * 64 hex digits. */
int ids_key_from_hex(struct ids_key *key, const char *hex);

/* Draws a fresh random shareId into out (no NUL written). */
void ids_random(char out[IDS_LEN]);

/* Fills out with n bytes from the OS CSPRNG, through a small per-thread pool:
 * libsodium asks the kernel (getrandom) on every call, about a microsecond,
 * which per push and per new peer was a fifth of the request's CPU. */
void ids_random_bytes(void *out, size_t n);

/* 1 if s (len bytes) has the shape of a shareId, else 0. */
int ids_valid(const char *s, size_t len);

/* Writes the token of id into out, NUL-terminated (out holds 33 bytes). */
void ids_token(const struct ids_key *key, const char id[IDS_LEN], char out[IDS_TOKEN_HEXLEN + 1]);

/* Checks tok (len bytes, untrusted) against id's token in constant time.
 * Returns 0 if it matches, -1 otherwise (including any malformed token). */
int ids_token_verify(const struct ids_key *key, const char id[IDS_LEN], const char *tok, size_t len);

#endif
