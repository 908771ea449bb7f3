"""workers > 1: several UDP sockets on one port (SO_REUSEPORT), one thread and
loop each, one shared tracker. A push must find a peer whatever worker it
announced on, and income to a WebSocket peer must cross from a worker thread
to the loop that owns the connection.

Which worker a client lands on is the kernel's choice (a hash of the source
address): each client's worker is learnt from the per-worker counter
punchd_udp_datagrams_total{worker} around one request of its own."""
import os
import socket
import subprocess
import tempfile

import harness
from harness import PunchdTestCase, metric, padded, punch_fields_ok, scaled

WORKERS = 3
CLIENTS = 24  # all on one worker by chance: 3 * (1/3)^24, never


class WorkersTest(PunchdTestCase):
    server_flags = ("--workers", str(WORKERS))

    def worker_counts(self):
        m = self.server.metrics()
        return [metric(m, "punchd_udp_datagrams_total", worker=str(k)) for k in range(WORKERS)]

    def worker_of(self, client, request):
        """Sends request from client; returns (reply, the worker that read it)."""
        before = self.worker_counts()
        reply = client.request(request)
        after = self.worker_counts()
        moved = [k for k in range(WORKERS) if after[k] != before[k]]
        self.assertEqual(len(moved), 1, f"one request, counters {before} -> {after}")
        self.assertEqual(after[moved[0]] - before[moved[0]], 1)
        return reply, moved[0]

    def spread_clients(self):
        """Announced clients grouped by worker: {worker: [(client, data), ...]}."""
        by_worker = {}
        for _ in range(CLIENTS):
            c = self.client()
            r, k = self.worker_of(c, padded({"action": "announce"}, 128))
            self.assertIn(r.get("action"), ("announceReceived", "announced"), r)
            by_worker.setdefault(k, []).append((c, r["data"]))
        return by_worker

    def test_every_worker_reads_and_series_are_bounded(self):
        by_worker = self.spread_clients()
        self.assertGreaterEqual(len(by_worker), 2, f"all {CLIENTS} clients on one worker: {by_worker.keys()}")
        m = self.server.metrics()
        series = [k for k in m if k[0] == "punchd_udp_datagrams_total"]
        self.assertEqual(len(series), WORKERS, series)

    def test_push_finds_peer_on_another_worker(self):
        by_worker = self.spread_clients()
        workers = sorted(by_worker)
        self.assertGreaterEqual(len(workers), 2)
        pairs = 0
        for i, wa in enumerate(workers):
            for wb in workers[i + 1:]:
                (a, ad), (b, bd) = by_worker[wa][0], by_worker[wb][0]
                # a (worker wa) pushes b (worker wb), and the other way round.
                self.assertPushed(a, b, bd["shareId"], ad["shareId"], pad=300)
                self.assertPushed(b, a, ad["shareId"], bd["shareId"], pad=300)
                pairs += 1
        self.assertGreaterEqual(pairs, 1)

    def test_pulse_and_alive_across_workers_keep_state(self):
        # Every client's state (its token) is in the one registry, whichever
        # worker reads its next request: a pulse with the token succeeds.
        by_worker = self.spread_clients()
        for k, members in by_worker.items():
            for c, d in members[:2]:
                r = c.request(padded({"action": "pulse", "shareId": d["shareId"], "token": d["token"]}, 128))
                self.assertEqual(r.get("action"), "pulseReceived", r)
                self.assertEqual(c.request(b'{"action":"alive"}'), {"action": "alived"})

    def test_udp_worker_pushes_websocket_peer(self):
        # Income to a WebSocket connection from a push read by a worker thread
        # (posted to the main loop), and the reverse: WS pushes a UDP peer.
        by_worker = self.spread_clients()
        off_main = [m for k, ms in by_worker.items() if k != 0 for m in ms]
        self.assertTrue(off_main, f"no client on a worker thread: {by_worker.keys()}")
        u, ud = off_main[0]
        w, wd = self.ws_announced()
        for _ in range(3):
            r = punch_fields_ok(u.request(padded({"action": "push", "shareId": wd["shareId"]}, 300)))
            self.assertEqual(r.get("action"), "pushReceived", r)
            self.assertEqual(r["data"]["peerShareId"], wd["shareId"])
            inc = punch_fields_ok(w.recv_json(timeout=scaled(2)))
            self.assertEqual(inc.get("action"), "income", inc)
            self.assertEqual(inc["data"]["peerShareId"], ud["shareId"], inc)
            self.assertEqual(inc["data"]["peeraddr"], u.addr, inc)
        w.send_json({"action": "push", "shareId": ud["shareId"]})
        r = punch_fields_ok(w.recv_json(timeout=scaled(2)))
        self.assertEqual(r.get("action"), "pushReceived", r)
        inc = punch_fields_ok(u.recv())
        self.assertEqual(inc.get("action"), "income", inc)
        self.assertEqual(inc["data"]["peerShareId"], wd["shareId"], inc)

    def test_many_workers_push_one_websocket_at_once(self):
        # Every worker posts income for the same connection concurrently while
        # the main loop also serves it: every income arrives, none twice.
        by_worker = self.spread_clients()
        pushers = [m for ms in by_worker.values() for m in ms]
        w, wd = self.ws_announced()
        rounds = 8
        for _ in range(rounds):
            for c, _ in pushers:
                c.send(padded({"action": "push", "shareId": wd["shareId"]}, 300))
        want = {}
        for c, d in pushers:
            want[d["shareId"]] = rounds
        got = {}
        for _ in range(rounds * len(pushers)):
            inc = w.recv_json(timeout=scaled(5))
            self.assertEqual(inc.get("action"), "income", inc)
            sid = inc["data"]["peerShareId"]
            got[sid] = got.get(sid, 0) + 1
        self.assertEqual(got, want)
        for c, _ in pushers:
            replies = [punch_fields_ok(c.recv()) for _ in range(rounds)]
            self.assertTrue(all(r.get("action") == "pushReceived" for r in replies), replies)

    def test_threads_and_sockets(self):
        pid = self.server.proc.pid
        if harness.WRAPPER:
            self.skipTest("under a wrapper (valgrind) threads are the wrapper's")
        threads = len(os.listdir(f"/proc/{pid}/task"))
        self.assertGreaterEqual(threads, WORKERS)
        # WORKERS UDP sockets bound to the one port (plus none other there).
        port_hex = f"{self.server.port:04X}"
        with open(f"/proc/{pid}/net/udp") as f:
            rows = [line.split() for line in f.readlines()[1:]]
        on_port = [r for r in rows if r[1].endswith(":" + port_hex)]
        self.assertEqual(len(on_port), WORKERS, on_port)


