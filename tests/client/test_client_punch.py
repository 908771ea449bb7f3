"""libpunch through its CLI: the real build/punch against the real build/punchd
on 127.0.0.1 (probe address 127.0.0.2). Direct punching on loopback, the
WebSocket relay (forced on one or both sides), WebSocket-only registration,
stray senders spraying a listener's port, the retry cookie, the access key,
bytes intact both ways, and the exit codes."""
import base64
import os
import queue
import random
import re
import socket
import subprocess
import threading
import unittest

from harness import PunchdTestCase, ipv6_loopback_available, metric, scaled
from punchcli import PUNCH_BIN, Punch, fmt, udp_endpoints

PROBE_IP = "127.0.0.2"
FINGERPRINT_RE = re.compile(r"^punch: fingerprint ((?:[0-9a-f]{4}-){7}[0-9a-f]{4})$")
EXAMPLE_BIN = os.path.join(os.path.dirname(PUNCH_BIN), "punch_example")


def text_lines(tag, n, long_every=7):
    """n lines of mixed content (ASCII, UTF-8, empty, long), ending without a
    newline, so "exactly" is really checked."""
    rnd = random.Random(tag)
    out = []
    for i in range(n):
        if i % long_every == 3:
            line = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(5000))
        elif i % 5 == 2:
            line = ""
        else:
            line = f"{tag} line {i} \u00e9t\u00e9 \u2603 {rnd.random()}"
        out.append(line)
    return ("\n".join(out)).encode("utf-8")


class PunchPairMixin:
    """Runs a listen/connect pair and checks bytes both ways and the exits."""

    def tracker_arg(self, server=None):
        s = server or self.server
        host, port = s.target()
        return fmt(host, port)

    def start_listener(self, *opts, server=None):
        p = Punch("--tracker", self.tracker_arg(server), "--timeout", "30", *opts, "listen")
        self.addCleanup(p.kill)
        return p

    def start_connector(self, share_id, *opts, server=None):
        p = Punch("--tracker", self.tracker_arg(server), "--timeout", "30", *opts, "connect", share_id)
        self.addCleanup(p.kill)
        return p

    def pair(self, listen_opts=(), connect_opts=(), server=None):
        lis = self.start_listener(*listen_opts, server=server)
        sid = lis.share_id()
        con = self.start_connector(sid, *connect_opts, server=server)
        return lis, con, sid

    def exchange(self, lis, con, l_data, c_data, close_first="connector"):
        """Writes l_data into the listener and c_data into the connector, closes
        both stdins (in the given order, after the other side's bytes arrived)
        and checks each side printed exactly the other's bytes and exited 0."""
        lis.write(l_data)
        con.write(c_data)
        first, second = (con, lis) if close_first == "connector" else (lis, con)
        first.close_stdin()
        got_c = con.wait_stdout(len(l_data))
        got_l = lis.wait_stdout(len(c_data))
        second.close_stdin()
        self.assertEqual(con.wait_exit(), 0, con.describe())
        self.assertEqual(lis.wait_exit(), 0, lis.describe())
        self.assertEqual(bytes(con.out), l_data, "connector's stdout is not the listener's stdin")
        self.assertEqual(bytes(lis.out), c_data, "listener's stdout is not the connector's stdin")
        self.assertEqual(got_c, l_data)
        self.assertEqual(got_l, c_data)


