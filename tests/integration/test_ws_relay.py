"""relay: WS -> WS, WS -> UDP, UDP -> WS, UDP -> UDP; WS preferred when the target has both; no
reply on success; errors (badRequest, notAnnounced, unknownShareId, unauthorized over UDP without
the token, unreachable past max_datagram, tooLarge past relay_max_bytes, rateLimited past
relay_bytes_per_sec per identity)."""
import json
import time

from harness import PunchdTestCase, encode, flip_hex, gather, padded, scaled
from wsclient import OP_TEXT, build_frame

PAYLOADS = [
    {"type": "offer", "sdp": "v=0\r\no=- 46117314 2 IN IP4 127.0.0.1\r\ns=-\r\n"},
    ["candidate:1 1 UDP 2122260223 192.0.2.1 54400 typ host", 1, 2.5, None, True, False],
    "h\u00e9llo \U0001F389 \t \"quoted\" \\ back </script>",
    42, -7, 3.25, True, False, "", {}, [],
    {"nested": {"deeper": {"list": [[1], [2, [3]]]}}, "n": 1e3},
]


def relayed_len(sender_id, payload):
    """Bytes of the relayed message as compact JSON."""
    return len(encode({"action": "relayed", "data": {"peerShareId": sender_id, "payload": payload}}))


class RelayTest(PunchdTestCase):
    server_flags = ()

    def barrier_ws(self, c):
        """No reply was queued before this point on WS connection c: the next message is the
        answer to an alive."""
        self.assertEqual(c.request_json({"action": "alive"}), {"action": "alived"})

    def barrier_udp(self, u):
        self.assertEqual(u.request({"action": "alive"}), {"action": "alived"})

    def assertRelayed(self, msg, sender_id, payload):
        self.assertEqual(msg, {"action": "relayed", "data": {"peerShareId": sender_id, "payload": payload}})

    def test_ws_to_ws(self):
        a, ad = self.ws_announced()
        b, bd = self.ws_announced()
        for p in PAYLOADS:
            a.send_json({"action": "relay", "shareId": bd["shareId"], "data": p})
            self.assertRelayed(b.recv_json(), ad["shareId"], p)
        self.barrier_ws(a)        # success: no reply to the sender
        # And back.
        b.send_json({"action": "relay", "shareId": ad["shareId"], "data": {"answer": True}})
        self.assertRelayed(a.recv_json(), bd["shareId"], {"answer": True})
        self.barrier_ws(b)

    def test_ws_to_udp(self):
        a, ad = self.ws_announced()
        u, ud = self.announced()
        for p in PAYLOADS:
            a.send_json({"action": "relay", "shareId": ud["shareId"], "data": p})
            self.assertRelayed(u.recv(), ad["shareId"], p)
            self.assertEqual(u.last_src[:2], u.to)
        self.barrier_ws(a)

    def test_udp_to_ws_and_udp(self):
        u, ud = self.announced()
        w, wd = self.ws_announced()
        v, vd = self.announced()
        for target, recv in ((wd["shareId"], w.recv_json), (vd["shareId"], v.recv)):
            for p in PAYLOADS[:4]:
                u.send({"action": "relay", "shareId": target, "token": ud["token"], "data": p})
                self.assertRelayed(recv(), ud["shareId"], p)
            self.barrier_udp(u)   # no reply to the sender

    def test_udp_relay_needs_token(self):
        u, ud = self.announced()
        w, wd = self.ws_announced()
        self.assertError(u.request(padded({"action": "relay", "shareId": wd["shareId"], "data": "x"}, 200)),
                         "unauthorized", message=True)
        self.assertError(u.request(padded({"action": "relay", "shareId": wd["shareId"], "data": "x",
                                           "token": flip_hex(ud["token"])}, 200)), "unauthorized", message=True)
        # Someone else's token does not work either.
        x, xd = self.announced()
        self.assertError(u.request(padded({"action": "relay", "shareId": wd["shareId"], "data": "x",
                                           "token": xd["token"]}, 200)), "unauthorized", message=True)
        w.expect_no_message(scaled(0.1))

    def test_prefers_ws(self):
        w, wd = self.ws_announced()
        u = self.client()
        r = u.request(padded({"action": "announce", "shareId": wd["shareId"], "token": wd["token"]}, 256))
        self.assertEqual(r["data"]["shareId"], wd["shareId"], r)
        a, ad = self.ws_announced()
        big = "y" * 3000          # would not even fit a datagram: WS is used, so no unreachable
        for p in ("small", big):
            a.send_json({"action": "relay", "shareId": wd["shareId"], "data": p})
            self.assertRelayed(w.recv_json(), ad["shareId"], p)
        self.barrier_ws(a)
        self.assertEqual(gather([u], seconds=scaled(0.1))[u], [])

    def test_unreachable_past_max_datagram(self):
        a, ad = self.ws_announced()
        u, ud = self.announced()
        base = relayed_len(ad["shareId"], "")
        fits = "z" * (1472 - base)
        self.assertEqual(relayed_len(ad["shareId"], fits), 1472)
        a.send_json({"action": "relay", "shareId": ud["shareId"], "data": fits})
        data, _ = u.recv_raw()
        self.assertEqual(len(data), 1472)
        self.assertRelayed(json.loads(data), ad["shareId"], fits)
        self.barrier_ws(a)
        r = a.request_json({"action": "relay", "shareId": ud["shareId"], "data": fits + "z"})
        self.assertError(r, "unreachable", message=True)
        r = a.request_json({"action": "relay", "shareId": ud["shareId"], "data": {"blob": "q" * 5000}})
        self.assertError(r, "unreachable", message=True)
        self.assertEqual(gather([u], seconds=scaled(0.1))[u], [])

    def test_errors(self):
        a, ad = self.ws_announced()
        b, bd = self.ws_announced()
        for msg, code in (({"action": "relay", "shareId": bd["shareId"]}, "badRequest"),
                          ({"action": "relay", "data": 1}, "badRequest"),
                          ({"action": "relay", "shareId": 12345678, "data": 1}, "badRequest"),
                          ({"action": "relay", "shareId": {"$ne": None}, "data": 1}, "badRequest"),
                          ({"action": "relay", "shareId": ad["shareId"], "data": 1}, "badRequest"),
                          ({"action": "relay", "shareId": "zzzzzzzz", "data": 1}, "unknownShareId"),
                          ({"action": "relay", "shareId": "", "data": 1}, "unknownShareId")):
            self.assertError(a.request_json(msg), code, message=True)
        stranger = self.ws()
        self.assertError(stranger.request_json({"action": "relay", "shareId": bd["shareId"], "data": 1}),
                         "notAnnounced", message=True)
        u = self.client()
        self.assertError(u.request(padded({"action": "relay", "shareId": bd["shareId"], "data": 1}, 200)),
                         "notAnnounced", message=True)
        b.expect_no_message(scaled(0.1))

    def test_too_large(self):
        a, ad = self.ws_announced()
        b, bd = self.ws_announced()
        at = "x" * (16384 - 2)    # serialised: exactly relay_max_bytes (default 16384)
        self.assertEqual(len(encode(at)), 16384)
        a.send_json({"action": "relay", "shareId": bd["shareId"], "data": at})
        self.assertRelayed(b.recv_json(), ad["shareId"], at)
        self.barrier_ws(a)
        for p in (at + "x", {"k": at}, ["x" * 9000, "y" * 9000]):
            self.assertError(a.request_json({"action": "relay", "shareId": bd["shareId"], "data": p}),
                             "tooLarge", message=True)
        b.expect_no_message(scaled(0.1))

    def test_small_relay_max_bytes_over_udp(self):
        s = self.start_server("--relay-max-bytes", "100")
        u, ud = self.announced(s)
        v, vd = self.announced(s)
        ok = "x" * 98
        u.send({"action": "relay", "shareId": vd["shareId"], "token": ud["token"], "data": ok})
        self.assertRelayed(v.recv(), ud["shareId"], ok)
        r = u.request({"action": "relay", "shareId": vd["shareId"], "token": ud["token"], "data": ok + "x"})
        self.assertError(r, "tooLarge", message=True)
        self.assertEqual(gather([v], seconds=scaled(0.1))[v], [])


