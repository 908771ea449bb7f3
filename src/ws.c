/* ws: HTTP and WebSocket connections on the TCP port (see ws.h). */
#include "ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sodium.h>
#include <wslay/wslay.h>

#include "clock.h"
#include "connlimit.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "proto.h"
#include "registry.h"
#include "wsframe.h"
#include "xmem.h"

#define WS_HEAD_TIMEOUT 5.0    /* seconds for a request head after accept */
#define WS_CLOSE_LINGER 5.0    /* seconds to finish a closing handshake */
#define WS_ACCEPT_PAUSE 0.1    /* seconds to stop accepting when out of fds */
#define WS_READ_CHUNK 4096
#define WS_MAILBOX_MAX (4u << 20) /* bytes of messages other threads may queue before drops */

/* A message (or a close, code != 0) for a connection, posted by another
 * thread; len bytes follow, padded to the struct's alignment. */
struct ws_mail {
    struct ws_conn *c;          /* NULL once the connection is gone */
    uint32_t len;
    uint16_t code;
};

enum ws_state { WS_HTTP, WS_OPEN, WS_DONE };

struct ws_conn {
    struct ws_server *srv;
    struct ws_conn *prev, *next;
    int fd;
    enum ws_state state;
    ev_io rio, wio;
    ev_timer timer;             /* head deadline, then pings, then close linger */
    struct addr addr;           /* the client's TCP address */
    uint32_t peer;              /* identity held (REGISTRY_NIL = none) */
    struct http_reader *http;   /* while reading requests */
    char *in;                   /* unparsed input (HTTP, then frames read with the head) */
    size_t in_len, in_off;
    char *out;                  /* HTTP bytes to write before any frame */
    size_t out_len, out_off;
    int close_after_out;        /* plain HTTP: close once out is written */
    int over_limit;             /* accepted beyond max_connections */
    int closing;                /* a close frame was queued or received */
    wslay_event_context_ptr ws;
    uint64_t last_rx;           /* ms: last byte from the client */
    struct wsframe_scan scan;   /* frame headers, checked before their payload is read */
    uint16_t verdict;           /* close code due once the bytes before a refused header are in */
    uint8_t ip_counted;         /* counted in the server's connlimit */
    uint8_t via_proxy;          /* from trusted_proxies: the client address comes later */
    uint8_t proxy_done;         /* the PROXY line (if any) is consumed / the address is final */
    uint8_t exempt;             /* the source IP is in rate_exempt */
    struct ratelimit_bucket msgs; /* rate_requests_per_sec per connection */
};

struct ws_server {
    struct ev_loop *loop;
    const struct config *cfg;
    struct tracker *tracker;
    int fd;
    ev_io accept_io;
    ev_timer accept_pause;
    struct addr bound;
    unsigned nconns;            /* open TCP connections (what max_connections caps) */
    unsigned nws;               /* of which upgraded to WebSocket */
    struct ws_conn *conns;
    uint64_t started;
    struct connlimit *per_ip;   /* NULL when max_connections_per_ip is 0 */
    unsigned char access_hash[crypto_generichash_BYTES];  /* of access_key */
    unsigned char metrics_hash[crypto_generichash_BYTES]; /* of metrics_key */
    /* UDP workers run on other threads: what the tracker sends to a
     * connection from there is posted here and delivered on this loop. */
    pthread_t owner;            /* the thread running loop */
    ev_async wake;
    pthread_mutex_t box_lock;
    char *box;                  /* struct ws_mail entries, posted */
    size_t box_len, box_cap;
    char *drain;                /* entries being delivered (this thread only) */
    size_t drain_len, drain_cap;
};

static void ws_conn_update(struct ws_conn *c);
static void ws_ctx_ensure(struct ws_conn *c);

/* ---- connection lifetime ---- */

/* The connection's WebSocket side ends now (close sent/received or gone). */
static void ws_conn_detach(struct ws_conn *c)
{
    if (c->peer != REGISTRY_NIL) {
        uint32_t pi = c->peer;
        c->peer = REGISTRY_NIL;
        tracker_lock(c->srv->tracker);
        tracker_ws_closed(c->srv->tracker, c, pi);
        tracker_unlock(c->srv->tracker);
    }
}