class ClientDirectTest(PunchPairMixin, PunchdTestCase):
    server_flags = ("--probe-bind", PROBE_IP)

    def test_direct_both_ways(self):
        lis = self.start_listener("--bind", "127.0.0.1")
        sid = lis.share_id()
        self.assertEqual(lis.nat(), "eim")  # the probe saw the same mapping: no NAT on loopback
        con = self.start_connector(sid, "--bind", "127.0.0.1")
        self.assertRegex(con.share_id(), r"^[0-9A-Za-z]{8}$")
        self.assertNotEqual(con.share_id(), sid)
        lpath, lrtt, lpeer = lis.connected()
        cpath, crtt, cpeer = con.connected()
        self.assertEqual((lpath, cpath), ("direct", "direct"))
        self.assertGreaterEqual(lrtt, 0)
        # Both read the same fingerprint of the two keys (nobody in the middle).
        fps = [side.wait_line(FINGERPRINT_RE).group(1) for side in (lis, con)]
        self.assertEqual(fps[0], fps[1])
        # Each names the other's real socket.
        self.assertIn(tuple(cpeer.rsplit(":", 1)), [(ip, str(port)) for ip, port in udp_endpoints(lis.proc.pid)])
        self.assertIn(tuple(lpeer.rsplit(":", 1)), [(ip, str(port)) for ip, port in udp_endpoints(con.proc.pid)])
        self.exchange(lis, con, text_lines("L", 40), text_lines("C", 25))

    def test_listener_closes_first_and_bulk_data(self):
        lis, con, _ = self.pair(("--bind", "127.0.0.1"), ("--bind", "127.0.0.1"))
        self.assertEqual(con.connected()[0], "direct")
        rnd = random.Random(4)
        bulk_l = bytes(rnd.getrandbits(8) for _ in range(300_000))
        bulk_c = bytes(rnd.getrandbits(8) for _ in range(120_000))
        self.exchange(lis, con, bulk_l, bulk_c, close_first="listener")

    def test_wildcard_bind_uses_interfaces(self):
        # Bound to 0.0.0.0 the clients also list their interface addresses as
        # candidates; whichever address answers first, the path is direct.
        lis, con, _ = self.pair()
        self.assertEqual(lis.connected()[0], "direct")
        self.assertEqual(con.connected()[0], "direct")
        self.exchange(lis, con, b"one\ntwo\n", b"three\n")

    def test_probe_flag_overrides_the_trackers(self):
        # The probe address the caller gives wins over announceReceived's: a
        # silent one leaves the NAT unknown, the real one (given explicitly) finds eim.
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        lis = self.start_listener("--probe", fmt(*silent.getsockname()))
        lis.share_id()
        self.assertEqual(lis.nat(), "unknown")
        silent.settimeout(scaled(2))
        data, _ = silent.recvfrom(2048)  # the probe did go there
        self.assertIn(b'"action":"probe"', data)
        lis2 = self.start_listener("--probe", f"{PROBE_IP}:{self.server.port}")
        lis2.share_id()
        self.assertEqual(lis2.nat(), "eim")

    def test_embedding_example(self):
        # tools/punch_example.c, the game loop of docs/libpunch.md, waits for a
        # peer; the CLI connects; ticks flow one way, a line the other way.
        ex = subprocess.Popen([EXAMPLE_BIN, self.tracker_arg()], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: ex.poll() is None and (ex.kill(), ex.wait()))
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l.decode()) for l in ex.stdout] + [lines.put(None)],
                         daemon=True).start()

        def next_line():
            line = lines.get(timeout=scaled(20))
            if line is None:
                self.fail("the example ended early: " + ex.stderr.read().decode())
            return line.rstrip("\n")

        m = re.match(r"^registered: shareId ([0-9A-Za-z]{8}) \(NAT eim\)$", next_line())
        self.assertIsNotNone(m)
        con = self.start_connector(m.group(1), "--bind", "127.0.0.1")
        self.assertEqual(con.connected()[0], "direct")
        self.assertRegex(next_line(), r"^connected to [0-9A-Za-z]{8} via direct \(127\.0\.0\.1:\d+\), rtt ")
        con.write(b"hello example\n")
        con.close_stdin()
        ticks = "".join(f"tick {i}\n" for i in range(1, 9)).encode()
        self.assertEqual(con.wait_stdout(len(ticks)), ticks)
        self.assertEqual(con.wait_exit(), 0, con.describe())
        rest = []
        while True:
            line = lines.get(timeout=scaled(20))
            if line is None:
                break
            rest.append(line.rstrip("\n"))
        self.assertEqual(rest, ["peer: hello example", "peer said bye"])
        self.assertEqual(ex.wait(scaled(10)), 0)
        self.assertNotIn(b"Sanitizer", ex.stderr.read())

    def test_stray_sender_is_not_taken_for_the_peer(self):
        lis = self.start_listener("--bind", "127.0.0.1")
        sid = lis.share_id()
        ports = [p for ip, p in udp_endpoints(lis.proc.pid) if ip == "127.0.0.1"]
        self.assertEqual(len(ports), 1, udp_endpoints(lis.proc.pid))
        target = ("127.0.0.1", ports[0])

        stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(stray.close)
        stray.bind(("127.0.0.1", 0))
        stop = threading.Event()
        sent = [0]

        def spray():
            rnd = random.Random(9)
            while not stop.is_set():
                kinds = [
                    b'{"action":"knock"}',
                    b'{"action":"knock","nonce":"00112233445566778899aabbccddeeff"}',
                    bytes([0xD7]) + rnd.randbytes(16) + rnd.randbytes(60),       # our shape, wrong nonce
                    bytes([0xD7]) + bytes(16) + (1).to_bytes(8, "big") + rnd.randbytes(22),
                    rnd.randbytes(rnd.randrange(1, 1400)),
                ]
                for k in kinds:
                    try:
                        stray.sendto(k, target)
                        sent[0] += 1
                    except OSError:
                        pass
                stop.wait(0.002)

        t = threading.Thread(target=spray, daemon=True)
        t.start()
        self.addCleanup(t.join)
        self.addCleanup(stop.set)
        con = self.start_connector(sid, "--bind", "127.0.0.1")
        lpath, _, lpeer = lis.connected()
        con_eps = [fmt(ip, p) for ip, p in udp_endpoints(con.proc.pid)]
        self.assertIn(lpeer, con_eps, "the listener chose someone else than the connector")
        self.assertNotEqual(lpeer, fmt(*stray.getsockname()))
        self.assertEqual(lpath, "direct")
        self.exchange(lis, con, text_lines("L2", 12), text_lines("C2", 12))
        stop.set()
        t.join()
        self.assertGreater(sent[0], 50, "the stray did not get to spray")
        # Not a single byte went back to the stray: it was never answered.
        stray.setblocking(False)
        with self.assertRaises(BlockingIOError):
            stray.recvfrom(65536)


