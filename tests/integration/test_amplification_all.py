"""Issue 5, first bullet: the anti-amplification rule holds for every request
shape — every action and every error, including the ones added since the core
(probe, relay, retry cookies, the access key, the rate limits): every UDP reply
is at most 4x the bytes of its request and at most max_datagram. Datagrams that
are not replies (income, relayed) are at most max_datagram.

Each shape is sent at its natural size and padded to several sizes, from its
own socket; then sync() (test_abuse_helpers) marks the point where punchd has
handled it, and every datagram that arrived on that socket is measured — none
is missed, and no silence has to be waited out. Every case also names the
answers it may get, and each test checks that the answers it set out to
provoke (every error code) really were measured, so a shape that silently
stopped exercising its path fails.

Set TEST_ABUSE_REPORT=1 to print the largest ratio seen per answer."""
import json
import os
import socket
import sys
import unittest

from harness import PunchdTestCase, encode, ipv6_loopback_available, padded
from test_abuse_helpers import Udp, fresh_ip, sync

PAD_SIZES = (None, 64, 100, 160, 256, 400, 700, 1000, 1472)
PROBE_IP = "127.0.0.2"
KEY = "amp-key"
RESULTS = {}   # answer -> (largest reply/request ratio, request bytes, reply bytes)
SILENT = "(no reply)"


def answer_of(obj):
    a = obj.get("action")
    if a == "error":
        return "error:" + str(obj.get("data", {}).get("code"))
    return a


def tearDownModule():
    if os.environ.get("TEST_ABUSE_REPORT") == "1":
        print("\nlargest reply/request ratio per answer:", file=sys.stderr)
        for k in sorted(RESULTS):
            ratio, req, rep = RESULTS[k]
            print(f"  {k:<28} {ratio:5.2f}x  ({rep} B to a {req} B request)", file=sys.stderr)


class AmpCase(PunchdTestCase):
    """Shared measuring; subclasses set server_flags and define tests."""
    server_kwargs = {}
    key = None
    sync_family = socket.AF_INET

    def setUp(self):
        super().setUp()
        self.seen = set()

    def sock(self, ip=None):
        u = Udp(self.server, ip or fresh_ip(net=250))
        self.addCleanup(u.close)
        return u

    def measure(self, u, msg, allowed, to=None, sizes=PAD_SIZES, fresh=None, watch=()):
        """Sends msg (a dict, or bytes as they are) from u at each size in sizes
        (None = natural; dicts only), or from fresh() each time if given; checks
        every datagram that came back, and every one that reached a socket in
        watch (not replies: max_datagram only). allowed: the answers (actions,
        "error:<code>", or SILENT) it may get. Returns the parsed replies."""
        out = []
        variants = [msg] if isinstance(msg, (bytes, bytearray)) else []
        if not variants:
            natural = len(encode(msg))
            for size in sizes:
                if size is None:
                    variants.append(msg)
                elif size > natural + 10 and size <= self.server.max_datagram:
                    variants.append(padded(msg, size))
        for v in variants:
            s = fresh() if fresh else u
            req = s.send(v, to)
            sync(self.server, key=self.key, family=self.sync_family, to=to)
            replies = s.drain()
            for raw in replies:
                self.assertLessEqual(len(raw), 4 * len(req),
                                     f"amplification: {len(raw)} B reply to a {len(req)} B request:\n"
                                     f"  {req[:300]!r}\n  -> {raw[:300]!r}")
                self.assertLessEqual(len(raw), self.server.max_datagram, raw[:200])
                obj = json.loads(raw)
                ans = answer_of(obj)
                self.assertIn(ans, allowed, f"{req[:200]!r} -> {raw[:300]!r}")
                self.seen.add(ans)
                ratio = len(raw) / len(req)
                if ratio > RESULTS.get(ans, (0,))[0]:
                    RESULTS[ans] = (ratio, len(req), len(raw))
                out.append(obj)
            if not replies:
                self.assertIn(SILENT, allowed, f"no reply to {req[:200]!r}")
                self.seen.add(SILENT)
            self.assertLessEqual(len(replies), 1, replies)
            for w in watch:
                for raw in w.drain():
                    self.assertLessEqual(len(raw), self.server.max_datagram, raw[:200])
                    self.seen.add("notify:" + json.loads(raw)["action"])
        return out

    def announce(self, u, **fields):
        msg = dict({"action": "announce"}, **fields)
        if self.key:
            msg["key"] = self.key
        r = u.request(padded(msg, 256))
        self.assertIn(r["action"], ("announceReceived", "announced"), r)
        return r["data"]

    def assertSeen(self, *answers):
        missing = set(answers) - self.seen
        self.assertFalse(missing, f"never provoked: {sorted(missing)}; seen {sorted(self.seen)}")


