/* test_client_stream: libpunch's reliable ordered stream, driven with a fake
 * clock over a simulated path that loses, duplicates and reorders frames:
 * every message arrives once, in order; the bye comes last; flow control and
 * selective acks behave. */
#include "client_unit.h"

/* What a receiver got. */
struct cu_sink {
    uint8_t buf[1 << 20];
    size_t len;
    int msgs;
    int fin;
    int refuse;      /* refuse deliveries (no room) */
};

static int cu_deliver(void *ctx, const uint8_t *data, size_t len, int fin)
{
    struct cu_sink *s = ctx;
    if (s->refuse)
        return -1;
    assert_false(s->fin); /* nothing after the bye */
    if (fin) {
        s->fin = 1;
        return 0;
    }
    assert_true(s->len + len <= sizeof s->buf);
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    s->msgs++;
    return 0;
}

/* One direction of the path: frames in flight with their arrival time. */
#define CU_PIPE 4096
struct cu_pipe {
    struct {
        uint64_t at;
        size_t n;
        uint8_t f[PUNCH_FRAME_MAX];
    } q[CU_PIPE];
    int n;
};

struct cu_net {
    uint64_t seed;
    unsigned loss_pct, dup_pct, jitter_ms, delay_ms;
    struct cu_pipe ab, ba;
    uint64_t sent;
};

static void cu_net_send(struct cu_net *net, struct cu_pipe *p, const uint8_t *f, size_t n, uint64_t now)
{
    net->sent++;
    int copies = 1;
    if (cu_below(&net->seed, 100) < net->loss_pct)
        copies = 0;
    else if (cu_below(&net->seed, 100) < net->dup_pct)
        copies = 2;
    for (int c = 0; c < copies && p->n < CU_PIPE; c++) {
        p->q[p->n].at = now + net->delay_ms + (net->jitter_ms ? cu_below(&net->seed, net->jitter_ms) : 0);
        p->q[p->n].n = n;
        memcpy(p->q[p->n].f, f, n);
        p->n++;
    }
}

/* Delivers every frame due by now (in arrival-time order: jitter reorders). */
static void cu_net_arrive(struct cu_pipe *p, uint64_t now, struct punch_stream *to, struct cu_sink *sink)
{
    for (;;) {
        int best = -1;
        for (int i = 0; i < p->n; i++)
            if (p->q[i].at <= now && (best < 0 || p->q[i].at < p->q[best].at))
                best = i;
        if (best < 0)
            return;
        uint8_t f[PUNCH_FRAME_MAX];
        size_t n = p->q[best].n;
        memcpy(f, p->q[best].f, n);
        p->q[best] = p->q[--p->n];
        assert_int_equal(punch_stream_input(to, f, n, now, cu_deliver, sink), 0);
    }
}

static void cu_flush(struct punch_stream *s, struct cu_net *net, struct cu_pipe *p, uint64_t now)
{
    uint8_t f[PUNCH_FRAME_MAX];
    size_t n;
    int guard = 0;
    while ((n = punch_stream_next(s, now, f, sizeof f)) > 0) {
        cu_net_send(net, p, f, n, now);
        assert_true(++guard < 10000);
    }
}

/* Runs A -> B with msgs random messages of the given sizes, B -> A with
 * replies, both closing at the end; returns the time it took. */
static uint64_t cu_run(struct cu_net *net, int msgs, size_t maxlen)
{
    static struct punch_stream a, b;
    static struct cu_sink sa, sb;
    static uint8_t sent_ab[1 << 20], sent_ba[1 << 20];
    size_t nab = 0, nba = 0;
    punch_stream_init(&a);
    punch_stream_init(&b);
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    uint64_t now = 1000, seed = net->seed ^ 0x5555;
    int queued_a = 0, queued_b = 0;
    while (!(punch_stream_finished(&a) && punch_stream_finished(&b))) {
        assert_true(now < 1000 + 600000); /* ten minutes of fake time: something is stuck */
        while (queued_a < msgs && punch_stream_room(&a) > 0) {
            size_t n = 1 + cu_below(&seed, (uint32_t)maxlen);
            uint8_t m[PUNCH_MSG_MAX];
            for (size_t i = 0; i < n; i++)
                m[i] = (uint8_t)cu_rand(&seed);
            assert_int_equal(punch_stream_queue(&a, m, n, 0), 0);
            memcpy(sent_ab + nab, m, n);
            nab += n;
            queued_a++;
        }
        if (queued_a == msgs && !a.fin_queued)
            assert_int_equal(punch_stream_queue(&a, NULL, 0, 1), 0);
        while (queued_b < msgs / 2 && punch_stream_room(&b) > 0) {
            uint8_t m[3] = {(uint8_t)queued_b, (uint8_t)(queued_b >> 8), 0xab};
            assert_int_equal(punch_stream_queue(&b, m, 3, 0), 0);
            memcpy(sent_ba + nba, m, 3);
            nba += 3;
            queued_b++;
        }
        if (queued_b == msgs / 2 && !b.fin_queued)
            assert_int_equal(punch_stream_queue(&b, NULL, 0, 1), 0);
        cu_flush(&a, net, &net->ab, now);
        cu_flush(&b, net, &net->ba, now);
        now += 1;
        cu_net_arrive(&net->ab, now, &b, &sb);
        cu_net_arrive(&net->ba, now, &a, &sa);
    }
    assert_int_equal(sb.len, nab);
    assert_memory_equal(sb.buf, sent_ab, nab);
    assert_int_equal(sb.msgs, msgs);
    assert_true(sb.fin);
    assert_int_equal(sa.len, nba);
    assert_memory_equal(sa.buf, sent_ba, nba);
    assert_true(sa.fin);
    return now - 1000;
}