class ClientRelayTest(PunchPairMixin, PunchdTestCase):
    server_flags = ("--probe-bind", PROBE_IP)

    def test_relay_both_sides(self):
        lis, con, _ = self.pair(("--relay",), ("--relay",))
        for side in (lis, con):
            path, _, peer = side.connected()
            self.assertEqual((path, peer), ("relay", "relay"))
        self.assertEqual(lis.wait_line(FINGERPRINT_RE).group(1), con.wait_line(FINGERPRINT_RE).group(1))
        rnd = random.Random(5)
        self.exchange(lis, con, text_lines("RL", 10) + bytes(rnd.getrandbits(8) for _ in range(20_000)),
                      text_lines("RC", 10))
        m = self.server.metrics()
        self.assertGreater(metric(m, "punchd_requests_total", transport="ws", action="relay"), 0)

    def test_relay_forced_on_one_side_only(self):
        # The listener would punch, but the connector goes straight to the
        # relay (and does not answer knocks): both meet there.
        lis, con, _ = self.pair((), ("--relay",))
        self.assertEqual(con.connected()[0], "relay")
        self.assertEqual(lis.connected()[0], "relay")
        self.exchange(lis, con, b"via the tracker\n", b"and back\n")

    def test_strangers_relaying_junk_are_ignored(self):
        lis, con, sid = self.pair(("--relay",), ("--relay",))
        self.assertEqual(lis.connected()[0], "relay")
        # A registered stranger relays junk in the listener's direction.
        s = self.client()
        d = s.announce()
        for junk in ({"p": base64.b64encode(bytes([0xD7]) + os.urandom(60)).decode()},
                     {"p": "!!not base64!!"}, {"sdp": "v=0"}, {"p": 5}):
            s.send({"action": "relay", "shareId": sid, "token": d["token"], "data": junk})
        self.exchange(lis, con, b"still fine\n", b"yes\n")


