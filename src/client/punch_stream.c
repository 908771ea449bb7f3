/* punch_stream: an ordered, reliable message stream over an unreliable
 * datagram path (direct UDP or the relay). Pure: the caller seals the frames
 * it gets from punch_stream_next, and feeds opened frames to
 * punch_stream_input, with the time.
 *
 * Sender: up to PUNCH_STREAM_SLOTS messages queued, PUNCH_STREAM_WINDOW of
 * them in flight; each is retransmitted when its timer (RTO, doubled per
 * try) expires unless the receiver reported it (cumulative ack + a 32-bit
 * selective ack of the messages after it). Receiver: keeps out-of-order
 * messages within the window, delivers in order, acknowledges everything
 * it receives. A FIN is a zero-length message with a flag: the "bye".
 *
 * DATA frame: 3 | flags (1 = FIN) | seq u32 | ack u32 | sack u32 | payload
 * ACK frame:  4 | 0 | ack u32 | sack u32
 * Sequence numbers compare modulo 2^32. */
#include "punch_int.h"

#include <string.h>

#define PUNCH_DATA_HDR 14
#define PUNCH_ACK_LEN 10
#define PUNCH_FLAG_FIN 1

void punch_stream_init(struct punch_stream *s)
{
    memset(s, 0, sizeof *s);
    s->rto_ms = 500; /* before any sample: generous, a NAT may still be settling */
}

int punch_stream_queue(struct punch_stream *s, const uint8_t *data, size_t len, int fin)
{
    if (s->fin_queued)
        return PUNCH_E_STATE;
    if ((!fin && (len == 0 || !data)) || len > PUNCH_MSG_MAX || (fin && len))
        return PUNCH_E_INVAL;
    /* The last slot is kept for the FIN: a bye never waits for room. */
    if (s->snd_end - s->snd_una >= PUNCH_STREAM_SLOTS - (fin ? 0 : 1))
        return PUNCH_E_AGAIN;
    struct punch_stream_out *o = &s->out[s->snd_end % PUNCH_STREAM_SLOTS];
    o->len = (uint16_t)len;
    o->fin = fin ? 1 : 0;
    o->tries = 0;
    o->sent_ms = 0;
    if (len)
        memcpy(o->data, data, len);
    s->snd_end++;
    if (fin)
        s->fin_queued = 1;
    return 0;
}

size_t punch_stream_room(const struct punch_stream *s)
{
    if (s->fin_queued)
        return 0;
    return PUNCH_STREAM_SLOTS - 1 - (s->snd_end - s->snd_una);
}

/* Bit i: message rcv_nxt + 1 + i is held. */
static uint32_t punch_stream_sack(const struct punch_stream *s)
{
    uint32_t bits = 0;
    for (uint32_t i = 0; i + 1 < PUNCH_STREAM_WINDOW; i++)
        if (s->in[(s->rcv_nxt + 1 + i) % PUNCH_STREAM_WINDOW].have)
            bits |= (uint32_t)1 << i;
    return bits;
}

static uint64_t punch_stream_rto(const struct punch_stream *s, const struct punch_stream_out *o)
{
    uint64_t rto = s->rto_ms;
    for (int i = 1; i < o->tries && rto < PUNCH_RTO_MAX; i++)
        rto *= 2;
    return rto < PUNCH_RTO_MAX ? rto : PUNCH_RTO_MAX;
}

/* Writes DATA for seq into frame; its transmission is counted. */
static size_t punch_stream_data(struct punch_stream *s, uint32_t seq, uint64_t now, uint8_t *frame,
                                size_t cap)
{
    struct punch_stream_out *o = &s->out[seq % PUNCH_STREAM_SLOTS];
    if (cap < PUNCH_DATA_HDR + (size_t)o->len)
        return 0;
    frame[0] = PUNCH_F_DATA;
    frame[1] = o->fin ? PUNCH_FLAG_FIN : 0;
    punch_put32(frame + 2, seq);
    punch_put32(frame + 6, s->rcv_nxt);
    punch_put32(frame + 10, punch_stream_sack(s));
    memcpy(frame + PUNCH_DATA_HDR, o->data, o->len);
    if (o->tries < 255)
        o->tries++;
    o->sent_ms = now;
    s->ack_due = 0; /* carried */
    return PUNCH_DATA_HDR + o->len;
}

/* Marks a slot as reported received by a selective ack: tries = 0 and
 * sent_ms = UINT64_MAX mean "do not retransmit". */
static int punch_stream_sacked(const struct punch_stream_out *o) { return o->sent_ms == UINT64_MAX; }

size_t punch_stream_next(struct punch_stream *s, uint64_t now, uint8_t *frame, size_t cap)
{
    for (uint32_t seq = s->snd_una; seq != s->snd_nxt; seq++) {
        struct punch_stream_out *o = &s->out[seq % PUNCH_STREAM_SLOTS];
        if (!punch_stream_sacked(o) && o->sent_ms + punch_stream_rto(s, o) <= now)
            return punch_stream_data(s, seq, now, frame, cap);
    }
    if (s->snd_nxt != s->snd_end && s->snd_nxt - s->snd_una < PUNCH_STREAM_WINDOW) {
        if (s->snd_una == s->snd_nxt)
            s->stall_ms = now;
        size_t n = punch_stream_data(s, s->snd_nxt, now, frame, cap);
        if (n)
            s->snd_nxt++;
        return n;
    }
    if (s->ack_due && cap >= PUNCH_ACK_LEN) {
        frame[0] = PUNCH_F_ACK;
        frame[1] = 0;
        punch_put32(frame + 2, s->rcv_nxt);
        punch_put32(frame + 6, punch_stream_sack(s));
        s->ack_due = 0;
        return PUNCH_ACK_LEN;
    }
    return 0;
}

