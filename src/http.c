/* http: request heads with http-parser, routing, responses, the WebSocket
 * accept key (see http.h). */
#include "http.h"

#include <nettle/sha1.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { HTTP_H_OTHER = 0, HTTP_H_UPGRADE, HTTP_H_CONNECTION, HTTP_H_KEY, HTTP_H_VERSION, HTTP_H_AUTH,
       HTTP_H_FORWARDED };

static const char http_ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static struct http_reader *http_r(http_parser *p) { return p->data; }

static int http_on_url(http_parser *p, const char *at, size_t len)
{
    struct http_reader *r = http_r(p);
    struct http_head *h = &r->head;
    /* The URL may arrive in pieces: append to path (or query after '?'). */
    size_t plen = strlen(h->path), qlen = strlen(h->query);
    int in_query = r->url_in_query;
    for (size_t i = 0; i < len; i++) {
        char c = at[i];
        if (!in_query && c == '?') {
            in_query = 1;
            continue;
        }
        if (in_query) {
            if (qlen + 1 >= sizeof h->query) {
                h->url_too_long = 1;
                continue;
            }
            h->query[qlen++] = c;
        } else {
            if (plen + 1 >= sizeof h->path) {
                h->url_too_long = 1;
                continue;
            }
            h->path[plen++] = c;
        }
    }
    h->path[plen] = '\0';
    h->query[qlen] = '\0';
    r->url_in_query = in_query;
    return 0;
}

static int http_on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_reader *r = http_r(p);
    if (r->in_value || r->header < 0) {
        /* A new header name starts. */
        r->field_len = 0;
        r->in_value = 0;
        r->header = HTTP_H_OTHER;
    }
    for (size_t i = 0; i < len; i++)
        if (r->field_len + 1 < sizeof r->field)
            r->field[r->field_len++] = at[i];
        else
            r->field_len = sizeof r->field; /* too long: matches nothing */
    return 0;
}

/* Appends at[0..len) to a bounded header value buffer. */
static void http_append(char *dst, size_t cap, const char *at, size_t len)
{
    size_t n = strlen(dst);
    if (n + len >= cap)
        len = n < cap - 1 ? cap - 1 - n : 0;
    memcpy(dst + n, at, len);
    dst[n + len] = '\0';
}

/* 1 if comma-separated list s contains token tok (case-insensitive). */
static int http_list_has(const char *s, size_t len, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
            i++;
        size_t start = i;
        while (i < len && s[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(s + start, tok, tl) == 0)
            return 1;
    }
    return 0;
}

static int http_on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_reader *r = http_r(p);
    struct http_head *h = &r->head;
    /* Control bytes are not allowed in a field value (RFC 9110 5.5), and
     * Debian's http-parser passes them on: a NUL would cut the C string we
     * collect, and what was kept would then depend on how TCP split the head. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)at[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 1;
    }
    if (!r->in_value) {
        r->in_value = 1;
        r->header = HTTP_H_OTHER;
        if (r->field_len < sizeof r->field) {
            r->field[r->field_len] = '\0';
            if (strcasecmp(r->field, "Upgrade") == 0)
                r->header = HTTP_H_UPGRADE;
            else if (strcasecmp(r->field, "Connection") == 0)
                r->header = HTTP_H_CONNECTION;
            else if (strcasecmp(r->field, "Sec-WebSocket-Key") == 0)
                r->header = HTTP_H_KEY;
            else if (strcasecmp(r->field, "Sec-WebSocket-Version") == 0)
                r->header = HTTP_H_VERSION;
            else if (strcasecmp(r->field, "Authorization") == 0)
                r->header = HTTP_H_AUTH;
            else if (strcasecmp(r->field, "X-Forwarded-For") == 0)
                r->header = HTTP_H_FORWARDED;
            /* Repeated headers form one comma-separated list. */
            char *list = r->header == HTTP_H_FORWARDED    ? h->forwarded
                         : r->header == HTTP_H_UPGRADE    ? h->upgrade
                         : r->header == HTTP_H_CONNECTION ? h->connection
                                                          : NULL;
            size_t cap = r->header == HTTP_H_FORWARDED ? sizeof h->forwarded
                         : r->header == HTTP_H_UPGRADE ? sizeof h->upgrade
                                                       : sizeof h->connection;
            if (list && list[0])
                http_append(list, cap, ",", 1);
        }
    }
    switch (r->header) {
    /* A value may arrive in pieces (split across reads): collect it, and
     * look for the tokens only once the head is complete. */
    case HTTP_H_UPGRADE:
        h->has_upgrade = 1;
        http_append(h->upgrade, sizeof h->upgrade, at, len);
        break;
    case HTTP_H_CONNECTION:
        http_append(h->connection, sizeof h->connection, at, len);
        break;
    case HTTP_H_KEY:
        h->has_key = 1;
        http_append(h->key, sizeof h->key, at, len);
        break;
    case HTTP_H_VERSION:
        h->has_version = 1;
        http_append(h->version, sizeof h->version, at, len);
        break;
    case HTTP_H_AUTH:
        http_append(h->auth, sizeof h->auth, at, len);
        break;
    case HTTP_H_FORWARDED:
        http_append(h->forwarded, sizeof h->forwarded, at, len);
        break;
    default:
        break;
    }
    return 0;
}