class ClientWebSocketTest(PunchPairMixin, PunchdTestCase):
    server_flags = ("--probe-bind", PROBE_IP)

    def test_ws_only_listener_direct(self):
        # The listener registers over WebSocket only: the tracker has no UDP
        # address for it. Its knocks reach the connector, which learns its
        # address from them: a direct path after all.
        before = metric(self.server.metrics(), "punchd_requests_total", transport="ws", action="announce")
        lis = self.start_listener("--ws", "--bind", "127.0.0.1")
        sid = lis.share_id()
        self.assertEqual(lis.nat(), "unknown")
        after = metric(self.server.metrics(), "punchd_requests_total", transport="ws", action="announce")
        self.assertGreater(after, before, "the listener did not register over WebSocket")
        con = self.start_connector(sid, "--bind", "127.0.0.1")
        self.assertEqual(lis.connected()[0], "direct")
        self.assertEqual(con.connected()[0], "direct")
        self.exchange(lis, con, text_lines("WL", 8), text_lines("WC", 8))

    def test_ws_only_both_relay(self):
        lis, con, _ = self.pair(("--ws", "--relay"), ("--ws", "--relay"))
        self.assertEqual(lis.nat(), "unknown")
        self.assertEqual(lis.connected()[0], "relay")
        self.assertEqual(con.connected()[0], "relay")
        self.exchange(lis, con, text_lines("WRL", 6), text_lines("WRC", 6))


@unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback on this host")
class ClientIPv6Test(PunchPairMixin, PunchdTestCase):
    server_flags = ()
    server_kwargs = {"bind": "::1"}

    def test_direct_over_ipv6(self):
        lis, con, _ = self.pair()
        path, _, peer = lis.connected()
        self.assertEqual(path, "direct")
        self.assertRegex(peer, r"^\[::1\]:\d+$")
        self.exchange(lis, con, text_lines("6L", 5), text_lines("6C", 5))

    def test_relay_over_ipv6(self):
        lis, con, _ = self.pair(("--relay",), ())
        self.assertEqual(con.connected()[0], "relay")
        self.exchange(lis, con, b"v6 relay\n", b"ok\n")


class ClientRetryAndKeyTest(PunchPairMixin, PunchdTestCase):
    # Every new UDP peer must first echo a retry cookie; every request needs the key.
    server_flags = ("--probe-bind", PROBE_IP, "--retry-threshold", "0", "--access-key", "s3cr3t&k=y?%#")

    def test_cookie_and_key(self):
        key = "s3cr3t&k=y?%#"
        lis, con, _ = self.pair(("--key", key), ("--key", key))
        self.assertEqual(lis.connected()[0], "direct")
        self.exchange(lis, con, b"k1\n", b"k2\n")
        m = self.server.metrics()
        self.assertGreaterEqual(metric(m, "punchd_errors_total", code="retry"), 2)

    def test_key_over_websocket(self):
        key = "s3cr3t&k=y?%#"
        lis, con, _ = self.pair(("--key", key, "--ws", "--relay"), ("--key", key, "--relay"))
        self.assertEqual(lis.connected()[0], "relay")
        self.exchange(lis, con, b"ws with a key\n", b"ok\n")

    def test_without_key_nothing_registers(self):
        p = Punch("--tracker", self.tracker_arg(), "--timeout", "1.5", "listen")
        self.addCleanup(p.kill)
        self.assertEqual(p.wait_exit(), 1)
        self.assertIn("punch: error timeout", p.stderr_text())
        self.assertNotIn("shareId", p.stderr_text())
        p = Punch("--tracker", self.tracker_arg(), "--timeout", "1.5", "--ws", "--key", "wrong", "listen")
        self.addCleanup(p.kill)
        self.assertEqual(p.wait_exit(), 1)
        self.assertNotIn("shareId", p.stderr_text())


