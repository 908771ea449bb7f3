/* fuzz_client: libpunch's parsers of untrusted bytes and its reliable stream.
 *
 * libpunch reads what a tracker (possibly malicious, or a forged datagram)
 * and a peer send. Input: one mode byte, then:
 *  - mode bit 0 clear: the rest is a tracker message for punch_msg_parse
 *    (every field bounded, terminated, addresses valid) and an endpoint for
 *    punch_addr_parse (what parses, formats and parses back the same);
 *  - mode bit 0 set: a script for two punch_stream ends over a channel the
 *    input controls (drop, duplicate, reorder, delay, the receiver short of
 *    room). Each side must deliver exactly the other's messages, in order,
 *    each once, the FIN last; malformed frames are refused; and
 *    after the script a lossless channel delivers everything that was queued. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "punch_int.h"

/* ---- tracker messages and endpoints ---- */

static void fuzz_client_check_addr(const struct punch_addr *a)
{
    FUZZ_CHECK(a->family == AF_INET || a->family == AF_INET6);
}

static void fuzz_client_msg(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1); /* exact size: over-reads are caught */
    struct punch_msg *m = malloc(sizeof *m);
    if (!buf || !m)
        abort();
    if (size)
        memcpy(buf, data, size);
    int rc = punch_msg_parse(buf, size, m);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        FUZZ_CHECK(memchr(m->share_id, 0, sizeof m->share_id) != NULL);
        FUZZ_CHECK(memchr(m->token, 0, sizeof m->token) != NULL);
        FUZZ_CHECK(memchr(m->peer_id, 0, sizeof m->peer_id) != NULL);
        FUZZ_CHECK(memchr(m->code, 0, sizeof m->code) != NULL);
        FUZZ_CHECK(memchr(m->cookie, 0, sizeof m->cookie) != NULL);
        FUZZ_CHECK(m->relay_len <= PUNCH_RELAY_MAX && m->relay[m->relay_len] == '\0');
        FUZZ_CHECK(m->ncand >= 0 && m->ncand <= PUNCH_MAX_CANDIDATES);
        FUZZ_CHECK(m->npred >= 0 && m->npred <= PUNCH_MAX_PREDICTED);
        FUZZ_CHECK(m->ttl >= 0);
        if (m->has_addr)
            fuzz_client_check_addr(&m->addr);
        if (m->has_probe)
            fuzz_client_check_addr(&m->probe);
        if (m->has_peeraddr)
            fuzz_client_check_addr(&m->peeraddr);
        for (int i = 0; i < m->ncand; i++)
            fuzz_client_check_addr(&m->cand[i]);
        for (int i = 0; i < m->npred; i++)
            fuzz_client_check_addr(&m->pred[i]);
    }
    free(m);

    struct punch_addr a, b;
    if (punch_addr_parse(&a, buf, size) == 0) {
        fuzz_client_check_addr(&a);
        FUZZ_CHECK(a.port >= 1);
        char text[64];
        size_t n = punch_addr_format(&a, text, sizeof text);
        FUZZ_CHECK(n > 0 && n < sizeof text && text[n] == '\0');
        FUZZ_CHECK(punch_addr_parse(&b, text, n) == 0 && punch_addr_equal(&a, &b));
    }
    free(buf);
}

/* ---- two stream ends over a hostile channel ---- */

#define FUZZ_CH_MAX 64                     /* frames in flight per direction */
#define FUZZ_FRAME_MAX (PUNCH_MSG_MAX + 64)

struct fuzz_frame {
    size_t len;
    uint8_t b[FUZZ_FRAME_MAX];
};

struct fuzz_end {
    struct punch_stream s;
    uint32_t queued;          /* messages queued (the FIN not counted) */
    int fin_queued;
    uint32_t delivered;       /* of the other side's messages, in order */
    int fin_delivered;
    int full;                 /* the application says "no room" */
    struct fuzz_end *peer;
};

struct fuzz_chan {
    int n;
    struct fuzz_frame f[FUZZ_CH_MAX];
};

