"""announce: shareIds, addr/token/ttl, re-announce, re-claim across a restart, attach."""

from harness import PunchdTestCase, padded, encode, flip_hex, punch_fields_ok

KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
OTHER_KEY = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"


class AnnounceTest(PunchdTestCase):
    server_flags = ("--peer-ttl", "37")

    def test_bare_announce_gets_share_id(self):
        c = self.client()
        req = b'{"action":"announce"}'
        self.assertEqual(len(req), 21)
        r = c.request(req)
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertShareId(r["data"]["shareId"])
        self.assertLessEqual(len(c.last_reply_raw), 4 * 21)
        # Only optional fields besides shareId, dropped to fit (token and ttl cannot fit in 84 bytes).
        self.assertLessEqual(set(r["data"]), {"shareId", "addr"}, r)
        if "addr" in r["data"]:
            self.assertEqual(r["data"]["addr"], c.addr)

    def test_padded_announce_gets_addr_token_ttl(self):
        c = self.client()
        req = padded({"action": "announce"}, 64)
        self.assertEqual(len(encode(req)), 64)
        r = c.request(req)
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertEqual(r["data"].get("nat"), "unknown", r)  # no probe yet
        d = punch_fields_ok(r)["data"]
        self.assertEqual(set(d), {"shareId", "addr", "token", "ttl", "transports"}, r)
        self.assertEqual(d["transports"], ["udp"], r)
        self.assertShareId(d["shareId"])
        self.assertEqual(d["addr"], f"127.0.0.1:{c.sock.getsockname()[1]}")
        self.assertToken(d["token"])
        self.assertIs(type(d["ttl"]), int, r)
        self.assertEqual(d["ttl"], 37)

    def test_repeated_announce_same_id(self):
        c = self.client()
        first = c.request(b'{"action":"announce"}')["data"]["shareId"]
        second = c.announce()
        self.assertEqual(second["shareId"], first)
        third = c.request(b'{"action":"announce"}')["data"]["shareId"]
        self.assertEqual(third, first)
        self.assertEqual(c.announce()["token"], second["token"])

    def test_different_sockets_different_ids(self):
        clients = [self.client() for _ in range(200)]
        ids = []
        for i in range(0, len(clients), 40):  # in chunks: no socket buffer overflows
            for c in clients[i:i + 40]:
                c.send(b'{"action":"announce"}')
            for c in clients[i:i + 40]:
                r = c.recv()
                self.assertEqual(r["action"], "announceReceived", r)
                self.assertShareId(r["data"]["shareId"])
                ids.append(r["data"]["shareId"])
        self.assertEqual(len(set(ids)), 200, "shareIds are not unique")
        # Not a function of the address: the same socket gets another id from another
        # tracker instance (with the same token key, so not derived from that either).
        s1 = self.start_server("--token-key", KEY)
        s2 = self.start_server("--token-key", KEY)
        c = self.client(s1)
        a = c.request(b'{"action":"announce"}')["data"]["shareId"]
        b = c.request(b'{"action":"announce"}', to=("127.0.0.1", s2.port))["data"]["shareId"]
        self.assertNotEqual(a, b)
        # Ids look random: all 62 characters show up across 200 ids (1600 draws).
        self.assertGreaterEqual(len(set("".join(ids))), 55)

    def test_unknown_fields_ignored(self):
        c = self.client()
        r = c.request(padded({"action": "announce", "foo": [1, {"x": None}], "bar": True}, 128))
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertEqual(r["data"]["addr"], c.addr)


