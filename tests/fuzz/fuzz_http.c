/* fuzz_http: the HTTP request-head reader, routing and the WebSocket key.
 *
 * Input: one byte choosing how the stream is cut, then the bytes a client
 * sends on a TCP connection. The stream goes through the reader the way
 * ws.c drives it (pending bytes, pipelined requests, stop after an upgrade,
 * an error or a request that does not keep the connection) twice: in one
 * piece, and cut into chunks whose sizes come from the input. Both runs must
 * see exactly the same requests: a head's meaning and the head size limit
 * must not depend on how TCP segmented it. Every complete head is routed and
 * its responses formatted. The same stream is also read as a PROXY v1
 * line (http_proxy_v1), whose verdict must not depend on how it arrived. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"

#define FUZZ_HTTP_MAX_REQS 64

/* What one run saw: each request's head and route, then how it ended. */
struct fuzz_http_run {
    int nreq;
    struct http_head heads[FUZZ_HTTP_MAX_REQS];
    enum http_route routes[FUZZ_HTTP_MAX_REQS];
    int error;            /* ended on HTTP_FEED_ERROR */
    size_t consumed;      /* stream bytes the reader took */
};

static void fuzz_http_check_head(const struct http_head *h)
{
    FUZZ_CHECK(memchr(h->path, 0, sizeof h->path) != NULL);
    FUZZ_CHECK(memchr(h->query, 0, sizeof h->query) != NULL);
    FUZZ_CHECK(memchr(h->key, 0, sizeof h->key) != NULL);
    FUZZ_CHECK(memchr(h->version, 0, sizeof h->version) != NULL);
    FUZZ_CHECK(memchr(h->auth, 0, sizeof h->auth) != NULL);
    FUZZ_CHECK(memchr(h->forwarded, 0, sizeof h->forwarded) != NULL);
    /* The credential (query key= or Bearer): terminated, within cap. */
    char cred[HTTP_PATH_MAX + 8], small[5];
    int cl = http_credential(h, cred, sizeof cred);
    FUZZ_CHECK(cl >= -1 && cl < (int)sizeof cred);
    if (cl >= 0)
        FUZZ_CHECK(cred[cl] == '\0'); /* "%00" may decode to a NUL inside: length counts */
    int sl = http_credential(h, small, sizeof small);
    FUZZ_CHECK(sl >= -1 && sl < (int)sizeof small);
    if (sl >= 0)
        FUZZ_CHECK(cl == sl && memcmp(cred, small, (size_t)sl + 1) == 0);
    else
        FUZZ_CHECK(cl == -1 || cl + 1 > (int)sizeof small);
    /* X-Forwarded-For's last entry, when it is an IP. */
    struct addr fwd;
    int fr = http_forwarded_addr(h, &fwd);
    FUZZ_CHECK(fr == 0 || fr == -1);
    if (fr == 0)
        FUZZ_CHECK((fwd.family == AF_INET || fwd.family == AF_INET6) && fwd.port == 0);
    enum http_route rt = http_route(h);
    FUZZ_CHECK(rt >= HTTP_ROUTE_HEALTHZ && rt <= HTTP_ROUTE_BAD_HTTP);
    if (rt == HTTP_ROUTE_UPGRADE) {
        FUZZ_CHECK(h->method == HTTP_GET && strcmp(h->path, "/") == 0);
        FUZZ_CHECK(http_ws_key_valid(h->key) && strcmp(h->version, "13") == 0);
        char resp[256];
        size_t n = http_upgrade_response(resp, sizeof resp, h->key);
        FUZZ_CHECK(n > 0 && n < sizeof resp);
        FUZZ_CHECK(memcmp(resp + n - 4, "\r\n\r\n", 4) == 0);
        /* Too small a buffer gives 0, never an overrun. */
        char tiny[64];
        FUZZ_CHECK(http_upgrade_response(tiny, sizeof tiny, h->key) == 0);
    }
    /* The error bodies ws.c formats, into exact buffers. */
    char out[512];
    size_t n = http_response(out, sizeof out, 400, "text/plain", "", h->path, strlen(h->path),
                             h->keep_alive);
    FUZZ_CHECK(n > 0 && n <= sizeof out);
    FUZZ_CHECK(http_response(out, 16, 404, "text/plain", "", "x", 1, 0) == 0);
}