/* Message k of a side: its length and bytes follow from (side, k) alone, so
 * the receiver can check exactly what it gets. */
static size_t fuzz_msg_len(int side, uint32_t k) { return 1 + (k * 37u + (unsigned)side * 11u) % PUNCH_MSG_MAX; }

static void fuzz_msg_fill(int side, uint32_t k, uint8_t *out, size_t len)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)(k * 131u + i * 7u + (unsigned)side);
}

static int fuzz_side(const struct fuzz_end *e, const struct fuzz_end *ends) { return (int)(e - ends); }

static struct fuzz_end *fuzz_ends_base;

/* The receiving end's application. */
static int fuzz_deliver(void *ctx, const uint8_t *data, size_t len, int fin)
{
    struct fuzz_end *e = ctx;
    const struct fuzz_end *from = e->peer;
    if (e->full)
        return -1;
    FUZZ_CHECK(!e->fin_delivered); /* nothing after the FIN */
    if (fin) {
        FUZZ_CHECK(len == 0 && from->fin_queued && e->delivered == from->queued);
        e->fin_delivered = 1;
        return 0;
    }
    /* The next message in order, exactly once, intact. */
    FUZZ_CHECK(e->delivered < from->queued);
    int side = fuzz_side(from, fuzz_ends_base);
    size_t want = fuzz_msg_len(side, e->delivered);
    FUZZ_CHECK(len == want);
    uint8_t *exp = malloc(want);
    if (!exp)
        abort();
    fuzz_msg_fill(side, e->delivered, exp, want);
    FUZZ_CHECK(memcmp(exp, data, len) == 0);
    free(exp);
    e->delivered++;
    return 0;
}

static void fuzz_queue_msg(struct fuzz_end *e, int side, int fin)
{
    if (e->fin_queued)
        return;
    if (fin) {
        FUZZ_CHECK(punch_stream_queue(&e->s, NULL, 0, 1) == 0); /* a bye never waits */
        e->fin_queued = 1;
        return;
    }
    size_t len = fuzz_msg_len(side, e->queued);
    uint8_t buf[PUNCH_MSG_MAX];
    fuzz_msg_fill(side, e->queued, buf, len);
    size_t room = punch_stream_room(&e->s);
    int rc = punch_stream_queue(&e->s, buf, len, 0);
    FUZZ_CHECK(rc == 0 ? room > 0 : rc == PUNCH_E_AGAIN && room == 0);
    if (rc == 0)
        e->queued++;
}

/* e's next due frame into channel c (dropped when c is full). */
static void fuzz_send(struct fuzz_end *e, struct fuzz_chan *c, uint64_t now)
{
    struct fuzz_frame fr;
    fr.len = punch_stream_next(&e->s, now, fr.b, sizeof fr.b);
    FUZZ_CHECK(fr.len <= sizeof fr.b);
    if (fr.len && c->n < FUZZ_CH_MAX)
        c->f[c->n++] = fr;
}

static void fuzz_recv(struct fuzz_end *e, struct fuzz_chan *c, uint64_t now)
{
    if (c->n == 0)
        return;
    struct fuzz_frame *fr = malloc(sizeof *fr);
    if (!fr)
        abort();
    *fr = c->f[0];
    memmove(&c->f[0], &c->f[1], (size_t)(c->n - 1) * sizeof c->f[0]);
    c->n--;
    uint8_t *exact = malloc(fr->len ? fr->len : 1);
    if (!exact)
        abort();
    memcpy(exact, fr->b, fr->len);
    FUZZ_CHECK(punch_stream_input(&e->s, exact, fr->len, now, fuzz_deliver, e) == 0);
    free(exact);
    free(fr);
}

