"""Issue 5 on the wire: income per target peer (rate_income_per_sec /
rate_income_burst: over it the push is refused with rateLimited and no income
is sent) and response rate limiting per destination IP
(rate_response_bytes_per_sec, burst twice that) over everything punchd sends by
UDP — replies and income alike.

Forged sources cannot be made on loopback, so many sockets of one loopback
address stand in for "requests claiming that address": whatever they ask, the
bytes punchd sends to it stay within the bucket. Counting is exact (see
test_abuse_helpers.sync); the bounds allow for what refills in the measured
time, never for machine speed."""
import json
import math
import time

from harness import PunchdTestCase, padded
from test_abuse_helpers import Udp, fresh_ip, limited, sync, tally

INCOME_RATE, INCOME_BURST = 1, 3
RESP_RATE = 2000   # bytes per second; burst 4000


def announce(u):
    r = u.request(padded({"action": "announce"}, 128))
    assert r["action"] == "announceReceived", r
    return r["data"]["shareId"]


class IncomeLimitTest(PunchdTestCase):
    server_flags = ("--rate-income-per-sec", str(INCOME_RATE), "--rate-income-burst", str(INCOME_BURST),
                    "--rate-requests-per-sec", "0", "--rate-response-bytes-per-sec", "0",
                    "--retry-threshold", "1")
    server_kwargs = {"limits": True}

    def socks(self, n, ip=None):
        out = [Udp(self.server, ip or fresh_ip(net=210)) for _ in range(n)]
        for s in out:
            self.addCleanup(s.close)
        return out

    def test_push_refused_no_income_sent(self):
        target, other = self.socks(2)
        tid, oid = announce(target), announce(other)
        pushers = self.socks(10)   # ten IPs: the limit is per target, not per pusher
        for p in pushers:
            announce(p)
        before = limited(self.server, "income")
        t0 = time.monotonic()
        replies = []
        for p in pushers:
            replies.append(p.request({"action": "push", "shareId": tid}))
        elapsed = time.monotonic() - t0
        # Each push was fully handled when its reply arrived, and income leaves
        # before the reply: whatever income there was is queued by now.
        incomes = target.drain()
        codes = [r["action"] if r["action"] != "error" else r["data"]["code"] for r in replies]
        pushed = codes.count("pushReceived")
        self.assertLessEqual(set(codes), {"pushReceived", "rateLimited"}, codes)
        self.assertGreaterEqual(pushed, INCOME_BURST, codes)
        self.assertLessEqual(pushed, INCOME_BURST + math.floor(INCOME_RATE * elapsed), (codes, elapsed))
        # A refused push sends nothing to the target: one income per accepted push.
        self.assertEqual(len(incomes), pushed, [json.loads(i) for i in incomes])
        for raw in incomes:
            self.assertEqual(json.loads(raw)["action"], "income")
        # Refused pushes were told (each pusher is its own IP: its own notice).
        self.assertEqual(codes[:pushed], ["pushReceived"] * pushed, "refusals only once the burst is used")
        self.assertEqual(limited(self.server, "income") - before, len(codes) - pushed)
        # Another target is not affected.
        r = pushers[-1].request({"action": "push", "shareId": oid})
        self.assertEqual(r["action"], "pushReceived", r)
        self.assertEqual(json.loads(other.recv())["action"], "income")

    def test_notice_once_per_second_per_pusher_ip(self):
        target = self.socks(1)[0]
        tid = announce(target)
        pusher = self.socks(1)[0]
        announce(pusher)
        t0 = time.monotonic()
        for _ in range(30):
            pusher.send({"action": "push", "shareId": tid})
        elapsed = sync(self.server) - t0
        t = tally(pusher.drain())
        incomes = target.drain()
        self.assertGreaterEqual(t.get("pushReceived", 0), INCOME_BURST, t)
        self.assertLessEqual(t.get("pushReceived", 0), INCOME_BURST + math.floor(INCOME_RATE * elapsed), t)
        self.assertGreaterEqual(t.get("rateLimited", 0), 1, t)
        self.assertLessEqual(t.get("rateLimited", 0), 1 + math.floor(elapsed), t)
        self.assertEqual(len(incomes), t.get("pushReceived", 0))