static size_t ws_mail_size(uint32_t len)
{
    size_t a = _Alignof(struct ws_mail);
    return (sizeof(struct ws_mail) + len + a - 1) / a * a;
}

/* Forgets mail for c (it is being freed). Called after its identity is
 * detached, so no worker can post more for it. */
static void ws_mail_forget(struct ws_server *s, const struct ws_conn *c)
{
    pthread_mutex_lock(&s->box_lock);
    char *bufs[2] = { s->box, s->drain };
    size_t lens[2] = { s->box_len, s->drain_len };
    for (int b = 0; b < 2; b++) {
        for (size_t off = 0; off < lens[b];) {
            struct ws_mail *m = (struct ws_mail *)(bufs[b] + off);
            if (m->c == c)
                m->c = NULL;
            off += ws_mail_size(m->len);
        }
    }
    pthread_mutex_unlock(&s->box_lock);
}

/* Counts a refusal at a limit: the tracker's counters are shared with the workers. */
static void ws_count_limit(struct ws_server *s, enum stats_limit which)
{
    tracker_lock(s->tracker);
    tracker_count_limit(s->tracker, which);
    tracker_unlock(s->tracker);
}

static void ws_conn_destroy(struct ws_conn *c)
{
    struct ws_server *s = c->srv;
    ws_conn_detach(c);
    ws_mail_forget(s, c);
    ev_io_stop(s->loop, &c->rio);
    ev_io_stop(s->loop, &c->wio);
    ev_timer_stop(s->loop, &c->timer);
    close(c->fd);
    if (c->ws)
        wslay_event_context_free(c->ws);
    free(c->http);
    free(c->in);
    free(c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (c->state != WS_HTTP)
        s->nws--;
    if (c->ip_counted)
        connlimit_del(s->per_ip, &c->addr);
    free(c);
}

static void ws_conn_set_timer(struct ws_conn *c, double after, double repeat)
{
    ev_timer_stop(c->srv->loop, &c->timer);
    ev_timer_set(&c->timer, after, repeat);
    ev_timer_start(c->srv->loop, &c->timer);
}

/* Queues a close frame; the WebSocket side ends at once. */
static void ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason)
{
    if (c->state == WS_OPEN && !c->closing) {
        ws_ctx_ensure(c);
        c->closing = 1;
        /* wslay sends control frames before queued messages: hand replies
         * already queued to the kernel first, so they are not lost. */
        if (c->out_len == 0)
            wslay_event_send(c->ws);
        wslay_event_queue_close(c->ws, code, (const uint8_t *)reason, strlen(reason));
        ws_conn_set_timer(c, WS_CLOSE_LINGER, 0.);
    }
    ws_conn_detach(c);
    ev_io_start(c->srv->loop, &c->wio);
}

/* ---- HTTP ---- */

static void ws_out_append(struct ws_conn *c, const char *buf, size_t len)
{
    c->out = xrealloc(c->out, c->out_len + len);
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
}

static void ws_http_respond(struct ws_conn *c, int status, const char *type, const char *extra,
                            const char *body, size_t body_len, int keep)
{
    char head[512];
    char *buf = xmalloc(body_len + sizeof head);
    size_t n = http_response(buf, body_len + sizeof head, status, type, extra, body, body_len, keep);
    ws_out_append(c, buf, n);
    free(buf);
    if (!keep)
        c->close_after_out = 1;
}

static void ws_http_error(struct ws_conn *c, int status, const char *msg, const char *extra, int keep)
{
    char body[160];
    int n = snprintf(body, sizeof body, "%s\n", msg);
    ws_http_respond(c, status, "text/plain; charset=utf-8", extra, body, (size_t)n, keep);
}

static void ws_gauges(const struct ws_server *s, struct metrics_gauges *g)
{
    tracker_lock(s->tracker);
    g->peers = registry_count(tracker_registry(s->tracker));
    tracker_unlock(s->tracker);
    g->workers = (unsigned)s->cfg->workers;
    g->ws_connections = s->nws;
    g->uptime = (clock_mono_ms() - s->started) / 1000u;
}

static int ws_upgrade(struct ws_conn *c);

