"""A small HTTP/1.1 + WebSocket (RFC 6455) client for punchd's tests. Python 3 stdlib only.

One Conn is one TCP connection. On it a test can:
- send raw bytes (send_raw) and read raw bytes (read_some, expect_eof);
- send HTTP requests and read responses (request, read_response), keep-alive included;
- do the opening handshake (handshake): a random 16-byte key, or the test's own, and a check of
  Sec-WebSocket-Accept (accept_key);
- send frames of any shape (send_frame: opcode, FIN, RSV bits, masked or not, a declared length that
  differs from the payload), text/binary messages, messages fragmented into continuation frames
  (send_fragments), ping/pong, close frames with a code and reason;
- read frames (recv_frame) or whole messages (recv_message: reassembles fragments, answers pings
  unless auto_pong is off, records pings/pongs), JSON objects (recv_json), and the server's close
  (expect_close -> the close code, None for a close frame without one, or EOF).

Every frame the server sends is checked: unmasked, RSV bits 0, control frames <= 125 bytes and not
fragmented, close payload 0 or >= 2 bytes. A connection that ends while a test waits for something
else raises ConnectionEnded (an AssertionError that carries the close code).
"""
import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
OP_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

DEFAULT_TIMEOUT = 2.0   # harness.py stretches this for slow builds
HEAD_LIMIT = 65536