class IncomeOffTest(PunchdTestCase):
    server_flags = ("--rate-income-per-sec", "0", "--rate-requests-per-sec", "0",
                    "--rate-response-bytes-per-sec", "0", "--retry-threshold", "1")
    server_kwargs = {"limits": True}

    def test_zero_is_off(self):
        target, pusher = Udp(self.server, fresh_ip(net=211)), Udp(self.server, fresh_ip(net=211))
        self.addCleanup(target.close)
        self.addCleanup(pusher.close)
        tid = announce(target)
        announce(pusher)
        for _ in range(100):
            pusher.send({"action": "push", "shareId": tid})
        sync(self.server)
        self.assertEqual(tally(pusher.drain()), {"pushReceived": 100})
        self.assertEqual(len(target.drain()), 100)


class ResponseRateTest(PunchdTestCase):
    server_flags = ("--rate-response-bytes-per-sec", str(RESP_RATE), "--rate-requests-per-sec", "0",
                    "--rate-income-per-sec", "0", "--retry-threshold", "1")
    server_kwargs = {"limits": True}

    def test_bytes_to_one_ip_capped_whoever_asks(self):
        ip = fresh_ip(net=212)
        socks = [Udp(self.server, ip) for _ in range(60)]
        for s in socks:
            self.addCleanup(s.close)
        before = limited(self.server, "response_bytes")
        req = padded({"action": "announce"}, 200)
        t0 = time.monotonic()
        n = 0
        for _ in range(3):
            for s in socks:
                s.send(req)
                n += 1
        elapsed = sync(self.server) - t0
        replies = [r for s in socks for r in s.drain()]
        total = sum(len(r) for r in replies)
        biggest = max(len(r) for r in replies)
        self.assertLessEqual(total, 2 * RESP_RATE + RESP_RATE * elapsed, (total, len(replies), n, elapsed))
        self.assertGreater(total, 2 * RESP_RATE - biggest, "the burst must be usable")
        self.assertLess(len(replies), n)
        # Each request either got its reply or counted at the limit.
        self.assertEqual(limited(self.server, "response_bytes") - before, n - len(replies))
        # Another destination IP has its own budget.
        other = Udp(self.server, fresh_ip(net=212))
        self.addCleanup(other.close)
        self.assertEqual(other.request(req)["action"], "announceReceived")

    def test_income_counts_against_the_victims_ip(self):
        # Peers registered at a "victim" IP (as forged announces would make
        # them), then pushes from many IPs aimed at them: the income bytes that
        # reach the victim IP are capped like any reply.
        victim_ip = fresh_ip(net=213)
        victims = [Udp(self.server, victim_ip) for _ in range(8)]
        for v in victims:
            self.addCleanup(v.close)
        ids = [announce(v) for v in victims]
        attackers = [Udp(self.server, fresh_ip(net=214)) for _ in range(8)]
        for a in attackers:
            self.addCleanup(a.close)
            announce(a)
        # (The victims' own announces used part of the bucket: the bound below
        # holds whatever is left, as a bucket never holds more than its burst.)
        t0 = time.monotonic()
        n = 0
        for k in range(20):
            for a in attackers:
                a.send({"action": "push", "shareId": ids[(k + n) % len(ids)]})
                n += 1
        elapsed = sync(self.server) - t0
        got = [r for v in victims for r in v.drain()]
        total = sum(len(r) for r in got)
        self.assertTrue(all(json.loads(r)["action"] == "income" for r in got))
        self.assertGreater(len(got), 0)
        self.assertLess(len(got), n)
        self.assertLessEqual(total, 2 * RESP_RATE + RESP_RATE * elapsed)
        # The attackers' own replies have their own budgets: not the victim's.
        pushed = sum(tally(a.drain()).get("pushReceived", 0) for a in attackers)
        self.assertGreater(pushed, len(got))
