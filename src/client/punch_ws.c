/* punch_ws: libpunch's WebSocket client to the tracker (RFC 6455), for the
 * relay and for WebSocket-only registration. Non-blocking: a TCP connect, the
 * HTTP upgrade (the 101 head is parsed with http-parser and its
 * Sec-WebSocket-Accept checked), then wslay in client mode (masked frames).
 * Every call does what it can without blocking; punch_ws_io is called on
 * each punch_poll. */
#include "punch_int.h"

#include <errno.h>
#include <http_parser.h>
#include <nettle/sha1.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define PUNCH_WS_HEAD_MAX 8192
#define PUNCH_WS_MSG_MAX 65536
#define PUNCH_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void punch_ws_accept_key(const char *key, char out[29])
{
    struct sha1_ctx ctx;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, strlen(key), (const uint8_t *)key);
    sha1_update(&ctx, sizeof PUNCH_WS_GUID - 1, (const uint8_t *)PUNCH_WS_GUID);
    sha1_digest(&ctx, SHA1_DIGEST_SIZE, digest);
    sodium_bin2base64(out, 29, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
}

/* ---- the 101 head ---- */

struct punch_ws_head {
    int field;              /* which header the next value belongs to */
    char accept[64];
    int upgrade_ok;
    int connection_ok;
};

enum { PUNCH_H_OTHER, PUNCH_H_ACCEPT, PUNCH_H_UPGRADE, PUNCH_H_CONNECTION };

static int punch_ws_on_field(http_parser *hp, const char *at, size_t n)
{
    struct punch_ws_head *h = hp->data;
    h->field = PUNCH_H_OTHER;
    if (n == 20 && strncasecmp(at, "Sec-WebSocket-Accept", n) == 0)
        h->field = PUNCH_H_ACCEPT;
    else if (n == 7 && strncasecmp(at, "Upgrade", n) == 0)
        h->field = PUNCH_H_UPGRADE;
    else if (n == 10 && strncasecmp(at, "Connection", n) == 0)
        h->field = PUNCH_H_CONNECTION;
    return 0;
}

