"""Issue 5 with really forged UDP sources: as root, a raw socket (IP_HDRINCL)
puts any source ip:port on a datagram to punchd over loopback, as an attacker
on the internet can. Checks: a forged request cannot change another peer's
address, id or relay in its name; forged announces from a thousand sources
cannot fill the registry (retry cookies) nor lock out a real client; and the
bytes punchd sends to an address its forged requests name are capped
(response rate limiting). Skipped without root."""
import json
import os
import socket
import struct
import time
import unittest

from harness import PunchdTestCase, encode, padded
from test_abuse_helpers import Udp, fresh_ip, limited, sync, tally, udp_drops


def raw_socket_available():
    if os.geteuid() != 0:
        return False
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).close()
        return True
    except OSError:
        return False


class Forger:
    """Sends UDP datagrams with a chosen IPv4 source (raw socket; the kernel
    fills in the IP checksum and id; a UDP checksum of 0 means none)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def close(self):
        self.sock.close()

    def send(self, src, dst, msg):
        payload = encode(msg)
        udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, socket.IPPROTO_UDP, 0,
                         socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
        self.sock.sendto(ip + udp, (dst[0], 0))
        return payload


@unittest.skipUnless(raw_socket_available(), "needs root for a raw socket to forge source addresses")
class SpoofCase(PunchdTestCase):
    def setUp(self):
        super().setUp()
        self.forger = Forger()
        self.addCleanup(self.forger.close)

    def udp(self, ip=None):
        u = Udp(self.server, ip or fresh_ip(net=245))
        self.addCleanup(u.close)
        return u

    def announce(self, u, **fields):
        r = u.request(padded(dict({"action": "announce"}, **fields), 300))
        self.assertEqual(r["action"], "announceReceived", r)
        return r["data"]

    def forge(self, victim, msg):
        """msg as if sent by victim (a Udp); returns once punchd has handled it."""
        self.forger.send((victim.ip, victim.port), self.server.target(socket.AF_INET), msg)
        sync(self.server)


class ForgedIdentityTest(SpoofCase):
    server_flags = ()

    def test_forged_override_renew_relay_change_nothing(self):
        a, b = self.udp(), self.udp()
        ad, bd = self.announce(a), self.announce(b)
        # Someone forges a's source: an override, a renewal and a relay, without the token.
        self.forge(a, {"action": "pulse", "override": True, "ip": "203.0.113.66", "port": 6666})
        self.forge(a, {"action": "pulse", "override": True, "ip": "203.0.113.66", "port": 6666,
                       "token": "0" * 32})
        self.forge(a, padded({"action": "pulse", "shareId": True, "token": "1" * 32}, 200))
        self.forge(a, padded({"action": "relay", "shareId": bd["shareId"], "data": {"sdp": "evil"}}, 200))
        # The answers went to a's real address, as any answer does.
        got = tally(a.drain())
        self.assertEqual(got, {"pulseReceived": 2, "unauthorized": 2}, got)
        # b received no relay; a still has its id at its real address.
        self.assertEqual(b.drain(), [])
        r = b.request(padded({"action": "push", "shareId": ad["shareId"]}, 300))
        self.assertEqual(r["action"], "pushReceived", r)
        self.assertEqual(r["data"]["peeraddr"], a.addr)
        self.assertEqual(json.loads(a.recv())["action"], "income")

    def test_forged_pulse_cannot_replace_pubkey_candidates_multiaddr(self):
        # KNOWN BUG (src/tracker.c, tracker_pulse and tracker_announce): the
        # optional fields a peer describes itself with (pubkey, candidates,
        # multiaddr) are replaced by any pulse or re-announce from its address,
        # without the token, so a forged datagram swaps them. The next push to
        # the peer hands the pusher the forger's candidates and pubkey: libpunch
        # knocks at the forger's addresses and keys its end-to-end stream with
        # the forger's key (a man in the middle from off the path). Changing
        # them should need the token, as an override does.
        a, b = self.udp(), self.udp()
        ad = self.announce(a, pubkey="QUxJQ0VfS0VZ", candidates=["192.168.1.10:5000"], multiaddr="/ip4/1.2.3.4")
        self.announce(b)
        self.forge(a, {"action": "pulse", "pubkey": "RVZJTF9LRVk", "candidates": ["198.51.100.66:6666"],
                       "multiaddr": "/ip4/6.6.6.6"})
        self.forge(a, padded({"action": "announce", "pubkey": "RVZJTF9LRVk"}, 200))
        a.drain()
        r = b.request(padded({"action": "push", "shareId": ad["shareId"]}, 900))
        self.assertEqual(r["action"], "pushReceived", r)
        self.assertEqual((r["data"].get("pubkey"), r["data"].get("candidates"), r["data"].get("multiaddr")),
                         ("QUxJQ0VfS0VZ", ["192.168.1.10:5000"], "/ip4/1.2.3.4"), r)


class ForgedFloodTest(SpoofCase):
    """Retry cookies on (threshold 0.5 of 64 peers), rate limits off so that
    only the cookies stand between the forged announces and the registry."""
    server_flags = ("--max-peers", "64", "--retry-threshold", "0.5", "--rate-requests-per-sec", "0",
                    "--rate-income-per-sec", "0", "--rate-response-bytes-per-sec", "0")
    server_kwargs = {"limits": True}

    def test_thousand_forged_sources_cannot_fill_the_registry(self):
        before = limited(self.server, "retry")
        to = self.server.target(socket.AF_INET)
        n = 1000
        d0 = udp_drops()
        for i in range(n):
            src = (f"127.66.{i // 250}.{i % 250 + 1}", 10000 + i)
            self.forger.send(src, to, {"action": "announce"})
        sync(self.server)
        lost = udp_drops() - d0   # what the kernel dropped before punchd read it
        peers = self.server.healthz()["peers"]
        self.assertLessEqual(peers, 32, "forged announces got in past the threshold")
        self.assertGreaterEqual(peers, 32 if lost == 0 else 1)   # below the threshold anyone gets in
        retried = limited(self.server, "retry") - before
        self.assertLessEqual(retried, n - peers)
        self.assertGreaterEqual(retried, n - peers - lost)
        # A real client still gets in: one cookie round trip.
        u = self.udp()
        r = u.request(b'{"action":"announce"}')
        self.assertEqual(r["data"]["code"], "retry", r)
        r = u.request({"action": "announce", "cookie": r["data"]["cookie"]})
        self.assertEqual(r["action"], "announceReceived", r)
        # A cookie sent to a forged source is of no use from another address.
        other = self.udp()
        r = other.request({"action": "announce", "cookie": "A" * 22})
        self.assertEqual(r["data"]["code"], "retry", r)


class ForgedReflectionTest(SpoofCase):
    """Requests forged with the victim's address: what reaches it is capped."""
    RATE = 2000
    server_flags = ("--rate-response-bytes-per-sec", str(RATE), "--rate-requests-per-sec", "0",
                    "--rate-income-per-sec", "0", "--retry-threshold", "1")
    server_kwargs = {"limits": True}

    def test_reflected_bytes_capped(self):
        victim = self.udp()
        to = self.server.target(socket.AF_INET)
        req = padded({"action": "announce"}, 300)
        t0 = time.monotonic()
        sent = 0
        for _ in range(300):
            sent += len(self.forger.send((victim.ip, victim.port), to, req))
        elapsed = sync(self.server) - t0
        got = victim.drain()
        total = sum(len(r) for r in got)
        self.assertGreater(len(got), 0)
        self.assertLessEqual(total, 2 * self.RATE + self.RATE * elapsed, (total, len(got), elapsed))
        self.assertLess(total, sent / 10)   # far less than the attacker spent, let alone 4x of it
