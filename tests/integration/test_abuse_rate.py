"""Issue 5, request rate limits on the wire: UDP requests per source IP
(rate_requests_per_sec / rate_requests_burst, garbage counts, checked before
parsing), rateLimited at most once a second per IP then silence, garbage never
answered, rate_exempt, 0 = off, ::1, and WebSocket messages per connection.

No assertion depends on the machine's speed: a flood is sent as fast as it
goes, sync() (test_abuse_helpers) marks when punchd had handled all of it, and
the answers counted must lie between the burst and the burst plus what could
refill in the measured time."""
import math
import socket
import time

import unittest

from harness import PunchdTestCase, ipv6_loopback_available, metric, padded, scaled
from test_abuse_helpers import Udp, fresh_ip, limited, sync, tally, tcp_conn, udp_drops

RATE, BURST = 2, 20
OTHERS_OFF = ("--rate-income-per-sec", "0", "--rate-response-bytes-per-sec", "0",
              "--retry-threshold", "1")
ALIVE = {"action": "alive"}   # from a stranger: answered notAnnounced (18 bytes)


def flood(server, ip, n, sockets=10, msg=ALIVE, extra=()):
    """n copies of msg from `sockets` sockets on ip as fast as possible, then
    `extra` (a list of messages) from the first socket. Returns (replies per
    socket, elapsed seconds from the first send to the sync point, datagrams
    the kernel dropped meanwhile: the allowance for lower bounds)."""
    socks = [Udp(server, ip) for _ in range(sockets)]
    try:
        d0 = udp_drops()
        t0 = time.monotonic()
        for i in range(n):
            socks[i % sockets].send(msg)
        for m in extra:
            socks[0].send(m)
        t1 = sync(server)
        return [s.drain() for s in socks], t1 - t0, udp_drops() - d0
    finally:
        for s in socks:
            s.close()


def bounds(elapsed, rate=RATE, burst=BURST):
    """(least, most) requests a bucket admits in a flood that took `elapsed` s."""
    return burst, burst + math.floor(rate * elapsed + 1e-9)


