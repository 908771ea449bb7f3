"""alive and push (readme vocabulary): replies, income, and the order of push's checks."""
from harness import PunchdTestCase, padded, punch_fields_ok


class AliveTest(PunchdTestCase):
    server_flags = ()

    def test_alive_from_live_peer(self):
        c, _ = self.announced()
        r = c.request(b'{"action":"alive"}')
        self.assertEqual(r, {"action": "alived"})
        self.assertEqual(c.last_reply_raw, b'{"action":"alived"}')
        r = c.request(padded({"action": "alive"}, 100))
        self.assertEqual(r, {"action": "alived"})

    def test_alive_from_unknown_sender(self):
        c = self.client()
        r = c.request(b'{"action":"alive"}')
        self.assertError(r, "notAnnounced")
        r = c.request(padded({"action": "alive"}, 200))
        self.assertError(r, "notAnnounced", message=True)
        # And it did not register anything.
        r = c.request({"action": "pulse"})
        self.assertError(r, "notAnnounced")


# Issue 3: pushReceived and income say which transports the peer has; income
# also which one peeraddr belongs to. Issue 4's nonce and nat come before them in
# the drop order, so these pushes are padded to leave room for everything.
UDP_ONLY = {"transports": ["udp"]}
INCOME_UDP = {"transports": ["udp"], "addrTransport": "udp"}


class PushTest(PunchdTestCase):
    server_flags = ()

    def test_push_both_sides_learn(self):
        a, ad = self.announced()
        b, bd = self.announced()
        r = punch_fields_ok(a.request(padded({"action": "push", "shareId": bd["shareId"]}, 300)))
        self.assertEqual(r, {"action": "pushReceived",
                             "data": {"peeraddr": b.addr, "peerShareId": bd["shareId"], **UDP_ONLY}})
        inc = punch_fields_ok(b.recv())
        self.assertEqual(inc, {"action": "income",
                               "data": {"peeraddr": a.addr, "peerShareId": ad["shareId"], **INCOME_UDP}})
        self.assertEqual(b.last_src[:2], a.to)
        # And the other way round.
        r = punch_fields_ok(b.request(padded({"action": "push", "shareId": ad["shareId"]}, 300)))
        self.assertEqual(r, {"action": "pushReceived",
                             "data": {"peeraddr": a.addr, "peerShareId": ad["shareId"], **UDP_ONLY}})
        self.assertEqual(punch_fields_ok(a.recv()), {"action": "income",
                                    "data": {"peeraddr": b.addr, "peerShareId": bd["shareId"], **INCOME_UDP}})
        a.expect_silence(0.05)
        b.expect_silence(0.05)

    def test_push_field_types_checked_first(self):
        stranger = self.client()
        b, bd = self.announced()
        # badRequest beats notAnnounced: types are checked before the sender.
        for msg in ({"action": "push", "shareId": {"$ne": None}},
                    {"action": "push"},
                    {"action": "push", "shareId": None},
                    {"action": "push", "shareId": 12345678},
                    {"action": "push", "shareId": True},
                    {"action": "push", "shareId": [bd["shareId"]]}):
            self.assertError(stranger.request(msg), "badRequest")
            self.assertError(stranger.request(padded(msg, 200)), "badRequest", message=True)
        a, ad = self.announced()
        for msg in ({"action": "push", "shareId": {"$ne": None}}, {"action": "push"},
                    {"action": "push", "shareId": {"$gt": ""}}):
            self.assertError(a.request(padded(msg, 200)), "badRequest", message=True)
        b.expect_silence(0.05)

    def test_push_from_unregistered_sender(self):
        stranger = self.client()
        b, bd = self.announced()
        r = stranger.request({"action": "push", "shareId": bd["shareId"]})
        self.assertError(r, "notAnnounced")
        r = stranger.request(padded({"action": "push", "shareId": bd["shareId"]}, 200))
        self.assertError(r, "notAnnounced", message=True)
        # notAnnounced beats unknownShareId: the sender is checked before the target.
        r = stranger.request(padded({"action": "push", "shareId": "zzzzzzzz"}, 200))
        self.assertError(r, "notAnnounced", message=True)
        b.expect_silence(0.05)

    def test_push_unknown_targets(self):
        a, ad = self.announced()
        b, bd = self.announced()
        sid = bd["shareId"]
        other = sid[:7] + ("a" if sid[7] != "a" else "b")
        for target in (other, "", "x" * 300, "y" * 1200, sid + "0", sid[:7], sid.swapcase() if sid.swapcase() != sid else "00000000",
                       ad["shareId"], "é" * 8, "\u00e9" * 4, "{\"$ne\":null}"):
            r = a.request(padded({"action": "push", "shareId": target}, 200))
            self.assertError(r, "unknownShareId", message=True)
        b.expect_silence(0.05)
        # Own id, bare request: still unknownShareId, and no income to itself.
        r = a.request({"action": "push", "shareId": ad["shareId"]})
        self.assertError(r, "unknownShareId")
        a.expect_silence(0.05)

    def test_push_refreshes_nobody_else_and_repeats(self):
        a, ad = self.announced()
        b, bd = self.announced()
        for _ in range(3):
            self.assertPushed(a, b, bd["shareId"], ad["shareId"])
        self.assertEqual(a.request({"action": "alive"}), {"action": "alived"})