static void fuzz_client_stream(const uint8_t *data, size_t size)
{
    static struct fuzz_end ends[2];
    static struct fuzz_chan ch[2]; /* ch[i]: frames towards end i */
    struct fuzz_in in = { data, size };
    memset(ends, 0, sizeof ends);
    memset(ch, 0, sizeof ch);
    fuzz_ends_base = ends;
    for (int i = 0; i < 2; i++) {
        punch_stream_init(&ends[i].s);
        ends[i].peer = &ends[1 - i];
    }
    uint64_t now = 5000;
    int steps = 0;
    while (in.left > 0 && steps++ < 4000) {
        uint8_t op = fuzz_u8(&in);
        int i = op & 1; /* which end, or which channel */
        struct fuzz_chan *c = &ch[i];
        switch (op >> 1 & 15) {
        case 0: case 1: fuzz_queue_msg(&ends[i], i, 0); break;
        case 2: fuzz_queue_msg(&ends[i], i, 1); break;
        case 3: case 4: fuzz_send(&ends[i], &ch[1 - i], now); break;
        case 5: case 6: fuzz_recv(&ends[i], c, now); break;
        case 7: /* lose the oldest frame */
            if (c->n) {
                memmove(&c->f[0], &c->f[1], (size_t)(c->n - 1) * sizeof c->f[0]);
                c->n--;
            }
            break;
        case 8: /* duplicate it */
            if (c->n && c->n < FUZZ_CH_MAX) {
                memmove(&c->f[1], &c->f[0], (size_t)c->n * sizeof c->f[0]);
                c->n++;
            }
            break;
        case 9: /* reorder the first two */
            if (c->n >= 2) {
                struct fuzz_frame t = c->f[0];
                c->f[0] = c->f[1];
                c->f[1] = t;
            }
            break;
        case 10: now += fuzz_u8(&in); break;
        case 11: now += (uint64_t)fuzz_u8(&in) * 50; break;
        case 12: /* the application runs out of room, or makes some */
            ends[i].full = !ends[i].full;
            if (!ends[i].full)
                punch_stream_redeliver(&ends[i].s, fuzz_deliver, &ends[i]);
            break;
        case 13: { /* a malformed frame (unknown type, or shorter than any
                    * header): refused, changing nothing. A well-formed forged
                    * frame is the wire layer's to refuse (frames are sealed). */
            uint8_t g[24];
            size_t len = fuzz_u8(&in) % sizeof g;
            for (size_t k = 0; k < len; k++)
                g[k] = fuzz_u8(&in);
            if (len >= 10 && (g[0] == 3 || g[0] == 4))
                g[0] ^= 0x80;
            uint8_t *exact = malloc(len ? len : 1);
            if (!exact)
                abort();
            memcpy(exact, g, len);
            FUZZ_CHECK(punch_stream_input(&ends[i].s, exact, len, now, fuzz_deliver, &ends[i]) == -1);
            free(exact);
            break;
        }
        default: /* every due frame out, both ways */
            for (int k = 0; k < 2; k++)
                fuzz_send(&ends[k], &ch[1 - k], now);
            break;
        }
    }
    /* Then a perfect channel: everything queued arrives. */
    for (int k = 0; k < 2; k++) {
        ends[k].full = 0;
        punch_stream_redeliver(&ends[k].s, fuzz_deliver, &ends[k]);
    }
    for (int round = 0; round < 400; round++) {
        int done = 1;
        for (int k = 0; k < 2; k++)
            done &= ends[1 - k].delivered == ends[k].queued &&
                    ends[1 - k].fin_delivered == ends[k].fin_queued;
        if (done)
            break;
        now += PUNCH_RTO_MAX;
        for (int k = 0; k < 2; k++) {
            for (int burst = 0; burst < PUNCH_STREAM_WINDOW + 2; burst++)
                fuzz_send(&ends[k], &ch[1 - k], now);
        }
        for (int k = 0; k < 2; k++)
            while (ch[k].n)
                fuzz_recv(&ends[k], &ch[k], now);
    }
    for (int k = 0; k < 2; k++) {
        FUZZ_CHECK(ends[1 - k].delivered == ends[k].queued);
        FUZZ_CHECK(ends[1 - k].fin_delivered == ends[k].fin_queued);
    }
}

int fuzz_client_one(const uint8_t *data, size_t size)
{
    fuzz_init();
    fuzz_rand_reset();
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_client_stream(data + 1, size - 1);
    else
        fuzz_client_msg(data + 1, size - 1);
    return 0;
}