class RequestRateTest(PunchdTestCase):
    server_flags = ("--rate-requests-per-sec", str(RATE), "--rate-requests-burst", str(BURST)) + OTHERS_OFF
    server_kwargs = {"limits": True}

    def test_burst_then_one_notice_then_silence(self):
        ip = fresh_ip()
        before = limited(self.server, "requests")
        n = 200
        per_sock, elapsed, lost = flood(self.server, ip, n)
        replies = [r for rs in per_sock for r in rs]
        t = tally(replies)
        least, most = bounds(elapsed)
        self.assertLessEqual(set(t), {"notAnnounced", "rateLimited"}, t)
        answered, notices = t.get("notAnnounced", 0), t.get("rateLimited", 0)
        # The burst is answered as usual, whatever ports of the IP it comes from.
        self.assertGreaterEqual(answered, least - lost, (t, elapsed, lost))
        self.assertLessEqual(answered, most, (t, elapsed))
        # Over it: one notice a second (the flood took `elapsed`), the rest silence.
        self.assertGreaterEqual(notices, 0 if lost else 1, t)
        self.assertLessEqual(notices, 1 + math.floor(elapsed), (t, elapsed))
        self.assertGreater(n - answered - notices, n // 2, "most of the excess must be silent")
        for raw in replies:
            self.assertLessEqual(len(raw), 4 * len(b'{"action":"alive"}'))
        # Every request over the limit was counted, answered with a notice or not.
        counted = limited(self.server, "requests") - before
        self.assertLessEqual(counted, n - answered)
        self.assertGreaterEqual(counted, n - answered - lost)

    def test_refill_after_time(self):
        ip = fresh_ip()
        per_sock, _, lost = flood(self.server, ip, 100)
        self.assertGreaterEqual(sum(tally(rs).get("notAnnounced", 0) for rs in per_sock), BURST - lost)
        # Waiting is the point here: tokens come back with time, at the rate.
        time.sleep(1.6)
        per_sock, elapsed, lost = flood(self.server, ip, 50)
        t = tally([r for rs in per_sock for r in rs])
        answered = t.get("notAnnounced", 0)
        self.assertGreaterEqual(answered, math.floor(RATE * 1.6) - lost, t)   # 1.6 s at 2/s: 3 tokens
        self.assertLessEqual(answered, bounds(elapsed)[1], t)
        # More than a second since the last notice: the next one is due again.
        self.assertGreaterEqual(t.get("rateLimited", 0), 0 if lost else 1, t)

    def test_garbage_counts_and_is_never_answered(self):
        ip = fresh_ip()
        garbage = [b"not json", b"[1,2,3]", b'{"action":"alive"} trailing', b"\xff\xfe\x00{}", b"", b"{"]
        socks = [Udp(self.server, ip) for _ in range(4)]
        try:
            t0 = time.monotonic()
            for i in range(150):
                socks[i % 4].send(garbage[i % len(garbage)])
            # Right behind the garbage: a real request. The garbage emptied the
            # bucket (it counts, being checked before parsing) but never took
            # the once-a-second notice, so this request gets it.
            socks[0].send(ALIVE)
            elapsed = sync(self.server) - t0
            got = [s.drain() for s in socks]
        finally:
            for s in socks:
                s.close()
        self.assertEqual([len(g) for g in got[1:]], [0, 0, 0], "garbage was answered")
        self.assertLess(BURST + RATE * elapsed, 150, "machine too slow for this test's numbers")
        self.assertEqual(tally(got[0]), {"rateLimited": 1}, got[0])

    def test_ports_share_an_ip_ips_do_not(self):
        a, b = fresh_ip(), fresh_ip()
        socks_a = [Udp(self.server, a) for _ in range(30)]
        sock_b = Udp(self.server, b)
        try:
            t0 = time.monotonic()
            for s in socks_a:       # 30 ports of one IP, one request each
                s.send(ALIVE)
            for _ in range(BURST):  # a neighbour IP's burst, in the middle of it
                sock_b.send(ALIVE)
            elapsed = sync(self.server) - t0
            ta = tally([r for s in socks_a for r in s.drain()])
            tb = tally(sock_b.drain())
        finally:
            for s in socks_a + [sock_b]:
                s.close()
        least, most = bounds(elapsed)
        self.assertGreaterEqual(ta.get("notAnnounced", 0), least, ta)
        self.assertLessEqual(ta.get("notAnnounced", 0), most, ta)
        self.assertEqual(tb, {"notAnnounced": BURST})

    def test_live_peer_limited_too_and_metrics_series(self):
        # A registered peer has no privilege: over its IP's bucket it is limited.
        ip = fresh_ip()
        peer = Udp(self.server, ip)
        try:
            self.assertEqual(peer.request(padded({"action": "announce"}, 128))["action"], "announceReceived")
            d0, t0 = udp_drops(), time.monotonic()
            for _ in range(100):
                peer.send(ALIVE)
            elapsed = sync(self.server) - t0
            lost = udp_drops() - d0
            t = tally(peer.drain())
        finally:
            peer.close()
        least, most = bounds(elapsed)
        self.assertGreaterEqual(t.get("alived", 0), least - 1 - lost, t)   # the announce took one
        self.assertLessEqual(t.get("alived", 0), most - 1, t)
        self.assertGreaterEqual(t.get("rateLimited", 0), 1, t)
        m = self.server.metrics()
        for which in ("requests", "income", "response_bytes", "connections_per_ip", "connections",
                      "access_key", "retry", "max_peers"):
            metric(m, "punchd_limited_total", limit=which)  # every series exists


class ExemptTest(PunchdTestCase):
    server_flags = ("--rate-requests-per-sec", "1", "--rate-requests-burst", "2",
                    "--rate-exempt", "127.201.0.0/16") + OTHERS_OFF
    server_kwargs = {"limits": True}

    def test_exempt_network_unlimited_others_limited(self):
        per_sock, _, lost = flood(self.server, fresh_ip(net=201), 300)
        t = tally([r for rs in per_sock for r in rs])
        self.assertLessEqual(set(t), {"notAnnounced"}, t)
        self.assertGreaterEqual(t.get("notAnnounced", 0), 300 - lost, (t, lost))
        per_sock, elapsed, lost = flood(self.server, fresh_ip(net=202), 300)
        t = tally([r for rs in per_sock for r in rs])
        least, most = bounds(elapsed, 1, 2)
        self.assertGreaterEqual(t.get("notAnnounced", 0), least - lost, t)
        self.assertLessEqual(t.get("notAnnounced", 0), most, t)


    def test_exempt_websocket_messages_unlimited(self):
        c = tcp_conn(self.server, fresh_ip(net=201))
        self.addCleanup(c.close)
        c.handshake()
        for _ in range(60):
            c.send_json(ALIVE)
        codes = [c.recv_json().get("data", {}).get("code") for _ in range(60)]
        self.assertEqual(set(codes), {"notAnnounced"})


class ZeroIsOffTest(PunchdTestCase):
    server_flags = ("--rate-requests-per-sec", "0", "--rate-requests-burst", "1") + OTHERS_OFF
    server_kwargs = {"limits": True}

    def test_zero_turns_the_limit_off(self):
        per_sock, _, lost = flood(self.server, fresh_ip(), 500)
        t = tally([r for rs in per_sock for r in rs])
        self.assertLessEqual(set(t), {"notAnnounced"}, t)
        self.assertGreaterEqual(t.get("notAnnounced", 0), 500 - lost, (t, lost))
        self.assertEqual(limited(self.server, "requests"), 0)


class DefaultsTest(PunchdTestCase):
    """The shipped defaults (100/s, burst 200) are on: loopback is not exempt."""
    server_flags = OTHERS_OFF
    server_kwargs = {"limits": True}

    def test_default_burst_200(self):
        per_sock, elapsed, lost = flood(self.server, fresh_ip(), 600, sockets=20)
        t = tally([r for rs in per_sock for r in rs])
        least, most = bounds(elapsed, 100, 200)
        self.assertGreaterEqual(t.get("notAnnounced", 0), least - lost, (t, elapsed, lost))
        self.assertLessEqual(t.get("notAnnounced", 0), most, (t, elapsed))


@unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback")
class Ipv6LoopbackTest(PunchdTestCase):
    server_flags = ("--rate-requests-per-sec", str(RATE), "--rate-requests-burst", str(BURST)) + OTHERS_OFF
    server_kwargs = {"limits": True, "bind": "::"}

    def test_ipv6_source_limited_ipv4_apart(self):
        socks = [Udp(self.server, "::1") for _ in range(10)]
        v4 = Udp(self.server, fresh_ip())
        try:
            d0, t0 = udp_drops(), time.monotonic()
            for i in range(100):
                socks[i % 10].send(ALIVE)
            for _ in range(BURST):
                v4.send(ALIVE)
            elapsed = sync(self.server, family=socket.AF_INET) - t0
            lost = udp_drops() - d0
            t6 = tally([r for s in socks for r in s.drain()])
            t4 = tally(v4.drain())
        finally:
            for s in socks + [v4]:
                s.close()
        least, most = bounds(elapsed)
        self.assertGreaterEqual(t6.get("notAnnounced", 0), least - lost, t6)
        self.assertLessEqual(t6.get("notAnnounced", 0), most, t6)
        self.assertGreaterEqual(t6.get("rateLimited", 0), 1, t6)
        self.assertEqual(t4, {"notAnnounced": BURST})


class WsMessageRateTest(PunchdTestCase):
    """WebSocket messages get a bucket of the same size per connection."""
    server_flags = ("--rate-requests-per-sec", str(RATE), "--rate-requests-burst", str(BURST)) + OTHERS_OFF
    server_kwargs = {"limits": True}

    def read_all(self, c, quiet):
        """Messages until none arrives for `quiet` seconds."""
        out = []
        while True:
            try:
                out.append(c.recv_json(timeout=quiet))
            except AssertionError:
                return out

    def test_per_connection_bucket(self):
        a = self.ws()
        t0 = time.monotonic()
        for _ in range(80):
            a.send_json(ALIVE)
        got = self.read_all(a, scaled(0.5))
        elapsed = time.monotonic() - t0   # an upper bound on the handling time
        codes = {}
        for m in got:
            k = m.get("data", {}).get("code")
            codes[k] = codes.get(k, 0) + 1
        least, most = bounds(elapsed)
        self.assertLessEqual(set(codes), {"notAnnounced", "rateLimited"}, codes)
        self.assertGreaterEqual(codes.get("notAnnounced", 0), least, codes)
        self.assertLessEqual(codes.get("notAnnounced", 0), most, codes)
        self.assertGreaterEqual(codes.get("rateLimited", 0), 1, codes)
        self.assertLessEqual(codes.get("rateLimited", 0), 1 + math.floor(elapsed), codes)
        # The connection stays open, and a second connection has its own bucket.
        self.assertTrue(a.is_open_now())
        b = self.ws()
        r = b.request_json(ALIVE)
        self.assertEqual(r.get("data", {}).get("code"), "notAnnounced", r)


class UnknownShareIdsPerIpTest(PunchdTestCase):
    """Guessing shareIds: unknownShareId answers per source IP share the
    request rate, across all of the IP's WebSocket connections (each has its
    own message bucket, so without this one IP guesses far faster than over
    UDP). Once over, every push from that IP is refused before the lookup: a
    hit must not tell a guesser anything either."""
    server_flags = ("--rate-requests-per-sec", "1", "--rate-requests-burst", "3",
                    "--max-connections-per-ip", "0") + OTHERS_OFF

    def test_misses_across_connections_are_limited_per_ip(self):
        target, td = self.announced(bind_ip=fresh_ip())
        conns = []
        for _ in range(5):
            c, _ = self.ws_announced()      # each: announce + one push = 2 of its 3
            conns.append(c)
        replies = []
        for c in conns[:4]:
            c.send_json({"action": "push", "shareId": "zzzzzzzz"})
            replies.append(c.recv_json())
        codes = [r.get("data", {}).get("code") for r in replies]
        # Burst 3 misses; the 4th (refill 1/s: at most one more in the test's time) refused.
        self.assertEqual(codes[:3], ["unknownShareId"] * 3, replies)
        self.assertIn(codes[3], ("rateLimited", "unknownShareId"), replies)
        if codes[3] == "unknownShareId":
            conns[3].send_json({"action": "push", "shareId": "zzzzzzzy"})
            r = conns[3].recv_json()
            self.assertEqual(r.get("data", {}).get("code"), "rateLimited", r)
        # A real id from the same IP is refused as well, on a fresh connection.
        conns[4].send_json({"action": "push", "shareId": td["shareId"]})
        r = conns[4].recv_json()
        self.assertEqual(r.get("action"), "error", r)
        self.assertEqual(r["data"]["code"], "rateLimited", r)
        target.expect_silence(0.2)          # no income: the lookup never happened
        self.assertGreaterEqual(limited(self.server, "unknown_share_ids"), 2)
        # Another IP is not affected.
        other, od = self.announced(bind_ip=fresh_ip())
        r = other.request(padded({"action": "push", "shareId": td["shareId"]}, 300))
        self.assertEqual(r.get("action"), "pushReceived", r)