/* Drives a reader over stream[0..len) delivered in chunks (chunk sizes from
 * cuts[], cycled; 0 in cuts = the whole rest). */
static void fuzz_http_drive(const char *stream, size_t len, const uint8_t *cuts, size_t ncuts,
                            struct fuzz_http_run *run)
{
    struct http_reader *r = malloc(sizeof *r);
    char *pending = malloc(len ? len : 1);
    if (!r || !pending)
        abort();
    memset(run, 0, sizeof *run);
    http_reader_init(r);
    size_t delivered = 0, pend_off = 0, pend_len = 0, ci = 0;
    int done = 0;
    while (delivered < len && !done) {
        size_t chunk = ncuts ? cuts[ci++ % ncuts] : 0;
        if (chunk == 0 || chunk > len - delivered)
            chunk = len - delivered;
        /* Like ws.c, bytes not yet consumed stay in front of new ones. */
        memmove(pending, pending + pend_off, pend_len - pend_off);
        pend_len -= pend_off;
        pend_off = 0;
        memcpy(pending + pend_len, stream + delivered, chunk);
        pend_len += chunk;
        delivered += chunk;
        while (pend_off < pend_len) {
            /* An exact-size copy of what is fed, so over-reads are caught. */
            size_t avail = pend_len - pend_off;
            char *feed = malloc(avail);
            if (!feed)
                abort();
            memcpy(feed, pending + pend_off, avail);
            size_t used = (size_t)-1;
            enum http_feed f = http_reader_feed(r, feed, avail, &used);
            free(feed);
            FUZZ_CHECK(used <= avail);
            FUZZ_CHECK(r->head_bytes <= HTTP_HEAD_MAX || f == HTTP_FEED_ERROR);
            pend_off += used;
            run->consumed += used;
            if (f == HTTP_FEED_AGAIN) {
                FUZZ_CHECK(used == avail);
                break;
            }
            if (f == HTTP_FEED_ERROR) {
                run->error = 1;
                done = 1;
                break;
            }
            FUZZ_CHECK(f == HTTP_FEED_DONE);
            FUZZ_CHECK(run->nreq < FUZZ_HTTP_MAX_REQS);
            fuzz_http_check_head(&r->head);
            run->heads[run->nreq] = r->head;
            run->routes[run->nreq] = http_route(&r->head);
            enum http_route rt = run->routes[run->nreq++];
            /* ws.c stops reading requests after these. */
            if (rt == HTTP_ROUTE_UPGRADE || rt == HTTP_ROUTE_BAD_UPGRADE ||
                rt == HTTP_ROUTE_BAD_VERSION || rt == HTTP_ROUTE_BAD_HTTP || !r->head.keep_alive ||
                run->nreq == FUZZ_HTTP_MAX_REQS) {
                done = 1;
                break;
            }
            http_reader_next(r);
        }
    }
    free(pending);
    free(r);
}

static int fuzz_http_same(const struct fuzz_http_run *a, const struct fuzz_http_run *b)
{
    if (a->nreq != b->nreq || a->error != b->error)
        return 0;
    for (int i = 0; i < a->nreq; i++) {
        const struct http_head *x = &a->heads[i], *y = &b->heads[i];
        if (a->routes[i] != b->routes[i] || x->method != y->method ||
            x->http_major != y->http_major || x->http_minor != y->http_minor ||
            strcmp(x->path, y->path) != 0 || strcmp(x->query, y->query) != 0 ||
            x->url_too_long != y->url_too_long || x->keep_alive != y->keep_alive ||
            x->has_upgrade != y->has_upgrade || x->upgrade_websocket != y->upgrade_websocket ||
            x->connection_upgrade != y->connection_upgrade || x->has_key != y->has_key ||
            x->has_version != y->has_version || strcmp(x->key, y->key) != 0 ||
            strcmp(x->version, y->version) != 0 || strcmp(x->auth, y->auth) != 0 ||
            strcmp(x->forwarded, y->forwarded) != 0)
            return 0;
    }
    return 1;
}

