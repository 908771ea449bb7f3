"""Limits with clear outcomes: the new config keys, liveness (server pings every ws_ping_interval;
silent for two intervals -> 1001), max_connections (101 then 1013 for an upgrade, 503 for plain
HTTP), a slow reader past ws_max_queued (1008), and many concurrent connections."""
import subprocess
import threading
import time

from harness import BIN, PunchdTestCase, scaled
from wsclient import OP_TEXT, ConnectionEnded, build_frame


class ConfigTest(PunchdTestCase):
    def test_new_keys_validated(self):
        for key, value in (("ws_ping_interval", "0"), ("ws_ping_interval", "x"),
                           ("ws_port", "65536"), ("ws_port", "-1"), ("max_connections", "-1"),
                           ("max_connections", "0"), ("ws_max_message", "-1"), ("ws_max_queued", "-1"),
                           ("relay_max_bytes", "-1"), ("relay_bytes_per_sec", "-1")):
            flag = "--" + key.replace("_", "-")
            p = subprocess.run([BIN, "--port", "0", "--bind", "127.0.0.1", flag, value],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=scaled(5))
            err = p.stderr.decode("utf-8", "replace")
            self.assertEqual(p.returncode, 2, f"{flag} {value}: status {p.returncode}: {err}")
            self.assertIn(key, err, f"{flag} {value}: the error does not name the key: {err}")
            self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_new_keys_accepted_in_a_file(self):
        s = self.start_server(config={"ws_port": 0, "ws_ping_interval": 5, "max_connections": 50,
                                      "ws_max_message": 4096, "ws_max_queued": 100000,
                                      "relay_max_bytes": 1000, "relay_bytes_per_sec": 5000})
        self.assertEqual(s.tcp_port, s.port)
        c = self.ws(s)
        self.assertEqual(c.request_json({"action": "announce"})["action"], "announceReceived")