class MainServerTest(AmpCase):
    server_flags = ("--probe-bind", PROBE_IP, "--relay-max-bytes", "2000", "--relay-bytes-per-sec", "3000")

    def test_announce_shapes(self):
        new = lambda: self.sock()  # noqa: E731  (a stranger each time: a new peer)
        ok = {"announceReceived", SILENT}
        self.measure(None, {"action": "announce"}, ok, fresh=new)
        self.measure(None, {"action": "announce", "multiaddr": "/ip4/198.51.100.1/udp/4001/" + "m" * 220},
                     ok, fresh=new)
        self.measure(None, {"action": "announce", "candidates": [f"192.168.1.{i}:40000" for i in range(8)],
                            "pubkey": "A" * 64}, ok, fresh=new)
        self.measure(None, {"action": "announce", "cookie": "x" * 22}, ok, fresh=new)  # ignored below the threshold
        a = self.sock()
        d = self.announce(a)
        self.measure(a, {"action": "announce"}, ok)                                     # again: same id
        self.measure(a, {"action": "announce", "shareId": d["shareId"], "token": d["token"]}, ok)
        mover = self.sock()
        md = self.announce(mover)
        self.measure(None, {"action": "announce", "shareId": md["shareId"], "token": md["token"]}, ok,
                     fresh=new)                                                           # a move each time
        bad = {"error:badRequest", SILENT}
        self.measure(a, {"action": "announce", "shareId": d["shareId"]}, bad)             # no token
        self.measure(a, {"action": "announce", "shareId": 12345678, "token": d["token"]}, bad)
        self.measure(a, {"action": "announce", "multiaddr": "m" * 257}, bad)
        self.measure(a, {"action": "announce", "candidates": ["nope"]}, bad)
        self.measure(a, {"action": "announce", "pubkey": "not base64 !"}, bad)
        b = self.sock()
        bd = self.announce(b)
        self.measure(a, {"action": "announce", "shareId": bd["shareId"], "token": bd["token"]}, bad)
        self.measure(a, {"action": "announce", "shareId": d["shareId"], "token": "0" * 32},
                     {"error:unauthorized", SILENT})
        self.assertSeen("announceReceived", "error:badRequest", "error:unauthorized")

    def test_pulse_alive_shapes(self):
        a = self.sock()
        d = self.announce(a)
        ok = {"pulseReceived", SILENT}
        self.measure(a, {"action": "pulse"}, ok)
        self.measure(a, {"action": "pulse", "override": True, "ip": "198.51.100.4", "port": 40000,
                         "token": d["token"]}, ok)
        self.measure(a, {"action": "pulse", "override": True, "ip": "198.51.100.4", "port": "40000"}, ok)
        self.measure(a, {"action": "pulse", "multiaddr": "/dns4/x/udp/1", "candidates": ["10.0.0.1:5"]}, ok)
        self.measure(a, {"action": "pulse", "override": True, "ip": "not-an-ip", "port": 1, "token": d["token"]},
                     {"error:badRequest", SILENT})
        self.measure(a, {"action": "pulse", "override": "yes"}, {"error:badRequest", SILENT})
        self.measure(a, {"action": "pulse", "shareId": True, "token": "f" * 32}, {"error:unauthorized", SILENT})
        # Renewing changes the id and token: each renewal uses the token the last one returned.
        r = self.sock()
        rd = self.announce(r)
        tok = rd["token"]
        for size in (None, 64, 160, 400, 1472):
            msg = {"action": "pulse", "shareId": True, "token": tok}
            got = self.measure(r, msg, ok, sizes=(size,))
            if not got:
                continue   # that size is below the request's own
            rep = got[0]
            if "token" not in rep["data"]:
                break   # too small for the new token: it was dropped to fit, the renewal stands
            tok = rep["data"]["token"]
        self.measure(a, {"action": "alive"}, {"alived", SILENT})
        stranger = self.sock()
        self.measure(stranger, {"action": "pulse"}, {"error:notAnnounced", SILENT})
        self.measure(stranger, {"action": "alive"}, {"error:notAnnounced", SILENT})
        self.assertSeen("pulseReceived", "alived", "error:badRequest", "error:unauthorized",
                        "error:notAnnounced")

    def test_push_shapes(self):
        a, b = self.sock(), self.sock()
        ad = self.announce(a, candidates=[f"10.0.0.{i}:1000" for i in range(8)], pubkey="B" * 64)
        bd = self.announce(b, multiaddr="/ip4/203.0.113.9/udp/9/" + "x" * 200,
                           candidates=[f"10.1.0.{i}:1000" for i in range(8)], pubkey="C" * 64)
        self.measure(a, {"action": "push", "shareId": bd["shareId"]}, {"pushReceived", SILENT}, watch=[b])
        self.measure(a, {"action": "push", "shareId": "00000000"}, {"error:unknownShareId", SILENT})
        self.measure(a, {"action": "push", "shareId": ad["shareId"]}, {"error:unknownShareId", SILENT})
        self.measure(a, {"action": "push", "shareId": 5}, {"error:badRequest", SILENT})
        self.measure(self.sock(), {"action": "push", "shareId": bd["shareId"]}, {"error:notAnnounced", SILENT})
        self.assertSeen("pushReceived", "notify:income", "error:unknownShareId", "error:badRequest",
                        "error:notAnnounced")

    def test_relay_shapes(self):
        a, b = self.sock(), self.sock()
        ad, bd = self.announce(a), self.announce(b)
        payload = {"sdp": "v=0 " + "s" * 100}
        self.measure(a, {"action": "relay", "shareId": bd["shareId"], "token": ad["token"], "data": payload},
                     {SILENT}, sizes=(None, 400), watch=[b])
        self.measure(a, {"action": "relay", "shareId": bd["shareId"], "data": payload},
                     {"error:unauthorized", SILENT})
        self.measure(a, {"action": "relay", "shareId": bd["shareId"], "token": ad["token"]},
                     {"error:badRequest", SILENT})
        self.measure(a, {"action": "relay", "shareId": ad["shareId"], "token": ad["token"], "data": 1},
                     {"error:badRequest", SILENT})
        self.measure(a, {"action": "relay", "shareId": "zzzzzzzz", "token": ad["token"], "data": 1},
                     {"error:unknownShareId", SILENT})
        # Numbers that grow when re-serialised (1e9 -> 1000000000): a request
        # under max_datagram whose payload is over relay_max_bytes (tooLarge),
        # or whose relayed datagram would not fit one (unreachable).
        c = self.sock()
        cd = self.announce(c)
        raw = ('{"action":"relay","shareId":"%s","token":"%s","data":[%s]}'
               % (bd["shareId"], cd["token"], ",".join(["1e9"] * 170))).encode()
        self.measure(c, raw, {"error:unreachable", "error:rateLimited"}, watch=[b])
        raw200 = ('{"action":"relay","shareId":"%s","token":"%s","data":[%s]}'
                  % (bd["shareId"], cd["token"], ",".join(["1e9"] * 200))).encode()
        self.measure(c, raw200, {"error:tooLarge"}, watch=[b])
        # The relay bucket (3000 B/s per identity): a few big relays empty it.
        d = self.sock()
        dd = self.announce(d)
        big = {"action": "relay", "shareId": bd["shareId"], "token": dd["token"], "data": "r" * 1000}
        for _ in range(4):
            self.measure(d, big, {SILENT, "error:rateLimited"}, sizes=(None,), watch=[b])
        self.assertSeen("notify:relayed", "error:unauthorized", "error:badRequest", "error:unknownShareId",
                        "error:tooLarge", "error:unreachable", "error:rateLimited")

    def test_probe_shapes(self):
        a = self.sock()
        d = self.announce(a)
        probe_to = (PROBE_IP, self.server.port)
        self.measure(a, {"action": "probe", "shareId": d["shareId"], "token": d["token"]},
                     {"probeReceived", SILENT}, to=probe_to)
        self.measure(a, {"action": "probe", "shareId": d["shareId"], "token": "0" * 32},
                     {"error:unauthorized", SILENT}, to=probe_to)
        self.measure(a, {"action": "probe", "shareId": d["shareId"]}, {"error:badRequest", SILENT}, to=probe_to)
        self.measure(a, {"action": "announce"}, {"error:badRequest", SILENT}, to=probe_to)
        self.measure(a, {"action": "probe", "shareId": d["shareId"], "token": d["token"]},
                     {"error:badRequest", SILENT})   # on the main socket
        ws, wd = self.ws_announced()                 # a peer with no UDP side
        self.measure(a, {"action": "probe", "shareId": wd["shareId"], "token": wd["token"]},
                     {"error:notAnnounced", SILENT}, to=probe_to)
        self.measure(a, b"garbage", {SILENT}, to=probe_to)
        self.assertSeen("probeReceived", "error:unauthorized", "error:badRequest", "error:notAnnounced")

    def test_malformed_and_unknown(self):
        u = self.sock()
        self.measure(u, {"action": "nope"}, {"error:unknownAction", SILENT})
        self.measure(u, {"action": 7}, {"error:badRequest", SILENT})
        self.measure(u, {"foo": "bar"}, {"error:badRequest", SILENT})
        for raw in (b"{}", b'{"a":1}', b"", b"x", b"[]", b"null", b'{"action":"announce"', b"\xff" * 50,
                    b'{"action":"announce"}{"action":"announce"}', b"[" * 1000, b'{"a":' * 400 + b"1" + b"}" * 400,
                    encode(padded({"action": "announce"}, self.server.max_datagram + 1)), b"\x00" * 1472):
            self.measure(u, raw, {SILENT, "error:badRequest"})
        self.assertSeen("error:unknownAction", "error:badRequest", SILENT)


