"""libpunch against a tracker that lies: a minimal tracker written here (UDP
only, the documented contract: announce, pulse, push with pushReceived and
income carrying addresses, pubkey and the pairing nonce). Honest, it is
enough for two `punch` CLIs to connect directly, and both print the same
fingerprint. Swapping one public key (what a tracker in the middle must do)
makes the pairing's keys disagree: no knock authenticates, nothing connects,
nothing leaks to stdout."""
import base64
import json
import os
import re
import secrets
import socket
import string
import threading
import unittest

from punchcli import Punch, fmt

FINGERPRINT_RE = re.compile(r"^punch: fingerprint (\S+)$")


class FakeTracker:
    """UDP-only tracker on 127.0.0.1; `forge` replaces the pubkey handed to the pusher."""

    def __init__(self, forge=False):
        self.forge = forge
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.peers = {}    # shareId -> {"addr": (ip, port), "pubkey": str}
        self.by_addr = {}  # (ip, port) -> shareId
        self.pushes = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return fmt(*self.sock.getsockname())

    def send(self, obj, to):
        self.sock.sendto(json.dumps(obj, separators=(",", ":")).encode(), to)

    def run(self):
        while not self.stop.is_set():
            try:
                data, src = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                req = json.loads(data)
            except ValueError:
                continue
            action = req.get("action")
            if action == "announce":
                sid = self.by_addr.get(src) or "".join(secrets.choice(string.ascii_letters) for _ in range(8))
                self.by_addr[src] = sid
                self.peers[sid] = {"addr": src, "pubkey": req.get("pubkey")}
                self.send({"action": "announceReceived",
                           "data": {"shareId": sid, "token": secrets.token_hex(16), "ttl": 300,
                                    "addr": fmt(*src), "nat": "unknown"}}, src)
            elif action == "pulse":
                self.send({"action": "pulseReceived", "data": {"status": "0", "overriden": "false"}}, src)
            elif action == "push":
                me, target = self.by_addr.get(src), self.peers.get(req.get("shareId"))
                if not me or not target:
                    self.send({"action": "error", "data": {"code": "unknownShareId"}}, src)
                    continue
                self.pushes += 1
                nonce = secrets.token_hex(16)
                pk = target["pubkey"]
                if self.forge:  # a key of the "tracker's" own instead of the target's
                    pk = base64.b64encode(os.urandom(32)).decode()
                self.send({"action": "pushReceived",
                           "data": {"peeraddr": fmt(*target["addr"]), "peerShareId": req["shareId"],
                                    "transports": ["udp"], "pubkey": pk, "nonce": nonce}}, src)
                self.send({"action": "income",
                           "data": {"peeraddr": fmt(*src), "peerShareId": me, "transports": ["udp"],
                                    "addrTransport": "udp", "pubkey": self.peers[me]["pubkey"],
                                    "nonce": nonce}}, target["addr"])

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


class ClientTamperTest(unittest.TestCase):
    def start(self, forge):
        t = FakeTracker(forge)
        self.addCleanup(t.close)
        return t

    def punch(self, *args):
        p = Punch(*args)
        self.addCleanup(p.kill)
        return p

    def test_honest_minimal_tracker_connects(self):
        t = self.start(forge=False)
        lis = self.punch("--tracker", t.address, "--bind", "127.0.0.1", "--timeout", "20", "listen")
        sid = lis.share_id()
        con = self.punch("--tracker", t.address, "--bind", "127.0.0.1", "--timeout", "20", "connect", sid)
        self.assertEqual(lis.connected()[0], "direct")
        self.assertEqual(con.connected()[0], "direct")
        fps = [p.wait_line(FINGERPRINT_RE).group(1)
               for p in (lis, con)]
        self.assertEqual(fps[0], fps[1])
        lis.write(b"through a tracker written in Python\n")
        con.write(b"ok\n")
        lis.close_stdin()
        con.close_stdin()
        self.assertEqual(lis.wait_exit(), 0, lis.describe())
        self.assertEqual(con.wait_exit(), 0, con.describe())
        self.assertEqual(bytes(con.out), b"through a tracker written in Python\n")
        self.assertEqual(bytes(lis.out), b"ok\n")

    def test_swapped_key_connects_nothing(self):
        t = self.start(forge=True)
        lis = self.punch("--tracker", t.address, "--bind", "127.0.0.1", "--timeout", "3", "listen")
        sid = lis.share_id()
        con = self.punch("--tracker", t.address, "--bind", "127.0.0.1", "--timeout", "3", "connect", sid)
        lis.write(b"secret\n")
        con.write(b"secret too\n")
        self.assertEqual(con.wait_exit(), 1, con.describe())
        self.assertEqual(lis.wait_exit(), 1, lis.describe())
        self.assertGreaterEqual(t.pushes, 1)
        for p in (lis, con):
            self.assertNotIn("connected", p.stderr_text())
            self.assertEqual(p.stderr_text().splitlines()[-1], "punch: error timeout")
            self.assertEqual(bytes(p.out), b"")