/* 1 if the comma-separated list at[0..n) holds token (case-insensitive). */
static int punch_list_has(const char *at, size_t n, const char *token)
{
    size_t tl = strlen(token), i = 0;
    while (i < n) {
        while (i < n && (at[i] == ' ' || at[i] == '\t' || at[i] == ','))
            i++;
        size_t s = i;
        while (i < n && at[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (at[e - 1] == ' ' || at[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(at + s, token, tl) == 0)
            return 1;
    }
    return 0;
}

static int punch_ws_on_value(http_parser *hp, const char *at, size_t n)
{
    struct punch_ws_head *h = hp->data;
    if (h->field == PUNCH_H_ACCEPT && n < sizeof h->accept) {
        memcpy(h->accept, at, n);
        h->accept[n] = '\0';
    } else if (h->field == PUNCH_H_UPGRADE) {
        h->upgrade_ok = n == 9 && strncasecmp(at, "websocket", 9) == 0;
    } else if (h->field == PUNCH_H_CONNECTION) {
        h->connection_ok = punch_list_has(at, n, "upgrade");
    }
    return 0;
}

long punch_ws_check_head(const char *buf, size_t len, const char *key_b64, char *why, size_t whycap)
{
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= len; i++) {
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i + 4;
            break;
        }
    }
    if (!end)
        return 0;
    size_t hlen = (size_t)(end - buf);
    struct punch_ws_head h;
    memset(&h, 0, sizeof h);
    http_parser hp;
    http_parser_settings st;
    memset(&st, 0, sizeof st);
    st.on_header_field = punch_ws_on_field;
    st.on_header_value = punch_ws_on_value;
    http_parser_init(&hp, HTTP_RESPONSE);
    hp.data = &h;
    http_parser_execute(&hp, &st, buf, hlen);
    if (HTTP_PARSER_ERRNO(&hp) != HPE_OK) {
        snprintf(why, whycap, "bad HTTP response (%s)", http_errno_name(HTTP_PARSER_ERRNO(&hp)));
        return -1;
    }
    if (hp.status_code != 101) {
        snprintf(why, whycap, "upgrade refused: HTTP %u", hp.status_code);
        return -1;
    }
    char want[29];
    punch_ws_accept_key(key_b64, want);
    if (!h.upgrade_ok || !h.connection_ok || strcmp(h.accept, want) != 0) {
        snprintf(why, whycap, "bad upgrade response (Upgrade/Connection/Sec-WebSocket-Accept)");
        return -1;
    }
    return (long)hlen;
}

/* ---- wslay callbacks ---- */

static ssize_t punch_ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                                void *user)
{
    (void)flags;
    struct punch_ws *w = user;
    if (w->rest_off < w->rest_len) {
        /* Frames that arrived with the 101 head come first. */
        size_t n = w->rest_len - w->rest_off;
        if (n > len)
            n = len;
        memcpy(buf, w->rest + w->rest_off, n);
        w->rest_off += n;
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t n = recv(w->fd, buf, len, 0);
        if (n > 0)
            return n;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        } else {
            snprintf(w->error, sizeof w->error, "%s", n == 0 ? "tracker closed the connection" : strerror(errno));
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static ssize_t punch_ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                                void *user)
{
    (void)flags;
    struct punch_ws *w = user;
    for (;;) {
        ssize_t n = send(w->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        } else {
            snprintf(w->error, sizeof w->error, "%s", strerror(errno));
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static int punch_ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)ctx;
    (void)user;
    randombytes_buf(buf, len);
    return 0;
}

static void punch_ws_on_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                               void *user)
{
    (void)ctx;
    struct punch_ws *w = user;
    if (arg->opcode == WSLAY_TEXT_FRAME && w->on_msg)
        w->on_msg(w->user, (const char *)arg->msg, arg->msg_length);
}

/* ---- lifetime ---- */

static void punch_ws_fail(struct punch_ws *w, const char *why)
{
    if (why && !w->error[0])
        snprintf(w->error, sizeof w->error, "%s", why);
    w->state = PUNCH_WS_FAILED;
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
}

/* Appends s to the request as a URL query value (RFC 3986 unreserved kept). */
static size_t punch_urlencode(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s && n + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '.' || c == '_' || c == '~') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

int punch_ws_start(struct punch_ws *w, const struct punch_addr *to, const char *host, const char *key,
                   punch_ws_msg_fn on_msg, void *user)
{
    punch_ws_free(w);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->on_msg = on_msg;
    w->user = user;
    struct sockaddr_storage ss;
    socklen_t sl = punch_addr_to_sockaddr(to, &ss, to->family);
    if (!sl)
        return PUNCH_E_INVAL;
    w->fd = socket(to->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (w->fd < 0) {
        punch_ws_fail(w, strerror(errno));
        return PUNCH_E_SYS;
    }
    int one = 1;
    setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(w->fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
        punch_ws_fail(w, strerror(errno));
        return PUNCH_E_SYS;
    }
    uint8_t raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(w->key_b64, sizeof w->key_b64, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
    char query[600] = "";
    if (key && *key) {
        memcpy(query, "?key=", 5);
        punch_urlencode(query + 5, sizeof query - 5, key);
    }
    size_t cap = 512 + strlen(host) + strlen(query);
    w->req = malloc(cap);
    if (!w->req) {
        punch_ws_fail(w, "out of memory");
        return PUNCH_E_SYS;
    }
    int n = snprintf(w->req, cap,
                     "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                     "User-Agent: libpunch\r\n\r\n",
                     query, host, w->key_b64);
    w->req_len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
    w->head = malloc(PUNCH_WS_HEAD_MAX);
    struct wslay_event_callbacks cbs;
    memset(&cbs, 0, sizeof cbs);
    cbs.recv_callback = punch_ws_recv_cb;
    cbs.send_callback = punch_ws_send_cb;
    cbs.genmask_callback = punch_ws_genmask_cb;
    cbs.on_msg_recv_callback = punch_ws_on_msg_cb;
    wslay_event_context_ptr ctx = NULL;
    if (!w->head || wslay_event_context_client_init(&ctx, &cbs, w) != 0) {
        punch_ws_fail(w, "out of memory");
        return PUNCH_E_SYS;
    }
    wslay_event_config_set_max_recv_msg_length(ctx, PUNCH_WS_MSG_MAX);
    w->ctx = ctx;
    w->state = PUNCH_WS_CONNECTING;
    return 0;
}

void punch_ws_free(struct punch_ws *w)
{
    if (w->ctx)
        wslay_event_context_free((wslay_event_context_ptr)w->ctx);
    if (w->fd >= 0 && w->state != PUNCH_WS_IDLE)
        close(w->fd);
    free(w->req);
    free(w->head);
    free(w->rest);
    w->ctx = NULL;
    w->req = NULL;
    w->head = NULL;
    w->rest = NULL;
    w->fd = -1;
    w->state = PUNCH_WS_IDLE;
}

int punch_ws_send(struct punch_ws *w, const char *msg, size_t len)
{
    if (!w->ctx || w->state == PUNCH_WS_FAILED || w->state == PUNCH_WS_IDLE)
        return PUNCH_E_STATE;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)msg, len};
    if (wslay_event_queue_msg((wslay_event_context_ptr)w->ctx, &m) != 0)
        return PUNCH_E_STATE;
    return 0;
}

short punch_ws_events(const struct punch_ws *w)
{
    switch (w->state) {
    case PUNCH_WS_CONNECTING:
        return POLLOUT;
    case PUNCH_WS_HANDSHAKE:
        return (short)(w->req_off < w->req_len ? POLLIN | POLLOUT : POLLIN);
    case PUNCH_WS_OPEN:
        return (short)(POLLIN | (wslay_event_want_write((wslay_event_context_ptr)w->ctx) ? POLLOUT : 0));
    default:
        return 0;
    }
}

/* Connect finished? 1 yes, 0 not yet, -1 failed. */
static int punch_ws_connected(struct punch_ws *w)
{
    struct pollfd pfd = {w->fd, POLLOUT, 0};
    if (poll(&pfd, 1, 0) <= 0)
        return 0;
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
        err = errno;
    if (err) {
        snprintf(w->error, sizeof w->error, "connect: %s", strerror(err));
        return -1;
    }
    return 1;
}

/* Writes the request and reads the head. 1 = open, 0 = in progress, -1 = failed. */
static int punch_ws_handshake(struct punch_ws *w)
{
    while (w->req_off < w->req_len) {
        ssize_t n = send(w->fd, w->req + w->req_off, w->req_len - w->req_off, MSG_NOSIGNAL);
        if (n > 0) {
            w->req_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        snprintf(w->error, sizeof w->error, "send: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        if (w->head_len >= PUNCH_WS_HEAD_MAX) {
            snprintf(w->error, sizeof w->error, "upgrade response head too large");
            return -1;
        }
        ssize_t n = recv(w->fd, w->head + w->head_len, PUNCH_WS_HEAD_MAX - w->head_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0) {
            snprintf(w->error, sizeof w->error, "%s", n == 0 ? "tracker closed during the upgrade" : strerror(errno));
            return -1;
        }
        w->head_len += (size_t)n;
        long used = punch_ws_check_head(w->head, w->head_len, w->key_b64, w->error, sizeof w->error);
        if (used < 0)
            return -1;
        if (used == 0)
            continue;
        size_t rest = w->head_len - (size_t)used;
        if (rest) {
            w->rest = malloc(rest);
            if (!w->rest)
                return -1;
            memcpy(w->rest, w->head + used, rest);
            w->rest_len = rest;
        }
        free(w->head);
        w->head = NULL;
        free(w->req);
        w->req = NULL;
        return 1;
    }
}

int punch_ws_io(struct punch_ws *w)
{
    if (w->state == PUNCH_WS_FAILED)
        return -1;
    if (w->state == PUNCH_WS_IDLE)
        return 0;
    if (w->state == PUNCH_WS_CONNECTING) {
        int c = punch_ws_connected(w);
        if (c < 0) {
            punch_ws_fail(w, NULL);
            return -1;
        }
        if (c == 0)
            return 0;
        w->state = PUNCH_WS_HANDSHAKE;
    }
    if (w->state == PUNCH_WS_HANDSHAKE) {
        int h = punch_ws_handshake(w);
        if (h < 0) {
            punch_ws_fail(w, NULL);
            return -1;
        }
        if (h == 0)
            return 0;
        w->state = PUNCH_WS_OPEN;
    }
    wslay_event_context_ptr ctx = (wslay_event_context_ptr)w->ctx;
    if (wslay_event_recv(ctx) != 0 || wslay_event_send(ctx) != 0) {
        punch_ws_fail(w, "WebSocket error");
        return -1;
    }
    if (!wslay_event_want_read(ctx) && !wslay_event_want_write(ctx)) {
        punch_ws_fail(w, "tracker closed the WebSocket");
        return -1;
    }
    return 0;
}
