"""max_datagram, max_peers and expiry (peer_ttl) over real time."""
import time

from harness import PunchdTestCase, padded, encode, gather

PULSE_OK = {"action": "pulseReceived", "data": {"status": "0", "overriden": "false"}}


class MaxDatagramTest(PunchdTestCase):
    server_flags = ("--max-datagram", "512")

    def test_oversized_dropped_at_limit_works(self):
        over = self.client()
        req = encode(padded({"action": "announce"}, 513))
        self.assertEqual(len(req), 513)
        over.send(req)
        # It was not processed: the sender is not announced (this reply comes first).
        r = over.request({"action": "pulse"})
        self.assertError(r, "notAnnounced")
        # Far larger ones too, from other sockets, all silently.
        clients = []
        for size in (513, 600, 1472, 9000, 65000):
            c = self.client()
            c.send(encode(padded({"action": "announce"}, size)))
            clients.append(c)
        got = gather(clients)
        self.assertEqual([got[c] for c in clients], [[]] * len(clients))
        # Exactly at the limit: answered in full.
        at = self.client()
        req = encode(padded({"action": "announce"}, 512))
        self.assertEqual(len(req), 512)
        r = at.request(req)
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertEqual(r["data"]["addr"], at.addr)
        self.assertEqual(at.request(padded({"action": "pulse"}, 512)), PULSE_OK)
        # An oversized request from a live peer is dropped too.
        at.send(encode(padded({"action": "pulse", "shareId": True, "token": r["data"]["token"]}, 513)))
        self.assertEqual(at.request({"action": "pulse"}), PULSE_OK)
        self.assertEqual(at.announce()["shareId"], r["data"]["shareId"])


class MaxPeersTest(PunchdTestCase):
    def test_full_then_room_after_expiry(self):
        ttl = 2
        server = self.start_server("--max-peers", "3", "--peer-ttl", str(ttl))
        a, ad = self.announced(server)
        b, bd = self.announced(server)
        c = self.client(server)
        t_c = time.monotonic()
        cd = c.announce()
        d = self.client(server)
        r = d.request(padded({"action": "announce"}, 200))
        self.assertError(r, "full", message=True)
        r = d.request(b'{"action":"announce"}')
        self.assertError(r, "full")
        # Live peers still re-announce (same id) while full, and nobody new got in.
        self.assertEqual(a.announce()["shareId"], ad["shareId"])
        self.assertError(d.request({"action": "pulse"}), "notAnnounced")
        # Keep a and b alive; c goes silent and expires, making room for d.
        deadline = t_c + ttl + 1.5
        admitted = None
        while time.monotonic() < deadline:
            time.sleep(0.2)
            self.assertEqual(a.request({"action": "alive"}), {"action": "alived"})
            self.assertEqual(b.request({"action": "alive"}), {"action": "alived"})
            r = d.request(padded({"action": "announce"}, 128))
            if r["action"] == "announceReceived":
                admitted = time.monotonic()  # the server admitted d before this moment
                break
            self.assertError(r, "full")
        self.assertIsNotNone(admitted, "no room after a peer expired")
        self.assertGreaterEqual(admitted - t_c, ttl, "a peer expired before peer_ttl")
        # c is gone; a and b are still there.
        self.assertError(a.request({"action": "push", "shareId": cd["shareId"]}), "unknownShareId")
        self.assertPushed(a, b, bd["shareId"], ad["shareId"])
        self.assertEqual(b.request({"action": "pulse"}), PULSE_OK)
        # Full again.
        self.assertError(self.client(server).request(padded({"action": "announce"}, 200)), "full")


class ExpiryTest(PunchdTestCase):
    def test_expiry(self):
        ttl = 2
        server = self.start_server("--peer-ttl", str(ttl))
        pusher, pd = self.announced(server)
        x = self.client(server)          # goes silent after announcing
        y, yd = self.announced(server)   # keeps aliving
        z, zd = self.announced(server)   # keeps pulsing
        w, wd = self.announced(server)   # keeps re-announcing
        t_send = time.monotonic()
        xd = x.announce()
        t_recv = time.monotonic()

        def keep_alive():
            self.assertEqual(y.request({"action": "alive"}), {"action": "alived"})
            self.assertEqual(z.request({"action": "pulse"}), PULSE_OK)
            self.assertEqual(w.request(b'{"action":"announce"}')["data"]["shareId"], wd["shareId"])

        def sleep_until(t):
            while time.monotonic() < t:
                keep_alive()
                time.sleep(min(0.4, max(0.0, t - time.monotonic())))

        # Just before ttl: x still resolves (the pusher's push keeps the pusher alive).
        sleep_until(t_send + ttl - 0.3)
        self.assertPushed(pusher, x, xd["shareId"], pd["shareId"])
        # By ttl + 1.2 s after its last request x is gone.
        sleep_until(t_recv + ttl + 1.2)
        keep_alive()
        r = pusher.request(padded({"action": "push", "shareId": xd["shareId"]}, 200))
        self.assertError(r, "unknownShareId", message=True)
        x.expect_silence(0.05)
        self.assertError(x.request({"action": "pulse"}), "notAnnounced")
        self.assertError(x.request({"action": "alive"}), "notAnnounced")
        self.assertError(x.request({"action": "push", "shareId": pd["shareId"]}), "notAnnounced")
        # Peers that kept talking are still there, the pusher too (pushes refresh it).
        self.assertPushed(pusher, y, yd["shareId"], pd["shareId"])
        self.assertPushed(pusher, z, zd["shareId"], pd["shareId"])
        self.assertPushed(pusher, w, wd["shareId"], pd["shareId"])
        self.assertPushed(y, pusher, pd["shareId"], yd["shareId"])
        # x may announce again and is a peer again (with a fresh id).
        nd = x.announce()
        self.assertShareId(nd["shareId"])
        self.assertPushed(pusher, x, nd["shareId"], pd["shareId"])

    def test_expired_in_app_vocabulary(self):
        ttl = 1
        server = self.start_server("--peer-ttl", str(ttl), "--compat", "sobani-app")
        x = self.client(server)
        xd = x.announce()
        self.assertEqual(x.request({"action": "alive"}), {"action": "alived"})
        t_recv = time.monotonic()
        time.sleep(max(0.0, t_recv + ttl + 1.2 - time.monotonic()))
        self.assertEqual(x.request({"action": "alive"}), {"action": "expired"})
        self.assertEqual(x.request({"action": "pulse"}), {"action": "expired"})
        self.assertEqual(x.request({"action": "push", "shareId": xd["shareId"]}), {"action": "expired"})