static void test_clean_path(void **state)
{
    (void)state;
    struct cu_net *net = calloc(1, sizeof *net);
    net->seed = 1;
    net->delay_ms = 10;
    cu_run(net, 300, PUNCH_MSG_MAX);
    /* no loss: each message goes out once (plus acks) */
    assert_true(net->sent < 300 * 2 + 200);
    free(net);
}

static void test_lossy_reordering_path(void **state)
{
    (void)state;
    struct cu_net *net = calloc(1, sizeof *net);
    for (uint64_t seed = 1; seed <= 6; seed++) {
        memset(net, 0, sizeof *net);
        net->seed = seed * 7919;
        net->loss_pct = 20;
        net->dup_pct = 10;
        net->jitter_ms = 30;
        net->delay_ms = 5;
        cu_run(net, 200, 300);
    }
    free(net);
}

static void test_window_and_queue_limits(void **state)
{
    (void)state;
    static struct punch_stream s;
    punch_stream_init(&s);
    uint8_t m[4] = {1, 2, 3, 4}, f[PUNCH_FRAME_MAX];
    for (int i = 0; i < PUNCH_STREAM_SLOTS - 1; i++)
        assert_int_equal(punch_stream_queue(&s, m, sizeof m, 0), 0);
    assert_int_equal(punch_stream_room(&s), 0);
    assert_int_equal(punch_stream_queue(&s, m, sizeof m, 0), PUNCH_E_AGAIN);
    /* A full queue still takes the bye (its own slot); then nothing more. */
    static struct punch_stream full;
    full = s;
    assert_int_equal(punch_stream_queue(&full, NULL, 0, 1), 0);
    assert_int_equal(punch_stream_queue(&s, m, 0, 0), PUNCH_E_INVAL);
    uint8_t big[PUNCH_MSG_MAX + 1] = {0};
    assert_int_equal(punch_stream_queue(&s, big, sizeof big, 0), PUNCH_E_INVAL);
    /* Only a window's worth goes out before an ack. */
    int sent = 0;
    while (punch_stream_next(&s, 100, f, sizeof f) > 0)
        sent++;
    assert_int_equal(sent, PUNCH_STREAM_WINDOW);
    assert_int_equal(s.snd_nxt, PUNCH_STREAM_WINDOW);
    /* Nothing more is due until the RTO... */
    assert_int_equal(punch_stream_next(&s, 100 + s.rto_ms - 1, f, sizeof f), 0);
    assert_int_equal(punch_stream_deadline(&s, 100), 100 + s.rto_ms);
    /* ...then the oldest is retransmitted first. */
    size_t n = punch_stream_next(&s, 100 + s.rto_ms, f, sizeof f);
    assert_true(n > 0);
    assert_int_equal(f[0], PUNCH_F_DATA);
    assert_int_equal(punch_get32(f + 2), 0);
    /* The backoff doubles: the same message is not due again one RTO later. */
    uint64_t t = 100 + 2 * (uint64_t)s.rto_ms;
    while ((n = punch_stream_next(&s, t, f, sizeof f)) > 0)
        assert_int_not_equal(punch_get32(f + 2), 0);
    /* Stall: unacknowledged data has waited since it first went out. */
    uint64_t waited = 0;
    assert_true(punch_stream_stalled(&s, 5000, &waited));
    assert_int_equal(waited, 4900);
    /* A bye after data, and nothing after the bye. */
    static struct punch_stream s2;
    punch_stream_init(&s2);
    assert_int_equal(punch_stream_queue(&s2, NULL, 0, 1), 0);
    assert_int_equal(punch_stream_queue(&s2, m, sizeof m, 0), PUNCH_E_STATE);
    assert_int_equal(punch_stream_queue(&s2, NULL, 0, 1), PUNCH_E_STATE);
    assert_int_equal(punch_stream_room(&s2), 0);
}

