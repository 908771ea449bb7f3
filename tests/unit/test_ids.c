/* test_ids: shareId drawing and shape, session tokens (derivation, verification), token keys. */
#include "unit.h"

#include <ctype.h>

#include "ids.h"

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int alpha_index(char c)
{
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

static void key_fill(struct ids_key *k, unsigned char byte)
{
    memset(k->k, byte, sizeof k->k);
}

static void test_random_shape(void **state)
{
    (void)state;
    char prev[IDS_LEN] = { 0 };
    int same_as_prev = 0;
    for (int i = 0; i < 1000; i++) {
        char id[IDS_LEN + 1];
        id[IDS_LEN] = '#'; /* must not be touched: no NUL written */
        ids_random(id);
        assert_int_equal(id[IDS_LEN], '#');
        for (int k = 0; k < IDS_LEN; k++)
            if (alpha_index(id[k]) < 0)
                fail_msg("ids_random produced byte 0x%02x", (unsigned char)id[k]);
        assert_true(ids_valid(id, IDS_LEN));
        if (memcmp(id, prev, IDS_LEN) == 0)
            same_as_prev++;
        memcpy(prev, id, IDS_LEN);
    }
    assert_int_equal(same_as_prev, 0);
}

static void test_random_uniform(void **state)
{
    (void)state;
    enum { DRAWS = 100000 };
    static unsigned long count[62];
    static unsigned long pos_count[IDS_LEN][62];
    memset(count, 0, sizeof count);
    memset(pos_count, 0, sizeof pos_count);
    for (int i = 0; i < DRAWS; i++) {
        char id[IDS_LEN];
        ids_random(id);
        for (int k = 0; k < IDS_LEN; k++) {
            int c = alpha_index(id[k]);
            assert_true(c >= 0);
            count[c]++;
            pos_count[k][c]++;
        }
    }
    /* Expected 12903 per character over 800000 draws (sd ~ 112): allow +-10%,
     * which a uniform draw essentially never leaves but a modulo bias or a
     * missing range would. */
    double expect = (double)DRAWS * IDS_LEN / 62.0;
    for (int c = 0; c < 62; c++) {
        if (count[c] < expect * 0.9 || count[c] > expect * 1.1)
            fail_msg("character '%c' drawn %lu times, expected about %.0f", alphabet[c], count[c],
                     expect);
        for (int k = 0; k < IDS_LEN; k++)
            if (pos_count[k][c] == 0)
                fail_msg("character '%c' never drawn at position %d", alphabet[c], k);
    }
}

static void test_valid(void **state)
{
    (void)state;
    assert_true(ids_valid("abcdEF09", 8));
    assert_true(ids_valid("00000000", 8));
    assert_true(ids_valid("zzzzzzzz", 8));
    assert_true(ids_valid("ZZZZZZZZ", 8));
    assert_true(ids_valid("AaZz09xY", 8));
    assert_true(ids_valid("abcdEF09-trailing", 8)); /* only len bytes are looked at */

    assert_false(ids_valid("", 0));
    assert_false(ids_valid("abcdEF0", 7));
    assert_false(ids_valid("abcdEF090", 9));
    assert_false(ids_valid("abcdEF09", 0));
    /* Neighbours of the three ranges in ASCII. */
    static const char edge[] = "/:@[`{ -_.+\x7f";
    for (size_t i = 0; edge[i]; i++) {
        char id[8];
        memcpy(id, "abcdEF09", 8);
        id[3] = edge[i];
        if (ids_valid(id, 8))
            fail_msg("ids_valid accepted byte 0x%02x", (unsigned char)edge[i]);
    }
    assert_false(ids_valid("abc\0EF09", 8));
    assert_false(ids_valid("abc\xc3\xa9""F09", 8)); /* non-ASCII */
    assert_false(ids_valid("abcdEF0\xff", 8));
    /* Every alphabet character is valid in every position. */
    for (size_t c = 0; c < 62; c++) {
        char id[8];
        memset(id, alphabet[c], 8);
        assert_true(ids_valid(id, 8));
    }
}

static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void test_token_shape_and_kat(void **state)
{
    (void)state;
    struct ids_key key;
    key_fill(&key, 0x42);
    char tok[IDS_TOKEN_HEXLEN + 1];
    memset(tok, '#', sizeof tok);
    ids_token(&key, "abcdEF09", tok);
    assert_int_equal(strlen(tok), IDS_TOKEN_HEXLEN);
    assert_true(is_lower_hex(tok, IDS_TOKEN_HEXLEN));

    /* HMAC-SHA512-256(key, id) truncated to 128 bits, lowercase hex. */
    unsigned char mac[crypto_auth_hmacsha512256_BYTES];
    char want[IDS_TOKEN_HEXLEN + 1];
    crypto_auth_hmacsha512256(mac, (const unsigned char *)"abcdEF09", 8, key.k);
    sodium_bin2hex(want, sizeof want, mac, 16);
    assert_string_equal(tok, want);
}

static void test_token_deterministic_and_distinct(void **state)
{
    (void)state;
    struct ids_key k1, k2;
    key_fill(&k1, 1);
    key_fill(&k2, 1);
    k2.k[31] ^= 1; /* one bit of key */
    char a[33], b[33], c[33], d[33];
    ids_token(&k1, "abcdEF09", a);
    ids_token(&k1, "abcdEF09", b);
    assert_string_equal(a, b);
    ids_token(&k2, "abcdEF09", c);
    assert_string_not_equal(a, c);
    ids_token(&k1, "abcdEF08", d); /* one character of id */
    assert_string_not_equal(a, d);

    /* Only the IDS_LEN bytes of id count (it is not a C string). */
    char buf[16];
    memcpy(buf, "abcdEF09XYZ", 12);
    ids_token(&k1, buf, d);
    assert_string_equal(a, d);

    /* Many ids under one key: no two tokens alike. */
    enum { N = 2000 };
    static char toks[N][33];
    for (int i = 0; i < N; i++) {
        char id[IDS_LEN];
        snprintf(buf, sizeof buf, "%08d", i);
        memcpy(id, buf, IDS_LEN);
        ids_token(&k1, id, toks[i]);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (strcmp(toks[i], toks[j]) == 0)
                fail_msg("tokens of ids %d and %d collide", i, j);
}

static void test_token_verify(void **state)
{
    (void)state;
    struct ids_key key, other;
    ids_key_random(&key);
    ids_key_random(&other);
    const char *id = "Q7xk29Ab";
    char tok[33], up[33], mixed[33], bad[40];
    ids_token(&key, id, tok);

    assert_int_equal(ids_token_verify(&key, id, tok, 32), 0);
    for (int i = 0; i < 32; i++) {
        up[i] = (char)toupper((unsigned char)tok[i]);
        mixed[i] = (char)(i % 2 ? toupper((unsigned char)tok[i]) : tok[i]);
    }
    up[32] = mixed[32] = '\0';
    assert_int_equal(ids_token_verify(&key, id, up, 32), 0);
    assert_int_equal(ids_token_verify(&key, id, mixed, 32), 0);

    /* Wrong key, wrong id. */
    assert_int_equal(ids_token_verify(&other, id, tok, 32), -1);
    assert_int_equal(ids_token_verify(&key, "Q7xk29Ac", tok, 32), -1);

    /* Every single-character change is refused. */
    for (int i = 0; i < 32; i++) {
        memcpy(bad, tok, 33);
        bad[i] = bad[i] == '0' ? '1' : '0';
        if (ids_token_verify(&key, id, bad, 32) != -1)
            fail_msg("changed character %d accepted", i);
    }
    /* Short, long, empty. */
    assert_int_equal(ids_token_verify(&key, id, tok, 31), -1);
    assert_int_equal(ids_token_verify(&key, id, tok, 30), -1);
    assert_int_equal(ids_token_verify(&key, id, tok, 0), -1);
    assert_int_equal(ids_token_verify(&key, id, "", 0), -1);
    memcpy(bad, tok, 32);
    memcpy(bad + 32, "00", 3);
    assert_int_equal(ids_token_verify(&key, id, bad, 33), -1);
    assert_int_equal(ids_token_verify(&key, id, bad, 34), -1);
    /* The full 64-hex-digit MAC is not accepted either. */
    unsigned char mac[crypto_auth_BYTES];
    char full[65];
    crypto_auth(mac, (const unsigned char *)id, IDS_LEN, key.k);
    sodium_bin2hex(full, sizeof full, mac, sizeof mac);
    assert_int_equal(ids_token_verify(&key, id, full, 64), -1);
    assert_int_equal(ids_token_verify(&key, id, full, 32), 0);

    /* Non-hex of the right length. */
    memcpy(bad, tok, 33);
    bad[5] = 'g';
    assert_int_equal(ids_token_verify(&key, id, bad, 32), -1);
    memcpy(bad, tok, 33);
    bad[31] = ' ';
    assert_int_equal(ids_token_verify(&key, id, bad, 32), -1);
    memcpy(bad, tok, 33);
    bad[16] = '\0'; /* embedded NUL */
    assert_int_equal(ids_token_verify(&key, id, bad, 32), -1);
    memcpy(bad, tok, 33);
    bad[10] = ':';
    assert_int_equal(ids_token_verify(&key, id, bad, 32), -1);
    char spaced[40];
    snprintf(spaced, sizeof spaced, " %.31s", tok);
    assert_int_equal(ids_token_verify(&key, id, spaced, 32), -1);
}

static void test_key_from_hex(void **state)
{
    (void)state;
    struct ids_key key;
    char hex[80];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", i * 7 + 1);
    assert_int_equal(ids_key_from_hex(&key, hex), 0);
    for (int i = 0; i < 32; i++)
        assert_int_equal(key.k[i], (unsigned char)(i * 7 + 1));

    /* Upper case is hex too. */
    char upper[80];
    for (int i = 0; hex[i]; i++)
        upper[i] = (char)toupper((unsigned char)hex[i]);
    upper[64] = '\0';
    struct ids_key k2;
    assert_int_equal(ids_key_from_hex(&k2, upper), 0);
    assert_memory_equal(k2.k, key.k, 32);

    char bad[80];
    memcpy(bad, hex, 63);
    bad[63] = '\0';
    assert_int_equal(ids_key_from_hex(&k2, bad), -1); /* 63 */
    memcpy(bad, hex, 64);
    memcpy(bad + 64, "a", 2);
    assert_int_equal(ids_key_from_hex(&k2, bad), -1); /* 65 */
    memcpy(bad + 64, "ab", 3);
    assert_int_equal(ids_key_from_hex(&k2, bad), -1); /* 66 */
    assert_int_equal(ids_key_from_hex(&k2, ""), -1);
    memcpy(bad, hex, 65);
    bad[63] = 'x';
    assert_int_equal(ids_key_from_hex(&k2, bad), -1); /* non-hex last digit */
    memcpy(bad, hex, 65);
    bad[0] = 'g';
    assert_int_equal(ids_key_from_hex(&k2, bad), -1);
    memcpy(bad, hex, 65);
    bad[20] = ' ';
    assert_int_equal(ids_key_from_hex(&k2, bad), -1);
    memcpy(bad, hex, 65);
    bad[2] = ':';
    assert_int_equal(ids_key_from_hex(&k2, bad), -1);
}

static void test_key_random(void **state)
{
    (void)state;
    struct ids_key a, b;
    const unsigned char zero[IDS_KEYLEN] = { 0 };
    ids_key_random(&a);
    ids_key_random(&b);
    assert_memory_not_equal(a.k, b.k, IDS_KEYLEN);
    assert_memory_not_equal(a.k, zero, IDS_KEYLEN);
    /* Tokens under two random keys differ. */
    char ta[33], tb[33];
    ids_token(&a, "abcdEF09", ta);
    ids_token(&b, "abcdEF09", tb);
    assert_string_not_equal(ta, tb);
}

int main(void)
{
    unit_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_shape),
        cmocka_unit_test(test_random_uniform),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_token_shape_and_kat),
        cmocka_unit_test(test_token_deterministic_and_distinct),
        cmocka_unit_test(test_token_verify),
        cmocka_unit_test(test_key_from_hex),
        cmocka_unit_test(test_key_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