/* 1 if the request presents the secret whose hash is want (or none is set). */
static int ws_credential_ok(const struct http_head *h, const char *secret, const unsigned char *want)
{
    if (!secret[0])
        return 1;
    char cred[CONFIG_SECRET_MAX + 2];
    int n = http_credential(h, cred, sizeof cred);
    if (n < 0)
        return 0;
    unsigned char got[crypto_generichash_BYTES];
    crypto_generichash(got, sizeof got, (const unsigned char *)cred, (size_t)n, NULL, 0);
    return sodium_memcmp(got, want, sizeof got) == 0;
}

/* Settles the connection's client address (from a trusted proxy) and counts
 * it against max_connections_per_ip. Returns 0, or -1 if that IP is over its
 * cap (503 queued). */
static int ws_client_addr(struct ws_conn *c, const struct addr *real)
{
    struct ws_server *s = c->srv;
    if (real && real->family)
        c->addr = *real;
    c->proxy_done = 1;
    c->exempt = (uint8_t)config_cidrs_has(&s->cfg->rate_exempt, &c->addr);
    if (!s->per_ip || c->exempt)
        return 0;
    c->ip_counted = (uint8_t)connlimit_add(s->per_ip, &c->addr, (unsigned)s->cfg->max_connections_per_ip);
    if (c->ip_counted)
        return 0;
    ws_count_limit(s, STATS_L_CONNECTIONS_PER_IP);
    ws_http_error(c, 503, "too many connections from this address", "Retry-After: 1\r\n", 0);
    return -1;
}

/* Handles one complete request. Returns 1 to keep reading requests. */
static int ws_http_request(struct ws_conn *c)
{
    const struct http_head *h = &c->http->head;
    const struct config *cfg = c->srv->cfg;
    if (c->via_proxy && !c->proxy_done) {
        /* No PROXY line: the trusted proxy names the client in X-Forwarded-For. */
        struct addr real;
        if (ws_client_addr(c, http_forwarded_addr(h, &real) == 0 ? &real : NULL) != 0)
            return 0;
    }
    int keep = h->keep_alive && !c->over_limit;
    enum http_route route = http_route(h);
    struct metrics_gauges g;
    ws_gauges(c->srv, &g);
    if (c->over_limit && route != HTTP_ROUTE_UPGRADE) {
        ws_http_error(c, 503, "too many connections", "Retry-After: 1\r\n", 0);
        return 0;
    }
    /* The access key comes before the upgrade checks (426/400): whoever lacks
     * it learns nothing more about the endpoint. */
    int ws_route = route == HTTP_ROUTE_UPGRADE || route == HTTP_ROUTE_BAD_UPGRADE ||
                   route == HTTP_ROUTE_BAD_VERSION;
    if ((ws_route && !ws_credential_ok(h, cfg->access_key, c->srv->access_hash)) ||
        (route == HTTP_ROUTE_METRICS && !ws_credential_ok(h, cfg->metrics_key, c->srv->metrics_hash))) {
        ws_count_limit(c->srv, STATS_L_ACCESS_KEY);
        ws_http_error(c, 401, "a key is required: ?key=KEY or Authorization: Bearer KEY",
                      "WWW-Authenticate: Bearer\r\n", 0);
        return 0;
    }
    switch (route) {
    case HTTP_ROUTE_HEALTHZ: {
        char body[128];
        size_t n = metrics_healthz(body, sizeof body, &g);
        ws_http_respond(c, 200, "application/json", "", body, n, keep);
        return keep;
    }
    case HTTP_ROUTE_METRICS: {
        char body[16384];
        tracker_lock(c->srv->tracker);
        size_t n = metrics_render(body, sizeof body, tracker_stats(c->srv->tracker), &g);
        tracker_unlock(c->srv->tracker);
        ws_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", "", body, n, keep);
        return keep;
    }
    case HTTP_ROUTE_UPGRADE:
        return ws_upgrade(c);
    case HTTP_ROUTE_NOT_FOUND:
        ws_http_error(c, 404, "not found", "", keep);
        return keep;
    case HTTP_ROUTE_BAD_METHOD:
        ws_http_error(c, 405, "method not allowed", "Allow: GET\r\n", keep);
        return keep;
    case HTTP_ROUTE_BAD_VERSION:
        ws_http_error(c, 426, "WebSocket version 13 required", "Sec-WebSocket-Version: 13\r\n", 0);
        return 0;
    case HTTP_ROUTE_BAD_HTTP:
        ws_http_error(c, 505, "HTTP/1.1 only", "", 0);
        return 0;
    case HTTP_ROUTE_BAD_UPGRADE:
    default:
        ws_http_error(c, 400, "bad WebSocket upgrade request", "", 0);
        return 0;
    }
}

