"""Error replies, and the anti-amplification rule over many request shapes."""
from harness import PunchdTestCase, padded, encode, gather, parse_object, scaled, ERROR_CODES, REPLY_TIMEOUT, punch_fields_ok


class ErrorRepliesTest(PunchdTestCase):
    server_flags = ()

    def test_unknown_action(self):
        c = self.client()
        for action in ("nope", "", "ANNOUNCE", "announce ", "Pulse", "knock", "income", "error"):
            r = c.request(padded({"action": action}, 200))
            self.assertError(r, "unknownAction", message=True)
        # Small but big enough for the code alone.
        r = c.request(b'{"action":"nope"}')
        self.assertError(r, "unknownAction")

    def test_missing_or_non_string_action(self):
        c = self.client()
        for msg in ({"foo": 1}, {"action": 5}, {"action": None}, {"action": True},
                    {"action": ["announce"]}, {"action": {"action": "announce"}},
                    {"Action": "announce"}, {"actions": "announce"}, {}):
            r = c.request(padded(msg, 200))
            self.assertError(r, "badRequest", message=True)
        r = c.request(b'{"action":5}')
        self.assertError(r, "badRequest")
        # The server registered none of these senders.
        self.assertError(c.request({"action": "pulse"}), "notAnnounced")

    def test_every_error_code_shape(self):
        """Every code (bar full: see test_limits) with and without room for a message."""
        a, ad = self.announced()
        stranger = self.client()
        cases = [
            (stranger, {"action": "nope"}, "unknownAction"),
            (stranger, {"action": 1}, "badRequest"),
            (stranger, {"action": "pulse"}, "notAnnounced"),
            (a, {"action": "push", "shareId": "00000000"}, "unknownShareId"),
            (a, {"action": "pulse", "shareId": True, "token": "0" * 32}, "unauthorized"),
        ]
        for c, msg, code in cases:
            r = c.request(padded(msg, 256))
            self.assertError(r, code, message=True)
            self.assertEqual(set(r), {"action", "data"}, r)
            raw = c.request(msg)
            self.assertError(raw, code)