static void punch_stream_on_ack(struct punch_stream *s, uint32_t ack, uint32_t sack, uint64_t now)
{
    if ((int32_t)(ack - s->snd_una) > 0 && (int32_t)(s->snd_nxt - ack) >= 0) {
        const struct punch_stream_out *last = &s->out[(ack - 1) % PUNCH_STREAM_SLOTS];
        /* Karn: only a message sent once gives an unambiguous sample. */
        if (last->tries == 1 && !punch_stream_sacked(last) && now >= last->sent_ms) {
            double sample = (double)(now - last->sent_ms);
            s->srtt_ms = s->srtt_ms > 0 ? 0.875 * s->srtt_ms + 0.125 * sample : sample;
            double rto = 2 * s->srtt_ms + 50;
            s->rto_ms = rto < PUNCH_RTO_MIN ? PUNCH_RTO_MIN : rto > PUNCH_RTO_MAX ? PUNCH_RTO_MAX : (uint32_t)rto;
        }
        s->snd_una = ack;
        s->stall_ms = now;
    }
    for (uint32_t i = 0; i < 32; i++) {
        if (!(sack & ((uint32_t)1 << i)))
            continue;
        uint32_t seq = ack + 1 + i;
        if ((int32_t)(seq - s->snd_una) >= 0 && (int32_t)(s->snd_nxt - seq) > 0)
            s->out[seq % PUNCH_STREAM_SLOTS].sent_ms = UINT64_MAX;
    }
}

void punch_stream_redeliver(struct punch_stream *s, punch_stream_deliver_fn deliver, void *ctx)
{
    while (!s->fin_received) {
        struct punch_stream_in *in = &s->in[s->rcv_nxt % PUNCH_STREAM_WINDOW];
        if (!in->have || deliver(ctx, in->data, in->len, in->fin) != 0)
            break;
        in->have = 0;
        if (in->fin)
            s->fin_received = 1;
        s->rcv_nxt++;
        s->ack_due = 1;
    }
}

int punch_stream_input(struct punch_stream *s, const uint8_t *frame, size_t n, uint64_t now,
                       punch_stream_deliver_fn deliver, void *ctx)
{
    if (n >= PUNCH_ACK_LEN && frame[0] == PUNCH_F_ACK) {
        punch_stream_on_ack(s, punch_get32(frame + 2), punch_get32(frame + 6), now);
        return 0;
    }
    if (n < PUNCH_DATA_HDR || frame[0] != PUNCH_F_DATA || n - PUNCH_DATA_HDR > PUNCH_MSG_MAX)
        return -1;
    int fin = (frame[1] & PUNCH_FLAG_FIN) != 0;
    if (fin && n != PUNCH_DATA_HDR)
        return -1;
    uint32_t seq = punch_get32(frame + 2);
    punch_stream_on_ack(s, punch_get32(frame + 6), punch_get32(frame + 10), now);
    s->ack_due = 1; /* even a duplicate: our previous ack may have been lost */
    uint32_t off = seq - s->rcv_nxt;
    if (off < PUNCH_STREAM_WINDOW && !s->fin_received) {
        struct punch_stream_in *in = &s->in[seq % PUNCH_STREAM_WINDOW];
        if (!in->have) {
            in->have = 1;
            in->fin = (uint8_t)fin;
            in->len = (uint16_t)(n - PUNCH_DATA_HDR);
            memcpy(in->data, frame + PUNCH_DATA_HDR, in->len);
        }
    }
    punch_stream_redeliver(s, deliver, ctx);
    return 0;
}

uint64_t punch_stream_deadline(const struct punch_stream *s, uint64_t now)
{
    if (s->ack_due)
        return now;
    if (s->snd_nxt != s->snd_end && s->snd_nxt - s->snd_una < PUNCH_STREAM_WINDOW)
        return now;
    uint64_t t = UINT64_MAX;
    for (uint32_t seq = s->snd_una; seq != s->snd_nxt; seq++) {
        const struct punch_stream_out *o = &s->out[seq % PUNCH_STREAM_SLOTS];
        if (punch_stream_sacked(o))
            continue;
        uint64_t due = o->sent_ms + punch_stream_rto(s, o);
        if (due < t)
            t = due;
    }
    return t;
}

int punch_stream_stalled(const struct punch_stream *s, uint64_t now, uint64_t *for_ms)
{
    if (s->snd_una == s->snd_nxt)
        return 0;
    *for_ms = now > s->stall_ms ? now - s->stall_ms : 0;
    return 1;
}

int punch_stream_finished(const struct punch_stream *s)
{
    return s->fin_queued && s->snd_una == s->snd_end && s->fin_received;
}
