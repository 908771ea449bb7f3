"""Integration-test harness: runs the real punchd binary and talks to it over UDP.

- Punchd starts build/punchd (env TEST_PUNCHD_BIN) with `--port 0`, a bind address and
  the test's flags, in a private temporary working directory (so no ./config.json
  is picked up unless a test puts one there). A background thread reads stderr;
  start() waits for the "listening on udp <addr>" line (an event, with a timeout)
  to learn the port. stop() sends SIGTERM (or the given signal), waits, and
  asserts exit status 0 and no sanitizer report on stderr.
- Client is one UDP socket: send a dict (compact JSON) or raw bytes, receive with
  a timeout, parse JSON. request() also checks the anti-amplification rule
  (reply <= 4x request, <= max_datagram) on every reply it receives.
- expect_silence(sock, seconds) asserts that nothing arrives.
- TCP: the start line's "and tcp <addr>" part gives tcp_host/tcp_port; conn(),
  http() and PunchdTestCase.ws()/ws_announced() talk HTTP and WebSocket there
  (wsclient.py).
- Timeouts scale with env TEST_TIME_SCALE (default 1; 3 when the binary path
  contains "/san/", the sanitizer build).

Python 3 standard library only.
"""
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("TEST_PUNCHD_BIN") or os.path.join(ROOT, "build", "punchd")


# A command to run punchd under (e.g. "valgrind --error-exitcode=99 ..."), split on spaces.
WRAPPER = os.environ.get("TEST_PUNCHD_WRAPPER", "").split()


def _time_scale():
    v = os.environ.get("TEST_TIME_SCALE")
    if v:
        return float(v)
    if any("valgrind" in w for w in WRAPPER):
        return 20.0
    return 3.0 if "/san/" in BIN else 1.0


TIME_SCALE = _time_scale()


def scaled(seconds):
    """A timeout in seconds, stretched for slow builds (sanitizers)."""
    return seconds * TIME_SCALE


START_TIMEOUT = 5.0    # until the "listening on udp" line
STOP_TIMEOUT = 5.0     # after SIGTERM/SIGINT
REPLY_TIMEOUT = 2.0    # a reply over loopback
SILENCE = 0.3          # how long "no reply" is awaited

import wsclient  # noqa: E402  (the TCP/WebSocket client; its default timeout scales too)
wsclient.DEFAULT_TIMEOUT = REPLY_TIMEOUT * TIME_SCALE

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:",
                     "ERROR SUMMARY: [1-9]", "definitely lost: [1-9]")
LISTEN_RE = re.compile(r"listening on udp (?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):(\d+)")
TCP_LISTEN_RE = re.compile(r"listening on udp \S+ and tcp (?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):(\d+)")
SHARE_ID_RE = re.compile(r"^[0-9A-Za-z]{8}$")
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
AMPLIFICATION = 4
DEFAULT_MAX_DATAGRAM = 1472
ERROR_CODES = {"badRequest", "unknownAction", "notAnnounced", "unknownShareId", "unauthorized", "full", "unreachable", "tooLarge", "rateLimited", "retry"}


def fmt_addr(ip, port):
    """ip:port as punchd prints it: a.b.c.d:port or [v6]:port."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def ipv6_loopback_available():
    """True if a UDP socket can be bound to ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def encode(msg):
    """bytes as they are; anything else as compact JSON."""
    if isinstance(msg, (bytes, bytearray)):
        return bytes(msg)
    return json.dumps(msg, separators=(",", ":")).encode("utf-8")


def padded(msg, total=64):
    """msg plus a "pad" string making its compact JSON at least total bytes
    (exactly total when msg is shorter)."""
    m = dict(msg)
    m["pad"] = ""
    n = len(encode(m))
    if n < total:
        m["pad"] = "x" * (total - n)
    return m


def flip_hex(token):
    """The same token with its first hex digit changed: right shape, wrong value."""
    return ("1" if token[0] != "1" else "2") + token[1:]


def expect_silence(sock, seconds=None):
    """Asserts that nothing arrives on sock for `seconds` (scaled SILENCE by default)."""
    seconds = scaled(SILENCE) if seconds is None else seconds
    old = sock.gettimeout()
    sock.settimeout(seconds)
    try:
        data, src = sock.recvfrom(65536)
    except socket.timeout:
        return
    finally:
        sock.settimeout(old)
    raise AssertionError(f"expected no datagram, got {len(data)} bytes from {src}: {data[:200]!r}")


