"""The WebSocket opening handshake (RFC 6455 section 4): a good one, RFC 6455's own example key,
missing headers (400), keys that are not base64 of 16 bytes (400), a wrong version (426 with
Sec-WebSocket-Version: 13), other paths (404), case-insensitive headers, an upgrade after a
keep-alive request, frames sent in the same write as the request."""
import base64
import os

from harness import PunchdTestCase
from wsclient import accept_key, build_frame, OP_TEXT

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


class HandshakeTest(PunchdTestCase):
    server_flags = ()

    def test_good_handshake(self):
        c = self.conn()
        r = c.handshake("/")          # random key; checks 101, Upgrade, Connection, Accept
        self.assertEqual(r.status, 101)
        self.assertEqual(r.body, b"")
        self.assertEqual(bytes(c.buf), b"", "bytes after the 101 before any request")
        self.assertEqual(c.request_json({"action": "announce"})["action"], "announceReceived")
        # Many different random keys, each answered with its own accept value.
        for _ in range(5):
            self.ws()

    def test_rfc6455_example_key(self):
        self.assertEqual(accept_key(RFC_KEY), RFC_ACCEPT)  # the client's own computation
        c = self.conn()
        r = c.handshake("/", key=RFC_KEY)
        self.assertEqual(r.header("sec-websocket-accept"), RFC_ACCEPT)

    def test_missing_headers_400(self):
        for omit in ("Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version"):
            c = self.conn()
            r = c.handshake("/", omit=(omit,), expect=None)
            self.assertEqual(r.status, 400, f"without {omit}: {r!r}")
            c.close()
        for kw in ({"upgrade": "h2c"}, {"connection": "keep-alive"}, {"upgrade": "websocket2"}):
            c = self.conn()
            r = c.handshake("/", expect=None, **kw)
            self.assertEqual(r.status, 400, f"{kw}: {r!r}")
            c.close()
        # The server still upgrades a good one.
        self.ws()

    def test_bad_keys_400(self):
        keys = [
            base64.b64encode(os.urandom(15)).decode(),     # 15 bytes
            base64.b64encode(os.urandom(17)).decode(),     # 17 bytes
            base64.b64encode(os.urandom(32)).decode(),     # 32 bytes
            base64.b64encode(os.urandom(16)).decode().rstrip("="),   # 16 bytes, no padding
            "!!!!!!!!!!!!!!!!!!!!!!==",                     # 24 characters, not base64
            "dGhlIHNhbXBsZSBub25jZQ=",                      # one '=' short
            "dGhlIHNhbXBsZSBub25jZQ==dGhl",                 # trailing junk
            "abc",
        ]
        for key in keys:
            c = self.conn()
            r = c.handshake("/", key=key, expect=None)
            self.assertEqual(r.status, 400, f"key {key!r}: {r!r}")
            c.close()

    def test_wrong_version_426(self):
        for v in ("8", "12", "14", "7", "130"):
            c = self.conn()
            r = c.handshake("/", version=v, expect=None)
            self.assertEqual(r.status, 426, f"version {v}: {r!r}")
            self.assertEqual(r.header("sec-websocket-version"), "13", r)
            c.close()

    def test_upgrade_on_other_paths_404(self):
        for path in ("/ws", "/socket", "/x/y", "/compat", "//", "/websocket?x=1"):
            c = self.conn()
            r = c.handshake(path, expect=None)
            self.assertEqual(r.status, 404, f"upgrade on {path}: {r!r}")
            c.close()

    def test_case_insensitive(self):
        c = self.conn()
        key = base64.b64encode(os.urandom(16)).decode()
        c.send_raw(("GET / HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\n"
                    "connection: keep-alive, Upgrade\r\nsec-websocket-key: " + key +
                    "\r\nSEC-WEBSOCKET-VERSION: 13\r\nOrigin: http://example.com\r\n\r\n").encode())
        r = c.read_response()
        self.assertEqual(r.status, 101, r)
        self.assertEqual(r.header("sec-websocket-accept"), accept_key(key))
        self.assertEqual(c.request_json({"action": "announce"})["action"], "announceReceived")

    def test_upgrade_after_keep_alive_request(self):
        c = self.conn()
        self.assertEqual(c.request("GET", "/healthz").status, 200)
        self.assertEqual(c.request("GET", "/nope").status, 404)
        c.handshake("/")
        r = c.request_json({"action": "announce"})
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertEqual(r["data"]["addr"], c.addr)

    def test_frames_in_the_same_write_as_the_request(self):
        c = self.conn()
        key = base64.b64encode(os.urandom(16)).decode()
        head = c.handshake_headers(key=key)
        req = "GET / HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head) + "\r\n"
        c.send_raw(req.encode() + build_frame(OP_TEXT, b'{"action":"announce"}')
                   + build_frame(OP_TEXT, b'{"action":"alive"}'))
        r = c.read_response()
        self.assertEqual(r.status, 101, r)
        self.assertEqual(r.header("sec-websocket-accept"), accept_key(key))
        self.assertEqual(c.recv_json()["action"], "announceReceived")
        self.assertEqual(c.recv_json(), {"action": "alived"})
