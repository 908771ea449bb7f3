/* http: HTTP/1.1 request heads for punchd's TCP port — parse (with
 * http-parser, never by hand), route, and format small responses; plus the
 * WebSocket handshake's Sec-WebSocket-Accept.
 *
 * Sans I/O: the caller feeds bytes as they arrive and writes out what these
 * functions format. One request at a time: the reader pauses after each
 * complete request so pipelined bytes stay with the caller. */
#ifndef PUNCHD_HTTP_H
#define PUNCHD_HTTP_H

#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define HTTP_HEAD_MAX 8192  /* a request head larger than this is refused (400) */
#define HTTP_PATH_MAX 256
#define HTTP_ACCEPT_LEN 28  /* base64 of a SHA-1 */

/* What we keep of one request. */
struct http_head {
    unsigned method;          /* enum http_method */
    unsigned short http_major, http_minor;
    char path[HTTP_PATH_MAX]; /* the URL's path, query string removed */
    char query[HTTP_PATH_MAX];
    uint8_t url_too_long;
    uint8_t keep_alive;       /* the client wants the connection kept */
    uint8_t has_upgrade;      /* an Upgrade header was sent */
    uint8_t upgrade_websocket;/* ... and it names "websocket" */
    uint8_t connection_upgrade; /* Connection lists the "upgrade" token */
    uint8_t has_key, has_version;
    char key[64];             /* Sec-WebSocket-Key, trimmed */
    char version[16];         /* Sec-WebSocket-Version, trimmed */
    char upgrade[64];         /* Upgrade values, joined with ',' (checked once complete) */
    char connection[128];     /* Connection values, likewise */
    char auth[160];           /* Authorization (longer values are cut: they match no key) */
    char forwarded[256];      /* X-Forwarded-For (a longer list is refused) */
};

struct http_reader {
    http_parser parser;
    struct http_head head;
    int header;               /* which header the current value belongs to */
    int in_value;             /* last callback was a header value */
    char field[40];           /* current header name (longer names are uninteresting) */
    size_t field_len;
    size_t head_bytes;        /* bytes of the current request so far */
    int complete;             /* a whole request has been read */
    int url_in_query;         /* the URL's '?' has been seen */
    char line_tail[8];        /* last bytes of the request line: the version */
    uint8_t tail_len, line_done;
};

enum http_feed { HTTP_FEED_DONE = 0, HTTP_FEED_AGAIN = 1, HTTP_FEED_ERROR = -1 };

/* Prepares r for a new connection. */
void http_reader_init(struct http_reader *r);

/* Feeds buf[0..len). Sets *used to the bytes consumed. Returns
 * HTTP_FEED_DONE when r->head holds a complete request (bytes after it, e.g.
 * WebSocket frames or a pipelined request, are not consumed),
 * HTTP_FEED_AGAIN when all bytes were consumed and more are needed, or
 * HTTP_FEED_ERROR for a malformed or oversized request. */
enum http_feed http_reader_feed(struct http_reader *r, const char *buf, size_t len, size_t *used);

/* Readies r for the next request on the same connection. */
void http_reader_next(struct http_reader *r);

/* Where a complete request goes. */
enum http_route {
    HTTP_ROUTE_HEALTHZ,
    HTTP_ROUTE_METRICS,
    HTTP_ROUTE_UPGRADE,       /* a valid WebSocket upgrade on "/" */
    HTTP_ROUTE_NOT_FOUND,     /* 404 */
    HTTP_ROUTE_BAD_METHOD,    /* 405 */
    HTTP_ROUTE_BAD_UPGRADE,   /* 400: upgrade with missing headers or a bad key */
    HTTP_ROUTE_BAD_VERSION,   /* 426: Sec-WebSocket-Version is not 13 */
    HTTP_ROUTE_BAD_HTTP,      /* 505: not HTTP/1.x */
};

enum http_route http_route(const struct http_head *h);

/* The credential a request presents: the query's key= value (percent-
 * decoded), else an "Authorization: Bearer <token>" token. Writes it
 * NUL-terminated into out; returns its length, or -1 if none (or too long). */
int http_credential(const struct http_head *h, char *out, size_t cap);

/* A PROXY protocol v1 line ("PROXY TCP4 src dst sport dport\r\n", at most
 * 107 bytes) at the start of buf[0..len): returns 1 with the client's
 * address in *src (family 0 for "PROXY UNKNOWN") and the line's length in
 * *used, 0 if more bytes are needed, -1 if it is malformed, or 2 if buf does
 * not start with a PROXY line at all. */
int http_proxy_v1(const char *buf, size_t len, struct addr *src, size_t *used);

/* The client's address from X-Forwarded-For: its last entry (the one the
 * trusted proxy added), port 0. Returns 0, or -1 if absent or not an IP. */
int http_forwarded_addr(const struct http_head *h, struct addr *out);

/* 1 if key is base64 of exactly 16 bytes (RFC 6455 4.2.1). */
int http_ws_key_valid(const char *key);

/* Writes Sec-WebSocket-Accept for key (NUL-terminated, HTTP_ACCEPT_LEN chars). */
void http_ws_accept(const char *key, char out[HTTP_ACCEPT_LEN + 1]);

/* Formats a complete response with a body into out. extra_headers is "" or
 * CRLF-terminated header lines. Returns the length, or 0 if cap is too small. */
size_t http_response(char *out, size_t cap, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t body_len, int keep_alive);

/* Formats the 101 Switching Protocols answer for key into out; returns its length. */
size_t http_upgrade_response(char *out, size_t cap, const char *key);

#endif
