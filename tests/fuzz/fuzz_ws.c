/* fuzz_ws: WebSocket frames from a client, as punchd handles them.
 *
 * Input: one byte of settings (how many cut sizes follow, compat, the
 * message limit, a tight message rate), the cut sizes, then the client's byte stream after the
 * upgrade. Two things are checked on it:
 *  - wsframe_scan, fed in the cut chunks, reports exactly the headers an
 *    independent whole-stream parser finds, and on a refusal reports where
 *    the refused header began;
 *  - a wslay server context driven the way ws.c drives one: the recv
 *    callback serves the stream chunk by chunk (then end of stream), runs
 *    the same header checks through wsframe_scan, the send callback takes a
 *    fuzzed number of bytes per write event and discards them, text messages
 *    are UTF-8 checked (proto_utf8_valid, compared with a reference) and go
 *    to a real tracker, whose replies must be JSON objects in valid UTF-8.
 * ws.c's callbacks are static and own sockets, so their policy is mirrored
 * here (ws_frame_check, the verdict handling, ws_msg_take, the sinks); keep the two in
 * step when ws.c changes. */
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "config.h"
#include "fuzz.h"
#include "proto.h"
#include "registry.h"
#include "tracker.h"
#include "ratelimit.h"
#include "wsframe.h"

#define FUZZ_WS_MAX_HEADERS 4096

/* ---- wsframe_scan against a reference parser ---- */

struct fuzz_hdr {
    uint8_t opcode, fin, masked;
    uint64_t payload_len, msg_len;
    size_t start; /* stream offset of the header's first byte */
};

struct fuzz_hdrs {
    size_t n;
    struct fuzz_hdr h[FUZZ_WS_MAX_HEADERS];
};

/* The headers of stream[0..len), parsed in one pass (RFC 6455 5.2). */
static void fuzz_ws_ref_headers(const uint8_t *s, size_t len, struct fuzz_hdrs *out)
{
    size_t i = 0;
    uint64_t msg = 0;
    out->n = 0;
    while (i + 2 <= len && out->n < FUZZ_WS_MAX_HEADERS) {
        size_t need = 2;
        uint8_t l7 = s[i + 1] & 0x7f;
        need += l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
        need += (s[i + 1] & 0x80) ? 4 : 0;
        if (need > len - i)
            break;
        uint64_t pl = l7;
        if (l7 == 126)
            pl = (uint64_t)s[i + 2] << 8 | s[i + 3];
        else if (l7 == 127)
            for (int k = 0; k < 8; k++)
                pl = (k ? pl << 8 : 0) | s[i + 2 + k];
        struct fuzz_hdr *h = &out->h[out->n++];
        h->opcode = s[i] & 0x0f;
        h->fin = s[i] >> 7;
        h->masked = s[i + 1] >> 7;
        h->payload_len = pl;
        h->start = i;
        if (!(h->opcode & 8))
            msg = h->opcode == 0 ? (msg > UINT64_MAX - pl ? UINT64_MAX : msg + pl) : pl;
        h->msg_len = msg;
        if (pl > len - i - need)
            break; /* the payload runs past the stream */
        i += need + (size_t)pl;
    }
}

struct fuzz_scan_rec {
    struct fuzz_hdrs got;
    size_t refuse_at; /* 1-based header index to refuse; 0 = never */
};

static int fuzz_ws_record(const struct wsframe_info *f, void *user)
{
    struct fuzz_scan_rec *r = user;
    FUZZ_CHECK(r->got.n < FUZZ_WS_MAX_HEADERS);
    struct fuzz_hdr *h = &r->got.h[r->got.n++];
    h->opcode = f->opcode, h->fin = f->fin, h->masked = f->masked;
    h->payload_len = f->payload_len, h->msg_len = f->msg_len;
    return r->got.n == r->refuse_at ? 1 : 0;
}