class ReclaimTest(PunchdTestCase):
    """Re-claim with a fixed token_key: ids survive a restart."""

    def test_reclaim_after_restart(self):
        s1 = self.start_server("--token-key", KEY)
        c = self.client(s1)
        d = c.announce()
        sid, tok = d["shareId"], d["token"]
        s1.stop()
        s2 = self.start_server("--token-key", KEY)
        c2 = self.client(s2)
        r = c2.request(padded({"action": "announce", "shareId": sid, "token": tok}, 128))
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertEqual(r["data"]["shareId"], sid)
        self.assertEqual(r["data"]["token"], tok)
        self.assertEqual(r["data"]["addr"], c2.addr)
        # It resolves: another peer can push it.
        p, pd = self.announced(s2)
        self.assertPushed(p, c2, sid, pd["shareId"])

    def test_reclaim_errors(self):
        s1 = self.start_server("--token-key", KEY)
        d = self.client(s1).announce()
        sid, tok = d["shareId"], d["token"]
        s1.stop()
        s2 = self.start_server("--token-key", KEY)
        # Wrong token (right shape) -> unauthorized.
        r = self.client(s2).request(padded({"action": "announce", "shareId": sid, "token": flip_hex(tok)}, 200))
        self.assertError(r, "unauthorized", message=True)
        # Token too short, too long, not hex, empty, reversed -> unauthorized.
        for bad in (tok[:-1], tok + "0", "z" * 32, "", tok[::-1] if tok[::-1] != tok else flip_hex(tok)):
            r = self.client(s2).request(padded({"action": "announce", "shareId": sid, "token": bad}, 200))
            self.assertError(r, "unauthorized", message=True)
        # shareId without token / token without shareId -> badRequest.
        r = self.client(s2).request(padded({"action": "announce", "shareId": sid}, 200))
        self.assertError(r, "badRequest", message=True)
        r = self.client(s2).request(padded({"action": "announce", "token": tok}, 200))
        self.assertError(r, "badRequest", message=True)
        # Malformed shareId with a token -> unauthorized.
        for bad in ("abc", sid + "x", sid[:7] + "!", "", "é" * 8, "x" * 300):
            r = self.client(s2).request(padded({"action": "announce", "shareId": bad, "token": tok}, 400))
            self.assertError(r, "unauthorized", message=True)
        # A token minted under another key -> unauthorized.
        s3 = self.start_server("--token-key", OTHER_KEY)
        other = self.client(s3).announce()
        r = self.client(s2).request(padded({"action": "announce", "shareId": other["shareId"],
                                            "token": other["token"]}, 200))
        self.assertError(r, "unauthorized", message=True)
        # None of these registered anything: the id was not taken.
        c = self.client(s2)
        r = c.request(padded({"action": "announce", "shareId": sid, "token": tok}, 128))
        self.assertEqual(r["data"]["shareId"], sid, r)

    def test_random_key_tokens_do_not_survive_restart(self):
        s1 = self.start_server()
        d = self.client(s1).announce()
        s1.stop()
        s2 = self.start_server()
        r = self.client(s2).request(padded({"action": "announce", "shareId": d["shareId"],
                                            "token": d["token"]}, 200))
        self.assertError(r, "unauthorized", message=True)


class AttachTest(PunchdTestCase):
    server_flags = ("--token-key", KEY)

    def test_attach_from_new_address(self):
        old, d = self.announced()
        sid, tok = d["shareId"], d["token"]
        new = self.client()
        r = new.request(padded({"action": "announce", "shareId": sid, "token": tok}, 128))
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertEqual(r["data"]["shareId"], sid)
        self.assertEqual(r["data"]["addr"], new.addr)
        # A third peer now finds S at the new address, and the income goes there.
        third, td = self.announced()
        self.assertPushed(third, new, sid, td["shareId"], peeraddr=new.addr)
        old.expect_silence()
        # The new address is the peer: it pulses and is answered.
        r = new.request({"action": "pulse"})
        self.assertEqual(r, {"action": "pulseReceived", "data": {"status": "0", "overriden": "false"}})

    def test_attach_wrong_token_unauthorized(self):
        old, d = self.announced()
        intruder = self.client()
        r = intruder.request(padded({"action": "announce", "shareId": d["shareId"],
                                     "token": flip_hex(d["token"])}, 200))
        self.assertError(r, "unauthorized", message=True)
        third, td = self.announced()
        self.assertPushed(third, old, d["shareId"], td["shareId"])

    def test_address_holding_another_identity(self):
        a, ad = self.announced()
        b, bd = self.announced()
        # a holds ad; claiming b's live identity from a's address -> badRequest.
        r = a.request(padded({"action": "announce", "shareId": bd["shareId"], "token": bd["token"]}, 200))
        self.assertError(r, "badRequest", message=True)
        # Nothing moved: both still resolve to their own addresses.
        c, cd = self.announced()
        self.assertPushed(c, a, ad["shareId"], cd["shareId"])
        self.assertPushed(c, b, bd["shareId"], cd["shareId"])
        # Claiming an id that is not live (b's old id after a renewal) from a's address -> badRequest.
        r = b.request({"action": "pulse", "shareId": True, "token": bd["token"], "pad": "x" * 40})
        self.assertEqual(r["action"], "pulseReceived", r)
        r = a.request(padded({"action": "announce", "shareId": bd["shareId"], "token": bd["token"]}, 200))
        self.assertError(r, "badRequest", message=True)
        # Re-announcing its own identity with its own token is fine.
        r = a.request(padded({"action": "announce", "shareId": ad["shareId"], "token": ad["token"]}, 128))
        self.assertEqual(r["data"]["shareId"], ad["shareId"], r)
