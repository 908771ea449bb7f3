"""Helpers shared by the test_abuse_* modules (issue 5's abuse limits on the wire).
This module holds no tests.

The limits are per source IP, so each test talks from loopback addresses of
its own (127.0.0.0/8 is all loopback on Linux): one test's buckets and
once-a-second notices never leak into another's.

Synchronisation without sleeping: punchd reads each UDP socket in order, and
loopback delivers a datagram into the receiver's queue during sendto(). So
after a flood, one request from a fresh source (its own buckets) whose reply
has come back proves that every datagram of the flood was handled and every
reply to it is already queued on its socket: sync() then drain() counts them
exactly, with no silence to wait out (the marker must go to the same socket
as the flood: the main one, or the probe socket). The time sync() returns
bounds how long the buckets could refill while the flood was handled.
"""
import itertools
import json
import socket
import time

import wsclient
from harness import REPLY_TIMEOUT, check_size, encode, scaled

_marker_ips = itertools.count(1)
_test_ips = itertools.count(1)


def fresh_ip(net=200):
    """A loopback address no other test has used (127.<net>.x.y)."""
    n = next(_test_ips)
    return f"127.{net}.{n // 250}.{n % 250 + 1}"


class Udp:
    """One UDP socket bound to a chosen loopback address."""

    def __init__(self, server, ip="127.0.0.1", to=None):
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((ip, 0))
        self.ip, self.port = self.sock.getsockname()[:2]
        self.addr = f"[{self.ip}]:{self.port}" if fam == socket.AF_INET6 else f"{self.ip}:{self.port}"
        self.to = to or server.target(fam)
        self.server = server

    def close(self):
        self.sock.close()

    def send(self, msg, to=None):
        data = encode(msg)
        self.sock.sendto(data, to or self.to)
        return data

    def drain(self):
        """Every datagram already queued (no waiting)."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recvfrom(65536)[0])
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self.sock.setblocking(True)
        return out

    def recv(self, timeout=None):
        self.sock.settimeout(scaled(REPLY_TIMEOUT) if timeout is None else timeout)
        try:
            return self.sock.recvfrom(65536)[0]
        except socket.timeout:
            raise AssertionError(f"no datagram for {self.addr} within {self.sock.gettimeout():.1f}s") from None

    def request(self, msg, to=None):
        """Sends msg, returns the parsed reply (checked: <= 4x, <= max_datagram)."""
        req = self.send(msg, to)
        raw = self.recv()
        check_size(req, raw, self.server.max_datagram)
        return json.loads(raw)


def sync(server, key=None, family=socket.AF_INET, to=None):
    """Waits until punchd has handled every datagram sent to one of its UDP
    sockets (the main one, or the one at `to`, e.g. the probe address) before
    this call (see the module doc): the order holds within one socket only.
    Returns time.monotonic() at that moment."""
    n = next(_marker_ips)
    ip = "::1" if family == socket.AF_INET6 else f"127.254.{n // 250}.{n % 250 + 1}"
    m = Udp(server, ip)
    try:
        msg = {"action": "alive"}   # answered on the main socket and (badRequest) on the probe socket
        if key is not None:
            msg["key"] = key
        m.send(msg, to)
        m.recv()
        return time.monotonic()
    finally:
        m.close()


def udp_drops():
    """UDP datagrams the kernel dropped (full receive buffers and the like) in
    this network namespace so far, IPv4 and IPv6: what a flood may lose before
    punchd or a test socket reads it. System-wide, so other traffic only
    widens the allowance."""
    total = 0
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        if len(rows) == 2:
            total += int(dict(zip(rows[0][1:], rows[1][1:])).get("InErrors", 0))
        with open("/proc/net/snmp6") as f:
            for line in f:
                k, v = line.split()
                if k == "Udp6InErrors":
                    total += int(v)
    except (OSError, ValueError):
        pass
    return total


def code_of(raw):
    """The error code of a reply (bytes), or its action if it is not an error."""
    obj = json.loads(raw)
    if obj.get("action") == "error":
        return obj.get("data", {}).get("code")
    return obj.get("action")


def tally(replies):
    """{code or action: count} over a list of raw replies."""
    out = {}
    for raw in replies:
        c = code_of(raw)
        out[c] = out.get(c, 0) + 1
    return out


def tcp_conn(server, ip, timeout=None, host=None):
    """A wsclient.Conn from loopback address ip to punchd's TCP listener (or
    to host on its port); connected, nothing sent yet."""
    thost, port = server.tcp_target()
    c = wsclient.Conn(host or thost, port, timeout=timeout, connect=False)
    c.sock.bind((ip, 0))
    return c.connect()


def limited(server, which, metrics_key=None):
    """punchd_limited_total{limit=which} from /metrics."""
    from harness import metric, parse_metrics
    if metrics_key is None:
        return metric(server.metrics(), "punchd_limited_total", limit=which)
    r = server.http("/metrics", headers={"Authorization": f"Bearer {metrics_key}"})
    if r.status != 200:
        raise AssertionError(f"GET /metrics with the metrics key: {r!r}")
    return metric(parse_metrics(r.text()), "punchd_limited_total", limit=which)