static int http_on_headers_complete(http_parser *p)
{
    struct http_reader *r = http_r(p);
    /* Debian's http-parser is built lax and takes "HTTX/1.1" for HTTP. */
    if (r->tail_len != sizeof r->line_tail || memcmp(r->line_tail, "HTTP/", 5) != 0)
        return -1;
    r->head.method = p->method;
    r->head.http_major = p->http_major;
    r->head.http_minor = p->http_minor;
    r->head.keep_alive = http_should_keep_alive(p) ? 1 : 0;
    r->head.upgrade_websocket = http_list_has(r->head.upgrade, strlen(r->head.upgrade), "websocket");
    r->head.connection_upgrade =
        http_list_has(r->head.connection, strlen(r->head.connection), "upgrade");
    return 0;
}

static int http_on_message_complete(http_parser *p)
{
    struct http_reader *r = http_r(p);
    r->complete = 1;
    /* Stop here: the next bytes are another request or WebSocket frames. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings http_settings = {
    .on_url = http_on_url,
    .on_header_field = http_on_header_field,
    .on_header_value = http_on_header_value,
    .on_headers_complete = http_on_headers_complete,
    .on_message_complete = http_on_message_complete,
};

void http_reader_init(struct http_reader *r)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    r->header = -1;
}

void http_reader_next(struct http_reader *r)
{
    http_reader_init(r);
}

/* Keeps the last 8 bytes of the request line (CRs aside; blank lines before
 * it are skipped as http-parser skips them) for the version check. */
static void http_track_request_line(struct http_reader *r, const char *buf, size_t len)
{
    for (size_t i = 0; i < len && !r->line_done; i++) {
        char ch = buf[i];
        if (ch == '\r' || (ch == '\n' && r->tail_len == 0))
            continue;
        if (ch == '\n') {
            r->line_done = 1;
            break;
        }
        if (r->tail_len == sizeof r->line_tail) {
            memmove(r->line_tail, r->line_tail + 1, sizeof r->line_tail - 1);
            r->tail_len--;
        }
        r->line_tail[r->tail_len++] = ch;
    }
}

enum http_feed http_reader_feed(struct http_reader *r, const char *buf, size_t len, size_t *used)
{
    *used = 0;
    if (r->complete)
        return HTTP_FEED_DONE;
    http_track_request_line(r, buf, len);
    size_t n = http_parser_execute(&r->parser, &http_settings, buf, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    *used = n;
    r->head_bytes += n;
    if (r->head_bytes > HTTP_HEAD_MAX)
        return HTTP_FEED_ERROR; /* however it arrived, in one piece or many */
    if (r->complete) {
        /* An upgrade request returns before its terminating byte is counted
         * by some versions; never report more than was given. */
        if (*used > len)
            *used = len;
        return HTTP_FEED_DONE;
    }
    if (e != HPE_OK && e != HPE_PAUSED)
        return HTTP_FEED_ERROR;
    return HTTP_FEED_AGAIN;
}

static int http_hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int http_credential(const struct http_head *h, char *out, size_t cap)
{
    /* ?key=... anywhere in the query string. */
    const char *q = h->query;
    while (*q) {
        size_t n = strcspn(q, "&");
        if (n > 4 && strncmp(q, "key=", 4) == 0) {
            size_t o = 0;
            for (size_t i = 4; i < n; i++) {
                char c = q[i];
                if (c == '%' && i + 2 < n && http_hexval(q[i + 1]) >= 0 && http_hexval(q[i + 2]) >= 0) {
                    c = (char)(http_hexval(q[i + 1]) * 16 + http_hexval(q[i + 2]));
                    i += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (o + 1 >= cap)
                    return -1;
                out[o++] = c;
            }
            out[o] = '\0';
            return (int)o;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    if (strncasecmp(h->auth, "Bearer ", 7) == 0) {
        const char *tok = h->auth + 7;
        while (*tok == ' ')
            tok++;
        size_t n = strlen(tok);
        while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
            n--;
        if (n == 0 || n + 1 > cap)
            return -1;
        memcpy(out, tok, n);
        out[n] = '\0';
        return (int)n;
    }
    return -1;
}

int http_proxy_v1(const char *buf, size_t len, struct addr *src, size_t *used)
{
    static const char sig[] = "PROXY ";
    size_t n = len < sizeof sig - 1 ? len : sizeof sig - 1;
    if (memcmp(buf, sig, n) != 0)
        return 2;
    const char *nl = memchr(buf, '\n', len < 107 ? len : 107);
    if (!nl)
        return len >= 107 ? -1 : 0;
    size_t line = (size_t)(nl - buf) + 1;
    if (line < 8 || buf[line - 2] != '\r')
        return -1;
    char tmp[108], proto[8], sip[48], dip[48];
    unsigned sport, dport;
    memcpy(tmp, buf, line - 2);
    tmp[line - 2] = '\0';
    *used = line;
    memset(src, 0, sizeof *src);
    if (strcmp(tmp, "PROXY UNKNOWN") == 0 || strncmp(tmp, "PROXY UNKNOWN ", 14) == 0)
        return 1;
    char extra;
    if (sscanf(tmp, "PROXY %7s %47s %47s %5u %5u%c", proto, sip, dip, &sport, &dport, &extra) != 5)
        return -1;
    struct addr d;
    if ((strcmp(proto, "TCP4") != 0 && strcmp(proto, "TCP6") != 0) || sport < 1 || sport > 65535 ||
        dport < 1 || dport > 65535 || addr_parse_ip(src, sip, (uint16_t)sport) != 0 ||
        addr_parse_ip(&d, dip, (uint16_t)dport) != 0 ||
        (src->family == AF_INET) != (strcmp(proto, "TCP4") == 0))
        return -1;
    return 1;
}

int http_forwarded_addr(const struct http_head *h, struct addr *out)
{
    if (strlen(h->forwarded) >= sizeof h->forwarded - 1)
        return -1; /* cut short: its last entry is not trustworthy */
    const char *last = strrchr(h->forwarded, ',');
    last = last ? last + 1 : h->forwarded;
    while (*last == ' ' || *last == '\t')
        last++;
    char ip[48];
    size_t n = strcspn(last, " \t");
    if (n == 0 || n >= sizeof ip)
        return -1;
    memcpy(ip, last, n);
    ip[n] = '\0';
    return addr_parse_ip(out, ip, 0);
}

int http_ws_key_valid(const char *key)
{
    unsigned char bin[32];
    size_t binlen = 0;
    const char *end = NULL;
    size_t n = strlen(key);
    if (n != 24)
        return 0;
    if (sodium_base642bin(bin, sizeof bin, key, n, NULL, &binlen, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return 0;
    return binlen == 16 && end == key + n;
}

void http_ws_accept(const char *key, char out[HTTP_ACCEPT_LEN + 1])
{
    struct sha1_ctx ctx;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, strlen(key), (const uint8_t *)key);
    sha1_update(&ctx, sizeof http_ws_guid - 1, (const uint8_t *)http_ws_guid);
    sha1_digest(&ctx, sizeof digest, digest);
    sodium_bin2base64(out, HTTP_ACCEPT_LEN + 1, digest, sizeof digest,
                      sodium_base64_VARIANT_ORIGINAL);
}

enum http_route http_route(const struct http_head *h)
{
    int wants_upgrade = h->has_upgrade || h->connection_upgrade || h->has_key || h->has_version;
    if (h->http_major != 1)
        return HTTP_ROUTE_BAD_HTTP;
    if (h->method != HTTP_GET)
        return HTTP_ROUTE_BAD_METHOD;
    if (h->url_too_long)
        return HTTP_ROUTE_NOT_FOUND;
    if (strcmp(h->path, "/healthz") == 0)
        return HTTP_ROUTE_HEALTHZ;
    if (strcmp(h->path, "/metrics") == 0)
        return HTTP_ROUTE_METRICS;
    if (strcmp(h->path, "/") != 0 || !wants_upgrade)
        return HTTP_ROUTE_NOT_FOUND;
    if (!h->upgrade_websocket || !h->connection_upgrade || !h->has_key || !h->has_version ||
        h->http_major < 1 || (h->http_major == 1 && h->http_minor < 1) || !http_ws_key_valid(h->key))
        return HTTP_ROUTE_BAD_UPGRADE;
    if (strcmp(h->version, "13") != 0)
        return HTTP_ROUTE_BAD_VERSION;
    return HTTP_ROUTE_UPGRADE;
}

static const char *http_reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

size_t http_response(char *out, size_t cap, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t body_len, int keep_alive)
{
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\nServer: punchd\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: %s\r\n%s\r\n",
                     status, http_reason(status), content_type, body_len,
                     keep_alive ? "keep-alive" : "close", extra_headers);
    if (n < 0 || (size_t)n + body_len > cap)
        return 0;
    memcpy(out + n, body, body_len);
    return (size_t)n + body_len;
}

size_t http_upgrade_response(char *out, size_t cap, const char *key)
{
    char accept[HTTP_ACCEPT_LEN + 1];
    http_ws_accept(key, accept);
    int n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}
