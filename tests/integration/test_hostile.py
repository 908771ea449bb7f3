"""A battery of hostile datagrams: garbage is dropped without a reply, malformed
objects get errors, and the server keeps answering (no crash, no sanitizer report).

Each garbage datagram is followed by a canary from the same socket (a pulse from
a live peer; no garbage item is a pulse): the canary's reply must be the first
thing that comes back, which proves the garbage got no reply without waiting for
a timeout."""
import json
import time

from harness import PunchdTestCase, padded, encode, scaled, ERROR_CODES

ALIVED = {"action": "alived"}
PULSE_OK = {"action": "pulseReceived", "data": {"status": "0", "overriden": "false"}}
MAX = 65507

# Not exactly one JSON object: dropped, no reply.
GARBAGE = [
    b"",
    b" ",
    b"\n",
    b"\x00",
    b"{",
    b"}",
    b'"',
    b'{"action":"announce"',
    b'{"action":"ann',
    b'{"action":"announce",}',
    b'{"action":"announce" "x":1}',
    b'{"action":announce}',
    b"{'action':'announce'}",
    b'{action:"announce"}',
    b'{"action":"announce"}}',
    b'{"action":"announce"} x',
    b'{"action":"announce"}{"action":"announce"}',
    b'{"action":"alive"}\x00',
    b'{"action":"al\x00ive"}',
    b'\x00{"action":"alive"}',
    b'{"action":"alive","pad":"a\x00b"}',
    b'{"action":"alive","pad":"a\x01b"}',
    b'{"action":"alive","pad":"a\nb"}',
    b'{"action":"alive","pad":"\\x41"}',
    b'{"action":"alive","pad":"\\u12"}',
    b'{"action":"alive","pad":"\\uZZZZ"}',
    b'{"action":"alive","pad":"\\u00"}',
    b'{"action":"alive","pad":"\\',
    b"[]",
    b'[{"action":"announce"}]',
    b'"announce"',
    b'"{\\"action\\":\\"announce\\"}"',
    b"42",
    b"-1.5e3",
    b"null",
    b"true",
    b"false",
    b"NaN",
    b'{"action":"alive","x":NaN}',
    b'{"action":"alive","x":Infinity}',
    b'{"action":"alive","x":.5}',
    b'{"action":"alive","x":+1}',
    b'{"action":"alive","x":0x10}',
    b'{"action":"alive"} // comment',
    b'/* c */{"action":"alive"}',
    # invalid UTF-8
    b'{"action":"alive","pad":"\xff"}',
    b'{"action":"alive","pad":"\xfe\xff"}',
    b'{"action":"alive","pad":"\xc0\xaf"}',           # overlong '/'
    b'{"action":"alive","pad":"\xe0\x80\xaf"}',       # overlong
    b'{"action":"alive","pad":"\xed\xa0\x80"}',       # UTF-16 surrogate
    b'{"action":"alive","pad":"\xf4\x90\x80\x80"}',   # > U+10FFFF
    b'{"action":"alive","pad":"\x80"}',               # lone continuation
    b'{"action":"alive","pad":"\xe2\x82"}',           # truncated sequence
    b'{"action":"alive"}\xe2\x82',
    b'{"action":"\xffalive"}',
    b"\xff" * 100,
    bytes(range(256)),
    # non-object at the top, deeply nested
    b"[" * 30000 + b"]" * 30000,
    b"[" * 60000,
    b'{"a":' * 10000 + b"1" + b"}" * 9999,  # one brace short
]


