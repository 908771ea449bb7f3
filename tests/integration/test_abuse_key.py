"""Issue 5 on the wire: the access key (access_key) and the metrics key.
UDP: every request needs "key":K, else unauthorized — the first request per
second per source IP, then silence; the probe socket too. WebSocket upgrades
need ?key=K or Authorization: Bearer K, else 401 (WWW-Authenticate: Bearer);
/healthz stays open; /metrics is open unless metrics_key is set."""
import math
import time
import urllib.parse

from harness import PunchdTestCase, padded
from test_abuse_helpers import Udp, fresh_ip, limited, sync, tally

KEY = "k3y/with+chars"   # printable ASCII; '/' and '+' must be %-encoded in a query
MKEY = "metr1cs-only"
PROBE_IP = "127.0.0.2"
OFF = ("--rate-requests-per-sec", "0", "--rate-income-per-sec", "0",
       "--rate-response-bytes-per-sec", "0", "--retry-threshold", "1")
Q = urllib.parse.quote(KEY, safe="")


class UdpKeyTest(PunchdTestCase):
    server_flags = ("--access-key", KEY, "--probe-bind", PROBE_IP) + OFF
    server_kwargs = {"limits": True}

    def flood_without(self, msg, n=40):
        ip = fresh_ip(net=230)
        socks = [Udp(self.server, ip) for _ in range(5)]
        try:
            t0 = time.monotonic()
            for i in range(n):
                socks[i % 5].send(msg)
            elapsed = sync(self.server, key=KEY) - t0
            return tally([r for s in socks for r in s.drain()]), elapsed
        finally:
            for s in socks:
                s.close()

    def test_missing_or_wrong_key_unauthorized_once_a_second(self):
        before = limited(self.server, "access_key")
        for msg in ({"action": "announce"}, {"action": "announce", "key": "wrong"},
                    {"action": "announce", "key": KEY[:-1]}, {"action": "announce", "key": KEY + "x"},
                    {"action": "announce", "key": KEY.upper()}, {"action": "announce", "key": 1},
                    {"action": "alive", "key": None}, padded({"action": "pulse"}, 300)):
            t, elapsed = self.flood_without(msg)
            self.assertEqual(set(t), {"unauthorized"}, (msg, t))
            self.assertLessEqual(t["unauthorized"], 1 + math.floor(elapsed), (msg, t, elapsed))
        self.assertEqual(limited(self.server, "access_key") - before, 8 * 40)
        # Nothing was admitted: the server has no peers.
        self.assertEqual(self.server.healthz()["peers"], 0)

    def test_garbage_never_answered(self):
        t, _ = self.flood_without(b'{"action":"announce","key":"' + KEY.encode() + b'"', n=20)
        self.assertEqual(t, {})

    def test_right_key_works(self):
        u = Udp(self.server, fresh_ip(net=231))
        self.addCleanup(u.close)
        r = u.request(padded({"action": "announce", "key": KEY}, 200))
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertEqual(u.request({"action": "pulse", "key": KEY})["action"], "pulseReceived")
        self.assertEqual(u.request({"action": "alive", "key": KEY}), {"action": "alived"})
        # A registered peer needs it too.
        r = u.request({"action": "alive"})
        self.assertEqual(r["data"]["code"], "unauthorized", r)

    def test_probe_socket_needs_the_key(self):
        u = Udp(self.server, fresh_ip(net=232))
        self.addCleanup(u.close)
        d = u.request(padded({"action": "announce", "key": KEY}, 200))["data"]
        probe_to = (PROBE_IP, self.server.port)
        self.assertEqual(d["probe"], f"{PROBE_IP}:{self.server.port}")
        r = u.request(padded({"action": "probe", "shareId": d["shareId"], "token": d["token"]}, 200), to=probe_to)
        self.assertEqual(r["data"]["code"], "unauthorized", r)
        r = u.request(padded({"action": "probe", "shareId": d["shareId"], "token": d["token"], "key": KEY}, 200),
                      to=probe_to)
        self.assertEqual(r["action"], "probeReceived", r)

    def test_ws_messages_need_no_key_once_upgraded(self):
        c = self.ws(path=f"/?key={Q}")
        r = c.request_json({"action": "announce"})
        self.assertEqual(r["action"], "announceReceived", r)


class WsKeyTest(PunchdTestCase):
    server_flags = ("--access-key", KEY, "--metrics-key", MKEY) + OFF
    server_kwargs = {"limits": True}

    def upgrade(self, path="/", headers=(), expect=101):
        c = self.conn()
        return c, c.handshake(path, expect=expect, extra=list(headers))

    def test_upgrade_without_key_401(self):
        before = limited(self.server, "access_key", MKEY)
        for path, headers in (("/", ()), ("/?key=", ()), ("/?key=wrong", ()), (f"/?key={KEY}", ()),
                              (f"/?KEY={Q}", ()), ("/", [("Authorization", "Bearer wrong")]),
                              ("/", [("Authorization", f"Basic {KEY}")]),
                              ("/", [("Authorization", f"Bearer {KEY}x")])):
            c, r = self.upgrade(path, headers, expect=401)
            self.assertEqual(r.header("www-authenticate"), "Bearer", r)
            c.expect_eof()
        self.assertEqual(limited(self.server, "access_key", MKEY) - before, 8)

    def test_query_key_forms(self):
        for path in (f"/?key={Q}", f"/?a=1&key={Q}", f"/?key={Q}&b=2"):
            c, _ = self.upgrade(path)
            self.assertEqual(c.request_json({"action": "alive"})["data"]["code"], "notAnnounced")

    def test_bearer_forms(self):
        for value in (f"Bearer {KEY}", f"bearer {KEY}", f"Bearer  {KEY} "):
            c, _ = self.upgrade("/", [("Authorization", value)])
            self.assertEqual(c.request_json({"action": "alive"})["data"]["code"], "notAnnounced")

    def test_healthz_open_metrics_needs_its_own_key(self):
        self.assertEqual(self.server.http("/healthz").status, 200)
        self.assertEqual(self.server.http("/metrics").status, 401)
        self.assertEqual(self.server.http(f"/metrics?key={Q}").status, 401)  # the access key is not it
        self.assertEqual(self.server.http("/metrics", headers={"Authorization": f"Bearer {KEY}"}).status, 401)
        r = self.server.http(f"/metrics?key={MKEY}")
        self.assertEqual(r.status, 200)
        self.assertIn("punchd_limited_total", r.text())
        self.assertEqual(self.server.http("/metrics", headers={"Authorization": f"Bearer {MKEY}"}).status, 200)


class MetricsOpenTest(PunchdTestCase):
    server_flags = ("--access-key", KEY) + OFF
    server_kwargs = {"limits": True}

    def test_metrics_open_without_metrics_key(self):
        self.assertEqual(self.server.http("/metrics").status, 200)
        self.assertEqual(self.server.http("/healthz").status, 200)
        self.assertEqual(self.conn().handshake("/", expect=401).status, 401)