/* Parses what is in c->in; answers each complete request. */
static void ws_http_process(struct ws_conn *c)
{
    while (c->state == WS_HTTP && c->in_off < c->in_len && !c->close_after_out) {
        size_t used;
        enum http_feed f = http_reader_feed(c->http, c->in + c->in_off, c->in_len - c->in_off, &used);
        c->in_off += used;
        if (f == HTTP_FEED_AGAIN)
            break;
        if (f == HTTP_FEED_ERROR) {
            ws_http_error(c, 400, "malformed request", "", 0);
            break;
        }
        if (!ws_http_request(c))
            break;
        if (c->state == WS_HTTP)
            http_reader_next(c->http);
    }
    if (c->state == WS_HTTP && c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
}

/* ---- WebSocket (wslay callbacks) ---- */

/* After the upgrade, once every byte read with the head has gone to wslay,
 * the head buffer's job is done: an idle WebSocket keeps no 8 KiB. */
static void ws_in_release(struct ws_conn *c)
{
    if (c->in_off < c->in_len)
        return;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_off = 0;
}

/* What a frame header alone is enough to refuse: 0 = fine, else a close code. */
static int ws_frame_check(const struct wsframe_info *f, void *user)
{
    const struct ws_conn *c = user;
    if (f->opcode & 0x8) /* control: wslay checks the rest */
        return f->opcode == 0x8 && f->payload_len == 1 ? 1002 : 0;
    if (f->opcode == 0x2)
        return 1003;
    if (f->msg_len > (uint64_t)c->srv->cfg->ws_max_message)
        return 1009;
    return 0;
}

static void ws_close_verdict(struct ws_conn *c)
{
    const char *why = c->verdict == 1003   ? "text messages only"
                      : c->verdict == 1009 ? "message too big"
                                           : "protocol error";
    ws_conn_close(c, c->verdict, why);
    wslay_event_shutdown_read(c->ws);
}

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    struct ws_conn *c = user;
    ssize_t n;
    if (c->verdict) {
        /* Everything before the refused header has been processed. */
        ws_close_verdict(c);
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (c->in_off < c->in_len) {
        /* Frames that arrived together with the request head. */
        n = (ssize_t)(c->in_len - c->in_off < len ? c->in_len - c->in_off : len);
        memcpy(buf, c->in + c->in_off, (size_t)n);
        c->in_off += (size_t)n;
        ws_in_release(c);
    } else {
        do {
            n = recv(c->fd, buf, len, 0);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            wslay_event_set_error(ctx, errno == EAGAIN || errno == EWOULDBLOCK ? WSLAY_ERR_WOULDBLOCK
                                                                               : WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }
        if (n == 0) {
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }
        c->last_rx = clock_mono_ms();
    }
    int code = wsframe_scan(&c->scan, buf, (size_t)n, ws_frame_check, c);
    if (code != 0) {
        c->verdict = (uint16_t)code;
        if (c->scan.stop > 0)
            return (ssize_t)c->scan.stop; /* let wslay finish the frames before it */
        ws_close_verdict(c);
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user)
{
    (void)flags;
    struct ws_conn *c = user;
    ssize_t n;
    do {
        n = send(c->fd, data, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        wslay_event_set_error(ctx, errno == EAGAIN || errno == EWOULDBLOCK ? WSLAY_ERR_WOULDBLOCK
                                                                           : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return n;
}

/* The connection's message bucket: rate_requests_per_sec, burst
 * rate_requests_burst, the same numbers a UDP source IP gets. */
static int ws_msg_take(struct ws_conn *c, uint64_t now)
{
    const struct config *cfg = c->srv->cfg;
    return c->exempt || ratelimit_bucket_take(&c->msgs, (double)cfg->rate_requests_per_sec,
                                              (double)cfg->rate_requests_burst, 1, now);
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user)
{
    struct ws_conn *c = user;
    if (c->closing)
        return;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME: {
        if (!proto_utf8_valid(arg->msg, arg->msg_length)) {
            ws_conn_close(c, 1007, "invalid UTF-8");
            wslay_event_shutdown_read(ctx);
            return;
        }
        struct tracker_src src = { .transport = TRACKER_WS, .addr = c->addr, .conn = c,
                                   .conn_peer = &c->peer };
        uint64_t now = clock_mono_ms();
        struct tracker *t = c->srv->tracker;
        tracker_lock(t);
        if (!ws_msg_take(c, now))
            tracker_ws_rate_limited(t, &src, now);
        else
            tracker_on_ws_message(t, (const char *)arg->msg, arg->msg_length, &src, now);
        tracker_unlock(t);
        return;
    }
    case WSLAY_CONNECTION_CLOSE:
        /* wslay answers the close; the WebSocket side ends now. */
        c->closing = 1;
        ws_conn_detach(c);
        ws_conn_set_timer(c, WS_CLOSE_LINGER, 0.);
        return;
    default:
        /* ping (wslay pongs) and pong: liveness is tracked on every byte;
         * binary never gets here (refused at its header, ws_frame_check). */
        return;
    }
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_recv_cb,
    .send_callback = ws_send_cb,
    .on_msg_recv_callback = ws_msg_cb,
};

/* Debian's wslay keeps about 9 KiB per context (its input and output
 * buffers). An idle WebSocket needs none of it: the context is freed whenever
 * the connection is between messages with nothing left to send, and made
 * again when bytes arrive or a message is queued. What a context remembers
 * between messages (close state, a half-sent frame, a fragmented message) is
 * exactly what the release conditions rule out. */
static void ws_ctx_ensure(struct ws_conn *c)
{
    if (c->ws)
        return;
    if (wslay_event_context_server_init(&c->ws, &ws_callbacks, c) != 0) {
        log_error("out of memory (wslay context)");
        abort();
    }
    wslay_event_config_set_max_recv_msg_length(c->ws, (uint64_t)c->srv->cfg->ws_max_message);
}

static void ws_ctx_release_if_idle(struct ws_conn *c)
{
    if (!c->ws || c->state != WS_OPEN || c->closing || c->verdict || c->in || c->out_len ||
        !wsframe_at_boundary(&c->scan) || wslay_event_want_write(c->ws) ||
        !wslay_event_want_read(c->ws))
        return;
    wslay_event_context_free(c->ws);
    c->ws = NULL;
}

static int ws_upgrade(struct ws_conn *c)
{
    struct ws_server *s = c->srv;
    char resp[256];
    size_t n = http_upgrade_response(resp, sizeof resp, c->http->head.key);
    ws_out_append(c, resp, n);
    ws_ctx_ensure(c);
    wsframe_init(&c->scan);
    c->state = WS_OPEN;
    s->nws++;
    free(c->http);
    c->http = NULL;
    c->last_rx = clock_mono_ms();
    double iv = (double)s->cfg->ws_ping_interval;
    ws_conn_set_timer(c, iv, iv);
    if (c->over_limit)
        ws_conn_close(c, 1013, "too many connections, try again later");
    return 0;
}

static void ws_deliver(struct ws_server *s, struct ws_conn *c, const char *buf, size_t len);
static void ws_sink_close(void *ctx, void *conn, uint16_t code);

/* From a worker thread: queue for this loop (drop when the mailbox is full:
 * the same as a lost datagram to the client). */
static void ws_mail_post(struct ws_server *s, struct ws_conn *c, uint16_t code, const char *buf,
                         size_t len)
{
    size_t need = ws_mail_size((uint32_t)len);
    pthread_mutex_lock(&s->box_lock);
    if (len > UINT32_MAX || s->box_len + need > WS_MAILBOX_MAX) {
        pthread_mutex_unlock(&s->box_lock);
        return;
    }
    if (s->box_len + need > s->box_cap) {
        s->box_cap = s->box_len + need > 2 * s->box_cap ? s->box_len + need : 2 * s->box_cap;
        s->box = xrealloc(s->box, s->box_cap);
    }
    struct ws_mail *m = (struct ws_mail *)(s->box + s->box_len);
    *m = (struct ws_mail){ .c = c, .len = (uint32_t)len, .code = code };
    if (len)
        memcpy(m + 1, buf, len);
    s->box_len += need;
    pthread_mutex_unlock(&s->box_lock);
    ev_async_send(s->loop, &s->wake);
}

/* On this loop: deliver what the workers posted. */
static void ws_on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    struct ws_server *s = w->data;
    pthread_mutex_lock(&s->box_lock);
    char *tb = s->drain;
    size_t tc = s->drain_cap;
    s->drain = s->box;
    s->drain_cap = s->box_cap;
    s->drain_len = s->box_len;
    s->box = tb;
    s->box_cap = tc;
    s->box_len = 0;
    pthread_mutex_unlock(&s->box_lock);
    for (size_t off = 0; off < s->drain_len;) {
        struct ws_mail *m = (struct ws_mail *)(s->drain + off);
        off += ws_mail_size(m->len);
        if (!m->c)
            continue;
        if (m->code)
            ws_sink_close(s, m->c, m->code);
        else
            ws_deliver(s, m->c, (const char *)(m + 1), m->len);
    }
    pthread_mutex_lock(&s->box_lock);
    s->drain_len = 0;
    pthread_mutex_unlock(&s->box_lock);
}

/* The tracker queues a message on a connection (from any thread). */
static void ws_sink_send(void *ctx, void *conn, const char *buf, size_t len)
{
    struct ws_server *s = ctx;
    if (!pthread_equal(pthread_self(), s->owner)) {
        ws_mail_post(s, conn, 0, buf, len);
        return;
    }
    ws_deliver(s, conn, buf, len);
}

static void ws_deliver(struct ws_server *s, struct ws_conn *c, const char *buf, size_t len)
{
    if (c->state != WS_OPEN || c->closing)
        return;
    ws_ctx_ensure(c);
    struct wslay_event_msg m = { WSLAY_TEXT_FRAME, (const uint8_t *)buf, len };
    if (wslay_event_queue_msg(c->ws, &m) != 0) {
        ws_conn_close(c, 1011, "cannot queue message");
        return;
    }
    /* Judge the reader only after trying to hand the queue to the kernel: a
     * burst to a fast reader is not a slow reader. */
    if (wslay_event_get_queued_msg_length(c->ws) > (size_t)s->cfg->ws_max_queued && c->out_len == 0)
        wslay_event_send(c->ws);
    if (wslay_event_get_queued_msg_length(c->ws) > (size_t)s->cfg->ws_max_queued) {
        ws_conn_close(c, 1008, "reader too slow");
        return;
    }
    ev_io_start(s->loop, &c->wio);
}

/* The tracker moved this connection's identity to a newer one. */
static void ws_sink_close(void *ctx, void *conn, uint16_t code)
{
    struct ws_server *s = ctx;
    struct ws_conn *c = conn;
    if (!pthread_equal(pthread_self(), s->owner)) {
        ws_mail_post(s, c, code, NULL, 0);
        return;
    }
    c->peer = REGISTRY_NIL;
    ws_conn_close(c, code, "identity attached elsewhere");
}

/* ---- I/O ---- */

/* Writes pending HTTP bytes. Returns 0 when all are out, 1 if some remain, -1 on error. */
static int ws_flush_out(struct ws_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
        }
        c->out_off += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return 0;
}

/* Decides watchers after any event; destroys the connection when it is done. */
static void ws_conn_update(struct ws_conn *c)
{
    struct ev_loop *loop = c->srv->loop;
    int rc = ws_flush_out(c);
    if (rc < 0) {
        ws_conn_destroy(c);
        return;
    }
    if (rc == 0 && c->close_after_out) {
        ws_conn_destroy(c);
        return;
    }
    if (c->state == WS_OPEN && rc == 0 && c->ws) {
        if (wslay_event_send(c->ws) != 0) {
            ws_conn_destroy(c);
            return;
        }
        if (!wslay_event_want_read(c->ws) && !wslay_event_want_write(c->ws)) {
            ws_conn_destroy(c);
            return;
        }
    }
    int want_write = rc == 1 || (c->state == WS_OPEN && c->ws && wslay_event_want_write(c->ws));
    if (want_write)
        ev_io_start(loop, &c->wio);
    else
        ev_io_stop(loop, &c->wio);
    ws_ctx_release_if_idle(c);
}

/* A trusted proxy may open with a PROXY v1 line naming the client. Returns
 * 0 to go on (line consumed, or none), 1 to wait for more bytes or when the
 * connection is refused (response queued). */
static int ws_proxy_line(struct ws_conn *c)
{
    struct addr real;
    size_t used = 0;
    int rc = http_proxy_v1(c->in, c->in_len, &real, &used);
    if (rc == 0)
        return 1;
    if (rc < 0) {
        ws_http_error(c, 400, "malformed PROXY header", "", 0);
        ev_io_stop(c->srv->loop, &c->rio);
        return 1;
    }
    if (rc == 2)
        return 0; /* no PROXY line: X-Forwarded-For may name the client */
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (ws_client_addr(c, &real) != 0) {
        ev_io_stop(c->srv->loop, &c->rio);
        return 1;
    }
    return 0;
}

static void ws_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct ws_conn *c = w->data;
    if (c->state == WS_HTTP) {
        if (!c->in)
            c->in = xmalloc(HTTP_HEAD_MAX + 1);
        if (c->in_len >= HTTP_HEAD_MAX) {
            ws_http_error(c, 400, "request head too large", "", 0);
            ev_io_stop(c->srv->loop, &c->rio);
            ws_conn_update(c);
            return;
        }
        ssize_t n;
        do {
            n = recv(c->fd, c->in + c->in_len, HTTP_HEAD_MAX - c->in_len, 0);
        } while (n < 0 && errno == EINTR);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            ws_conn_destroy(c);
            return;
        }
        if (n < 0)
            return;
        c->in_len += (size_t)n;
        if (c->via_proxy && !c->proxy_done && ws_proxy_line(c) != 0) {
            ws_conn_update(c);
            return;
        }
        ws_http_process(c);
        if (c->state == WS_OPEN)
            ws_in_release(c);
        if (c->close_after_out)
            ev_io_stop(c->srv->loop, &c->rio); /* no more requests on this one */
        if (c->state == WS_OPEN && wslay_event_recv(c->ws) != 0) {
            ws_conn_destroy(c);
            return;
        }
        ws_conn_update(c);
        return;
    }
    ws_ctx_ensure(c);
    if (wslay_event_recv(c->ws) != 0) {
        ws_conn_destroy(c);
        return;
    }
    ws_conn_update(c);
}

static void ws_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    ws_conn_update(w->data);
}

