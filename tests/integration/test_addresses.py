"""Addresses: replies leave from the address the request was sent to; IPv6 and dual stack."""
import socket
import unittest

from harness import PunchdTestCase, padded, ipv6_loopback_available

HAVE_V6 = ipv6_loopback_available()
NO_V6 = "IPv6 loopback ::1 cannot be bound on this host"


class LocalAddressV4Test(PunchdTestCase):
    """Bound to 0.0.0.0: a request sent to 127.0.0.2 is answered from 127.0.0.2."""

    server_flags = ()
    server_kwargs = {"bind": "0.0.0.0"}

    def test_listening_line(self):
        self.assertEqual(self.server.listen_text, f"0.0.0.0:{self.server.port}")

    def test_reply_from_request_destination(self):
        port = self.server.port
        for dst in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            c = self.client(to_ip=dst)
            r = c.request(padded({"action": "announce"}, 64))
            self.assertEqual(r["action"], "announceReceived", r)
            self.assertEqual(c.last_src, (dst, port), f"reply to a request sent to {dst}")
            self.assertEqual(r["data"]["addr"], c.addr)
            # Errors too.
            r = c.request(padded({"action": "nope"}, 64))
            self.assertError(r, "unknownAction")
            self.assertEqual(c.last_src, (dst, port))
        # One socket alternating destinations: each reply from the matching address.
        c = self.client()
        c.announce()
        for dst in ("127.0.0.2", "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"):
            r = c.request({"action": "alive"}, to=(dst, port))
            self.assertEqual(r, {"action": "alived"})
            self.assertEqual(c.last_src, (dst, port))

    def test_income_from_the_address_the_target_talks_to(self):
        port = self.server.port
        a, ad = self.announced(to_ip="127.0.0.1")
        b, bd = self.announced(to_ip="127.0.0.2")
        self.assertPushed(a, b, bd["shareId"], ad["shareId"])
        self.assertEqual(a.last_src, ("127.0.0.1", port), "pushReceived source")
        self.assertEqual(b.last_src, ("127.0.0.2", port), "income source")
        self.assertPushed(b, a, ad["shareId"], bd["shareId"])
        self.assertEqual(b.last_src, ("127.0.0.2", port), "pushReceived source")
        self.assertEqual(a.last_src, ("127.0.0.1", port), "income source")

    def test_income_follows_the_local_address_last_talked_to(self):
        port = self.server.port
        a, ad = self.announced(to_ip="127.0.0.1")
        b, bd = self.announced(to_ip="127.0.0.2")
        # b now talks to 127.0.0.3: its income comes from there.
        self.assertEqual(b.request({"action": "alive"}, to=("127.0.0.3", port)), {"action": "alived"})
        self.assertEqual(b.last_src, ("127.0.0.3", port))
        self.assertPushed(a, b, bd["shareId"], ad["shareId"])
        self.assertEqual(b.last_src, ("127.0.0.3", port), "income source")
        self.assertEqual(a.last_src, ("127.0.0.1", port))


@unittest.skipUnless(HAVE_V6, NO_V6)
class IPv6LoopbackTest(PunchdTestCase):
    server_flags = ()
    server_kwargs = {"bind": "::1"}

    def test_listening_line(self):
        self.assertEqual(self.server.host, "::1")
        self.assertEqual(self.server.listen_text, f"[::1]:{self.server.port}")

    def test_announce_and_push_over_v6(self):
        a, ad = self.announced()
        b, bd = self.announced()
        self.assertEqual(ad["addr"], f"[::1]:{a.port}")
        self.assertEqual(a.last_src[:2], ("::1", self.server.port))
        self.assertEqual(a.request(b'{"action":"pulse"}'),
                         {"action": "pulseReceived", "data": {"status": "0", "overriden": "false"}})
        self.assertPushed(a, b, bd["shareId"], ad["shareId"], peeraddr=f"[::1]:{b.port}",
                          income_addr=f"[::1]:{a.port}")
        self.assertEqual(self.client().request(b'{"action":"alive"}')["data"]["code"], "notAnnounced")


@unittest.skipUnless(HAVE_V6, NO_V6)
class DualStackTest(PunchdTestCase):
    server_flags = ()
    server_kwargs = {"bind": "::"}

    def test_listening_line(self):
        self.assertEqual(self.server.host, "::")
        self.assertEqual(self.server.listen_text, f"[::]:{self.server.port}")

    def test_v4_client_appears_as_plain_v4(self):
        c = self.client(family=socket.AF_INET)
        self.assertEqual(c.sock.family, socket.AF_INET)
        d = c.announce()
        self.assertEqual(d["addr"], f"127.0.0.1:{c.port}")
        self.assertNotIn("ffff", d["addr"])
        v6 = self.client(family=socket.AF_INET6)
        d6 = v6.announce()
        self.assertEqual(d6["addr"], f"[::1]:{v6.port}")

    def test_push_between_v4_and_v6(self):
        a, ad = self.announced(family=socket.AF_INET)
        b, bd = self.announced(family=socket.AF_INET6)
        self.assertPushed(a, b, bd["shareId"], ad["shareId"], peeraddr=f"[::1]:{b.port}",
                          income_addr=f"127.0.0.1:{a.port}")
        self.assertPushed(b, a, ad["shareId"], bd["shareId"], peeraddr=f"127.0.0.1:{a.port}",
                          income_addr=f"[::1]:{b.port}")

    def test_v4_reply_from_request_destination(self):
        port = self.server.port
        for dst in ("127.0.0.2", "127.0.0.1", "127.0.0.3"):
            c = self.client(to_ip=dst)
            r = c.request(padded({"action": "announce"}, 64))
            self.assertEqual(r["data"]["addr"], f"127.0.0.1:{c.port}")
            self.assertEqual(c.last_src, (dst, port), f"reply to a request sent to {dst}")
        # income too
        a, ad = self.announced(to_ip="127.0.0.3")
        b, bd = self.announced(to_ip="127.0.0.2")
        self.assertPushed(a, b, bd["shareId"], ad["shareId"])
        self.assertEqual(b.last_src, ("127.0.0.2", port), "income source")
        self.assertEqual(a.last_src, ("127.0.0.3", port), "pushReceived source")
