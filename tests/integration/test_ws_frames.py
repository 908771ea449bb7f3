"""WebSocket framing: masked and fragmented messages, control frames inside a fragmented message,
ping/pong, frames split across TCP writes, 16- and 64-bit lengths, the message size limit (1009),
invalid UTF-8 (1007), binary frames (1003), messages that are not one JSON object (badRequest, the
connection stays), the close handshake, and protocol violations."""
import time

from harness import PunchdTestCase
from wsclient import (ConnectionEnded, build_frame, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG,
                      OP_TEXT)

PULSE_OK = {"action": "pulseReceived", "data": {"status": "0", "overriden": "false"}}


def sized_announce(total):
    """An announce whose compact JSON is exactly total bytes."""
    base = '{"action":"announce","pad":""}'
    return base[:-2] + "x" * (total - len(base)) + '"}'


class FramesTest(PunchdTestCase):
    server_flags = ()

    def assertClosedWith(self, c, code, timeout=None):
        try:
            got = c.expect_close(timeout)
        except ConnectionEnded as e:
            self.fail(f"expected close {code}, the TCP connection ended without a close frame ({e})")
        self.assertEqual(got, code, f"close code {got} ({c.close_reason!r}), expected {code}")
        self.assertEqual(c.expect_eof(), b"")

    def test_fragmented_message(self):
        c = self.ws()
        c.send_fragments(['{"action":', '"announ', 'ce"}'])
        r = c.recv_json()
        self.assertEqual(r["action"], "announceReceived", r)
        # One byte per frame, and empty fragments.
        msg = '{"action":"pulse"}'
        c.send_fragments(list(msg))
        self.assertEqual(c.recv_json(), PULSE_OK)
        c.send_fragments(["", '{"action":"alive"}', "", ""])
        self.assertEqual(c.recv_json(), {"action": "alived"})
        # A multi-byte UTF-8 character split across fragments is still valid.
        raw = '{"action":"alive","pad":"h\u00e9\u20ac\U0001F600"}'.encode()
        i = raw.index(b"\xe2") + 1
        j = raw.index(b"\xf0") + 2
        c.send_fragments([raw[:i], raw[i:j], raw[j:]])
        self.assertEqual(c.recv_json(), {"action": "alived"})

    def test_control_frames_inside_a_fragmented_message(self):
        c = self.ws()
        c.request_json({"action": "announce"})
        c.send_fragments(['{"action"', ':"al', 'ive"}'],
                         between=lambda i: c.ping(b"mid-%d" % i))
        self.assertEqual(c.recv_json(), {"action": "alived"})
        self.assertEqual(c.pongs, [b"mid-0", b"mid-1"])

    def test_fragmented_message_across_quiet_moments(self):
        # Between messages an idle connection gives its frame parser back
        # (about 9 KiB); inside a fragmented message it must not. The pong
        # proves the server has read and handled everything sent before it.
        c = self.ws()
        c.request_json({"action": "announce"})
        for _ in range(3):
            c.send_frame(OP_TEXT, b'{"action":', fin=False)
            c.ping(b"mid")
            f = c.recv_frame()
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"mid"), f)
            c.send_frame(OP_CONT, b'"alive"}', fin=True)
            self.assertEqual(c.recv_json(), {"action": "alived"})
            # And a whole message after a quiet moment.
            c.ping(b"idle")
            f = c.recv_frame()
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"idle"), f)
            self.assertEqual(c.request_json({"action": "alive"}), {"action": "alived"})

    def test_ping_pong(self):
        c = self.ws()
        for payload in (b"", b"x", bytes(range(125)), "h\u00e9".encode()):
            c.ping(payload)
            f = c.recv_frame()
            self.assertEqual(f.opcode, OP_PONG, f)
            self.assertEqual(f.payload, payload)
        # Unsolicited pongs are fine.
        c.pong(b"unsolicited")
        self.assertEqual(c.request_json({"action": "announce"})["action"], "announceReceived")

    def test_masking_keys_and_split_writes(self):
        c = self.ws()
        # All-zero mask key (payload in the clear) is still a masked frame.
        c.send_raw(build_frame(OP_TEXT, b'{"action":"announce"}', mask_key=b"\0\0\0\0"))
        self.assertEqual(c.recv_json()["action"], "announceReceived")
        # One frame in many TCP writes (header split too).
        frame = build_frame(OP_TEXT, b'{"action":"alive"}', mask_key=b"\x12\x34\x56\x78")
        for k in range(len(frame)):
            c.send_raw(frame[k:k + 1])
            time.sleep(0.001)
        self.assertEqual(c.recv_json(), {"action": "alived"})
        # Several frames in one write.
        c.send_raw(build_frame(OP_TEXT, '{"action":"alive"}') + build_frame(OP_PING, b"p")
                   + build_frame(OP_TEXT, '{"action":"pulse"}'))
        self.assertEqual(c.recv_json(), {"action": "alived"})
        self.assertEqual(c.recv_json(), PULSE_OK)
        self.assertEqual(c.pongs, [b"p"])

    def test_extended_lengths_and_limit(self):
        c = self.ws()
        # 16-bit length.
        r = c.request_json(sized_announce(300))
        self.assertEqual(r["action"], "announceReceived")
        sid = r["data"]["shareId"]
        # Exactly ws_max_message (65536, default): 64-bit length, accepted.
        msg = sized_announce(65536)
        self.assertEqual(len(msg), 65536)
        r = c.request_json(msg)
        self.assertEqual(r["data"]["shareId"], sid)
        # Fragmented, exactly at the limit in total: accepted.
        c.send_fragments([msg[:30000], msg[30000:60000], msg[60000:]])
        self.assertEqual(c.recv_json()["data"]["shareId"], sid)
        # One byte over: 1009.
        c.send_text(sized_announce(65537))
        self.assertClosedWith(c, 1009)

    def test_too_big_closed_as_soon_as_declared(self):
        c = self.ws()
        # A header declaring 1 MB and the payload's first bytes: closed without waiting for the rest.
        c.send_raw(build_frame(OP_TEXT, b"", length=1 << 20)[:14] + b"0123456789abcdef")
        self.assertClosedWith(c, 1009)
        # Fragments that add up to more than the limit.
        c = self.ws()
        c.send_frame(OP_TEXT, b'{"action":"announce","pad":"' + b"x" * 40000, fin=False)
        c.send_raw(build_frame(OP_CONT, b"", fin=True, length=40000)[:8] + b"0123456789abcdef")
        self.assertClosedWith(c, 1009)

    def test_header_alone_is_enough_for_1009(self):
        # Only the 14 header bytes, no payload at all: the declaration alone closes it.
        c = self.ws()
        c.send_raw(build_frame(OP_TEXT, b"", length=1 << 40)[:14])
        self.assertClosedWith(c, 1009)
        # A 64-bit length near 2^63 in a continuation must not wrap the running total.
        c = self.ws()
        c.send_frame(OP_TEXT, b'{"action":', fin=False)
        c.send_raw(build_frame(OP_CONT, b"", length=(1 << 63) - 1)[:14])
        self.assertClosedWith(c, 1009)

    def test_frames_before_a_refused_header_are_served(self):
        # One TCP write: a pulse, then a binary header. The pulse is answered, then 1003.
        c = self.ws()
        c.request_json({"action": "announce"})
        c.send_raw(build_frame(OP_TEXT, b'{"action":"alive"}') + build_frame(OP_BINARY, b"\x00"))
        self.assertEqual(c.recv_json()["action"], "alived")
        self.assertClosedWith(c, 1003)

    def test_one_byte_close_payload_is_1002(self):
        c = self.ws()
        c.send_raw(build_frame(OP_CLOSE, b"\x03"))
        self.assertClosedWith(c, 1002)

    def test_small_max_message(self):
        s = self.start_server("--ws-max-message", "1024")
        c = self.ws(s)
        self.assertEqual(c.request_json(sized_announce(1024))["action"], "announceReceived")
        c.send_text(sized_announce(1025))
        self.assertClosedWith(c, 1009)
        c = self.ws(s)
        c.send_fragments([sized_announce(1025)[:600], sized_announce(1025)[600:]])
        self.assertClosedWith(c, 1009)

    def test_not_one_json_object_is_bad_request(self):
        c = self.ws()
        for text in ("hello", "", " ", "[1,2]", '"announce"', "42", "null",
                     '{"action":"announce"}{"action":"announce"}', '{"action":"announce"} x',
                     '{"action":"announce"', '{"action":', "{'action':'announce'}", "{}",
                     '{"action":42}', '{"action":null}', '{"action":["announce"]}',
                     '{"action":"push","shareId":{"$ne":null}}'):
            r = c.request_json(text)
            self.assertError(r, "badRequest", message=True)
        # The connection stays, and works.
        r = c.request_json({"action": "announce"})
        self.assertEqual(r["action"], "announceReceived", r)
        # Deep nesting does not crash or close it either.
        r = c.request_json('{"action":"alive","x":' + "[" * 5000 + "]" * 5000 + "}")
        self.assertIn(r.get("action"), ("alived", "error"), r)
        self.assertEqual(c.request_json({"action": "alive"}), {"action": "alived"})

    def test_invalid_utf8_1007(self):
        for raw in (b'{"action":"\xff"}', b'{"action":"alive","pad":"\xc0\xaf"}',
                    b'{"action":"alive","pad":"\xed\xa0\x80"}', b'{"action":"alive","pad":"\xe2\x82"}',
                    b"\x80"):
            c = self.ws()
            c.send_text(raw)
            self.assertClosedWith(c, 1007)
        # Invalid across fragments (a lead byte, then a non-continuation byte).
        c = self.ws()
        c.send_fragments([b'{"action":"alive","pad":"\xc3', b'("}'])
        self.assertClosedWith(c, 1007)
        # The peer announced on a connection closed this way is gone.
        c = self.ws()
        sid = c.request_json({"action": "announce"})["data"]["shareId"]
        c.send_text(b'\xfe')
        self.assertClosedWith(c, 1007)
        p = self.ws()
        p.request_json({"action": "announce"})
        self.assertError(p.request_json({"action": "push", "shareId": sid}), "unknownShareId")

    def test_binary_1003(self):
        c = self.ws()
        c.send_binary(b'{"action":"announce"}')
        self.assertClosedWith(c, 1003)
        c = self.ws()
        c.request_json({"action": "announce"})
        c.send_fragments([b"\x00\x01", b"\x02"], opcode=OP_BINARY)
        self.assertClosedWith(c, 1003)

    def test_client_close_is_answered(self):
        c = self.ws()
        c.request_json({"action": "announce"})
        c.send_close(1000, "bye")
        self.assertClosedWith(c, 1000)
        c = self.ws()
        c.send_close(None)           # a close without a status code
        code = c.expect_close()
        self.assertIn(code, (None, 1000), code)
        c = self.ws()
        c.send_close(4001, "app reason")
        code = c.expect_close()
        self.assertIn(code, (4001, 1000), code)

    def test_protocol_violations_close(self):
        """RFC 6455 makes these fatal; punchd must close (1002 if it sends a code), never crash."""
        cases = [
            ("unmasked", build_frame(OP_TEXT, b'{"action":"alive"}', mask=False)),
            ("rsv1", build_frame(OP_TEXT, b'{"action":"alive"}', rsv=4)),
            ("reserved opcode 3", build_frame(3, b"x")),
            ("reserved opcode 11", build_frame(11, b"x")),
            ("continuation first", build_frame(OP_CONT, b"x")),
            ("fragmented ping", build_frame(OP_PING, b"x", fin=False)),
            ("ping over 125", build_frame(OP_PING, b"x" * 126)),
            ("text inside text", build_frame(OP_TEXT, b"{", fin=False) + build_frame(OP_TEXT, b"}")),
            ("close 1-byte", build_frame(OP_CLOSE, b"\x03")),
            ("close code 1005", build_frame(OP_CLOSE, b"\x03\xed")),
            ("close invalid utf8 reason", build_frame(OP_CLOSE, b"\x03\xe8\xff")),
        ]
        for name, raw in cases:
            c = self.ws()
            c.send_raw(raw)
            try:
                code = c.expect_close()
            except ConnectionEnded:
                code = "eof"
            allowed = (1002, 1007, "eof") if not name.startswith("close") else (None, 1000, 1002, 1007, "eof")
            self.assertIn(code, allowed, f"{name}: closed with {code}")
        p = self.ws()
        self.assertEqual(p.request_json({"action": "announce"})["action"], "announceReceived")

    def test_messages_after_close_are_ignored(self):
        c = self.ws()
        c.request_json({"action": "announce"})
        c.send_raw(build_frame(OP_CLOSE, b"\x03\xe8") + build_frame(OP_TEXT, b'{"action":"alive"}'))
        self.assertClosedWith(c, 1000)
        self.assertEqual(c.skipped, [])
