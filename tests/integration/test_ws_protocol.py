"""The sobani protocol over WebSocket, and one identity across UDP and WebSocket: announce (addr =
the TCP address, transports), every action and error, cross-transport push (UDP -> WS, WS -> UDP,
income on every transport), attach with right and wrong token, a second WS replacing the first,
per-transport lifetimes (UDP side expiry, WS close removes a WS-only peer at once), re-claim,
the sobani-app vocabulary, IPv6."""
import time
import unittest

from harness import PunchdTestCase, flip_hex, gather, ipv6_loopback_available, padded, scaled

PULSE_OK = {"action": "pulseReceived", "data": {"status": "0", "overriden": "false"}}


class WsProtocolCase(PunchdTestCase):
    def attach_udp(self, server, data, pad=256):
        """A fresh UDP socket attached to the identity in data; (client, reply data)."""
        u = self.client(server)
        r = u.request(padded({"action": "announce", "shareId": data["shareId"], "token": data["token"]}, pad))
        d = self.assertData(r, "announceReceived", {"shareId": data["shareId"], "addr": u.addr},
                            optional=("token", "ttl", "transports"))
        return u, d


class WsAnnounceTest(WsProtocolCase):
    server_flags = ()

    def test_announce_reply(self):
        c = self.ws()
        r = c.request_json({"action": "announce"})
        d = self.assertData(r, "announceReceived", {"addr": c.addr, "transports": ["ws"]},
                            optional=("shareId", "token", "ttl"))
        self.assertShareId(d["shareId"])
        self.assertToken(d["token"])
        if "ttl" in d:
            self.assertEqual(d["ttl"], 300)
        # Again on the same connection: the same id and token (no 4x rule: the full reply).
        r2 = c.request_json({"action": "announce"})
        self.assertEqual(r2["data"]["shareId"], d["shareId"])
        self.assertEqual(r2["data"]["token"], d["token"])
        # Another connection from the same host: another id.
        c2, d2 = self.ws_announced()
        self.assertNotEqual(d2["shareId"], d["shareId"])
        self.assertEqual(d2["addr"], c2.addr)

    def test_every_action(self):
        c = self.ws()
        # Before announcing.
        for msg in ({"action": "pulse"}, {"action": "alive"}, {"action": "push", "shareId": "abcdefgh"},
                    {"action": "relay", "shareId": "abcdefgh", "data": 1}):
            self.assertError(c.request_json(msg), "notAnnounced", message=True)
        self.assertError(c.request_json({"action": "dance"}), "unknownAction", message=True)
        self.assertError(c.request_json({"foo": 1}), "badRequest", message=True)
        self.assertError(c.request_json({"action": "push", "shareId": {"$ne": None}}), "badRequest", message=True)
        d = c.request_json({"action": "announce"})["data"]
        self.assertEqual(c.request_json({"action": "pulse"}), PULSE_OK)
        self.assertEqual(c.request_json({"action": "alive"}), {"action": "alived"})
        self.assertError(c.request_json({"action": "push", "shareId": "zzzzzzzz"}), "unknownShareId", message=True)
        self.assertError(c.request_json({"action": "push", "shareId": d["shareId"]}), "unknownShareId", message=True)
        self.assertError(c.request_json({"action": "push"}), "badRequest", message=True)
        # Pulse with a wrong token: no renewal.
        self.assertError(c.request_json({"action": "pulse", "shareId": True, "token": flip_hex(d["token"])}),
                         "unauthorized", message=True)
        # Renewal with the token: a new id and token; the old id stops resolving.
        other, od = self.ws_announced()
        r = c.request_json({"action": "pulse", "shareId": True, "token": d["token"]})
        self.assertEqual(r["action"], "pulseReceived", r)
        new_id, new_tok = r["data"]["shareId"], r["data"]["token"]
        self.assertShareId(new_id)
        self.assertToken(new_tok)
        self.assertNotEqual(new_id, d["shareId"])
        self.assertError(other.request_json({"action": "push", "shareId": d["shareId"]}), "unknownShareId")
        r = other.request_json({"action": "push", "shareId": new_id})
        self.assertEqual(r["data"]["peerShareId"], new_id, r)
        inc = c.recv_json()
        self.assertEqual(inc["data"]["peerShareId"], od["shareId"], inc)
        self.assertEqual(c.request_json({"action": "announce"})["data"]["shareId"], new_id)

    def test_push_ws_to_ws(self):
        a, ad = self.ws_announced()
        b, bd = self.ws_announced()
        r = a.request_json({"action": "push", "shareId": bd["shareId"]})
        self.assertData(r, "pushReceived", {"peeraddr": b.addr, "peerShareId": bd["shareId"],
                                            "transports": ["ws"]})
        inc = b.recv_json()
        self.assertData(inc, "income", {"peeraddr": a.addr, "peerShareId": ad["shareId"],
                                        "transports": ["ws"], "addrTransport": "ws"})
        a.expect_no_message(scaled(0.1))
        b.expect_no_message(scaled(0.1))

    def test_push_udp_to_ws(self):
        u, ud = self.announced()
        w, wd = self.ws_announced()
        r = u.request(padded({"action": "push", "shareId": wd["shareId"]}, 256))
        self.assertData(r, "pushReceived", {"peeraddr": w.addr, "peerShareId": wd["shareId"],
                                            "transports": ["ws"]})
        inc = w.recv_json()
        self.assertData(inc, "income", {"peeraddr": u.addr, "peerShareId": ud["shareId"],
                                        "transports": ["udp"], "addrTransport": "udp"})
        # A bare push still gets at least the never-dropped fields within 4x.
        r = u.request({"action": "push", "shareId": wd["shareId"]})
        self.assertEqual(r["data"]["peeraddr"], w.addr)
        self.assertEqual(w.recv_json()["action"], "income")

    def test_push_ws_to_udp(self):
        u, ud = self.announced()
        w, wd = self.ws_announced()
        r = w.request_json({"action": "push", "shareId": ud["shareId"]})
        self.assertData(r, "pushReceived", {"peeraddr": u.addr, "peerShareId": ud["shareId"],
                                            "transports": ["udp"]})
        inc = u.recv()
        self.assertEqual(u.last_src[:2], u.to)
        self.assertData(inc, "income", {"peeraddr": w.addr, "peerShareId": wd["shareId"],
                                        "transports": ["ws"], "addrTransport": "ws"})


