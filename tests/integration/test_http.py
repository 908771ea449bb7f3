"""HTTP on punchd's TCP port: the start line, /healthz, /metrics (every series from the start, and
counting), routing (404, 405, query strings), keep-alive and pipelining, malformed requests (400
and close), the 5 s request-head deadline."""
import socket
import time

from harness import PunchdTestCase, metric, padded, parse_metrics, scaled, encode
from wsclient import ConnectionEnded

TRANSPORTS = ("udp", "ws")
ACTIONS = ("announce", "pulse", "alive", "push", "relay", "probe", "unknown")
ERROR_CODES = ("badRequest", "unknownAction", "notAnnounced", "unknownShareId", "unauthorized",
               "full", "tooLarge", "rateLimited", "unreachable", "retry")
METRIC_NAMES = ("punchd_peers", "punchd_ws_connections", "punchd_requests_total", "punchd_errors_total",
                "punchd_dropped_datagrams_total", "punchd_relayed_bytes_total", "punchd_uptime_seconds")


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StartLineTest(PunchdTestCase):
    def test_tcp_on_the_udp_port_number(self):
        s = self.start_server()
        self.assertIsNotNone(s.tcp_port, f"no 'and tcp <addr>' in the start line: {s.listen_line!r}")
        self.assertEqual(s.tcp_port, s.port, s.listen_line)
        self.assertEqual(s.tcp_host, "127.0.0.1", s.listen_line)
        self.assertEqual(s.http("/healthz").status, 200)

    def test_ws_port_flag(self):
        want = free_tcp_port()
        s = self.start_server("--ws-port", str(want))
        self.assertEqual(s.tcp_port, want, s.listen_line)
        self.assertEqual(s.http("/healthz").status, 200)
        # UDP still works on its own (different) port.
        c = self.client(s)
        self.assertShareId(c.announce()["shareId"])


class HealthzTest(PunchdTestCase):
    def test_healthz_shape_and_peer_count(self):
        s = self.start_server()
        r = s.http("/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("content-type") or "").startswith("application/json"), r)
        body = r.json()
        self.assertEqual(set(body), {"status", "peers", "uptime"}, body)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["peers"], 0)
        self.assertIsInstance(body["uptime"], int)
        self.assertGreaterEqual(body["uptime"], 0)
        # Two UDP peers and one WS peer.
        self.announced(s)
        u, ud = self.announced(s)
        w, wd = self.ws_announced(s)
        self.assertEqual(s.healthz()["peers"], 3)
        # A fresh UDP socket attaching to w's identity adds a transport, not an identity.
        a = self.client(s)
        r = a.request(padded({"action": "announce", "shareId": wd["shareId"], "token": wd["token"]}, 256))
        self.assertEqual(r["action"], "announceReceived", r)
        self.assertEqual(s.healthz()["peers"], 3)
        # A WS-only peer leaves: at once one fewer.
        w2, _ = self.ws_announced(s)
        self.assertEqual(s.healthz()["peers"], 4)
        self.assertEqual(w2.close_cleanly(), 1000)
        self.assertEqual(s.healthz()["peers"], 3)