class WorkersLifecycleTest(PunchdTestCase):
    server_flags = None

    def test_bad_worker_counts_are_config_errors(self):
        for bad in ("0", "65", "two"):
            with tempfile.TemporaryDirectory() as d:
                p = subprocess.run(harness.WRAPPER + [harness.BIN, "--port", "0", "--workers", bad], cwd=d,
                                   capture_output=True, text=True, timeout=scaled(10))
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("workers", p.stderr)

    def test_stop_under_load_is_clean(self):
        # SIGTERM while worker threads are busy: exit 0, nothing leaked (SAN).
        s = self.start_server("--workers", "2")
        clients = [self.client(s) for _ in range(8)]
        for c in clients:
            for _ in range(20):
                c.send(b'{"action":"announce"}')
        s.stop()
        self.assertIn("workers 2", s.listen_line)

    def test_port_already_served_is_refused(self):
        # SO_REUSEPORT must not let a second punchd share a port another one
        # already serves (the kernel would split the traffic between them).
        first = self.start_server("--workers", "2")
        with socket.socket() as t:  # a free TCP port: only the UDP port is contested
            t.bind(("127.0.0.1", 0))
            ws_port = t.getsockname()[1]
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run(harness.WRAPPER + [harness.BIN, "--bind", "127.0.0.1", "--port", str(first.port),
                                                  "--ws-port", str(ws_port), "--workers", "2"], cwd=d,
                               capture_output=True, text=True, timeout=scaled(10))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot bind", p.stderr)
        c, _ = self.announced(first)  # the first one still serves

    def test_one_worker_has_one_socket_and_series(self):
        s = self.start_server()
        m = s.metrics()
        series = [k for k in m if k[0] == "punchd_udp_datagrams_total"]
        self.assertEqual(len(series), 1, series)
        c, _ = self.announced(s)
        self.assertGreaterEqual(metric(s.metrics(), "punchd_udp_datagrams_total", worker="0"), 1)
        with open(f"/proc/{s.proc.pid}/net/udp") as f:
            rows = [line.split() for line in f.readlines()[1:]]
        self.assertEqual(len([r for r in rows if r[1].endswith(f":{s.port:04X}")]), 1)