class AttachTest(WsProtocolCase):
    server_flags = ()

    def test_udp_attaches_to_ws_identity(self):
        w, wd = self.ws_announced()
        u, d = self.attach_udp(self.server, wd)
        self.assertEqual(d.get("transports"), ["udp", "ws"], d)
        self.assertEqual(d.get("token"), wd["token"], d)
        # Re-announcing over WS now shows both transports, same id and token.
        r = w.request_json({"action": "announce"})
        self.assertData(r, "announceReceived", {"shareId": wd["shareId"], "token": wd["token"],
                                                "addr": w.addr, "transports": ["udp", "ws"]},
                        optional=("ttl",))
        # A push to S: income on both transports; the pusher gets S's UDP address.
        p, pd = self.ws_announced()
        r = p.request_json({"action": "push", "shareId": wd["shareId"]})
        self.assertData(r, "pushReceived", {"peeraddr": u.addr, "peerShareId": wd["shareId"],
                                            "transports": ["udp", "ws"]})
        want = {"peeraddr": p.addr, "peerShareId": pd["shareId"], "transports": ["ws"], "addrTransport": "ws"}
        self.assertData(w.recv_json(), "income", want)
        self.assertData(u.recv(), "income", want)
        # S pushing (from either side) hands out its UDP address, marked udp.
        q, qd = self.announced()
        for side in ("ws", "udp"):
            if side == "ws":
                r = w.request_json({"action": "push", "shareId": qd["shareId"]})
            else:
                r = u.request(padded({"action": "push", "shareId": qd["shareId"]}, 256))
            self.assertData(r, "pushReceived", {"peeraddr": q.addr, "peerShareId": qd["shareId"],
                                                "transports": ["udp"]})
            self.assertData(q.recv(), "income", {"peeraddr": u.addr, "peerShareId": wd["shareId"],
                                                 "transports": ["udp", "ws"], "addrTransport": "udp"})
        # The UDP side answers as S.
        self.assertEqual(u.request({"action": "alive"}), {"action": "alived"})

    def test_ws_attaches_to_udp_identity(self):
        u, ud = self.announced()
        w = self.ws()
        r = w.request_json({"action": "announce", "shareId": ud["shareId"], "token": ud["token"]})
        self.assertData(r, "announceReceived", {"shareId": ud["shareId"], "token": ud["token"],
                                                "addr": w.addr, "transports": ["udp", "ws"]},
                        optional=("ttl",))
        p, pd = self.announced()
        r = p.request(padded({"action": "push", "shareId": ud["shareId"]}, 256))
        self.assertData(r, "pushReceived", {"peeraddr": u.addr, "peerShareId": ud["shareId"],
                                            "transports": ["udp", "ws"]})
        want = {"peeraddr": p.addr, "peerShareId": pd["shareId"], "transports": ["udp"], "addrTransport": "udp"}
        self.assertData(u.recv(), "income", want)
        self.assertData(w.recv_json(), "income", want)

    def test_wrong_or_missing_token(self):
        u, ud = self.announced()
        w, wd = self.ws_announced()
        c = self.ws()
        self.assertError(c.request_json({"action": "announce", "shareId": ud["shareId"],
                                         "token": flip_hex(ud["token"])}), "unauthorized", message=True)
        self.assertError(c.request_json({"action": "announce", "shareId": wd["shareId"],
                                         "token": wd["token"][:-1]}), "unauthorized", message=True)
        self.assertError(c.request_json({"action": "announce", "shareId": ud["shareId"]}),
                         "badRequest", message=True)
        self.assertError(c.request_json({"action": "announce", "shareId": ud["shareId"], "token": 5}),
                         "badRequest", message=True)
        # Over UDP, onto a WS identity.
        x = self.client()
        self.assertError(x.request(padded({"action": "announce", "shareId": wd["shareId"],
                                           "token": flip_hex(wd["token"])}, 256)), "unauthorized", message=True)
        self.assertError(x.request(padded({"action": "announce", "shareId": wd["shareId"]}, 256)),
                         "badRequest", message=True)
        # Nothing was attached: pushes to both still reach only their own transport.
        p, pd = self.ws_announced()
        r = p.request_json({"action": "push", "shareId": wd["shareId"]})
        self.assertEqual(r["data"]["transports"], ["ws"], r)
        self.assertEqual(w.recv_json()["action"], "income")
        r = p.request_json({"action": "push", "shareId": ud["shareId"]})
        self.assertEqual(r["data"]["transports"], ["udp"], r)
        self.assertEqual(u.recv()["action"], "income")
        self.assertEqual(gather([x], seconds=scaled(0.1))[x], [])
        c.expect_no_message(scaled(0.05))
        # c and x are still free to announce their own ids.
        self.assertNotIn(c.request_json({"action": "announce"})["data"]["shareId"],
                         (ud["shareId"], wd["shareId"]))

    def test_second_ws_replaces_first(self):
        w1, wd = self.ws_announced()
        w2 = self.ws()
        r = w2.request_json({"action": "announce", "shareId": wd["shareId"], "token": wd["token"]})
        self.assertData(r, "announceReceived", {"shareId": wd["shareId"], "addr": w2.addr,
                                                "transports": ["ws"]}, optional=("token", "ttl"))
        self.assertEqual(w1.expect_close(), 1000)
        p, pd = self.ws_announced()
        r = p.request_json({"action": "push", "shareId": wd["shareId"]})
        self.assertData(r, "pushReceived", {"peeraddr": w2.addr, "peerShareId": wd["shareId"],
                                            "transports": ["ws"]})
        self.assertEqual(w2.recv_json()["action"], "income")

    def test_connection_holding_another_identity(self):
        w, wd = self.ws_announced()
        u, ud = self.announced()
        self.assertError(w.request_json({"action": "announce", "shareId": ud["shareId"], "token": ud["token"]}),
                         "badRequest", message=True)
        self.assertError(u.request(padded({"action": "announce", "shareId": wd["shareId"],
                                           "token": wd["token"]}, 256)), "badRequest", message=True)
        # Both keep their own ids, and nothing was attached.
        self.assertEqual(w.request_json({"action": "announce"})["data"]["shareId"], wd["shareId"])
        self.assertEqual(u.announce()["shareId"], ud["shareId"])
        p, _ = self.ws_announced()
        self.assertEqual(p.request_json({"action": "push", "shareId": wd["shareId"]})["data"]["transports"], ["ws"])
        self.assertEqual(w.recv_json()["action"], "income")

    def test_override_address_is_handed_out(self):
        w, wd = self.ws_announced()
        u, _ = self.attach_udp(self.server, wd)
        r = u.request(padded({"action": "pulse", "override": True, "ip": "198.51.100.4", "port": 40000,
                              "token": wd["token"]}, 128))
        self.assertEqual(r, {"action": "pulseReceived", "data": {"status": "0", "overriden": "true"}})
        p, pd = self.ws_announced()
        r = p.request_json({"action": "push", "shareId": wd["shareId"]})
        self.assertData(r, "pushReceived", {"peeraddr": "198.51.100.4:40000", "peerShareId": wd["shareId"],
                                            "transports": ["udp", "ws"]})
        self.assertEqual(w.recv_json()["action"], "income")
        self.assertEqual(u.recv()["action"], "income")     # income still goes where u talks from
        r = w.request_json({"action": "push", "shareId": pd["shareId"]})
        self.assertEqual(r["action"], "pushReceived", r)
        self.assertData(p.recv_json(), "income", {"peeraddr": "198.51.100.4:40000", "peerShareId": wd["shareId"],
                                                  "transports": ["udp", "ws"], "addrTransport": "udp"})

    def test_udp_side_moves_on_rebinding(self):
        w, wd = self.ws_announced()
        u1, _ = self.attach_udp(self.server, wd)
        u2, d = self.attach_udp(self.server, wd)
        self.assertEqual(d.get("transports"), ["udp", "ws"])
        p, pd = self.ws_announced()
        r = p.request_json({"action": "push", "shareId": wd["shareId"]})
        self.assertEqual(r["data"]["peeraddr"], u2.addr, r)
        self.assertEqual(u2.recv()["action"], "income")
        self.assertEqual(w.recv_json()["action"], "income")
        self.assertEqual(gather([u1], seconds=scaled(0.1))[u1], [])