class MetricsTest(PunchdTestCase):
    def get(self, s):
        r = s.http("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("content-type") or "").startswith("text/plain"), r)
        return r

    def test_every_series_present_at_zero(self):
        s = self.start_server()
        text = self.get(s).text()
        m = parse_metrics(text)
        for name in METRIC_NAMES:
            self.assertRegex(text, rf"(?m)^# TYPE {name} (counter|gauge)$")
        self.assertEqual(metric(m, "punchd_peers"), 0)
        self.assertEqual(metric(m, "punchd_ws_connections"), 0)
        self.assertEqual(metric(m, "punchd_relayed_bytes_total"), 0)
        self.assertGreaterEqual(metric(m, "punchd_uptime_seconds"), 0)
        for t in TRANSPORTS:
            for a in ACTIONS:
                self.assertEqual(metric(m, "punchd_requests_total", transport=t, action=a), 0)
        for code in ERROR_CODES:
            self.assertEqual(metric(m, "punchd_errors_total", code=code), 0)
        dropped = {k: v for k, v in m.items() if k[0] == "punchd_dropped_datagrams_total"}
        self.assertTrue(dropped, "no punchd_dropped_datagrams_total series")
        for (name, labels), v in dropped.items():
            self.assertEqual([l for l, _ in labels], ["reason"], labels)
            self.assertEqual(v, 0, labels)
        # Bounded label sets: nothing but the documented transports and actions.
        req = {dict(k[1])["transport"] + "/" + dict(k[1])["action"]
               for k in m if k[0] == "punchd_requests_total"}
        self.assertEqual(req, {f"{t}/{a}" for t in TRANSPORTS for a in ACTIONS})

    def test_counting(self):
        s = self.start_server()
        u = self.client(s)
        ud = u.announce()
        self.assertEqual(u.request({"action": "pulse"})["action"], "pulseReceived")
        self.assertEqual(u.request(padded({"action": "dance"}, 100))["data"]["code"], "unknownAction")
        a, ad = self.ws_announced(s)
        b, bd = self.ws_announced(s)
        self.assertEqual(a.request_json({"action": "push", "shareId": "zzzzzzzz"})["data"]["code"],
                         "unknownShareId")
        self.assertEqual(a.request_json({"action": "push", "shareId": bd["shareId"]})["action"],
                         "pushReceived")
        self.assertEqual(b.recv_json()["action"], "income")
        payload = {"candidate": "x" * 100}
        a.send_json({"action": "relay", "shareId": bd["shareId"], "data": payload})
        self.assertEqual(b.recv_json()["action"], "relayed")
        self.assertEqual(a.request_json({"action": "alive"}), {"action": "alived"})
        self.assertEqual(a.request_json({"action": "what"})["data"]["code"], "unknownAction")
        m = s.metrics()
        R = lambda t, act: metric(m, "punchd_requests_total", transport=t, action=act)  # noqa: E731
        self.assertEqual(R("udp", "announce"), 1)
        self.assertEqual(R("udp", "pulse"), 1)
        self.assertEqual(R("udp", "unknown"), 1)
        self.assertEqual(R("ws", "announce"), 2)
        self.assertEqual(R("ws", "push"), 2)
        self.assertEqual(R("ws", "relay"), 1)
        self.assertEqual(R("ws", "alive"), 1)
        self.assertEqual(R("ws", "unknown"), 1)
        self.assertEqual(R("udp", "push"), 0)
        self.assertEqual(metric(m, "punchd_errors_total", code="unknownAction"), 2)
        self.assertEqual(metric(m, "punchd_errors_total", code="unknownShareId"), 1)
        self.assertEqual(metric(m, "punchd_errors_total", code="badRequest"), 0)
        self.assertEqual(metric(m, "punchd_peers"), 3)
        self.assertEqual(metric(m, "punchd_ws_connections"), 2)
        relayed = metric(m, "punchd_relayed_bytes_total")
        self.assertGreaterEqual(relayed, len(encode(payload)))
        self.assertLess(relayed, 1000)
        # A dropped datagram is counted under some reason; nothing else moves.
        u.send(b"\xff not json")
        u.send(b"[1,2,3]")
        self.assertEqual(u.request({"action": "alive"}), {"action": "alived"})
        m2 = s.metrics()
        drops = lambda mm: sum(v for k, v in mm.items() if k[0] == "punchd_dropped_datagrams_total")  # noqa
        self.assertEqual(drops(m2) - drops(m), 2)
        self.assertEqual(metric(m2, "punchd_requests_total", transport="udp", action="alive"), 1)
        # A closed WebSocket is no longer counted.
        self.assertEqual(b.close_cleanly(), 1000)
        m3 = s.metrics()
        self.assertEqual(metric(m3, "punchd_ws_connections"), 1)
        self.assertEqual(metric(m3, "punchd_peers"), 2)


class RoutingTest(PunchdTestCase):
    server_flags = ()

    def test_not_found(self):
        for path in ("/nope", "/healthz/", "/healthz/x", "/metrics/x", "/metricsx", "/HEALTHZ",
                     "/index.html", "//healthz", "/ws", "/h"):
            r = self.server.http(path)
            self.assertEqual(r.status, 404, f"GET {path}: {r!r}")
        # "/" without an upgrade is not a page either.
        self.assertEqual(self.server.http("/").status, 404)

    def test_other_methods_405(self):
        for method, path, body in (("POST", "/healthz", b'{"a":1}'), ("POST", "/", b"x"),
                                   ("PUT", "/metrics", b"1"), ("DELETE", "/", b""),
                                   ("OPTIONS", "/healthz", b""), ("PATCH", "/metrics", b"p"),
                                   ("POST", "/nope", b"")):
            c = self.conn()
            r = c.request(method, path, body=body)
            self.assertEqual(r.status, 405, f"{method} {path}: {r!r}")
            c.close()
        for path in ("/healthz", "/metrics", "/"):
            c = self.conn()
            r = c.request("HEAD", path)
            self.assertEqual(r.status, 405, f"HEAD {path}: {r!r}")
            c.close()

    def test_query_string_ignored(self):
        r = self.server.http("/healthz?verbose=1&x=%20")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["status"], "ok")
        r = self.server.http("/metrics?name[]=punchd_peers")
        self.assertEqual(r.status, 200, r)
        self.assertIn("punchd_peers", r.text())
        self.assertEqual(self.server.http("/nope?/healthz").status, 404)
        self.assertEqual(self.server.http("/?healthz").status, 404)
        self.assertEqual(self.server.http("/healthz?").status, 200)
        # And an upgrade on "/?..." is an upgrade on "/".
        c = self.conn()
        c.handshake("/?token=abc&v=1")
        self.assertEqual(c.request_json({"action": "announce"})["action"], "announceReceived")

    def test_keep_alive(self):
        c = self.conn()
        for path, status in (("/healthz", 200), ("/metrics", 200), ("/nope", 404), ("/healthz", 200)):
            r = c.request("GET", path)
            self.assertEqual(r.status, status, f"{path}: {r!r}")
            self.assertNotEqual((r.header("connection") or "").lower(), "close", r)
        self.assertTrue(c.is_open_now(0.1), "the server closed a keep-alive connection")
        # Pipelined: three requests in one write, three answers in order.
        c.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /metrics?x HTTP/1.1\r\nHost: x\r\n\r\n")
        statuses = [c.read_response().status for _ in range(3)]
        self.assertEqual(statuses, [200, 404, 200])
        self.assertTrue(c.is_open_now(0.05))

    def test_connection_close_and_http10(self):
        c = self.conn()
        r = c.request("GET", "/healthz", headers=[("Connection", "close")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(c.expect_eof(), b"")
        c = self.conn()
        r = c.request("GET", "/healthz", version="HTTP/1.0")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(c.expect_eof(), b"")
        # HTTP/1.0 with keep-alive asked for: kept.
        c = self.conn()
        r = c.request("GET", "/healthz", version="HTTP/1.0", headers=[("Connection", "keep-alive")])
        self.assertEqual(r.status, 200, r)
        r = c.request("GET", "/metrics", version="HTTP/1.0", headers=[("Connection", "keep-alive")])
        self.assertEqual(r.status, 200, r)

    def test_other_http_versions_505_and_close(self):
        for version in ("HTTP/9.9", "HTTP/2.0", "HTTP/0.9"):
            c = self.conn()
            r = c.request("GET", "/healthz", version=version)
            self.assertEqual(r.status, 505, (version, r))
            self.assertEqual(c.expect_eof(), b"")

    def test_malformed_400_and_close(self):
        bad = [
            b"GARBAGE\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",           # header without a colon
            b"GET /healthz HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            b"\x00\x01\x02\x03\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET /hea lthz HTTP/1.1\r\n\r\n",
            b"GET /healthz HTTX/1.1\r\nHost: x\r\n\r\n",       # http-parser alone would take it
            b"GET /healthz HTTP/1.1 extra\r\n\r\n",
        ]
        for raw in bad:
            c = self.conn()
            c.send_raw(raw)
            try:
                r = c.read_response()
            except ConnectionEnded as e:
                self.fail(f"{raw!r}: connection closed without a 400 ({e})")
            self.assertEqual(r.status, 400, f"{raw!r}: {r!r}")
            c.expect_eof()
            c.close()
        # After a good request on a keep-alive connection, a bad one: 400 and close.
        c = self.conn()
        self.assertEqual(c.request("GET", "/healthz").status, 200)
        c.send_raw(b"BLAH BLAH BLAH\r\n\r\n")
        self.assertEqual(c.read_response().status, 400)
        c.expect_eof()
        # An oversized head (far over any sane limit), sent whole: 400 and close.
        c = self.conn()
        c.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 12000 + b"\r\n\r\n")
        try:
            r = c.read_response()
            self.assertEqual(r.status, 400, r)
        except ConnectionEnded:
            pass  # closed before we could read it (reset): acceptable for a flood
        c.expect_eof()
        # Still serving.
        self.assertEqual(self.server.http("/healthz").status, 200)


class HeadDeadlineTest(PunchdTestCase):
    def test_request_head_within_5s(self):
        s = self.start_server()
        t0 = time.monotonic()
        silent = self.conn(s)
        partial = self.conn(s)
        partial.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        upgraded = self.ws(s)                      # a WebSocket is not subject to the deadline
        keep = self.conn(s)
        self.assertEqual(keep.request("GET", "/healthz").status, 200)
        got = silent.expect_eof(timeout=scaled(5) + 3)
        t_silent = time.monotonic() - t0
        self.assertEqual(got, b"", "the silent connection got bytes before being closed")
        got = partial.expect_eof(timeout=scaled(2))
        t_partial = time.monotonic() - t0
        self.assertEqual(got, b"", "the partial-head connection got bytes before being closed")
        self.assertGreaterEqual(t_silent, 4.5, "closed before 5 s")
        self.assertGreaterEqual(t_partial, 4.5, "closed before 5 s")
        self.assertLessEqual(t_silent, scaled(5) + 2.5)
        # The WebSocket lives on.
        self.assertEqual(upgraded.request_json({"action": "announce"})["action"], "announceReceived")
        h = s.healthz()
        self.assertGreaterEqual(h["uptime"], 4)
        self.assertEqual(h["peers"], 1)
