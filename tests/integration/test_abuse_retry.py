"""Issue 5 on the wire: stateless retry cookies against forged-source state
exhaustion. Above retry_threshold x max_peers, a new UDP peer gets
{"action":"error","data":{"code":"retry","cookie":C}} (within 4x of even a
bare 21-byte announce) and is admitted when it repeats the announce with
"cookie":C from the same address; a cookie from or for another address does
not admit; WebSocket announces and peers already live are unaffected."""
import hashlib
import hmac
import json
import re

from harness import PunchdTestCase, metric, padded
from test_abuse_helpers import Udp, fresh_ip, limited

BARE = b'{"action":"announce"}'
MAX_PEERS = 16
TOKEN_KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
OFF = ("--rate-requests-per-sec", "0", "--rate-income-per-sec", "0", "--rate-response-bytes-per-sec", "0")
COOKIE_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")


class RetryTest(PunchdTestCase):
    server_flags = ("--max-peers", str(MAX_PEERS), "--retry-threshold", "0.5", "--token-key", TOKEN_KEY) + OFF
    server_kwargs = {"limits": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Below the threshold (0.5 x 16 = 8 peers) announces are admitted at
        # once, with no cookie: fill up to it. These peers live all class long
        # (peer_ttl 300 s).
        cls.early = []
        for _ in range(MAX_PEERS // 2):
            u = Udp(cls.server, fresh_ip(net=240))
            raw = u.send(BARE)
            r = json.loads(u.recv())
            assert r["action"] == "announceReceived" and "cookie" not in r["data"], r
            assert len(raw) == 21
            cls.early.append((u, r["data"]["shareId"]))
        cls.addClassCleanup(lambda: [u.close() for u, _ in cls.early])

    def udp(self, ip=None):
        u = Udp(self.server, ip or fresh_ip(net=241))
        self.addCleanup(u.close)
        return u

    def retry_cookie(self, u, req=BARE):
        """Sends req from u and checks the retry answer; returns the cookie."""
        u.send(req)
        raw = u.recv()
        self.assertLessEqual(len(raw), 4 * len(req), raw)
        r = json.loads(raw)
        self.assertEqual(r["action"], "error", r)
        self.assertEqual(r["data"]["code"], "retry", r)
        self.assertRegex(r["data"]["cookie"], COOKIE_RE)
        self.assertLessEqual(set(r["data"]), {"code", "cookie", "message"}, r)
        return r["data"]["cookie"]

    def test_new_peer_gets_a_cookie_in_4x_of_a_bare_announce(self):
        u = self.udp()
        peers = self.server.healthz()["peers"]
        before = limited(self.server, "retry")
        cookie = self.retry_cookie(u)
        # Stateless: nothing was stored for the asker.
        self.assertEqual(self.server.healthz()["peers"], peers)
        self.assertEqual(limited(self.server, "retry") - before, 1)
        self.assertGreaterEqual(metric(self.server.metrics(), "punchd_errors_total", code="retry"), 1)
        # Repeating the announce with the cookie admits it.
        r = u.request({"action": "announce", "cookie": cookie})
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertEqual(self.server.healthz()["peers"], peers + 1)
        # Once live, it needs no cookie any more.
        self.assertEqual(u.request(BARE)["data"]["shareId"], r["data"]["shareId"])
        self.assertEqual(u.request({"action": "pulse"})["action"], "pulseReceived")

    def test_cookie_of_another_address_does_not_admit(self):
        a = self.udp()
        cookie = self.retry_cookie(a)
        same_ip_other_port = self.udp(a.ip)
        other_ip = self.udp()
        for u in (same_ip_other_port, other_ip):
            again = self.retry_cookie(u, json.dumps({"action": "announce", "cookie": cookie}).encode())
            self.assertNotEqual(again, cookie)
        # A cookie with a character changed, cut short, or of another type.
        bad = ("A" if cookie[0] != "A" else "B") + cookie[1:]
        for c in (bad, cookie[:-1], cookie + "A", "", 12345, None, [cookie]):
            self.retry_cookie(a, json.dumps({"action": "announce", "cookie": c}).encode())
        # The genuine one still works for its own address.
        self.assertEqual(a.request({"action": "announce", "cookie": cookie})["action"], "announceReceived")

    def test_live_peers_and_websocket_unaffected(self):
        # Peers admitted before the threshold re-announce, pulse and push freely.
        (u0, id0), (u1, id1) = self.early[0], self.early[1]
        self.assertEqual(u0.request(BARE)["data"]["shareId"], id0)
        self.assertEqual(u0.request({"action": "pulse"})["action"], "pulseReceived")
        self.assertEqual(u0.request({"action": "push", "shareId": id1})["action"], "pushReceived")
        self.assertEqual(json.loads(u1.recv())["action"], "income")
        # A WebSocket announce is admitted at once: its TCP handshake proved the address.
        c, d = self.ws_announced()
        self.assertNotIn("cookie", d)

    def test_reclaim_of_a_dead_id_needs_a_cookie_a_move_does_not(self):
        # Re-claiming an id that is not live would add a peer: it goes through
        # the cookie like any new peer. (Tokens are HMAC-SHA512-256 of the id
        # under token_key, first 16 bytes, so the test can mint one.)
        sid = "Abc123Xy"
        token = hmac.new(bytes.fromhex(TOKEN_KEY), sid.encode(), hashlib.sha512).digest()[:16].hex()
        u = self.udp()
        claim = {"action": "announce", "shareId": sid, "token": token}
        cookie = self.retry_cookie(u, json.dumps(claim).encode())
        r = u.request(padded(dict(claim, cookie=cookie), 128))
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertEqual(r["data"]["shareId"], sid)
        self.assertEqual(r["data"]["token"], token)
        # A live id's token from a new address is a move (no new state): admitted at once.
        mover = self.udp()
        r = mover.request(padded(claim, 128))
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertEqual(r["data"]["shareId"], sid)
        self.assertEqual(r["data"]["addr"], mover.addr)


class RetryOffTest(PunchdTestCase):
    server_flags = ("--max-peers", "4", "--retry-threshold", "1") + OFF
    server_kwargs = {"limits": True}

    def test_threshold_one_is_off(self):
        socks = [Udp(self.server, fresh_ip(net=242)) for _ in range(5)]
        for u in socks:
            self.addCleanup(u.close)
        for u in socks[:4]:
            self.assertEqual(u.request(BARE)["action"], "announceReceived")
        r = socks[4].request(padded({"action": "announce"}, 64))
        self.assertEqual(r["data"]["code"], "full", r)
        self.assertEqual(limited(self.server, "retry"), 0)