def accept_key(key):
    """Sec-WebSocket-Accept for Sec-WebSocket-Key key (RFC 6455 section 4.2.2)."""
    if isinstance(key, bytes):
        key = key.decode("ascii")
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def build_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=None, length=None):
    """The bytes of one frame. length: the length to declare (default: the payload's)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4) if mask_key is None else mask_key
    return head + key + mask_bytes(payload, key)


def mask_bytes(payload, key):
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


class ConnectionEnded(AssertionError):
    """The server closed the WebSocket (close frame, code may be None) or the TCP connection."""

    def __init__(self, what, code=None, reason=None, pending=None):
        super().__init__(what)
        self.code = code
        self.reason = reason
        self.pending = pending or []


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload")

    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def __repr__(self):
        p = self.payload if len(self.payload) <= 80 else self.payload[:80] + b"..."
        return f"<Frame {OP_NAMES.get(self.opcode, self.opcode)} fin={self.fin} {p!r}>"


class HTTPResponse:
    def __init__(self, status, reason, version, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers          # [(name, value), ...] as sent
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def text(self):
        return self.body.decode("utf-8")

    def __repr__(self):
        return f"<HTTP {self.status} {self.reason} {self.headers} {self.body[:200]!r}>"


class Conn:
    """One TCP connection to host:port (HTTP, then maybe WebSocket)."""

    def __init__(self, host, port, timeout=None, rcvbuf=None, connect=True):
        self.host, self.port = host, port
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        # Our ephemeral port (live or in TIME_WAIT) must not keep a later punchd, whose
        # --port 0 UDP number is reused for TCP, from listening on that number.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.closed = False
        self.auto_pong = True
        self.pings = []          # payloads of the pings received
        self.pongs = []          # payloads of the pongs received
        self.ping_times = []     # time.monotonic() of each ping received
        self.close_code = None   # set when a close frame arrives
        self.close_reason = None
        self.got_close = False
        self.sent_close = False
        self.ip = self.local_port = self.addr = None
        if connect:
            self.connect()

    def connect(self):
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))
        name = self.sock.getsockname()
        self.ip, self.local_port = name[0], name[1]
        self.addr = f"[{self.ip}]:{self.local_port}" if ":" in self.ip else f"{self.ip}:{self.local_port}"
        return self

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def fileno(self):
        return self.sock.fileno()

    # ---- raw bytes ----

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, deadline, what):
        """Reads more bytes into buf. Returns False at EOF; fails at the deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {what} ({self.addr} -> {self.host}:{self.port}); "
                                 f"buffered {bytes(self.buf[:200])!r}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            raise AssertionError(f"timed out waiting for {what} ({self.addr} -> {self.host}:{self.port}); "
                                 f"buffered {bytes(self.buf[:200])!r}") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def read_some(self, timeout=None):
        """Whatever is buffered or arrives next (b"" at EOF)."""
        if not self.buf:
            self._fill(self._deadline(timeout), "bytes")
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def expect_eof(self, timeout=None):
        """Waits until the server ends the connection; returns every byte received until then."""
        deadline = self._deadline(timeout)
        while self._fill(deadline, "the connection to end"):
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def is_open_now(self, wait=0.0):
        """False if the server has ended the connection (EOF seen within wait seconds);
        bytes that arrive are kept in buf."""
        deadline = time.monotonic() + wait
        while True:
            if self.eof:
                return False
            self.sock.settimeout(max(0.0, deadline - time.monotonic()) or 0.0001)
            try:
                data = self.sock.recv(262144)
            except socket.timeout:
                return True
            except BlockingIOError:
                return True
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                return False
            self.buf += data

    # ---- HTTP ----

    def send_request(self, method="GET", path="/", headers=None, body=b"", version="HTTP/1.1",
                     host=True):
        """Sends one request. headers: list of (name, value) or a dict."""
        hs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        lines = [f"{method} {path} {version}"]
        if host and not any(k.lower() == "host" for k, _ in hs):
            lines.append(f"Host: {self.host}:{self.port}")
        if body and not any(k.lower() == "content-length" for k, _ in hs):
            hs.append(("Content-Length", str(len(body))))
        lines += [f"{k}: {v}" for k, v in hs]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        self.send_raw(data)
        return data

    def read_response(self, timeout=None, head_only=False):
        """Reads one HTTP response (body by Content-Length; none for 1xx/204/304 or
        head_only; to EOF without a Content-Length)."""
        deadline = self._deadline(timeout)
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > HEAD_LIMIT:
                raise AssertionError(f"response head too large: {bytes(self.buf[:300])!r}")
            if not self._fill(deadline, "an HTTP response"):
                raise ConnectionEnded(f"connection ended before a complete HTTP response "
                                      f"(got {bytes(self.buf[:300])!r})")
        end = self.buf.index(b"\r\n\r\n")
        raw_head = bytes(self.buf[:end])
        del self.buf[:end + 4]
        lines = raw_head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise AssertionError(f"bad status line: {lines[0]!r}")
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            if ":" not in line:
                raise AssertionError(f"bad header line {line!r} in {raw_head!r}")
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
        resp = HTTPResponse(status, reason, version, headers, b"", raw_head)
        if head_only or status < 200 or status in (204, 304):
            return resp
        cl = resp.header("content-length")
        if cl is not None:
            n = int(cl)
            while len(self.buf) < n:
                if not self._fill(deadline, f"a {n}-byte response body"):
                    raise ConnectionEnded(f"connection ended inside a response body: {resp!r}")
            resp.body = bytes(self.buf[:n])
            del self.buf[:n]
        elif (resp.header("transfer-encoding") or "").lower() == "chunked":
            raise AssertionError("chunked responses are not expected from punchd")
        else:
            while self._fill(deadline, "a response body up to EOF"):
                pass
            resp.body = bytes(self.buf)
            self.buf.clear()
        return resp

    def request(self, method="GET", path="/", headers=None, body=b"", version="HTTP/1.1",
                timeout=None, head_only=None):
        self.send_request(method, path, headers, body, version)
        return self.read_response(timeout, head_only=(method == "HEAD") if head_only is None else head_only)

    # ---- the opening handshake ----

    def handshake_headers(self, key=None, version="13", omit=(), extra=None,
                          upgrade="websocket", connection="Upgrade"):
        hs = [("Upgrade", upgrade), ("Connection", connection),
              ("Sec-WebSocket-Key", key if key is not None else new_key()),
              ("Sec-WebSocket-Version", version)]
        omit = {o.lower() for o in omit}
        hs = [(k, v) for k, v in hs if k.lower() not in omit]
        return hs + list(extra or [])

    def handshake(self, path="/", key=None, expect=101, timeout=None, **kw):
        """Sends an upgrade request and reads the answer. With expect=101 (the default)
        asserts a correct 101 (Upgrade, Connection, Sec-WebSocket-Accept) and leaves the
        connection in WebSocket mode. Returns the response."""
        self.start_handshake(path, key, **kw)
        return self.finish_handshake(path, expect, timeout)

    def start_handshake(self, path="/", key=None, **kw):
        """Sends the upgrade request only (finish_handshake reads the answer)."""
        self.hs_key = key if key is not None else new_key()
        self.send_request("GET", path, self.handshake_headers(key=self.hs_key, **kw))

    def finish_handshake(self, path="/", expect=101, timeout=None):
        key = self.hs_key
        resp = self.read_response(timeout)
        if expect is not None and resp.status != expect:
            raise AssertionError(f"handshake on {path}: expected {expect}, got {resp!r}")
        if resp.status == 101:
            if (resp.header("upgrade") or "").lower() != "websocket":
                raise AssertionError(f"101 without Upgrade: websocket: {resp!r}")
            if "upgrade" not in [t.strip().lower() for t in (resp.header("connection") or "").split(",")]:
                raise AssertionError(f"101 without Connection: Upgrade: {resp!r}")
            if resp.header("sec-websocket-accept") != accept_key(key):
                raise AssertionError(f"Sec-WebSocket-Accept {resp.header('sec-websocket-accept')!r} "
                                     f"!= {accept_key(key)!r} for key {key!r}")
        return resp

    # ---- frames out ----

    def send_frame(self, opcode, payload=b"", **kw):
        data = build_frame(opcode, payload, **kw)
        self.send_raw(data)
        return data

    def send_text(self, text):
        return self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text)

    def send_json(self, obj):
        return self.send_text(json.dumps(obj, separators=(",", ":")))

    def send_binary(self, data):
        return self.send_frame(OP_BINARY, data)

    def send_fragments(self, parts, opcode=OP_TEXT, between=None):
        """One message in len(parts) frames: opcode, then continuations; the last has FIN.
        between(i) is called after frame i is sent (e.g. to interleave a ping)."""
        parts = [p.encode("utf-8") if isinstance(p, str) else p for p in parts]
        for i, p in enumerate(parts):
            self.send_frame(opcode if i == 0 else OP_CONT, p, fin=(i == len(parts) - 1))
            if between and i < len(parts) - 1:
                between(i)

    def ping(self, payload=b""):
        return self.send_frame(OP_PING, payload)

    def pong(self, payload=b""):
        return self.send_frame(OP_PONG, payload)

    def send_close(self, code=1000, reason=""):
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode("utf-8")
        self.sent_close = True
        return self.send_frame(OP_CLOSE, payload)

    # ---- frames in ----

    def _need(self, n, deadline, what):
        while len(self.buf) < n:
            if not self._fill(deadline, what):
                raise ConnectionEnded(f"TCP connection ended (no close frame) while waiting for {what}"
                                      + (f"; close code was {self.close_code}" if self.got_close else ""),
                                      code=self.close_code)

    def recv_frame(self, timeout=None, what="a frame"):
        """The next frame from the server, checked for RFC 6455 conformance."""
        deadline = self._deadline(timeout)
        self._need(2, deadline, what)
        b0, b1 = self.buf[0], self.buf[1]
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF
        if b1 & 0x80:
            raise AssertionError("the server sent a masked frame")
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, deadline, what)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, deadline, what)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n, deadline, what)
        payload = bytes(self.buf[off:off + n])
        del self.buf[:off + n]
        if rsv:
            raise AssertionError(f"the server set RSV bits {rsv} (no extension was negotiated)")
        if opcode not in OP_NAMES:
            raise AssertionError(f"the server sent reserved opcode {opcode}")
        if opcode >= 8 and (not fin or n > 125):
            raise AssertionError(f"bad control frame from the server: fin={fin} len={n}")
        return Frame(fin, rsv, opcode, payload)

    def _on_close(self, frame, pending):
        if len(frame.payload) == 1:
            raise AssertionError(f"close frame with a 1-byte payload: {frame.payload!r}")
        self.got_close = True
        if frame.payload:
            self.close_code = struct.unpack("!H", frame.payload[:2])[0]
            self.close_reason = frame.payload[2:].decode("utf-8")
        if not self.sent_close:
            try:
                self.send_close(self.close_code if self.close_code is not None else 1000)
            except OSError:
                pass
        return ConnectionEnded(f"the server closed the WebSocket with code {self.close_code} "
                               f"({self.close_reason!r})", self.close_code, self.close_reason, pending)

    def recv_message(self, timeout=None):
        """The next data message: (opcode, payload bytes), fragments reassembled. Pings are
        answered (auto_pong) and recorded; a close frame raises ConnectionEnded."""
        deadline = self._deadline(timeout)
        op, parts = None, []
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()), what="a message")
            if f.opcode == OP_PING:
                self.pings.append(f.payload)
                self.ping_times.append(time.monotonic())
                if self.auto_pong and not self.sent_close:
                    self.pong(f.payload)
                continue
            if f.opcode == OP_PONG:
                self.pongs.append(f.payload)
                continue
            if f.opcode == OP_CLOSE:
                raise self._on_close(f, [])
            if f.opcode == OP_CONT:
                if op is None:
                    raise AssertionError("continuation frame without a message from the server")
            else:
                if op is not None:
                    raise AssertionError("new data frame inside a fragmented message from the server")
                op = f.opcode
            parts.append(f.payload)
            if f.fin:
                return op, b"".join(parts)

    def recv_json(self, timeout=None):
        """The next message, which must be a text message holding one JSON object."""
        op, data = self.recv_message(timeout)
        if op != OP_TEXT:
            raise AssertionError(f"expected a text message, got {OP_NAMES.get(op)}: {data[:200]!r}")
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise AssertionError(f"message is not JSON ({e}): {data[:300]!r}") from None
        if not isinstance(obj, dict):
            raise AssertionError(f"message is not a JSON object: {data[:300]!r}")
        return obj

    def request_json(self, obj, timeout=None):
        """Sends obj (or raw text) and returns the next JSON message."""
        if isinstance(obj, (str, bytes)):
            self.send_text(obj)
        else:
            self.send_json(obj)
        return self.recv_json(timeout)

    def expect_no_message(self, seconds):
        """Asserts that no data message (and no close) arrives within seconds; pings are answered."""
        try:
            op, data = self.recv_message(seconds)
        except ConnectionEnded:
            raise
        except AssertionError as e:
            if "timed out" in str(e):
                return
            raise
        raise AssertionError(f"expected no message, got {OP_NAMES.get(op)}: {data[:300]!r}")

    def expect_close(self, timeout=None, allow_messages=True):
        """Reads until the server's close frame; returns its code (None: no code in it).
        Raises ConnectionEnded if the TCP connection ends without a close frame. Data messages
        before it are skipped (or fail with allow_messages=False); they are kept in
        self.skipped. The socket stays open (expect_eof may follow)."""
        deadline = self._deadline(timeout)
        self.skipped = []
        try:
            while True:
                op, data = self.recv_message(max(0.0, deadline - time.monotonic()))
                if not allow_messages:
                    raise AssertionError(f"expected a close, got {OP_NAMES.get(op)}: {data[:300]!r}")
                self.skipped.append((op, data))
        except ConnectionEnded as e:
            if not self.got_close:
                raise
            return e.code

    def close_cleanly(self, code=1000, timeout=None):
        """Sends a close, waits for the server's close frame; returns its code."""
        self.send_close(code)
        try:
            return self.expect_close(timeout)
        finally:
            self.close()


def http_get(host, port, path, timeout=None, headers=None, method="GET"):
    """One request on a fresh connection; returns the response."""
    c = Conn(host, port, timeout=timeout)
    try:
        return c.request(method, path, headers=headers, timeout=timeout)
    finally:
        c.close()
