"""Issue 5, "per IP" is the /64 for IPv6, on the wire. Loopback has a single
IPv6 address, so this test makes its own network namespace (unshare -n, as
root), gives its loopback addresses in two /64s (2001:db8:1:2::/64 and
2001:db8:1:3::/64, documentation space), and runs the InNetns cases there with
a real punchd: two addresses of one /64 share one request bucket and one
connection cap; the next /64 has its own. Skipped when namespaces cannot be
made (not root, no unshare)."""
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

from harness import PunchdTestCase, scaled

HERE = os.path.dirname(os.path.abspath(__file__))
INNER = os.environ.get("TEST_ABUSE_NETNS") == "1"
SERVER_IP = "2001:db8:1:2::1"
SAME_64 = ("2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:fff0")
OTHER_64 = "2001:db8:1:3::1"
ADDRS = (SERVER_IP,) + SAME_64 + (OTHER_64,)


def can_unshare():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    try:
        return subprocess.run(["unshare", "-n", "true"], timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


if not INNER:
    class Slash64Test(unittest.TestCase):
        @unittest.skipUnless(can_unshare(), "needs root and unshare -n for a private network namespace")
        def test_slash64_in_a_private_namespace(self):
            setup = ["ip link set lo up"] + [f"ip -6 addr add {a}/64 dev lo nodad" for a in ADDRS]
            script = " && ".join(setup) + f" && exec {sys.executable} -m unittest -v test_abuse_ipv6_netns"
            env = dict(os.environ, TEST_ABUSE_NETNS="1",
                       PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
            p = subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=HERE, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=scaled(120))
            out = p.stdout.decode("utf-8", "replace")
            self.assertEqual(p.returncode, 0, out)
            self.assertIn("Ran 2 tests", out)
            self.assertEqual(out.strip().splitlines()[-1], "OK", out)


if INNER:
    from test_abuse_helpers import Udp, sync, tally, tcp_conn

    RATE, BURST = 1, 10

    class InNetns(PunchdTestCase):
        server_flags = ("--rate-requests-per-sec", str(RATE), "--rate-requests-burst", str(BURST),
                        "--max-connections-per-ip", "2", "--rate-income-per-sec", "0",
                        "--rate-response-bytes-per-sec", "0", "--retry-threshold", "1")
        server_kwargs = {"limits": True, "bind": "::"}

        def test_one_slash64_one_request_bucket(self):
            to = (SERVER_IP, self.server.port)
            same = [Udp(self.server, SAME_64[i % 2], to=to) for i in range(6)]
            other = Udp(self.server, OTHER_64, to=to)
            try:
                t0 = time.monotonic()
                for i in range(60):  # alternating between two addresses of one /64
                    same[i % 6].send({"action": "alive"})
                for _ in range(BURST):
                    other.send({"action": "alive"})
                elapsed = sync(self.server, family=socket.AF_INET) - t0
                ts = tally([r for s in same for r in s.drain()])
                to_other = tally(other.drain())
            finally:
                for s in same + [other]:
                    s.close()
            answered = ts.get("notAnnounced", 0)
            self.assertGreaterEqual(answered, BURST, ts)
            self.assertLessEqual(answered, BURST + math.floor(RATE * elapsed), (ts, elapsed))
            self.assertGreaterEqual(ts.get("rateLimited", 0), 1, ts)
            self.assertLessEqual(ts.get("rateLimited", 0), 1 + math.floor(elapsed), ts)
            self.assertEqual(to_other, {"notAnnounced": BURST})

        def test_one_slash64_one_connection_cap(self):
            a = tcp_conn(self.server, SAME_64[0], host=SERVER_IP)
            self.addCleanup(a.close)
            a.handshake()
            b = tcp_conn(self.server, SAME_64[1], host=SERVER_IP)
            self.addCleanup(b.close)
            b.handshake()
            # A third connection from the /64 (either address) is over the cap of 2.
            c = tcp_conn(self.server, SAME_64[1], host=SERVER_IP)
            self.addCleanup(c.close)
            self.assertIn(b" 503 ", c.expect_eof()[:20])
            # The next /64 is someone else.
            d = tcp_conn(self.server, OTHER_64, host=SERVER_IP)
            self.addCleanup(d.close)
            self.assertEqual(d.request("GET", "/healthz").status, 200)