class LivenessTest(PunchdTestCase):
    server_flags = ("--ws-ping-interval", "1")

    def test_silent_client_closed_1001_others_stay(self):
        silent, sd = self.ws_announced()
        t_last = time.monotonic()          # the last thing silent sent
        silent.auto_pong = False
        answering, ad = self.ws_announced()
        talking, _ = self.ws_announced()
        talking.auto_pong = False
        results = {}
        watch = 3.5                         # more than 3 intervals

        def run(name, fn):
            try:
                results[name] = fn()
            except BaseException as e:  # reported below
                results[name] = e

        def silent_fn():
            code = silent.expect_close(timeout=scaled(3) + 2)
            return code, time.monotonic()

        def answering_fn():
            answering.expect_no_message(watch)   # answers every ping
            return len(answering.pings)

        def talking_fn():
            end = time.monotonic() + watch
            while time.monotonic() < end:       # messages but no pongs
                r = talking.request_json({"action": "alive"})
                if r != {"action": "alived"}:
                    raise AssertionError(r)
                time.sleep(0.3)
            return len(talking.pings)

        threads = [threading.Thread(target=run, args=(n, f)) for n, f in
                   (("silent", silent_fn), ("answering", answering_fn), ("talking", talking_fn))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(scaled(10))
        for name in ("silent", "answering", "talking"):
            if isinstance(results.get(name), BaseException):
                raise AssertionError(f"{name}: {results[name]}") from results[name]
        code, t_close = results["silent"]
        self.assertEqual(code, 1001)
        self.assertGreaterEqual(len(silent.pings), 1, "closed without being pinged")
        took = t_close - t_last
        self.assertGreaterEqual(took, 1.9, "closed before two intervals of silence")
        self.assertLessEqual(took, 3 + scaled(0.7), "not closed within about two intervals")
        self.assertGreaterEqual(results["answering"], 3, "pings every ws_ping_interval")
        gaps = [b - a for a, b in zip(answering.ping_times, answering.ping_times[1:])]
        for g in gaps:
            self.assertTrue(0.5 <= g <= 1 + scaled(0.5), f"ping gaps {gaps}")
        self.assertGreaterEqual(results["talking"], 2)
        # Both others are still open; the silent one's peer is gone.
        self.assertError(answering.request_json({"action": "push", "shareId": sd["shareId"]}), "unknownShareId")
        self.assertEqual(talking.request_json({"action": "alive"}), {"action": "alived"})


class MaxConnectionsTest(PunchdTestCase):
    def admitted(self, s):
        """A new WS connection that is admitted (polling while the server counts closes)."""
        deadline = time.monotonic() + scaled(2)
        while True:
            c = self.conn(s)
            c.handshake("/")
            try:
                r = c.request_json({"action": "alive"})
                self.assertError(r, "notAnnounced")
                return c
            except ConnectionEnded as e:
                self.assertEqual(e.code, 1013)
                c.close()
            self.assertLess(time.monotonic(), deadline, "no room after connections closed")
            time.sleep(0.02)

    def assertRefusedUpgrade(self, s):
        c = self.conn(s)
        r = c.handshake("/")               # 101 first (Accept checked) ...
        self.assertEqual(r.status, 101)
        self.assertEqual(c.expect_close(allow_messages=False), 1013)   # ... then 1013
        c.close()

    def test_max_connections(self):
        s = self.start_server("--max-connections", "2")
        c1 = self.ws(s)
        c1.request_json({"action": "announce"})
        c2 = self.ws(s)
        self.assertRefusedUpgrade(s)
        h = self.conn(s)
        r = h.request("GET", "/healthz")
        self.assertEqual(r.status, 503, r)
        h.close()
        # The first two are unaffected.
        self.assertEqual(c1.request_json({"action": "alive"}), {"action": "alived"})
        self.assertEqual(c2.request_json({"action": "announce"})["action"], "announceReceived")
        # One leaves: room for one more (WS or HTTP: all TCP connections count).
        self.assertEqual(c2.close_cleanly(), 1000)
        c3 = self.admitted(s)
        self.assertRefusedUpgrade(s)
        self.assertEqual(c3.close_cleanly(), 1000)
        deadline = time.monotonic() + scaled(2)
        while True:
            k = self.conn(s)
            r = k.request("GET", "/healthz")
            if r.status == 200:
                break
            self.assertEqual(r.status, 503, r)
            k.close()
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        # k (a keep-alive HTTP connection) and c1 fill it again.
        self.assertRefusedUpgrade(s)
        self.assertEqual(k.request("GET", "/metrics").status, 200)
        k.close()
        self.admitted(s)


class SlowReaderTest(PunchdTestCase):
    def test_slow_reader_closed_1008(self):
        """One relay at a time goes to a client that never reads and to one that does: the
        first is closed with 1008 once its backlog passes ws_max_queued, the second is not."""
        s = self.start_server("--ws-max-queued", "65536", "--relay-bytes-per-sec", "100000000")
        t = self.conn(s, rcvbuf=4096)
        t.handshake("/")
        td = t.request_json({"action": "announce"})["data"]
        reader, rd = self.ws_announced(s)
        a, ad = self.ws_announced(s)
        payload = "s" * 16000
        relay = '{"action":"relay","shareId":"%s","data":"' + payload + '"}'
        to_t = build_frame(OP_TEXT, relay % td["shareId"])
        to_r = build_frame(OP_TEXT, relay % rd["shareId"])
        alive = build_frame(OP_TEXT, '{"action":"alive"}')
        got = {"n": 0, "error": None}
        stop = threading.Event()

        def read_all():
            try:
                while not stop.is_set():
                    try:
                        op, data = reader.recv_message(timeout=0.2)
                    except ConnectionEnded:
                        raise
                    except AssertionError as e:
                        if "timed out" in str(e):
                            continue
                        raise
                    got["n"] += 1
            except BaseException as e:
                got["error"] = e

        th = threading.Thread(target=read_all)
        th.start()
        try:
            deadline = time.monotonic() + scaled(15)
            sent_r = 0
            gone = False
            while not gone:
                self.assertLess(time.monotonic(), deadline,
                                f"the non-reading client was never dropped ({sent_r} relays)")
                a.send_raw(to_t + to_r + alive)
                sent_r += 1
                while True:
                    r = a.recv_json(timeout=scaled(5))
                    if r == {"action": "alived"}:
                        break
                    self.assertError(r, "unknownShareId")   # the slow reader is gone
                    gone = True
            self.assertGreater(sent_r, 4, "dropped before its backlog could pass ws_max_queued")
            # The reading client got everything and is still open.
            end = time.monotonic() + scaled(5)
            while got["n"] < sent_r and got["error"] is None and time.monotonic() < end:
                time.sleep(0.01)
        finally:
            stop.set()
            th.join(scaled(5))
        self.assertIsNone(got["error"], f"the reading client: {got['error']}")
        self.assertEqual(got["n"], sent_r)
        self.assertEqual(reader.request_json({"action": "alive"}), {"action": "alived"})
        self.assertEqual(a.request_json({"action": "alive"}), {"action": "alived"})
        self.assertEqual(s.healthz()["peers"], 2)
        # The slow reader, reading at last, finds relayed messages and then a close 1008.
        try:
            code = t.expect_close(timeout=scaled(10))
        except ConnectionEnded as e:
            self.fail(f"the slow reader's connection ended without a close frame ({e})")
        self.assertEqual(code, 1008)
        self.assertGreater(len(t.skipped), 0)
        for op, data in t.skipped:
            self.assertEqual(op, OP_TEXT)


class ManyConnectionsTest(PunchdTestCase):
    def test_300_concurrent_ws_clients(self):
        n = 300
        s = self.start_server()
        conns = [self.conn(s) for _ in range(n)]
        for c in conns:
            c.start_handshake("/")
        for c in conns:
            c.finish_handshake("/")
        for c in conns:
            c.send_json({"action": "announce"})
        datas = []
        for c in conns:
            r = c.recv_json(timeout=scaled(5))
            self.assertEqual(r["action"], "announceReceived", r)
            self.assertEqual(r["data"]["addr"], c.addr)
            datas.append(r["data"])
        ids = [d["shareId"] for d in datas]
        self.assertEqual(len(set(ids)), n, "shareIds are not distinct")
        self.assertEqual(s.healthz()["peers"], n)
        m = s.metrics()
        self.assertEqual(m[("punchd_ws_connections", ())], n)
        self.assertEqual(m[("punchd_peers", ())], n)
        # Everyone pushes the next one at once: each gets a pushReceived and an income.
        for i, c in enumerate(conns):
            c.send_json({"action": "push", "shareId": ids[(i + 1) % n]})
        for i, c in enumerate(conns):
            got = sorted((c.recv_json(timeout=scaled(5)) for _ in range(2)), key=lambda r: r["action"])
            self.assertEqual([g["action"] for g in got], ["income", "pushReceived"], got)
            self.assertEqual(got[0]["data"]["peerShareId"], ids[(i - 1) % n])
            self.assertEqual(got[1]["data"]["peerShareId"], ids[(i + 1) % n])
        # All leave abruptly: every peer goes.
        for c in conns:
            c.close()
        deadline = time.monotonic() + scaled(3)
        while s.healthz()["peers"] != 0:
            self.assertLess(time.monotonic(), deadline, "peers of closed connections remain")
            time.sleep(0.05)
        self.assertEqual(s.metrics()[("punchd_ws_connections", ())], 0)
