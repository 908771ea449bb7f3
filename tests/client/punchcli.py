"""Helpers for libpunch's integration tests: run the real `punch` CLI
(PUNCH_BIN) against a real punchd (harness.Punchd), read its status lines and
stdout, and find a process's UDP sockets (/proc) to know the ports it uses.

Every wait is on an event (a line, bytes, an exit) with a generous upper
bound, scaled for sanitizer builds; nothing sleeps to synchronise.
Python 3 standard library only.
"""
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

from harness import ROOT, SANITIZER_MARKERS, scaled

PUNCH_BIN = os.environ.get("PUNCH_BIN") or os.path.join(ROOT, "build", "punch")
SHARE_RE = re.compile(r"^punch: shareId ([0-9A-Za-z]{8})$")
NAT_RE = re.compile(r"^punch: nat (eim|sequential|random|unknown)$")
CONNECTED_RE = re.compile(r"^punch: connected path=(direct|predicted|relay) rtt_ms=([0-9]+(?:\.[0-9]+)?) "
                          r"peer=(\S+)$")
ERROR_RE = re.compile(r"^punch: error (.+)$")


class Punch:
    """One `punch` process. stdin is a pipe (write()/close_stdin()), stdout is
    collected as bytes, stderr as lines."""

    def __init__(self, *args, env=None):
        self.argv = [PUNCH_BIN] + [str(a) for a in args]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.lines = []
        self.out = bytearray()
        self.cond = threading.Condition()
        self.err_done = False
        self.out_done = False
        self.threads = [threading.Thread(target=self._read_err, daemon=True),
                        threading.Thread(target=self._read_out, daemon=True)]
        for t in self.threads:
            t.start()

    def _read_err(self):
        for raw in iter(self.proc.stderr.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.err_done = True
            self.cond.notify_all()

    def _read_out(self):
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                break
            with self.cond:
                self.out += chunk
                self.cond.notify_all()
        with self.cond:
            self.out_done = True
            self.cond.notify_all()

    def stderr_text(self):
        with self.cond:
            return "\n".join(self.lines)

    def describe(self):
        return f"{' '.join(self.argv)} (status {self.proc.poll()}):\n{self.stderr_text()[-3000:]}"

    def wait_line(self, regex, timeout=10):
        """The first stderr line matching regex (a match object); fails if the
        process ends, or prints an error, before it."""
        deadline = time.monotonic() + scaled(timeout)
        with self.cond:
            while True:
                for line in self.lines:
                    m = regex.match(line)
                    if m:
                        return m
                if self.err_done:
                    raise AssertionError(f"punch ended without a line matching {regex.pattern}: "
                                         + self.describe())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {regex.pattern} within {scaled(timeout):.0f}s: "
                                         + self.describe())
                self.cond.wait(left)

    def share_id(self, timeout=10):
        return self.wait_line(SHARE_RE, timeout).group(1)

    def nat(self, timeout=10):
        return self.wait_line(NAT_RE, timeout).group(1)

    def connected(self, timeout=20):
        """(path, rtt_ms, peer) of the connected line."""
        m = self.wait_line(CONNECTED_RE, timeout)
        return m.group(1), float(m.group(2)), m.group(3)

    def write(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def wait_stdout(self, n, timeout=20):
        """Waits until at least n bytes came out on stdout; returns them all."""
        deadline = time.monotonic() + scaled(timeout)
        with self.cond:
            while len(self.out) < n:
                if self.out_done:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return bytes(self.out)

    def wait_exit(self, timeout=20):
        """The exit status (kills the process and fails after the timeout);
        also asserts no sanitizer report on stderr."""
        try:
            rc = self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"punch did not exit within {scaled(timeout):.0f}s: " + self.describe())
        for t in self.threads:
            t.join(scaled(5))
        text = self.stderr_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                raise AssertionError(f"sanitizer report ({marker}): " + self.describe())
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        for stream in (self.proc.stdin,):
            try:
                stream.close()
            except (BrokenPipeError, OSError):
                pass


def udp_endpoints(pid):
    """[(ip, port)] of the IPv4/IPv6 UDP sockets process pid holds (/proc)."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for name, family in (("/proc/net/udp", socket.AF_INET), ("/proc/net/udp6", socket.AF_INET6)):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) < 10 or cols[9] not in inodes:
                continue
            ip_hex, port_hex = cols[1].split(":")
            raw = bytes.fromhex(ip_hex)
            # /proc prints each 32-bit word in host order
            words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]
            ip = socket.inet_ntop(family, b"".join(words))
            found.append((ip, int(port_hex, 16)))
    return found


def fmt(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