class ClientExitCodesTest(PunchPairMixin, PunchdTestCase):
    server_flags = ()

    def run_punch(self, *args, timeout=10):
        p = subprocess.run([PUNCH_BIN] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=scaled(timeout))
        err = p.stderr.decode("utf-8", "replace")
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            self.assertNotIn(marker, err)
        return p.returncode, p.stdout.decode("utf-8", "replace"), err

    def test_usage_errors_exit_2(self):
        t = self.tracker_arg()
        for args in ([], ["listen"], ["--tracker", t], ["--tracker", t, "connect"],
                     ["--tracker", t, "connect", "short"], ["--tracker", t, "connect", "AAAA$AAA"],
                     ["--tracker", t, "dance"], ["--tracker", t, "listen", "extra"],
                     ["--tracker", t, "--timeout", "soon", "listen"], ["--tracker", t, "--bogus", "listen"],
                     ["--tracker", t, "--ws=1", "listen"], ["--tracker", "nocolon", "listen"],
                     ["--tracker", t, "--bind", "not-an-ip", "listen"], ["--tracker"]):
            rc, out, err = self.run_punch(*args)
            self.assertEqual(rc, 2, f"{args}: {rc} {err!r}")
            self.assertTrue(err.startswith("punch: "), f"{args}: {err!r}")
        rc, out, err = self.run_punch("--help")
        self.assertEqual(rc, 0)
        self.assertIn("connect SHAREID", out)

    def test_timeout_without_peer(self):
        rc, out, err = self.run_punch("--tracker", self.tracker_arg(), "--timeout", "1", "listen")
        self.assertEqual(rc, 1, err)
        lines = err.splitlines()
        self.assertRegex(lines[0], r"^punch: shareId [0-9A-Za-z]{8}$")
        self.assertRegex(lines[1], r"^punch: nat (eim|unknown)$")
        self.assertEqual(lines[-1], "punch: error timeout")
        self.assertEqual(out, "")

    def test_unknown_share_id(self):
        rc, out, err = self.run_punch("--tracker", self.tracker_arg(), "--timeout", "10", "connect", "AAAAAAAA")
        self.assertEqual(rc, 1, err)
        self.assertRegex(err.splitlines()[-1], r"^punch: error unknownShareId")

    def test_no_tracker_there(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))  # a port nobody answers on (we never read it)
        self.addCleanup(s.close)
        rc, out, err = self.run_punch("--tracker", fmt(*s.getsockname()), "--timeout", "1", "listen")
        self.assertEqual(rc, 1)
        self.assertEqual(err.splitlines(), ["punch: error timeout"])

    def test_quiet_peer_kept_then_lost(self):
        lost = scaled(2)  # keep-alives every third of it
        opts = ("--bind", "127.0.0.1", "--lost", f"{lost:g}")
        lis, con, _ = self.pair(opts, opts)
        self.assertEqual(con.connected()[0], "direct")
        self.assertEqual(lis.connected()[0], "direct")
        # A silence longer than --lost: keep-alives hold the pair together.
        with self.assertRaises(subprocess.TimeoutExpired):
            con.proc.wait(1.5 * lost)
        self.assertIsNone(lis.proc.poll(), lis.describe())
        lis.kill()  # the peer vanishes without a bye
        self.assertEqual(con.wait_exit(), 1, con.describe())
        self.assertEqual(con.stderr_text().splitlines()[-1], "punch: error the peer stopped answering")

    def test_closed_stdin_reads_as_empty(self):
        # Started with fd 0 closed, the CLI must not take its UDP socket for stdin.
        lis = self.start_listener("--bind", "127.0.0.1")
        sid = lis.share_id()
        lis.write(b"hello\n")
        lis.close_stdin()
        con = subprocess.run([PUNCH_BIN, "--tracker", self.tracker_arg(), "--bind", "127.0.0.1",
                              "--timeout", "20", "connect", sid],
                             stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=scaled(30))
        self.assertEqual(con.returncode, 0, con.stderr)
        self.assertEqual(con.stdout, b"hello\n")
        self.assertEqual(lis.wait_exit(), 0, lis.describe())
        self.assertEqual(bytes(lis.out), b"")

    def test_second_connector_is_not_accepted(self):
        # listen accepts the first peer that pushes; a second one gets no path.
        lis, con, sid = self.pair(("--bind", "127.0.0.1"), ("--bind", "127.0.0.1"))
        self.assertEqual(lis.connected()[0], "direct")
        other = self.start_connector(sid, "--bind", "127.0.0.1", "--timeout", "3")
        self.assertEqual(other.wait_exit(timeout=30), 1)
        self.assertIn("punch: error", other.stderr_text())
        self.assertNotIn("connected", other.stderr_text())
        self.exchange(lis, con, b"first\n", b"only\n")