static void ws_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct ws_conn *c = w->data;
    if (c->state == WS_HTTP || c->closing) {
        ws_conn_destroy(c); /* no request head in time, or the close never completed */
        return;
    }
    uint64_t iv_ms = (uint64_t)c->srv->cfg->ws_ping_interval * 1000u;
    if (clock_mono_ms() - c->last_rx >= 2 * iv_ms) {
        ws_conn_close(c, 1001, "no pong");
    } else {
        struct wslay_event_msg m = { WSLAY_PING, (const uint8_t *)"", 0 };
        ws_ctx_ensure(c);
        wslay_event_queue_msg(c->ws, &m);
    }
    ws_conn_update(c);
}

/* ---- listener ---- */

static void ws_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct ws_server *s = w->data;
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(s->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment instead of
                 * spinning on a listener that stays readable. */
                log_warn("tcp: accept: %s; pausing accepts", strerror(errno));
                ev_io_stop(loop, &s->accept_io);
                ev_timer_set(&s->accept_pause, WS_ACCEPT_PAUSE, 0.); /* a fired one-shot would restart at ~0 */
                ev_timer_start(loop, &s->accept_pause);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct ws_conn *c = xcalloc(1, sizeof *c);
        c->srv = s;
        c->fd = fd;
        c->peer = REGISTRY_NIL;
        c->state = WS_HTTP;
        addr_from_sockaddr(&c->addr, (struct sockaddr *)&ss, sl);
        c->http = xmalloc(sizeof *c->http);
        http_reader_init(c->http);
        c->over_limit = s->nconns >= (unsigned)s->cfg->max_connections;
        if (c->over_limit)
            ws_count_limit(s, STATS_L_CONNECTIONS);
        c->exempt = (uint8_t)config_cidrs_has(&s->cfg->rate_exempt, &c->addr);
        c->via_proxy = (uint8_t)config_cidrs_has(&s->cfg->trusted_proxies, &c->addr);
        int ip_over = 0;
        if (s->per_ip && !c->exempt && !c->via_proxy) {
            c->ip_counted = (uint8_t)connlimit_add(s->per_ip, &c->addr,
                                                   (unsigned)s->cfg->max_connections_per_ip);
            ip_over = !c->ip_counted;
        }
        ev_io_init(&c->rio, ws_on_read, fd, EV_READ);
        ev_io_init(&c->wio, ws_on_write, fd, EV_WRITE);
        c->rio.data = c->wio.data = c;
        ev_init(&c->timer, ws_on_timer);
        c->timer.data = c;
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        if (ip_over) {
            /* Over the per-IP cap: 503 and close, whatever the request. */
            ws_count_limit(s, STATS_L_CONNECTIONS_PER_IP);
            ws_http_error(c, 503, "too many connections from this address", "Retry-After: 1\r\n", 0);
            ws_conn_set_timer(c, WS_HEAD_TIMEOUT, 0.);
            ws_conn_update(c);
            continue;
        }
        ev_io_start(loop, &c->rio);
        ws_conn_set_timer(c, WS_HEAD_TIMEOUT, 0.);
    }
}

