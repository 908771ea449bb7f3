"""compat "sobani-app": the real app's vocabulary (announced, pushed, alived, expired)."""
from harness import PunchdTestCase, padded, punch_fields_ok

EXPIRED = {"action": "expired"}


class SobaniAppCompatTest(PunchdTestCase):
    server_flags = ("--compat", "sobani-app")

    def test_announce_answers_announced(self):
        c = self.client()
        r = c.request(b'{"action":"announce"}')
        self.assertEqual(r["action"], "announced", r)
        self.assertShareId(r["data"]["shareId"])
        sid = r["data"]["shareId"]
        d = c.request(padded({"action": "announce"}, 128))
        self.assertEqual(d["action"], "announced", d)
        self.assertEqual(d["data"]["shareId"], sid)
        self.assertEqual(d["data"]["addr"], c.addr)
        self.assertToken(d["data"]["token"])
        self.assertEqual(d["data"]["ttl"], 300)

    def test_push_answers_pushed_and_sends_income(self):
        a, ad = self.announced()
        b, bd = self.announced()
        r = a.request(padded({"action": "push", "shareId": bd["shareId"]}, 300))
        self.assertEqual(punch_fields_ok(r), {"action": "pushed", "data": {"peeraddr": b.addr, "peerShareId": bd["shareId"],
                                                          "transports": ["udp"]}})
        self.assertEqual(punch_fields_ok(b.recv()), {"action": "income",
                                    "data": {"peeraddr": a.addr, "peerShareId": ad["shareId"],
                                             "transports": ["udp"], "addrTransport": "udp"}})

    def test_alive_answers_alived(self):
        c, _ = self.announced()
        self.assertEqual(c.request(b'{"action":"alive"}'), {"action": "alived"})

    def test_unregistered_sender_gets_expired(self):
        b, bd = self.announced()
        c = self.client()
        for msg in (b'{"action":"alive"}', b'{"action":"pulse"}',
                    {"action": "push", "shareId": bd["shareId"]},
                    padded({"action": "alive"}, 200), padded({"action": "pulse"}, 200),
                    padded({"action": "push", "shareId": bd["shareId"]}, 200),
                    padded({"action": "pulse", "shareId": True, "token": "0" * 32}, 200)):
            r = c.request(msg)
            self.assertEqual(r, EXPIRED, msg)
            self.assertEqual(c.last_reply_raw, b'{"action":"expired"}')
        b.expect_silence(0.05)

    def test_everything_else_is_the_same(self):
        a, ad = self.announced()
        b, bd = self.announced()
        self.assertEqual(a.request(b'{"action":"pulse"}'),
                         {"action": "pulseReceived", "data": {"status": "0", "overriden": "false"}})
        r = a.request({"action": "pulse", "override": True, "ip": "10.0.0.5", "port": 5, "token": ad["token"]})
        self.assertEqual(r, {"action": "pulseReceived", "data": {"status": "0", "overriden": "true"}})
        self.assertPushed(b, a, ad["shareId"], bd["shareId"], peeraddr="10.0.0.5:5", action="pushed")
        # Errors keep their codes.
        self.assertError(a.request(padded({"action": "nope"}, 200)), "unknownAction", message=True)
        self.assertError(a.request(padded({"action": 5}, 200)), "badRequest", message=True)
        self.assertError(a.request(padded({"action": "push", "shareId": "00000000"}, 200)),
                         "unknownShareId", message=True)
        self.assertError(a.request(padded({"action": "push", "shareId": {"$ne": None}}, 200)),
                         "badRequest", message=True)
        self.assertError(a.request(padded({"action": "pulse", "shareId": True}, 200)),
                         "unauthorized", message=True)
        # Unregistered but badly typed push: badRequest comes first, in this vocabulary too.
        self.assertError(self.client().request(padded({"action": "push", "shareId": 5}, 200)),
                         "badRequest", message=True)