class AmplificationTest(PunchdTestCase):
    """No reply larger than 4x its request or max_datagram; tiny requests that
    would need more get nothing. Many shapes, each from its own socket, in batches."""

    server_flags = ()

    def shapes(self, target_id, own=None):
        """(registered?, message) pairs; own = (shareId, token) of the sender when registered."""
        base = [
            (False, {"action": "announce"}),
            (True, {"action": "announce"}),
            (True, {"action": "pulse"}),
            (False, {"action": "pulse"}),
            (True, {"action": "alive"}),
            (False, {"action": "alive"}),
            (True, {"action": "push", "shareId": target_id}),
            (False, {"action": "push", "shareId": target_id}),
            (True, {"action": "push", "shareId": "00000000"}),
            (True, {"action": "push"}),
            (False, {"action": "push", "shareId": {"$ne": None}}),
            (False, {"action": "nope"}),
            (False, {"action": 5}),
            (False, {"x": 1}),
            (True, {"action": "pulse", "shareId": True, "token": "TOKEN"}),
            (True, {"action": "pulse", "override": True, "ip": "10.0.0.1", "port": 9, "token": "TOKEN"}),
            (True, {"action": "pulse", "override": True, "ip": "bad", "port": 9, "token": "TOKEN"}),
            (True, {"action": "pulse", "shareId": True}),
            (False, {"action": "announce", "shareId": "00000000", "token": "0" * 32}),
            (False, {"action": "announce", "shareId": "00000000"}),
            (True, {"action": "announce", "multiaddr": "m" * 120}),
        ]
        return base

    def run_batch(self, server, target, target_id, sizes, multiaddr=None):
        jobs = []
        for registered, msg in self.shapes(target_id):
            for size in sizes:
                c = self.client(server)
                token = None
                if registered:
                    d = c.announce(**({"multiaddr": multiaddr} if multiaddr else {}))
                    token = d["token"]
                m = {k: (token if v == "TOKEN" else v) for k, v in msg.items()}
                req = encode(m if size is None else padded(m, size))
                if len(req) > server.max_datagram:
                    continue
                jobs.append((c, req, registered, m))
        # Sent in chunks, each awaited, so that no socket buffer overflows; then
        # one quiet window catches any late or extra datagram.
        got = {}
        for i in range(0, len(jobs), 32):
            chunk = jobs[i:i + 32]
            for c, req, _, _ in chunk:
                c.send(req)
            must = [c for c, req, _, _ in chunk if len(req) >= 64]
            gather([c for c, _, _, _ in chunk] + [target], scaled(REPLY_TIMEOUT),
                   until=lambda g: all(g[c] for c in must), got=got)
        gather([c for c, _, _, _ in jobs] + [target], got=got)
        for c, req, registered, m in jobs:
            replies = got[c]
            self.assertLessEqual(len(replies), 1, (req, replies))
            for rep in replies:
                self.assertLessEqual(len(rep), 4 * len(req), f"{req!r} -> {rep!r}")
                self.assertLessEqual(len(rep), server.max_datagram, f"{req!r} -> {rep!r}")
                obj = parse_object(rep)
                if obj["action"] == "error":
                    self.assertIn(obj["data"]["code"], ERROR_CODES)
            if len(req) >= 64:
                self.assertEqual(len(replies), 1, f"no reply to a {len(req)}-byte request {req!r}")
            if len(req) >= 200 and replies:
                obj = parse_object(replies[0])
                if obj["action"] == "error":
                    self.assertIn("message", obj["data"], obj)
        answered = sum(1 for c, _, _, _ in jobs if got[c])
        self.assertGreater(answered, len(jobs) * 3 // 4, "most shapes should be answered")
        for inc in got[target]:
            self.assertLessEqual(len(inc), server.max_datagram)
            self.assertEqual(parse_object(inc)["action"], "income")
        return jobs, got

    def test_many_shapes_default_max_datagram(self):
        target, td = self.announced()
        self.run_batch(self.server, target, td["shareId"], [None, 30, 40, 50, 64, 65, 100, 200, 1472])

    def test_many_shapes_small_max_datagram(self):
        server = self.start_server("--max-datagram", "256")
        target, td = self.announced(server, fields={"multiaddr": "/dns4/" + "t" * 194})
        self.run_batch(server, target, td["shareId"], [None, 40, 64, 100, 200, 250, 256],
                       multiaddr="/dns4/" + "p" * 194)
        # A 200-byte multiaddr cannot ride in 256 bytes: dropped from both the reply
        # (budget 4 x 250, capped at max_datagram) and the income; the rest stays.
        p, pd = self.announced(server, fields={"multiaddr": "/dns4/" + "p" * 194})
        req = padded({"action": "push", "shareId": td["shareId"]}, 250)
        r = punch_fields_ok(p.request(req))
        self.assertEqual(r, {"action": "pushReceived", "data": {"peeraddr": target.addr,
                                                                "peerShareId": td["shareId"]}})
        raw, _ = target.recv_raw()
        self.assertLessEqual(len(raw), 256)
        self.assertEqual(punch_fields_ok(parse_object(raw)), {"action": "income", "data": {"peeraddr": p.addr,
                                                                          "peerShareId": pd["shareId"]}})
        # Same shape on a default server: the multiaddr fits and comes along.
        t2, t2d = self.announced(fields={"multiaddr": "/dns4/" + "t" * 194})
        p2, p2d = self.announced()
        r = p2.request(req | {"shareId": t2d["shareId"]})
        self.assertEqual(r["data"]["multiaddr"], "/dns4/" + "t" * 194)
        self.assertEqual(t2.recv()["action"], "income")

    def test_bare_requests_get_their_documented_replies(self):
        a, ad = self.announced()
        b, bd = self.announced()
        for c, req, action in ((self.client(), b'{"action":"announce"}', "announceReceived"),
                               (a, b'{"action":"pulse"}', "pulseReceived"),
                               (a, b'{"action":"alive"}', "alived"),
                               (a, encode({"action": "push", "shareId": bd["shareId"]}), "pushReceived")):
            r = c.request(req)
            self.assertEqual(r["action"], action, r)
        self.assertEqual(b.recv()["action"], "income")

    def test_announce_fields_dropped_in_order(self):
        """addr, token, ttl appear in that order of priority as the request grows."""
        order = ["addr", "token", "ttl"]
        seen = []
        prev = 0
        for size in range(21, 70):
            c = self.client()
            req = b'{"action":"announce"}' if size == 21 else padded({"action": "announce"}, size)
            if size > 21 and len(encode(req)) != size:
                continue
            r = c.request(req)
            # The token is there exactly when the smallest reply carrying it fits 4x:
            # {"action":"announceReceived","data":{"shareId":"..","addr":"..","token":".."}}.
            self.assertEqual("token" in r["data"], 4 * size >= 112 + len(c.addr), f"{size} B -> {r}")
            fields = [k for k in order if k in r["data"]]
            self.assertEqual(fields, order[:len(fields)], f"{size}-byte request -> {r}")
            self.assertGreaterEqual(len(fields), prev, f"{size}-byte request -> {r}")
            prev = len(fields)
            seen.append(len(fields))
        self.assertEqual(seen[-1], 3)
        self.assertLessEqual(seen[0], 1)  # 21 bytes: shareId, at most addr besides

    def test_multiaddr_dropped_before_peer_fields(self):
        ma = "/dns4/" + "m" * 200
        t, td = self.announced(fields={"multiaddr": ma})
        p, pd = self.announced()
        # A bare push cannot carry a 206-byte multiaddr within 4x: it is dropped, the rest stays.
        r = punch_fields_ok(p.request({"action": "push", "shareId": td["shareId"]}))
        self.assertEqual(r, {"action": "pushReceived", "data": {"peeraddr": t.addr, "peerShareId": td["shareId"]}})
        self.assertEqual(t.recv()["action"], "income")
        r = p.request(padded({"action": "push", "shareId": td["shareId"]}, 100))
        self.assertEqual(r["data"]["multiaddr"], ma)
        self.assertEqual(t.recv()["action"], "income")

    def test_tiny_garbage_gets_nothing(self):
        a, ad = self.announced()
        reqs = [b"{}", b'{"a":1}', b" {} ", b'{"b":[]}', b'{"":""}', b"{ }\n", b'{"x":{}}']
        clients = []
        for req in reqs:
            c = self.client()
            c.send(req)
            clients.append(c)
        for req in reqs:  # also from a registered peer
            a.send(req)
        got = gather(clients + [a])
        for c, req in zip(clients, reqs):
            self.assertEqual(got[c], [], f"reply to tiny {req!r}")
        self.assertEqual(got[a], [])
        # The same shapes padded get badRequest.
        self.assertError(a.request(padded({"a": 1}, 64)), "badRequest")