class LifetimeTest(WsProtocolCase):
    server_flags = ("--peer-ttl", "2")

    def test_udp_side_expires_ws_lives(self):
        ttl = 2
        w, wd = self.ws_announced()
        p, pd = self.ws_announced()
        u, _ = self.attach_udp(self.server, wd)
        t_udp = time.monotonic()          # u's last UDP request
        expired_at = None
        deadline = t_udp + ttl + scaled(3)
        while time.monotonic() < deadline:
            r = p.request_json({"action": "push", "shareId": wd["shareId"]})
            self.assertEqual(r["action"], "pushReceived", r)
            self.assertEqual(w.recv_json()["action"], "income")
            if r["data"]["peeraddr"] == w.addr:
                expired_at = time.monotonic()
                self.assertEqual(r["data"]["transports"], ["ws"], r)
                break
            self.assertEqual(r["data"]["peeraddr"], u.addr, r)
            self.assertEqual(u.recv()["action"], "income")
            w.expect_no_message(0.2)      # a pause between pushes (nothing else may arrive)
        self.assertIsNotNone(expired_at, "the UDP side never expired")
        self.assertGreaterEqual(expired_at - t_udp, ttl - 0.05, "the UDP side expired before peer_ttl")
        self.assertLessEqual(expired_at - t_udp, ttl + 1 + scaled(1))
        # The WS side lives on (its own activity does not keep the UDP side).
        self.assertEqual(w.request_json({"action": "alive"}), {"action": "alived"})
        self.assertError(u.request({"action": "alive"}), "notAnnounced")
        inc = gather([u], seconds=scaled(0.1))[u]
        self.assertEqual(inc, [])
        # A WS-only peer outlives peer_ttl without sending anything.
        self.assertEqual(p.request_json({"action": "push", "shareId": wd["shareId"]})["action"], "pushReceived")
        # ... and the UDP side can come back.
        u2, d = self.attach_udp(self.server, wd)
        self.assertEqual(d.get("transports"), ["udp", "ws"])

    def test_ws_close_removes_ws_only_peer_at_once(self):
        p, pd = self.ws_announced()
        w, wd = self.ws_announced()
        self.assertEqual(w.close_cleanly(), 1000)
        self.assertError(p.request_json({"action": "push", "shareId": wd["shareId"]}), "unknownShareId")
        self.assertError(p.request_json({"action": "relay", "shareId": wd["shareId"], "data": 1}),
                         "unknownShareId")
        # An abrupt TCP close (no close frame) too, as soon as the server sees it.
        w2, wd2 = self.ws_announced()
        w2.close()
        deadline = time.monotonic() + scaled(2)
        while True:
            r = p.request_json({"action": "push", "shareId": wd2["shareId"]})
            if r["action"] == "error":
                self.assertError(r, "unknownShareId")
                break
            self.assertLess(time.monotonic(), deadline, "peer of a closed connection still there")
            time.sleep(0.02)

    def test_ws_close_keeps_udp_side(self):
        w, wd = self.ws_announced()
        u, _ = self.attach_udp(self.server, wd)
        self.assertEqual(w.close_cleanly(), 1000)
        p, pd = self.ws_announced()
        r = p.request_json({"action": "push", "shareId": wd["shareId"]})
        self.assertData(r, "pushReceived", {"peeraddr": u.addr, "peerShareId": wd["shareId"],
                                            "transports": ["udp"]})
        self.assertEqual(u.recv()["action"], "income")
        # Then the UDP side expires and the peer is gone.
        deadline = time.monotonic() + 2 + scaled(3)
        while p.request_json({"action": "push", "shareId": wd["shareId"]})["action"] == "pushReceived":
            u.drain()
            self.assertLess(time.monotonic(), deadline, "the peer never expired")
            p.expect_no_message(0.2)

    def test_reclaim_over_ws(self):
        w, wd = self.ws_announced()
        self.assertEqual(w.close_cleanly(), 1000)
        w2 = self.ws()
        r = w2.request_json({"action": "announce", "shareId": wd["shareId"], "token": wd["token"]})
        self.assertData(r, "announceReceived", {"shareId": wd["shareId"], "token": wd["token"],
                                                "addr": w2.addr, "transports": ["ws"]}, optional=("ttl",))


class CompatTest(WsProtocolCase):
    server_flags = ("--compat", "sobani-app")

    def test_sobani_app_vocabulary_over_ws(self):
        c = self.ws()
        self.assertEqual(c.request_json({"action": "alive"}), {"action": "expired"})
        r = c.request_json({"action": "announce"})
        self.assertEqual(r["action"], "announced", r)
        b, bd = self.ws_announced()
        r = c.request_json({"action": "push", "shareId": bd["shareId"]})
        self.assertEqual(r["action"], "pushed", r)
        self.assertEqual(b.recv_json()["action"], "income")


@unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback")
class Ipv6Test(WsProtocolCase):
    server_flags = ()
    server_kwargs = {"bind": "::1"}

    def test_ws_over_ipv6(self):
        self.assertEqual(self.server.tcp_host, "::1", self.server.listen_line)
        c, d = self.ws_announced()
        self.assertTrue(d["addr"].startswith("[::1]:"), d)
        self.assertEqual(d["addr"], c.addr)
        u, ud = self.announced()
        r = c.request_json({"action": "push", "shareId": ud["shareId"]})
        self.assertEqual(r["data"]["peeraddr"], u.addr)
        self.assertEqual(u.recv()["data"]["peeraddr"], c.addr)