class RelayRateTest(PunchdTestCase):
    server_flags = ("--relay-bytes-per-sec", "2000", "--relay-max-bytes", "1000")

    def test_rate_limited_per_identity(self):
        rate, size, n = 2000, 200, 20
        a, ad = self.ws_announced()
        b, bd = self.ws_announced()
        c, cd = self.ws_announced()
        payload = "r" * (size - 2)
        self.assertEqual(len(encode(payload)), size)
        frames = []
        for _ in range(n):
            frames.append(json.dumps({"action": "relay", "shareId": bd["shareId"], "data": payload},
                                     separators=(",", ":")))
        frames.append('{"action":"alive"}')
        t0 = time.monotonic()
        a.send_raw(b"".join(build_frame(OP_TEXT, f) for f in frames))
        limited = 0
        while True:
            r = a.recv_json()
            if r == {"action": "alived"}:
                break
            self.assertError(r, "rateLimited", message=True)
            limited += 1
        elapsed = time.monotonic() - t0
        accepted = n - limited
        for _ in range(accepted):
            self.assertEqual(b.recv_json()["data"]["payload"], payload)
        b.expect_no_message(scaled(0.05))
        self.assertGreaterEqual(accepted, rate // size, "the burst is one second's worth")
        self.assertLessEqual(accepted * size, rate + rate * elapsed + size, f"elapsed {elapsed:.3f}s")
        self.assertGreater(limited, 0)
        # Another identity has its own bucket.
        for _ in range(5):
            c.send_json({"action": "relay", "shareId": bd["shareId"], "data": payload})
        self.assertEqual(c.request_json({"action": "alive"}), {"action": "alived"})
        for _ in range(5):
            self.assertEqual(b.recv_json()["data"]["peerShareId"], cd["shareId"])
        # The bucket refills (200 bytes take a tenth of a second at 2000/s).
        deadline = time.monotonic() + scaled(1.5)
        while True:
            a.send_json({"action": "relay", "shareId": bd["shareId"], "data": payload})
            r = a.request_json({"action": "alive"})
            if r == {"action": "alived"}:
                break
            self.assertError(r, "rateLimited")
            self.assertEqual(a.recv_json(), {"action": "alived"})
            self.assertLess(time.monotonic(), deadline, "the bucket never refilled")
            time.sleep(0.05)
        self.assertEqual(b.recv_json()["data"]["payload"], payload)