class HostileTest(PunchdTestCase):
    server_flags = ("--max-datagram", str(MAX), "--log-level", "debug")

    def setUp(self):
        self.canary, self.cd = self.announced()

    def assert_no_reply_then_canary(self, datagram):
        c = self.canary
        c.send(datagram)
        c.send(b'{"action":"pulse"}')
        r = c.recv()
        self.assertEqual(r, PULSE_OK, f"reply to garbage {datagram[:120]!r}")

    def assert_replies(self, datagram, check):
        """datagram (an object) gets exactly one reply satisfying check, then the canary."""
        c = self.canary
        c.send(datagram)
        raw, _ = c.recv_raw()
        self.assertLessEqual(len(raw), 4 * len(datagram))
        self.assertLessEqual(len(raw), self.server.max_datagram)
        r = json.loads(raw)
        check(r)
        c.send(b'{"action":"pulse"}')
        self.assertEqual(c.recv(), PULSE_OK, f"more than one reply to {datagram[:120]!r}")
        return r

    def still_serves(self):
        self.server.check_healthy()
        fresh = self.client()
        d = fresh.announce()
        self.assertShareId(d["shareId"])
        self.assertEqual(fresh.request({"action": "pulse"}), PULSE_OK)
        self.assertEqual(self.canary.request({"action": "pulse"}), PULSE_OK)

    def test_garbage_gets_no_reply(self):
        for g in GARBAGE:
            self.assertLessEqual(len(g), MAX)
            self.assert_no_reply_then_canary(g)
        # The same from a socket that is no peer.
        stranger = self.client()
        for g in GARBAGE:
            stranger.send(g)
            stranger.send(padded({"action": "nope"}, 64))
            self.assertError(stranger.recv(), "unknownAction")
        self.still_serves()

    def test_invalid_json_numbers_dropped(self):
        """RFC 8259 numbers: no leading zeros, digits on both sides of '.', no leading '.'."""
        answered = []
        for num in (b"01", b"-01", b"00", b"1.", b"-.5", b"1.e3", b".5", b"+1", b"0x10", b"1e+", b"1.5.2"):
            c = self.canary
            c.send(b'{"action":"alive","x":' + num + b"}")
            c.send(b'{"action":"pulse"}')
            first = c.recv()
            if first != PULSE_OK:
                answered.append(num.decode())
                self.assertEqual(c.recv(), PULSE_OK)
        self.assertEqual(answered, [], "invalid JSON numbers were accepted and answered")

    def test_byte_order_mark(self):
        """RFC 8259 lets a parser ignore a leading BOM or reject it: either, but at most one reply."""
        c = self.canary
        c.send(b"\xef\xbb\xbf" + b'{"action":"alive"}')
        c.send(b'{"action":"pulse"}')
        first = c.recv()
        if first == ALIVED:
            first = c.recv()
        self.assertEqual(first, PULSE_OK)

    def test_drops_logged_at_debug(self):
        before = len(self.server.lines)
        self.canary.send(b"\x00garbage")
        self.assertEqual(self.canary.request({"action": "pulse"}), PULSE_OK)
        deadline = time.monotonic() + scaled(2.0)
        while len(self.server.lines) == before and time.monotonic() < deadline:
            time.sleep(0.01)  # stderr is read by another thread: wait for the line
        self.assertGreater(len(self.server.lines), before, "no debug log line for a dropped datagram")

    def test_trailing_whitespace_is_fine(self):
        for d in (b'{"action":"alive"} ', b'{"action":"alive"}\n', b' \t\r\n{"action":"alive"}\r\n',
                  b'{ "action" : "alive" }'):
            self.assertEqual(self.canary.request(d), ALIVED, d)

    def test_deep_nesting_inside_an_object(self):
        """Valid objects whose values nest deeply: answered or dropped, never a crash."""
        for depth in (500, 2000, 20000, 32000):
            for opener, closer in ((b"[", b"]"), (b'{"a":', b"}")):
                inner = opener * depth + (b"1" if opener != b"[" else b"") + closer * depth
                d = b'{"action":"alive","x":' + inner + b"}"
                if len(d) > MAX:
                    continue
                c = self.canary
                c.send(d)
                c.send(b'{"action":"pulse"}')
                first = c.recv()
                if first == ALIVED:  # it was parsed and answered: then the pulse
                    self.assertEqual(c.recv(), PULSE_OK)
                else:                # it was dropped
                    self.assertEqual(first, PULSE_OK, f"depth {depth}")
        self.still_serves()

    def test_huge_strings(self):
        big = MAX - 100
        self.assert_replies(encode({"action": "alive", "pad": "x" * big}), lambda r: self.assertEqual(r, ALIVED))
        self.assert_replies(encode({"action": "announce", "pad": "é" * (big // 6)}),
                            lambda r: self.assertEqual(r["data"]["shareId"], self.cd["shareId"]))
        self.assert_replies(json.dumps({"action": "alive", "pad": "é" * (big // 3)}, ensure_ascii=False).encode(),
                            lambda r: self.assertEqual(r, ALIVED))
        self.assert_replies(encode({"action": "x" * big}), lambda r: self.assertError(r, "unknownAction", True))
        self.assert_replies(encode({"action": "push", "shareId": "y" * big}),
                            lambda r: self.assertError(r, "unknownShareId", True))
        self.assert_replies(encode({"action": "push", "shareId": self.cd["shareId"] + "z" * big}),
                            lambda r: self.assertError(r, "unknownShareId", True))
        self.assert_replies(encode({"action": "pulse", "shareId": True, "token": "a" * big}),
                            lambda r: self.assertError(r, "unauthorized", True))
        self.assert_replies(encode({"action": "pulse", "shareId": True, "token": self.cd["token"] + "0" * big}),
                            lambda r: self.assertError(r, "unauthorized", True))
        self.assert_replies(encode({"action": "pulse", "multiaddr": "m" * big}),
                            lambda r: self.assertError(r, "badRequest", True))
        self.assert_replies(encode({"action": "pulse", "override": True, "ip": "1" * big, "port": 1,
                                    "token": self.cd["token"]}),
                            lambda r: self.assertError(r, "badRequest", True))
        self.assert_replies(encode({"action": "announce", "shareId": "s" * big, "token": self.cd["token"]}),
                            lambda r: self.assertError(r, "unauthorized", True))
        self.assert_replies(encode({"action": "alive", "k" * big: 1}), lambda r: self.assertEqual(r, ALIVED))
        many = b'{"action":"alive"' + b',"k":1' * ((big - 20) // 6) + b"}"
        self.assert_replies(many, lambda r: self.assertEqual(r, ALIVED))
        self.still_serves()

    def test_nul_escapes(self):
        cd = self.cd
        sid, tok = cd["shareId"], cd["token"]
        other, od = self.announced()
        # "\u0000" in action: not "alive".
        self.assert_replies(b'{"action":"alive\\u0000"}', lambda r: self.assertError(r, "unknownAction"))
        self.assert_replies(b'{"action":"\\u0000alive"}', lambda r: self.assertError(r, "unknownAction"))
        self.assert_replies(b'{"action":"\\u0000"}', lambda r: self.assertError(r, "unknownAction"))
        # "\u0000" in shareId: never resolves to the id before it.
        self.assert_replies(encode({"action": "push", "shareId": od["shareId"] + "\u0000"}),
                            lambda r: self.assertError(r, "unknownShareId"))
        self.assert_replies(encode({"action": "push", "shareId": od["shareId"] + "\u0000xyz"}),
                            lambda r: self.assertError(r, "unknownShareId"))
        self.assert_replies(encode({"action": "push", "shareId": od["shareId"][:4] + "\u0000" + od["shareId"][5:]}),
                            lambda r: self.assertError(r, "unknownShareId"))
        other.expect_silence(0.05)
        # ...nor in announce's re-claim; nor does a token with a NUL pass.
        self.assert_replies(encode({"action": "announce", "shareId": sid + "\u0000", "token": tok}),
                            lambda r: self.assertError(r, "unauthorized"))
        self.assert_replies(encode({"action": "pulse", "shareId": True, "token": tok + "\u0000"}),
                            lambda r: self.assertError(r, "unauthorized"))
        self.assert_replies(encode({"action": "pulse", "shareId": True, "token": tok[:16] + "\u0000" + tok[17:]}),
                            lambda r: self.assertError(r, "unauthorized"))
        # In pad: harmless.
        self.assert_replies(encode({"action": "alive", "pad": "\u0000" * 50}), lambda r: self.assertEqual(r, ALIVED))
        self.assert_replies(encode({"action": "announce", "pad": "a\u0000b" * 30}),
                            lambda r: self.assertEqual(r["data"]["shareId"], sid))
        # In a key.
        self.assert_replies(b'{"action\\u0000":"alive","x":"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"}',
                            lambda r: self.assertError(r, "badRequest"))
        # In multiaddr: kept opaque, handed back escaped.
        ma = "/ip4/1.2.3.4\u0000/x"
        self.assert_replies(encode({"action": "pulse", "multiaddr": ma}), lambda r: self.assertEqual(r, PULSE_OK))
        r = other.request(padded({"action": "push", "shareId": sid}, 200))
        self.assertEqual(r["action"], "pushReceived", r)
        self.assertIsInstance(r["data"].get("multiaddr", ""), str)
        self.assertEqual(self.canary.recv()["action"], "income")
        self.still_serves()

    def test_wrong_types_for_every_field(self):
        tok = self.cd["token"]
        values = [5, 1.5, -1, True, False, None, [], ["x"], {}, {"$ne": None}]

        def bad(r):
            self.assertError(r, "badRequest", True)

        for v in values:
            p = "p" * 100
            self.assert_replies(encode({"action": v, "pad": p}), bad)
            self.assert_replies(encode({"action": "announce", "shareId": v, "token": tok, "pad": p}), bad)
            self.assert_replies(encode({"action": "announce", "shareId": self.cd["shareId"], "token": v, "pad": p}), bad)
            self.assert_replies(encode({"action": "push", "shareId": v, "pad": p}), bad)
            if not isinstance(v, bool):
                self.assert_replies(encode({"action": "pulse", "override": v, "ip": "10.0.0.1", "port": 1,
                                            "token": tok, "pad": p}), bad)
                self.assert_replies(encode({"action": "pulse", "shareId": v, "token": tok, "pad": p}), bad)
            self.assert_replies(encode({"action": "pulse", "token": v, "pad": p}), bad)
            self.assert_replies(encode({"action": "pulse", "override": True, "ip": v, "port": 1,
                                        "token": tok, "pad": p}), bad)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                self.assert_replies(encode({"action": "pulse", "override": True, "ip": "10.0.0.1", "port": v,
                                            "token": tok, "pad": p}), bad)
            if not isinstance(v, str):
                self.assert_replies(encode({"action": "pulse", "multiaddr": v, "pad": p}), bad)
                self.assert_replies(encode({"action": "announce", "multiaddr": v, "pad": p}), bad)
        # None of it changed the canary: same id, same address.
        other, od = self.announced()
        self.assertPushed(other, self.canary, self.cd["shareId"], od["shareId"])
        self.still_serves()

    def test_prototype_names_and_duplicates(self):
        for name in ("constructor", "__proto__", "prototype", "toString", "hasOwnProperty",
                     "valueOf", "__defineGetter__", "then"):
            self.assert_replies(encode(padded({"action": name}, 100)),
                                lambda r: self.assertError(r, "unknownAction", True))
        self.assert_replies(b'{"__proto__":{"action":"alive"},"pad":"' + b"x" * 60 + b'"}',
                            lambda r: self.assertError(r, "badRequest", True))
        self.assert_replies(b'{"constructor":{"prototype":{"action":"alive"}},"pad":"' + b"x" * 60 + b'"}',
                            lambda r: self.assertError(r, "badRequest", True))

        # Duplicate keys: one of them is used; the reply is a sane one.
        def sane(r):
            self.assertIn(r["action"], {"alived", "announceReceived", "pushReceived", "error", "pulseReceived"}, r)
            if r["action"] == "error":
                self.assertIn(r["data"]["code"], ERROR_CODES)

        self.assert_replies(b'{"action":"alive","action":"announce","pad":"' + b"x" * 60 + b'"}', sane)
        self.assert_replies(b'{"action":"alive","action":5,"pad":"' + b"x" * 60 + b'"}', sane)
        self.assert_replies(b'{"action":"push","shareId":"00000000","shareId":{"$ne":null},"pad":"' + b"x" * 60 + b'"}', sane)
        self.assert_replies(b'{"action":"pulse","shareId":true,"shareId":false,"pad":"' + b"x" * 60 + b'"}', sane)
        self.still_serves()

    def test_extreme_numbers(self):
        tok = self.cd["token"]
        for num in (b"1e999", b"-1e999", b"1e-999", b"-0", b"0", b"1e308", b"123456789012345678901234567890",
                    b"4.9e-324", b"-9223372036854775809", b"18446744073709551616", b"65535.0000000001",
                    b"65536", b"1.5", b"-80"):
            self.assert_replies(b'{"action":"alive","x":' + num + b"}", lambda r: self.assertEqual(r, ALIVED))
            self.assert_replies(b'{"action":' + num + b',"pad":"' + b"x" * 60 + b'"}',
                                lambda r: self.assertError(r, "badRequest", True))
            self.assert_replies(b'{"action":"push","shareId":' + num + b',"pad":"' + b"x" * 60 + b'"}',
                                lambda r: self.assertError(r, "badRequest", True))
            # A port that is not an integer 1..65535, with a valid token: badRequest.
            msg = (b'{"action":"pulse","override":true,"ip":"10.0.0.1","port":' + num +
                   b',"token":"' + tok.encode() + b'","pad":"' + b"x" * 40 + b'"}')
            self.assert_replies(msg, lambda r: self.assertError(r, "badRequest", True))
        # And a port number that is fine in exponent form works.
        msg = (b'{"action":"pulse","override":true,"ip":"10.0.0.1","port":1E2,"token":"' + tok.encode() + b'"}')
        self.assert_replies(msg, lambda r: self.assertEqual(r["data"]["overriden"], "true"))
        other, od = self.announced()
        self.assertPushed(other, self.canary, self.cd["shareId"], od["shareId"], peeraddr="10.0.0.1:100")
        self.still_serves()

    def test_flood_then_serve(self):
        """Many datagrams, mixed, without waiting: the server survives and still answers."""
        c = self.client()
        mixed = GARBAGE[:40] + [encode({"action": "announce"}), encode({"action": "push", "shareId": "x"}),
                                encode({"action": "pulse", "shareId": True}), encode({"action": 5})]
        for _ in range(20):
            for d in mixed:
                c.send(d)
        c.drain()
        self.still_serves()
