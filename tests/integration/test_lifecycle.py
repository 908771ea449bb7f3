"""Issue 7, process lifecycle: `punchd --health` (the container health check) and
graceful shutdown (SIGTERM closes every WebSocket with 1001 before punchd exits)."""
import signal
import socket
import subprocess
import threading

from harness import BIN, PunchdTestCase, scaled
from wsclient import ConnectionEnded


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class HealthTest(PunchdTestCase):
    def health(self, *flags):
        return subprocess.run([BIN, "--health", *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=scaled(10), cwd="/")

    def test_healthy_server_exits_0(self):
        s = self.start_server()
        r = self.health("--bind", "127.0.0.1", "--port", str(s.port))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"ok", r.stdout)
        # A wildcard bind is checked on loopback; ws_port wins over port.
        r = self.health("--bind", "0.0.0.0", "--port", "1", "--ws-port", str(s.tcp_port))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_nothing_listening_exits_1(self):
        r = self.health("--bind", "127.0.0.1", "--port", str(free_port()))
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"--health", r.stderr)

    def test_not_punchd_exits_1(self):
        # Something that accepts but does not answer 200: a listener that says 404.
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        self.addCleanup(srv.close)

        def answer():
            c, _ = srv.accept()
            c.recv(1024)
            c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            c.close()
        t = threading.Thread(target=answer, daemon=True)
        t.start()
        r = self.health("--bind", "127.0.0.1", "--port", str(srv.getsockname()[1]))
        self.assertEqual(r.returncode, 1)
        t.join(scaled(5))

    def test_config_errors_still_exit_2(self):
        r = self.health("--port", "70000")
        self.assertEqual(r.returncode, 2)


class ShutdownTest(PunchdTestCase):
    def test_sigterm_closes_websockets_with_1001(self):
        s = self.start_server()
        clients = [self.ws(s) for _ in range(3)]
        clients[0].request_json({"action": "announce"})
        plain = self.conn(s)          # an HTTP connection that never sent a request
        s.proc.send_signal(signal.SIGTERM)
        for c in clients:
            try:
                code = c.expect_close(scaled(5))
            except ConnectionEnded as e:
                self.fail(f"connection ended without a close frame: {e}")
            self.assertEqual(code, 1001, c.close_reason)
        plain.expect_eof(scaled(5))
        # It stops by itself after the closes (no second signal: that would mean "now").
        self.assertEqual(s.proc.wait(scaled(10)), 0, s.stderr_text()[-2000:])
        s.stop()

    def test_sigterm_with_no_connections_exits_at_once(self):
        s = self.start_server()
        self.assertEqual(s.stop(timeout=scaled(5)), 0)


class EnvironmentTest(PunchdTestCase):
    """PUNCHD_<KEY> overrides the file; flags override it; an unknown PUNCHD_* is an error."""

    def run_punchd(self, env_extra, *args, config=None, timeout=5):
        import json
        import os
        import tempfile
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUNCHD_")}
        env.update(env_extra)
        with tempfile.TemporaryDirectory() as d:
            if config is not None:
                with open(os.path.join(d, "config.json"), "w") as f:
                    json.dump(config, f)
            p = subprocess.Popen([BIN, "--port", "0", "--bind", "127.0.0.1", *args], cwd=d, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            # Read until the start line (or the end, for an error), then stop it.
            line = b""
            while True:
                line = p.stderr.readline()
                if not line or b"listening on udp" in line or b"config error" in line:
                    break
            if b"listening on udp" in line:
                p.send_signal(signal.SIGTERM)
            p.wait(scaled(timeout))
            return p.returncode, line.decode()

    def test_env_overrides_file_and_flags_override_env(self):
        rc, line = self.run_punchd({"PUNCHD_PEER_TTL": "77"}, config={"peer_ttl": 33})
        self.assertEqual(rc, 0)
        self.assertIn("peer_ttl 77s", line)
        rc, line = self.run_punchd({"PUNCHD_PEER_TTL": "77"}, "--peer-ttl", "55", config={"peer_ttl": 33})
        self.assertIn("peer_ttl 55s", line)
        rc, line = self.run_punchd({"PUNCHD_RATE_EXEMPT": "10.0.0.0/8,2001:db8::/32",
                                    "PUNCHD_COMPAT": "sobani-app"})
        self.assertEqual(rc, 0, line)
        self.assertIn("compat sobani-app", line)

    def test_unknown_or_bad_variables_are_config_errors(self):
        for env in ({"PUNCHD_NO_SUCH_KEY": "1"}, {"PUNCHD_peer_ttl": "5"}, {"PUNCHD_PEER_TTL": "0"},
                    {"PUNCHD_PEER_TTL": "abc"}, {"PUNCHD_RATE_EXEMPT": "not-a-cidr"}):
            rc, line = self.run_punchd(env)
            self.assertEqual(rc, 2, (env, line))
            self.assertIn("environment PUNCHD_", line)