static void test_selective_ack_spares_retransmissions(void **state)
{
    (void)state;
    static struct punch_stream a, b;
    static struct cu_sink sink;
    punch_stream_init(&a);
    punch_stream_init(&b);
    memset(&sink, 0, sizeof sink);
    uint8_t m = 'x', f[PUNCH_FRAME_MAX], frames[10][PUNCH_FRAME_MAX];
    size_t lens[10];
    for (int i = 0; i < 10; i++)
        assert_int_equal(punch_stream_queue(&a, &m, 1, 0), 0);
    for (int i = 0; i < 10; i++)
        lens[i] = punch_stream_next(&a, 10, frames[i], sizeof frames[i]);
    /* Message 0 is lost; 1..9 arrive and are held, not delivered. */
    for (int i = 1; i < 10; i++)
        assert_int_equal(punch_stream_input(&b, frames[i], lens[i], 20, cu_deliver, &sink), 0);
    assert_int_equal(sink.msgs, 0);
    size_t n = punch_stream_next(&b, 20, f, sizeof f);
    assert_int_equal(f[0], PUNCH_F_ACK);
    assert_int_equal(punch_get32(f + 2), 0);              /* still waiting for 0 */
    assert_int_equal(punch_get32(f + 6), 0x1ffu);         /* but holds 1..9 */
    assert_int_equal(punch_stream_input(&a, f, n, 30, cu_deliver, &sink), 0);
    /* At the RTO only message 0 goes again. */
    int resent = 0;
    while ((n = punch_stream_next(&a, 10 + 10000, f, sizeof f)) > 0) {
        assert_int_equal(punch_get32(f + 2), 0);
        resent++;
        assert_int_equal(punch_stream_input(&b, f, n, 10 + 10000, cu_deliver, &sink), 0);
    }
    assert_int_equal(resent, 1);
    assert_int_equal(sink.msgs, 10); /* the gap filled: all delivered in order */
}

static void test_flow_control_redelivery(void **state)
{
    (void)state;
    static struct punch_stream a, b;
    static struct cu_sink sink;
    punch_stream_init(&a);
    punch_stream_init(&b);
    memset(&sink, 0, sizeof sink);
    uint8_t m[2] = {'h', 'i'}, f[PUNCH_FRAME_MAX];
    assert_int_equal(punch_stream_queue(&a, m, 2, 0), 0);
    size_t n = punch_stream_next(&a, 0, f, sizeof f);
    sink.refuse = 1; /* the application has no room */
    assert_int_equal(punch_stream_input(&b, f, n, 1, cu_deliver, &sink), 0);
    assert_int_equal(sink.msgs, 0);
    n = punch_stream_next(&b, 1, f, sizeof f);
    assert_int_equal(punch_get32(f + 2), 0); /* not acknowledged while not taken */
    sink.refuse = 0;
    punch_stream_redeliver(&b, cu_deliver, &sink);
    assert_int_equal(sink.msgs, 1);
    assert_int_equal(sink.len, 2);
    n = punch_stream_next(&b, 2, f, sizeof f);
    assert_int_equal(punch_get32(f + 2), 1);
}

static void test_malformed_frames(void **state)
{
    (void)state;
    static struct punch_stream s;
    static struct cu_sink sink;
    punch_stream_init(&s);
    memset(&sink, 0, sizeof sink);
    uint8_t f[PUNCH_FRAME_MAX + 8] = {0};
    f[0] = PUNCH_F_DATA;
    assert_int_equal(punch_stream_input(&s, f, 13, 0, cu_deliver, &sink), -1);   /* short header */
    assert_int_equal(punch_stream_input(&s, f, sizeof f, 0, cu_deliver, &sink), -1); /* too long */
    f[1] = 1;                                                                     /* FIN with data */
    assert_int_equal(punch_stream_input(&s, f, 20, 0, cu_deliver, &sink), -1);
    f[0] = 9;
    assert_int_equal(punch_stream_input(&s, f, 20, 0, cu_deliver, &sink), -1);
    /* An ack for data never sent changes nothing. */
    f[0] = PUNCH_F_ACK;
    punch_put32(f + 2, 500);
    punch_put32(f + 6, 0xffffffffu);
    assert_int_equal(punch_stream_input(&s, f, 10, 0, cu_deliver, &sink), 0);
    assert_int_equal(s.snd_una, 0);
    /* Data far outside the window is dropped (but acknowledged). */
    f[0] = PUNCH_F_DATA;
    f[1] = 0;
    punch_put32(f + 2, 1000);
    punch_put32(f + 6, 0);
    assert_int_equal(punch_stream_input(&s, f, 20, 0, cu_deliver, &sink), 0);
    assert_int_equal(sink.msgs, 0);
    assert_true(s.ack_due);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_path),
        cmocka_unit_test(test_lossy_reordering_path),
        cmocka_unit_test(test_window_and_queue_limits),
        cmocka_unit_test(test_selective_ack_spares_retransmissions),
        cmocka_unit_test(test_flow_control_redelivery),
        cmocka_unit_test(test_malformed_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
