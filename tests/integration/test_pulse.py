"""pulse: the documented reply, override with/without token, shareId renewal, multiaddr."""
from harness import PunchdTestCase, padded, flip_hex, SHARE_ID_RE

PULSE_OK = {"action": "pulseReceived", "data": {"status": "0", "overriden": "false"}}
PULSE_OVERRIDDEN = {"action": "pulseReceived", "data": {"status": "0", "overriden": "true"}}


class PulseTest(PunchdTestCase):
    server_flags = ()

    def test_bare_pulse_exact_reply(self):
        c, _ = self.announced()
        r = c.request(b'{"action":"pulse"}')
        self.assertEqual(r, PULSE_OK)
        self.assertEqual(c.last_reply_raw, b'{"action":"pulseReceived","data":{"status":"0","overriden":"false"}}')

    def test_pulse_from_unknown_sender(self):
        c = self.client()
        r = c.request(b'{"action":"pulse"}')
        self.assertError(r, "notAnnounced")
        r = c.request(padded({"action": "pulse"}, 200))
        self.assertError(r, "notAnnounced", message=True)

    def test_override_with_token_string_and_number_port(self):
        a, ad = self.announced()
        b, bd = self.announced()
        r = a.request({"action": "pulse", "override": True, "ip": "10.1.2.3", "port": "4567",
                       "token": ad["token"]})
        self.assertEqual(r, PULSE_OVERRIDDEN)
        # Others are given the override; the income still reaches the real socket.
        self.assertPushed(b, a, ad["shareId"], bd["shareId"], peeraddr="10.1.2.3:4567")
        # ...and a's own replies and pushes still work from the real socket.
        self.assertEqual(a.request({"action": "pulse"}), PULSE_OK)
        self.assertPushed(a, b, bd["shareId"], ad["shareId"], income_addr="10.1.2.3:4567")
        # Number form.
        r = a.request({"action": "pulse", "override": True, "ip": "10.9.8.7", "port": 65535,
                       "token": ad["token"]})
        self.assertEqual(r, PULSE_OVERRIDDEN)
        self.assertPushed(b, a, ad["shareId"], bd["shareId"], peeraddr="10.9.8.7:65535")
        # An IPv6 override prints as [v6]:port.
        r = a.request({"action": "pulse", "override": True, "ip": "2001:db8::7", "port": 1,
                       "token": ad["token"]})
        self.assertEqual(r, PULSE_OVERRIDDEN)
        self.assertPushed(b, a, ad["shareId"], bd["shareId"], peeraddr="[2001:db8::7]:1")

    def test_override_without_valid_token_is_ignored(self):
        a, ad = self.announced()
        b, bd = self.announced()
        for msg in ({"action": "pulse", "override": True, "ip": "10.1.2.3", "port": 4567},
                    {"action": "pulse", "override": True, "ip": "10.1.2.3", "port": "4567",
                     "token": flip_hex(ad["token"])},
                    {"action": "pulse", "override": True, "ip": "10.1.2.3", "port": "4567",
                     "token": bd["token"]},
                    {"action": "pulse", "override": True, "ip": "10.1.2.3", "port": "4567", "token": ""}):
            r = a.request(msg)
            self.assertEqual(r, PULSE_OK, msg)
            self.assertPushed(b, a, ad["shareId"], bd["shareId"], peeraddr=a.addr)
        # override:false with a valid token changes nothing either.
        r = a.request({"action": "pulse", "override": False, "ip": "10.1.2.3", "port": 1, "token": ad["token"]})
        self.assertEqual(r, PULSE_OK)
        self.assertPushed(b, a, ad["shareId"], bd["shareId"], peeraddr=a.addr)

    def test_override_bad_address_is_bad_request(self):
        a, ad = self.announced()
        b, bd = self.announced()
        for ip, port in (("not-an-ip", 4000), ("999.1.1.1", 4000), ("", 4000), ("10.0.0.1:5", 4000),
                         ("example.com", 4000), ("10.0.0.1", 0), ("10.0.0.1", 70000),
                         ("10.0.0.1", "abc"), ("10.0.0.1", "-1"), ("10.0.0.1", 1.5)):
            msg = padded({"action": "pulse", "override": True, "ip": ip, "port": port,
                          "token": ad["token"]}, 200)
            r = a.request(msg)
            self.assertError(r, "badRequest", message=True)
        for msg in ({"action": "pulse", "override": True, "token": ad["token"]},
                    {"action": "pulse", "override": True, "ip": "10.0.0.1", "token": ad["token"]},
                    {"action": "pulse", "override": True, "port": 5, "token": ad["token"]}):
            r = a.request(padded(msg, 200))
            self.assertError(r, "badRequest", message=True)
        # The address was left alone.
        self.assertPushed(b, a, ad["shareId"], bd["shareId"], peeraddr=a.addr)

    def test_renew_share_id(self):
        a, ad = self.announced()
        b, bd = self.announced()
        old = ad["shareId"]
        r = a.request(padded({"action": "pulse", "shareId": True, "token": ad["token"]}, 128))
        self.assertEqual(r["action"], "pulseReceived", r)
        d = r["data"]
        self.assertEqual(set(d), {"status", "overriden", "shareId", "token"}, r)
        self.assertEqual((d["status"], d["overriden"]), ("0", "false"))
        self.assertRegex(d["shareId"], SHARE_ID_RE)
        self.assertNotEqual(d["shareId"], old)
        self.assertToken(d["token"])
        self.assertNotEqual(d["token"], ad["token"])
        # The old id stops resolving at once; the new one resolves to a.
        self.assertError(b.request({"action": "push", "shareId": old}), "unknownShareId")
        a.expect_silence(0.05)
        self.assertPushed(b, a, d["shareId"], bd["shareId"])
        # The pusher sees a's new id too.
        self.assertPushed(a, b, bd["shareId"], d["shareId"])
        # The new token is the valid one now, the old one is not.
        r = a.request({"action": "pulse", "override": True, "ip": "10.0.0.1", "port": 9, "token": ad["token"]})
        self.assertEqual(r, PULSE_OK)
        r = a.request({"action": "pulse", "override": True, "ip": "10.0.0.1", "port": 9, "token": d["token"]})
        self.assertEqual(r, PULSE_OVERRIDDEN)
        # Re-announcing from the same socket keeps the new id.
        self.assertEqual(a.announce()["shareId"], d["shareId"])

    def test_renew_without_valid_token_unauthorized(self):
        a, ad = self.announced()
        b, bd = self.announced()
        for msg in ({"action": "pulse", "shareId": True},
                    {"action": "pulse", "shareId": True, "token": flip_hex(ad["token"])},
                    {"action": "pulse", "shareId": True, "token": bd["token"]}):
            r = a.request(padded(msg, 200))
            self.assertError(r, "unauthorized", message=True)
            self.assertPushed(b, a, ad["shareId"], bd["shareId"])
        # shareId:false is no renewal.
        r = a.request({"action": "pulse", "shareId": False, "token": ad["token"]})
        self.assertEqual(r, PULSE_OK)
        self.assertPushed(b, a, ad["shareId"], bd["shareId"])

    def test_renew_and_override_together(self):
        a, ad = self.announced()
        b, bd = self.announced()
        r = a.request(padded({"action": "pulse", "shareId": True, "override": True, "ip": "10.2.3.4",
                              "port": 77, "token": ad["token"]}, 160))
        self.assertEqual(r["data"]["overriden"], "true", r)
        new = r["data"]["shareId"]
        self.assertNotEqual(new, ad["shareId"])
        self.assertPushed(b, a, new, bd["shareId"], peeraddr="10.2.3.4:77")

    def test_multiaddr_from_announce_and_pulse(self):
        ma = "/ip4/203.0.113.5/udp/4001/quic-v1/p2p/12D3KooWabc"
        a, ad = self.announced(fields={"multiaddr": ma})
        b, bd = self.announced()
        r, _ = self.assertPushed(b, a, ad["shareId"], bd["shareId"], pad=200)
        self.assertEqual(r["data"]["multiaddr"], ma)
        # An income from a multiaddr-carrying pusher, if it passes it on, passes it intact.
        _, inc = self.assertPushed(a, b, bd["shareId"], ad["shareId"])
        if "multiaddr" in inc["data"]:
            self.assertEqual(inc["data"]["multiaddr"], ma, inc)
        # A peer without one is pushed without one.
        r, _ = self.assertPushed(a, b, bd["shareId"], ad["shareId"], pad=200)
        self.assertNotIn("multiaddr", r["data"])
        # A pulse with the token replaces it; 256 bytes is the most. Without the
        # token (it could be a forged datagram) the pulse is answered, the multiaddr kept.
        ma2 = "/dns4/x/" + "a" * 248
        self.assertEqual(len(ma2), 256)
        r = a.request({"action": "pulse", "multiaddr": "/ip4/6.6.6.6"})
        self.assertEqual(r, PULSE_OK)
        r, _ = self.assertPushed(b, a, ad["shareId"], bd["shareId"], pad=600)
        self.assertEqual(r["data"]["multiaddr"], ma)
        r = a.request({"action": "pulse", "multiaddr": ma2, "token": ad["token"]})
        self.assertEqual(r, PULSE_OK)
        r, _ = self.assertPushed(b, a, ad["shareId"], bd["shareId"], pad=600)
        self.assertEqual(r["data"]["multiaddr"], ma2)

    def test_multiaddr_too_long_bad_request(self):
        ma = "/ip4/203.0.113.5/udp/4001"
        a, ad = self.announced(fields={"multiaddr": ma})
        b, bd = self.announced()
        long_ma = "/dns4/x/" + "a" * 249
        self.assertEqual(len(long_ma), 257)
        r = a.request(padded({"action": "pulse", "multiaddr": long_ma}, 400))
        self.assertError(r, "badRequest", message=True)
        r = self.client().request(padded({"action": "announce", "multiaddr": long_ma}, 400))
        self.assertError(r, "badRequest", message=True)
        r = a.request(padded({"action": "announce", "multiaddr": long_ma}, 400))
        self.assertError(r, "badRequest", message=True)
        # Not a string -> badRequest.
        r = a.request(padded({"action": "pulse", "multiaddr": 5}, 200))
        self.assertError(r, "badRequest", message=True)
        # The old one is kept.
        r, _ = self.assertPushed(b, a, ad["shareId"], bd["shareId"], pad=200)
        self.assertEqual(r["data"]["multiaddr"], ma)