static void ws_on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct ws_server *s = w->data;
    ev_io_start(loop, &s->accept_io);
}

struct ws_server *ws_new(struct ev_loop *loop, const struct config *cfg, struct tracker *t,
                         unsigned udp_port, char *err, size_t errcap)
{
    unsigned port = cfg->ws_port ? (unsigned)cfg->ws_port : udp_port;
    struct addr bound;
    int family;
    int fd = net_bind(cfg->bind, (uint16_t)port, SOCK_STREAM, 0, &bound, &family);
    if (fd < 0 || listen(fd, 1024) != 0) {
        snprintf(err, errcap, "tcp: cannot listen on %s port %u: %s", cfg->bind, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct ws_server *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->cfg = cfg;
    s->tracker = t;
    s->fd = fd;
    s->started = clock_mono_ms();
    s->bound = bound;
    if (cfg->max_connections_per_ip > 0)
        s->per_ip = connlimit_new((size_t)cfg->max_connections + 1024);
    crypto_generichash(s->access_hash, sizeof s->access_hash, (const unsigned char *)cfg->access_key,
                       strlen(cfg->access_key), NULL, 0);
    crypto_generichash(s->metrics_hash, sizeof s->metrics_hash, (const unsigned char *)cfg->metrics_key,
                       strlen(cfg->metrics_key), NULL, 0);
    s->owner = pthread_self();
    pthread_mutex_init(&s->box_lock, NULL);
    ev_async_init(&s->wake, ws_on_wake);
    s->wake.data = s;
    ev_async_start(loop, &s->wake);
    tracker_set_ws_sink(t, ws_sink_send, ws_sink_close, s);
    ev_io_init(&s->accept_io, ws_on_accept, fd, EV_READ);
    s->accept_io.data = s;
    ev_timer_init(&s->accept_pause, ws_on_accept_pause, WS_ACCEPT_PAUSE, 0.);
    s->accept_pause.data = s;
    ev_io_start(loop, &s->accept_io);
    return s;
}

void ws_free(struct ws_server *s)
{
    if (!s)
        return;
    while (s->conns)
        ws_conn_destroy(s->conns);
    ev_io_stop(s->loop, &s->accept_io);
    ev_timer_stop(s->loop, &s->accept_pause);
    ev_async_stop(s->loop, &s->wake);
    close(s->fd);
    connlimit_free(s->per_ip);
    pthread_mutex_destroy(&s->box_lock);
    free(s->box);
    free(s->drain);
    free(s);
}

unsigned ws_shutdown(struct ws_server *s)
{
    ev_io_stop(s->loop, &s->accept_io);
    ev_timer_stop(s->loop, &s->accept_pause);
    struct ws_conn *c = s->conns;
    while (c) {
        struct ws_conn *next = c->next; /* c may be destroyed below */
        if (c->state == WS_OPEN && !c->closing) {
            ws_conn_close(c, 1001, "server shutting down");
            ws_conn_update(c);
        } else if (c->state == WS_HTTP) {
            ws_conn_destroy(c);
        }
        c = next;
    }
    return s->nconns;
}

unsigned ws_open(const struct ws_server *s) { return s->nconns; }

const struct addr *ws_bound(const struct ws_server *s) { return &s->bound; }
unsigned ws_connections(const struct ws_server *s) { return s->nws; }