static void fuzz_ws_scan(const uint8_t *stream, size_t len, const uint8_t *cuts, size_t ncuts,
                         size_t refuse_at)
{
    static struct fuzz_hdrs ref;
    static struct fuzz_scan_rec rec;
    fuzz_ws_ref_headers(stream, len, &ref);
    if (ref.n >= FUZZ_WS_MAX_HEADERS)
        return; /* beyond what the reference keeps; not a finding */
    struct wsframe_scan s;
    wsframe_init(&s);
    rec.got.n = 0;
    rec.refuse_at = refuse_at;
    size_t off = 0, ci = 0;
    int refused = 0;
    while (off < len && !refused) {
        size_t chunk = cuts[ci++ % ncuts];
        if (chunk == 0 || chunk > len - off)
            chunk = len - off;
        uint8_t *piece = malloc(chunk); /* exact size: over-reads are caught */
        if (!piece)
            abort();
        memcpy(piece, stream + off, chunk);
        int rc = wsframe_scan(&s, piece, chunk, fuzz_ws_record, &rec);
        free(piece);
        if (rc != 0) {
            FUZZ_CHECK(rc == 1 && rec.got.n == refuse_at);
            /* Where the refused header began, relative to this chunk. */
            size_t start = ref.h[refuse_at - 1].start;
            FUZZ_CHECK(s.stop == (start >= off ? start - off : 0));
            FUZZ_CHECK(s.stop < chunk);
            refused = 1;
        }
        off += chunk;
    }
    FUZZ_CHECK(rec.got.n == ref.n || (refused && rec.got.n == refuse_at));
    for (size_t i = 0; i < rec.got.n; i++) {
        const struct fuzz_hdr *a = &rec.got.h[i], *b = &ref.h[i];
        FUZZ_CHECK(a->opcode == b->opcode && a->fin == b->fin && a->masked == b->masked);
        FUZZ_CHECK(a->payload_len == b->payload_len && a->msg_len == b->msg_len);
    }
}

/* ---- a WebSocket connection as ws.c runs it ---- */

struct fuzz_conn {
    wslay_event_context_ptr ws;
    struct tracker *t;
    const struct config *cfg;
    const uint8_t *stream;
    size_t len, off, avail;     /* bytes [off, avail) may be read now */
    size_t send_budget;         /* bytes the peer takes in this write event */
    struct wsframe_scan scan;
    uint16_t verdict;
    int closing;
    uint32_t peer;
    uint64_t now;
    struct ratelimit_bucket msgs; /* ws.c's per-connection message bucket */
    uint64_t last_limited;      /* when rateLimited was last sent; 0 = never */
};

static void fuzz_ws_detach(struct fuzz_conn *c)
{
    if (c->peer != REGISTRY_NIL) {
        uint32_t pi = c->peer;
        c->peer = REGISTRY_NIL;
        tracker_ws_closed(c->t, c, pi);
    }
}

static void fuzz_ws_close(struct fuzz_conn *c, uint16_t code, const char *reason)
{
    if (!c->closing) {
        c->closing = 1;
        wslay_event_send(c->ws);
        wslay_event_queue_close(c->ws, code, (const uint8_t *)reason, strlen(reason));
    }
    fuzz_ws_detach(c);
}

/* ws.c's ws_frame_check, mirrored. */
static int fuzz_ws_frame_check(const struct wsframe_info *f, void *user)
{
    const struct fuzz_conn *c = user;
    if (f->opcode & 0x8)
        return f->opcode == 0x8 && f->payload_len == 1 ? 1002 : 0;
    if (f->opcode == 0x2)
        return 1003;
    if (f->msg_len > (uint64_t)c->cfg->ws_max_message)
        return 1009;
    return 0;
}

static void fuzz_ws_verdict(struct fuzz_conn *c)
{
    fuzz_ws_close(c, c->verdict, "refused");
    wslay_event_shutdown_read(c->ws);
}