/* http_ws_key_valid against a reference: 24 characters that decode (strict
 * base64, padding included) to exactly 16 bytes. */
static void fuzz_http_key(const uint8_t *data, size_t size)
{
    char key[40];
    size_t n = size < sizeof key - 1 ? size : sizeof key - 1;
    memcpy(key, data, n);
    key[n] = '\0';
    int v = http_ws_key_valid(key);
    if (v) {
        unsigned char bin[20];
        size_t binlen = 0;
        FUZZ_CHECK(strlen(key) == 24 && key[22] == '=' && key[23] == '=');
        FUZZ_CHECK(sodium_base642bin(bin, sizeof bin, key, 24, NULL, &binlen, NULL,
                                     sodium_base64_VARIANT_ORIGINAL) == 0 && binlen == 16);
        char accept[HTTP_ACCEPT_LEN + 1];
        http_ws_accept(key, accept);
        FUZZ_CHECK(strlen(accept) == HTTP_ACCEPT_LEN);
    }
}

/* A PROXY v1 line at the start of stream: the verdict on any prefix is
 * "need more" or the verdict on the whole, with the same line and address,
 * so it does not depend on how the bytes arrived. */
static void fuzz_http_proxy(const char *stream, size_t len)
{
    struct addr whole, part;
    size_t used_whole = 0, used_part = 0;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    if (len)
        memcpy(copy, stream, len);
    int rw = http_proxy_v1(copy, len, &whole, &used_whole);
    FUZZ_CHECK(rw == -1 || rw == 0 || rw == 1 || rw == 2);
    if (rw == 1) {
        FUZZ_CHECK(used_whole >= 8 && used_whole <= 107 && used_whole <= len);
        FUZZ_CHECK(stream[used_whole - 1] == '\n' && stream[used_whole - 2] == '\r');
        FUZZ_CHECK(whole.family == 0 || ((whole.family == AF_INET || whole.family == AF_INET6) &&
                                         whole.port > 0));
    }
    if (rw == 0)
        FUZZ_CHECK(len < 107);
    size_t max = len < 120 ? len : 120;
    for (size_t n = 0; n < max; n++) {
        char *pre = malloc(n ? n : 1); /* exact size: over-reads are caught */
        if (!pre)
            abort();
        memcpy(pre, stream, n);
        int rp = http_proxy_v1(pre, n, &part, &used_part);
        free(pre);
        FUZZ_CHECK(rp == 0 || rp == rw);
        if (rp == 1)
            FUZZ_CHECK(used_part == used_whole && memcmp(&part, &whole, sizeof part) == 0);
    }
    free(copy);
}

int fuzz_http_one(const uint8_t *data, size_t size)
{
    fuzz_init();
    if (size == 0)
        return 0;
    /* Header byte: low 3 bits = how many cut sizes follow (1..8). */
    size_t ncuts = (size_t)(data[0] & 7) + 1;
    if (ncuts > size - 1)
        ncuts = size - 1;
    const uint8_t *cuts = data + 1;
    const char *stream = (const char *)data + 1 + ncuts;
    size_t len = size - 1 - ncuts;

    static struct fuzz_http_run whole, cut;
    fuzz_http_drive(stream, len, NULL, 0, &whole);
    fuzz_http_drive(stream, len, cuts, ncuts, &cut);
    FUZZ_CHECK(fuzz_http_same(&whole, &cut));
    FUZZ_CHECK(whole.consumed <= len);
    fuzz_http_key((const uint8_t *)stream, len);
    fuzz_http_proxy(stream, len);
    return 0;
}