# Issue 5's abuse limits are on by default, and every test client shares
# 127.0.0.1: tests switch them off unless they test them (limits=True).
NO_LIMITS = ("--rate-requests-per-sec", "0", "--rate-income-per-sec", "0",
             "--rate-response-bytes-per-sec", "0", "--max-connections-per-ip", "0",
             "--retry-threshold", "1")


class Punchd:
    """One punchd process. Use start()/stop(), or PunchdTestCase.start_server()."""

    def __init__(self, *flags, bind="127.0.0.1", config=None, cwd=None, port0=True, limits=False):
        self.flags = [str(f) for f in flags]
        self.bind = bind
        self.config = config      # dict -> written to a temp file, passed with --config
        self.cwd = cwd            # None: a fresh empty temp dir
        self.port0 = port0        # add --port 0 --bind <bind>
        self.limits = limits      # False: NO_LIMITS go before the test's own flags
        self.proc = None
        self.lines = []
        self.host = None          # the address it printed (e.g. "127.0.0.1", "::")
        self.port = None
        self.listen_text = None   # e.g. "127.0.0.1:35441" or "[::1]:35441"
        self.listen_line = None
        self.tcp_host = None      # the TCP (HTTP/WebSocket) listener, when it printed one
        self.tcp_port = None
        self.max_datagram = DEFAULT_MAX_DATAGRAM
        self.returncode = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._threads = []
        self._tmp = None
        self._stopped = False

    # ---- lifecycle ----

    def argv(self):
        args = WRAPPER + [BIN]
        if self.config is not None:
            path = os.path.join(self._tmp.name, "test-config.json")
            with open(path, "w") as f:
                json.dump(self.config, f)
            args += ["--config", path]
        if self.port0:
            args += ["--port", "0", "--bind", self.bind]
        if not self.limits:
            args += list(NO_LIMITS)
        return args + self.flags

    def start(self, timeout=None):
        self._tmp = tempfile.TemporaryDirectory(prefix="punchd-it-")
        self.proc = subprocess.Popen(self.argv(), cwd=self.cwd or self._tmp.name,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        for stream, name in ((self.proc.stderr, "stderr"), (self.proc.stdout, "stdout")):
            t = threading.Thread(target=self._reader, args=(stream, name == "stderr"), daemon=True)
            t.start()
            self._threads.append(t)
        if not self._ready.wait(scaled(START_TIMEOUT if timeout is None else timeout)) or self.port is None:
            self._kill()
            raise AssertionError(f"punchd did not report 'listening on udp' (argv {self.argv()}):\n"
                                 + self.stderr_text())
        return self

    def _reader(self, stream, is_stderr):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self.lines.append(line)
            if is_stderr and self.port is None:
                m = LISTEN_RE.search(line)
                if m:
                    self.host = m.group(1) or m.group(2)
                    self.port = int(m.group(3))
                    self.listen_text = m.group(0)[len("listening on udp "):]
                    self.listen_line = line
                    mt = TCP_LISTEN_RE.search(line)
                    if mt:
                        self.tcp_host = mt.group(1) or mt.group(2)
                        self.tcp_port = int(mt.group(3))
                    md = re.search(r"max_datagram (\d+)", line)
                    if md:
                        self.max_datagram = int(md.group(1))
                    self._ready.set()
        stream.close()
        if is_stderr:
            self._ready.set()  # EOF: wake start() so it fails at once

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._join()
        self._stopped = True
        if self._tmp:
            self._tmp.cleanup()

    def _join(self):
        for t in self._threads:
            t.join(scaled(STOP_TIMEOUT))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        with self._lock:
            return "\n".join(self.lines)

    def sanitizer_report(self):
        text = self.stderr_text()
        return next((m for m in SANITIZER_MARKERS if re.search(m, text)), None)

    def check_healthy(self):
        """Asserts the process is running and has printed no sanitizer report."""
        if not self.alive():
            raise AssertionError(f"punchd died (status {self.proc.poll()}):\n{self.stderr_text()[-4000:]}")
        bad = self.sanitizer_report()
        if bad:
            raise AssertionError(f"sanitizer report ({bad}):\n{self.stderr_text()[-4000:]}")

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Stops punchd with sig; asserts a prompt exit with status 0 and a clean stderr."""
        if self._stopped:
            return self.returncode
        self._stopped = True
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                self.returncode = self.proc.wait(scaled(STOP_TIMEOUT if timeout is None else timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._join()
                raise AssertionError(f"punchd did not stop within {timeout or STOP_TIMEOUT}s of "
                                     f"{signal.Signals(sig).name}:\n{self.stderr_text()[-4000:]}")
            self._join()
            text = self.stderr_text()
            bad = self.sanitizer_report()
            if bad:
                raise AssertionError(f"sanitizer report ({bad}) on punchd's stderr:\n{text[-6000:]}")
            if self.returncode != 0:
                raise AssertionError(f"punchd exited with status {self.returncode} after "
                                     f"{signal.Signals(sig).name}:\n{text[-4000:]}")
            return self.returncode
        finally:
            if self._tmp:
                self._tmp.cleanup()

    # ---- addressing ----

    def target(self, family=None):
        """(ip, port) a client sends to: the bound address, or loopback for a wildcard."""
        host = self.host
        if host == "0.0.0.0":
            host = "127.0.0.1"
        elif host == "::":
            host = "::1" if family != socket.AF_INET else "127.0.0.1"
        return (host, self.port)

    def client(self, bind_ip=None, family=None, to_ip=None):
        return Client(self, bind_ip=bind_ip, family=family, to_ip=to_ip)

    def tcp_target(self):
        """(ip, port) a TCP client connects to (HTTP and WebSocket)."""
        if self.tcp_port is None:
            raise AssertionError(f"punchd printed no 'and tcp <addr>' in its start line: {self.listen_line!r}")
        host = self.tcp_host
        if host == "0.0.0.0":
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return (host, self.tcp_port)

    def conn(self, timeout=None, **kw):
        """A new TCP connection (wsclient.Conn) to the HTTP/WebSocket listener."""
        host, port = self.tcp_target()
        return wsclient.Conn(host, port, timeout=timeout, **kw)

    def metrics(self):
        """GET /metrics, parsed: {(name, ((label, value), ...)): float} (labels sorted)."""
        r = self.http("/metrics")
        if r.status != 200:
            raise AssertionError(f"GET /metrics: {r!r}")
        return parse_metrics(r.text())

    def healthz(self):
        """GET /healthz, parsed JSON."""
        r = self.http("/healthz")
        if r.status != 200:
            raise AssertionError(f"GET /healthz: {r!r}")
        return r.json()

    def http(self, path, method="GET", headers=None, timeout=None):
        """One HTTP request on a fresh connection: the response (wsclient.HTTPResponse)."""
        c = self.conn(timeout)
        try:
            return c.request(method, path, headers=headers)
        finally:
            c.close()


class Client:
    """One UDP socket talking to a punchd."""

    def __init__(self, server, bind_ip=None, family=None, to_ip=None):
        self.server = server
        if to_ip is None:
            to_ip = server.target(family)[0]
        self.to = (to_ip, server.port)
        fam = socket.AF_INET6 if ":" in to_ip else socket.AF_INET
        if bind_ip is None:
            bind_ip = "::1" if fam == socket.AF_INET6 else "127.0.0.1"
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((bind_ip, 0))
        name = self.sock.getsockname()
        self.ip, self.port = name[0], name[1]
        self.addr = fmt_addr(self.ip, self.port)   # as punchd prints it
        self.last_len = None
        self.last_src = None
        self.last_reply_raw = None

    def close(self):
        self.sock.close()

    def send(self, msg, to=None):
        data = encode(msg)
        self.sock.sendto(data, to or self.to)
        self.last_len = len(data)
        return data

    def recv_raw(self, timeout=None):
        """(bytes, source address) of the next datagram; fails after the timeout."""
        self.sock.settimeout(scaled(REPLY_TIMEOUT) if timeout is None else timeout)
        try:
            data, src = self.sock.recvfrom(65536)
        except socket.timeout:
            raise AssertionError(f"no datagram from punchd within {self.sock.gettimeout():.1f}s "
                                 f"(client {self.addr})") from None
        self.last_src = src
        return data, src

    def recv(self, timeout=None):
        """The next datagram, parsed: a JSON object (fails on anything else)."""
        data, _ = self.recv_raw(timeout)
        return parse_object(data)

    def request(self, msg, to=None, timeout=None):
        """Sends msg and returns the parsed reply, asserting the anti-amplification
        rule: reply <= 4x the request and <= max_datagram."""
        req = self.send(msg, to)
        data, _ = self.recv_raw(timeout)
        check_size(req, data, self.server.max_datagram)
        self.last_reply_raw = data
        return parse_object(data)

    def expect_silence(self, seconds=None):
        expect_silence(self.sock, seconds)

    def drain(self):
        """Discards whatever is queued on the socket."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recvfrom(65536)
        except (BlockingIOError, OSError):
            pass
        finally:
            self.sock.setblocking(True)

    # ---- protocol shortcuts ----

    def announce(self, **fields):
        """A padded announce; returns data (asserts announceReceived/announced)."""
        r = self.request(padded(dict({"action": "announce"}, **fields), 128))
        if r.get("action") not in ("announceReceived", "announced"):
            raise AssertionError(f"announce failed: {r}")
        return r["data"]


def gather(clients, seconds=None, until=None, got=None):
    """Collects every datagram arriving on any of clients for `seconds` (scaled
    SILENCE x 2 by default), or until until(got) is true: {client: [bytes, ...]}
    (added to got if given). One wait for a whole batch."""
    seconds = scaled(2 * SILENCE) if seconds is None else seconds
    if got is None:
        got = {}
    for c in clients:
        got.setdefault(c, [])
    sel = selectors.DefaultSelector()
    try:
        for c in clients:
            sel.register(c.sock, selectors.EVENT_READ, c)
        deadline = time.monotonic() + seconds
        while not (until and until(got)):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                c = key.data
                c.sock.setblocking(False)
                try:
                    while True:
                        data, _ = c.sock.recvfrom(65536)
                        got[c].append(data)
                except (BlockingIOError, InterruptedError):
                    pass
                finally:
                    c.sock.setblocking(True)
    finally:
        sel.close()
    return got


METRIC_LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$')
METRIC_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


NAT_KINDS = ("unknown", "eim", "sequential", "random")
# Issue 4's fields, present whenever they fit: checked here, then set aside
# so the base protocol's exact shapes can still be asserted.
PUNCH_FIELDS = ("nat", "nonce", "candidates", "predicted", "pubkey", "probe")


def punch_fields_ok(msg):
    """Checks and removes issue 4's optional fields from msg["data"]; returns msg."""
    data = msg.get("data")
    if not isinstance(data, dict):
        return msg
    if "nat" in data:
        assert data["nat"] in NAT_KINDS, msg
    if "nonce" in data:
        assert re.fullmatch(r"[0-9a-f]{32}", data["nonce"]), msg
    for k in PUNCH_FIELDS:
        data.pop(k, None)
    return msg


def parse_metrics(text):
    """Prometheus text exposition -> {(name, ((label, value), ...)): float}; fails on a
    line that is neither a comment nor a sample, or on a repeated series."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = METRIC_LINE_RE.match(line)
        if not m:
            raise AssertionError(f"not a Prometheus sample line: {line!r}")
        labels = []
        rest = m.group(2) or ""
        pos = 0
        while pos < len(rest.rstrip()):
            lm = METRIC_LABEL_RE.match(rest, pos)
            if not lm:
                raise AssertionError(f"bad labels in {line!r}")
            labels.append((lm.group(1), lm.group(2)))
            pos = lm.end()
        key = (m.group(1), tuple(sorted(labels)))
        if key in out:
            raise AssertionError(f"series repeated: {line!r}")
        out[key] = float(m.group(3))
    return out


def metric(metrics, name, **labels):
    """The value of one series (fails if it is absent)."""
    key = (name, tuple(sorted(labels.items())))
    if key not in metrics:
        near = sorted(k for k in metrics if k[0] == name)
        raise AssertionError(f"no series {name}{labels or ''} in /metrics (series of {name}: {near})")
    return metrics[key]


def parse_object(data):
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise AssertionError(f"reply is not JSON ({e}): {data[:300]!r}") from None
    if not isinstance(obj, dict):
        raise AssertionError(f"reply is not a JSON object: {data[:300]!r}")
    return obj


def check_size(request, reply, max_datagram):
    if len(reply) > AMPLIFICATION * len(request):
        raise AssertionError(f"amplification: {len(reply)}-byte reply to a {len(request)}-byte "
                             f"request (> {AMPLIFICATION}x): {request[:200]!r} -> {reply[:300]!r}")
    if len(reply) > max_datagram:
        raise AssertionError(f"{len(reply)}-byte reply exceeds max_datagram {max_datagram}")


class PunchdTestCase(unittest.TestCase):
    """Base class. Set server_flags (a tuple) to share one server per class
    (started in setUpClass, stopped and checked in the class cleanup); tests may
    start more with start_server(), which stops and checks them at cleanup."""

    server_flags = None
    server_kwargs = {}
    server = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.server_flags is not None:
            cls.server = Punchd(*cls.server_flags, **cls.server_kwargs).start()
            cls.addClassCleanup(cls.server.stop)

    def tearDown(self):
        if self.server is not None and not self.server._stopped:
            self.server.check_healthy()
        super().tearDown()

    def start_server(self, *flags, **kw):
        s = Punchd(*flags, **kw)
        s.start()
        self.addCleanup(s.stop)
        return s

    def client(self, server=None, **kw):
        c = (server or self.server).client(**kw)
        self.addCleanup(c.close)
        return c

    def conn(self, server=None, **kw):
        """A TCP connection (not yet upgraded), closed at cleanup."""
        c = (server or self.server).conn(**kw)
        self.addCleanup(c.close)
        return c

    def ws(self, server=None, path="/", **kw):
        """A WebSocket connection (handshake done and checked), closed at cleanup."""
        c = self.conn(server, **kw)
        c.handshake(path)
        return c

    def ws_announced(self, server=None, fields=None, **kw):
        """A WebSocket client that has announced: (conn, data)."""
        c = self.ws(server, **kw)
        r = c.request_json(dict({"action": "announce"}, **(fields or {})))
        if r.get("action") not in ("announceReceived", "announced"):
            raise AssertionError(f"announce over WebSocket failed: {r}")
        return c, r["data"]

    def announced(self, server=None, fields=None, **kw):
        """A client that has announced (padded, plus fields): (client, data)."""
        c = self.client(server, **kw)
        return c, c.announce(**(fields or {}))

    # ---- assertions ----

    def assertError(self, reply, code, message=None):
        """reply is {"action":"error","data":{"code":code[,"message":str]}};
        message=True requires the message (the request was big enough)."""
        self.assertEqual(reply.get("action"), "error", reply)
        data = reply.get("data")
        self.assertIsInstance(data, dict, reply)
        self.assertEqual(data.get("code"), code, reply)
        self.assertLessEqual(set(data), {"code", "message"}, reply)
        if "message" in data:
            self.assertIsInstance(data["message"], str, reply)
            self.assertTrue(data["message"], reply)
        if message:
            self.assertIn("message", data, f"error reply to a big request lacks a message: {reply}")

    def assertData(self, msg, action, expected, optional=()):
        """msg is {"action": action, "data": {...}} whose data holds expected exactly (and at
        most the keys in optional besides). Returns data."""
        self.assertEqual(msg.get("action"), action, msg)
        self.assertEqual(set(msg), {"action", "data"}, msg)
        data = msg["data"]
        for k, v in expected.items():
            self.assertIn(k, data, f"{k} missing in {msg}")
            self.assertEqual(data[k], v, f"{k} in {msg}")
        self.assertLessEqual(set(data), set(expected) | set(optional) | set(PUNCH_FIELDS), msg)
        return data

    def assertShareId(self, s):
        self.assertIsInstance(s, str)
        self.assertRegex(s, SHARE_ID_RE)

    def assertToken(self, t):
        self.assertIsInstance(t, str)
        self.assertRegex(t, TOKEN_RE)

    def assertPushed(self, pusher, target, target_id, pusher_id, peeraddr=None, income_addr=None,
                     action="pushReceived", pad=0):
        """pusher pushes target_id: checks both the reply and target's income.
        Returns (reply, income)."""
        msg = {"action": "push", "shareId": target_id}
        if pad:
            msg = padded(msg, pad)
        r = pusher.request(msg)
        self.assertEqual(r.get("action"), action, r)
        self.assertEqual(r["data"]["peerShareId"], target_id, r)
        self.assertEqual(r["data"]["peeraddr"], peeraddr or target.addr, r)
        inc = target.recv()
        self.assertEqual(inc.get("action"), "income", inc)
        self.assertEqual(inc["data"]["peerShareId"], pusher_id, inc)
        self.assertEqual(inc["data"]["peeraddr"], income_addr or pusher.addr, inc)
        return r, inc
