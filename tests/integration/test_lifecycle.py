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