class SmallDatagramTest(AmpCase):
    """max_datagram 256: nothing larger is ever sent, income and relayed included."""
    server_flags = ("--max-datagram", "256")

    def test_everything_fits_256(self):
        a, b = self.sock(), self.sock()
        ad = self.announce(a, candidates=[f"10.0.0.{i}:1000" for i in range(8)], pubkey="D" * 64)
        bd = self.announce(b, candidates=[f"10.1.0.{i}:1000" for i in range(8)], pubkey="E" * 64)
        self.measure(a, {"action": "push", "shareId": bd["shareId"]}, {"pushReceived", SILENT}, watch=[b])
        self.measure(a, {"action": "relay", "shareId": bd["shareId"], "token": ad["token"], "data": "x"},
                     {SILENT}, watch=[b], sizes=(None, 200))
        self.measure(a, {"action": "announce"}, {"announceReceived", SILENT})
        self.measure(a, {"action": "nope"}, {"error:unknownAction", SILENT})
        self.assertSeen("pushReceived", "notify:income", "notify:relayed", "announceReceived")


class AppVocabularyTest(AmpCase):
    server_flags = ("--compat", "sobani-app")

    def test_app_answers(self):
        a, b, s = self.sock(), self.sock(), self.sock()
        self.measure(None, {"action": "announce"}, {"announced", SILENT}, fresh=self.sock)
        self.announce(a)
        bd = self.announce(b)
        self.measure(a, {"action": "push", "shareId": bd["shareId"]}, {"pushed", SILENT}, watch=[b])
        for action in ("pulse", "alive", "push"):
            self.measure(s, {"action": action, "shareId": bd["shareId"]} if action == "push" else {"action": action},
                         {"expired", SILENT})
        self.assertSeen("announced", "pushed", "expired")


