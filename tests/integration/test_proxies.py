"""Issue 7: behind a reverse proxy (for wss://), trusted_proxies lets the PROXY protocol v1
header or X-Forwarded-For name the client, so addr and the per-IP limits see the real client;
from anyone else both are ignored (the PROXY line is then just a malformed request)."""
from harness import PunchdTestCase


class TrustedProxyTest(PunchdTestCase):
    server_flags = ("--trusted-proxies", "127.0.0.0/8")

    def announce_via(self, s=None, preface=b"", headers=None):
        c = self.conn(s)
        if preface:
            c.send_raw(preface)
        c.handshake(extra=list((headers or {}).items()))
        r = c.request_json({"action": "announce"})
        self.assertEqual(r["action"], "announceReceived", r)
        return c, r["data"]

    def test_x_forwarded_for_names_the_client(self):
        _, d = self.announce_via(headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
        self.assertEqual(d["addr"], "203.0.113.9:0")   # the entry the trusted proxy added
        _, d = self.announce_via(headers={"X-Forwarded-For": "2001:db8::7"})
        self.assertEqual(d["addr"], "[2001:db8::7]:0")

    def test_proxy_v1_names_the_client(self):
        _, d = self.announce_via(preface=b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 3000\r\n")
        self.assertEqual(d["addr"], "198.51.100.7:40000")
        _, d = self.announce_via(preface=b"PROXY TCP6 2001:db8::1 ::1 4444 3000\r\n")
        self.assertEqual(d["addr"], "[2001:db8::1]:4444")

    def test_proxy_line_split_across_writes(self):
        c = self.conn()
        c.send_raw(b"PROXY TCP4 198.51.1")
        c.send_raw(b"00.8 127.0.0.1 41000 3000\r\n")
        c.handshake()
        self.assertEqual(c.request_json({"action": "announce"})["data"]["addr"], "198.51.100.8:41000")

    def test_malformed_proxy_line_is_400(self):
        for bad in (b"PROXY TCP4 not-an-ip 127.0.0.1 1 2\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 0 2\r\n",
                    b"PROXY TCP4 ::1 ::1 1 2\r\n", b"PROXY " + b"x" * 120):
            c = self.conn()
            c.send_raw(bad)
            self.assertEqual(c.read_response().status, 400, bad)

    def test_no_header_keeps_the_proxy_address(self):
        _, d = self.announce_via()
        self.assertRegex(d["addr"], r"^127\.0\.0\.1:\d+$")


class UntrustedTest(PunchdTestCase):
    server_flags = ("--trusted-proxies", "10.0.0.0/8")

    def test_forwarded_for_from_strangers_is_ignored(self):
        c = self.conn()
        c.handshake(extra=[("X-Forwarded-For", "203.0.113.9")])
        d = c.request_json({"action": "announce"})["data"]
        self.assertRegex(d["addr"], r"^127\.0\.0\.1:\d+$")

    def test_proxy_line_from_strangers_is_a_bad_request(self):
        c = self.conn()
        c.send_raw(b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 3000\r\n")
        self.assertEqual(c.read_response().status, 400)


class ProxyLimitsTest(PunchdTestCase):
    """max_connections_per_ip counts the real clients, not the proxy."""

    def test_per_ip_cap_applies_to_forwarded_clients(self):
        s = self.start_server("--trusted-proxies", "127.0.0.1", "--max-connections-per-ip", "1",
                              limits=True)
        a = self.conn(s)
        a.handshake(extra=[("X-Forwarded-For", "198.51.100.1")])
        b = self.conn(s)
        b.handshake(extra=[("X-Forwarded-For", "198.51.100.2")])   # another client: fine
        c = self.conn(s)
        c.send_request("GET", "/", c.handshake_headers(extra=[("X-Forwarded-For", "198.51.100.1")]))
        self.assertEqual(c.read_response().status, 503)
        d = self.conn(s)
        d.send_raw(b"PROXY TCP4 198.51.100.2 127.0.0.1 5 6\r\n")
        self.assertEqual(d.read_response().status, 503)