static ssize_t fuzz_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    struct fuzz_conn *c = user;
    if (c->verdict) {
        fuzz_ws_verdict(c);
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (c->off == c->avail) {
        /* End of this read event, or of the stream (the peer closed). */
        wslay_event_set_error(ctx, c->avail == c->len ? WSLAY_ERR_CALLBACK_FAILURE : WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = c->avail - c->off < len ? c->avail - c->off : len;
    memcpy(buf, c->stream + c->off, n);
    c->off += n;
    int code = wsframe_scan(&c->scan, buf, n, fuzz_ws_frame_check, c);
    if (code != 0) {
        FUZZ_CHECK(code == 1002 || code == 1003 || code == 1009);
        FUZZ_CHECK(c->scan.stop < n);
        c->verdict = (uint16_t)code;
        if (c->scan.stop > 0)
            return (ssize_t)c->scan.stop;
        fuzz_ws_verdict(c);
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return (ssize_t)n;
}

static ssize_t fuzz_ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                            void *user)
{
    (void)data;
    (void)flags;
    struct fuzz_conn *c = user;
    if (c->send_budget == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < c->send_budget ? len : c->send_budget;
    c->send_budget -= n;
    return (ssize_t)n;
}

/* ws.c's ws_msg_take: rate_requests_per_sec per connection, the shared bucket. */
static int fuzz_ws_msg_take(struct fuzz_conn *c)
{
    return ratelimit_bucket_take(&c->msgs, (double)c->cfg->rate_requests_per_sec,
                                 (double)c->cfg->rate_requests_burst, 1, c->now);
}

static void fuzz_ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                        void *user)
{
    struct fuzz_conn *c = user;
    if (c->closing)
        return;
    /* Refused at the header, so never seen here. */
    FUZZ_CHECK(arg->opcode != WSLAY_BINARY_FRAME);
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME: {
        FUZZ_CHECK(arg->msg_length <= (size_t)c->cfg->ws_max_message);
        int ok = proto_utf8_valid(arg->msg, arg->msg_length);
        FUZZ_CHECK(ok == fuzz_utf8_ref(arg->msg, arg->msg_length));
        if (!ok) {
            fuzz_ws_close(c, 1007, "invalid UTF-8");
            wslay_event_shutdown_read(ctx);
            return;
        }
        struct tracker_src src = { .transport = TRACKER_WS, .conn = c, .conn_peer = &c->peer };
        fuzz_addr(&src.addr, 0, 7, 50000);
        c->now += 250; /* time moves between messages */
        if (!fuzz_ws_msg_take(c)) {
            tracker_ws_rate_limited(c->t, &src, c->now);
            return;
        }
        tracker_on_ws_message(c->t, (const char *)arg->msg, arg->msg_length, &src, c->now);
        return;
    }
    case WSLAY_CONNECTION_CLOSE:
        c->closing = 1;
        fuzz_ws_detach(c);
        return;
    default:
        return;
    }
}

static const struct wslay_event_callbacks fuzz_ws_callbacks = {
    .recv_callback = fuzz_ws_recv,
    .send_callback = fuzz_ws_send,
    .on_msg_recv_callback = fuzz_ws_msg,
};

/* The tracker's sinks: every message must be JSON (and WebSocket text). */
static void fuzz_ws_sink(void *ctx, void *conn, const char *buf, size_t len)
{
    struct fuzz_conn *c = ctx;
    FUZZ_CHECK(conn == c);
    FUZZ_CHECK(fuzz_json_object(buf, len));
    if (memmem(buf, len, "\"rateLimited\"", 13)) {
        /* At most once per second (per source IP; one connection here). */
        FUZZ_CHECK(c->last_limited == 0 || c->now - c->last_limited >= 1000);
        c->last_limited = c->now;
    }
    if (c->closing)
        return;
    struct wslay_event_msg m = { WSLAY_TEXT_FRAME, (const uint8_t *)buf, len };
    if (wslay_event_queue_msg(c->ws, &m) != 0) {
        fuzz_ws_close(c, 1011, "cannot queue message");
        return;
    }
    if (wslay_event_get_queued_msg_length(c->ws) > (size_t)c->cfg->ws_max_queued)
        wslay_event_send(c->ws);
    if (wslay_event_get_queued_msg_length(c->ws) > (size_t)c->cfg->ws_max_queued)
        fuzz_ws_close(c, 1008, "reader too slow");
}

static void fuzz_ws_sink_close(void *ctx, void *conn, uint16_t code)
{
    struct fuzz_conn *c = ctx;
    FUZZ_CHECK(conn == c);
    c->peer = REGISTRY_NIL;
    fuzz_ws_close(c, code, "identity attached elsewhere");
}

static void fuzz_ws_udp_sink(void *ctx, const struct addr *to, uint8_t local, const char *buf, size_t len)
{
    (void)ctx;
    (void)to;
    (void)local;
    FUZZ_CHECK(fuzz_json_object(buf, len));
}

static void fuzz_ws_conn(const uint8_t *stream, size_t len, const uint8_t *cuts, size_t ncuts,
                         uint8_t settings)
{
    struct config cfg;
    char err[256];
    config_defaults(&cfg);
    cfg.compat = (settings & 8) ? CONFIG_COMPAT_SOBANI_APP : CONFIG_COMPAT_README;
    cfg.ws_max_message = 256L << (settings >> 4 & 3);
    cfg.ws_max_queued = 4096;
    cfg.max_peers = 8;
    cfg.relay_max_bytes = 512;
    if (settings & 0x40) { /* tight message rate, reached within a few frames */
        cfg.rate_requests_per_sec = 2;
        cfg.rate_requests_burst = 3;
    }
    FUZZ_CHECK(config_finish(&cfg, err, sizeof err) == 0);

    struct fuzz_conn c = { .cfg = &cfg, .stream = stream, .len = len, .peer = REGISTRY_NIL,
                           .now = 1000000 };
    c.t = tracker_new(&cfg);
    tracker_set_sink(c.t, fuzz_ws_udp_sink, &c);
    tracker_set_ws_sink(c.t, fuzz_ws_sink, fuzz_ws_sink_close, &c);
    FUZZ_CHECK(wslay_event_context_server_init(&c.ws, &fuzz_ws_callbacks, &c) == 0);
    wslay_event_config_set_max_recv_msg_length(c.ws, (uint64_t)cfg.ws_max_message);
    wsframe_init(&c.scan);

    /* One read event per chunk, then a write event; the stream's end is
     * one more read event that sees end of file. */
    size_t ci = 0;
    for (;;) {
        size_t chunk = cuts[ci % ncuts];
        c.send_budget = (size_t)cuts[(ci + 1) % ncuts] * 64;
        ci++;
        if (chunk == 0 || chunk > len - c.avail)
            chunk = len - c.avail;
        c.avail += chunk;
        if (wslay_event_recv(c.ws) != 0)
            break; /* ws.c destroys the connection */
        if (wslay_event_send(c.ws) != 0)
            break;
        if (!wslay_event_want_read(c.ws) && !wslay_event_want_write(c.ws))
            break;
        if (c.avail == len && chunk == 0)
            break; /* end of stream seen and nothing left to read */
    }
    fuzz_ws_detach(&c);
    wslay_event_context_free(c.ws);
    FUZZ_CHECK(registry_count(tracker_registry(c.t)) == 0); /* its only peer went with it */
    tracker_free(c.t);
}

int fuzz_ws_one(const uint8_t *data, size_t size)
{
    fuzz_init();
    fuzz_rand_reset();
    if (size == 0)
        return 0;
    uint8_t settings = data[0];
    size_t ncuts = (size_t)(settings & 7) + 1;
    if (ncuts > size - 1)
        ncuts = size - 1;
    static const uint8_t whole[1] = { 0 };
    const uint8_t *cuts = ncuts ? data + 1 : whole;
    if (!ncuts)
        ncuts = 1;
    const uint8_t *stream = data + 1 + (cuts == whole ? 0 : ncuts);
    size_t len = size - (size_t)(stream - data);
    fuzz_ws_scan(stream, len, cuts, ncuts, cuts[0] % 8);
    fuzz_ws_conn(stream, len, cuts, ncuts, settings);
    return 0;
}