class FullTest(AmpCase):
    server_flags = ("--max-peers", "2")

    def test_full(self):
        self.announce(self.sock())
        self.announce(self.sock())
        self.measure(self.sock(), {"action": "announce"}, {"error:full", SILENT})
        self.assertSeen("error:full")


class RetryCookieTest(AmpCase):
    server_flags = ("--max-peers", "4", "--retry-threshold", "0.5")

    def test_retry_and_cookies(self):
        self.announce(self.sock())
        self.announce(self.sock())
        u = self.sock()
        [r] = self.measure(u, b'{"action":"announce"}', {"error:retry"})
        cookie = r["data"]["cookie"]
        self.measure(None, {"action": "announce", "cookie": cookie}, {"error:retry", SILENT},
                     fresh=self.sock)                                  # someone else's cookie
        self.measure(u, {"action": "announce", "cookie": "A" * 22}, {"error:retry", SILENT})
        self.measure(u, {"action": "announce", "cookie": cookie}, {"announceReceived"}, sizes=(None,))
        self.assertSeen("error:retry", "announceReceived")


class LimitsTest(AmpCase):
    """The answers of the limits: rateLimited (requests, income), unauthorized (access key)."""
    server_flags = ("--rate-requests-per-sec", "1", "--rate-requests-burst", "3",
                    "--rate-income-per-sec", "1", "--rate-income-burst", "1", "--access-key", KEY,
                    "--rate-response-bytes-per-sec", "0", "--retry-threshold", "1")
    server_kwargs = {"limits": True}
    key = KEY

    def test_limit_answers(self):
        # unauthorized: a fresh IP each time, so the once-a-second notice is due.
        self.measure(None, {"action": "announce"}, {"error:unauthorized"}, fresh=self.sock)
        # rateLimited for requests: a fresh IP, its burst of 3 spent, then measured.
        for size in PAD_SIZES:
            u = self.sock()
            for _ in range(3):
                u.send({"action": "alive", "key": KEY})
            sync(self.server, key=KEY)
            u.drain()
            self.measure(u, {"action": "alive", "key": KEY}, {"error:rateLimited"}, sizes=(size,))
        # rateLimited for a push: the target's income bucket (burst 1) spent.
        t = self.sock()
        td = self.announce(t)
        for size in PAD_SIZES:
            p2 = self.sock()
            self.announce(p2)
            self.measure(p2, {"action": "push", "shareId": td["shareId"], "key": KEY},
                         {"pushReceived", "error:rateLimited", SILENT}, sizes=(size,), watch=[t])
        self.assertSeen("error:unauthorized", "error:rateLimited")


class Ipv6Test(AmpCase):
    """Over IPv6 (longer addresses in every reply), when loopback has it."""
    server_kwargs = {"bind": "::1"}
    server_flags = ()
    sync_family = socket.AF_INET6

    @classmethod
    def setUpClass(cls):
        if not ipv6_loopback_available():
            raise unittest.SkipTest("no IPv6 loopback")
        super().setUpClass()

    def v6(self):
        u = Udp(self.server, "::1")
        self.addCleanup(u.close)
        return u

    def test_ipv6_addresses_are_longer(self):
        self.measure(None, {"action": "announce"}, {"announceReceived", SILENT}, fresh=self.v6)
        a, b = self.v6(), self.v6()
        self.announce(a)
        bd = self.announce(b)
        self.measure(a, {"action": "push", "shareId": bd["shareId"]}, {"pushReceived", SILENT}, watch=[b])
        self.measure(a, {"action": "pulse", "override": True, "ip": "2001:db8::1234:5678:9abc:def0", "port": 65535,
                         "token": "0" * 32}, {"pulseReceived", SILENT})
        self.assertSeen("announceReceived", "pushReceived", "notify:income", "pulseReceived")
